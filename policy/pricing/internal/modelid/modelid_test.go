package modelid

import "testing"

func TestProvider(t *testing.T) {
	for in, want := range map[string]string{
		"anthropic": "anthropic", "bedrock": "bedrock", "bedrock_converse": "bedrock",
		"vertex": "vertex_ai", "vertex_ai": "vertex_ai", "vertex-ai": "vertex_ai",
		"vertex_ai-anthropic_models": "vertex_ai", "openai": "openai",
		"text-completion-openai": "openai", "azure": "azure", "openrouter": "openrouter",
	} {
		if got := Provider(in); got != want {
			t.Errorf("Provider(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tt := range []struct{ provider, in, want string }{
		{"anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"},
		{"anthropic", "Claude-Sonnet-4-5", "claude-sonnet-4-5"},
		{"anthropic", "anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"},
		{"vertex_ai", "vertex_ai/claude-sonnet-4@20250514", "claude-sonnet-4@20250514"},
		{"vertex_ai", "vertex/claude-sonnet-4@20250514", "claude-sonnet-4@20250514"},
		{"bedrock", "bedrock/invoke/anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0", "us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"bedrock", "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"},
		{"bedrock", "bedrock/us-east-1/anthropic.claude-v1", "us-east-1/anthropic.claude-v1"},
		// A path that does not start with the provider is kept.
		{"openrouter", "openrouter/anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4"},
		{"anthropic", "openai/gpt-4o", "openai/gpt-4o"},
	} {
		if got := Key(tt.provider, tt.in); got != tt.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tt.provider, tt.in, got, tt.want)
		}
	}
}

func TestBaseNoRegionNeutral(t *testing.T) {
	for _, tt := range []struct{ in, base, noRegion, neutral string }{
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"claude-3-5-haiku-latest", "claude-3-5-haiku", "claude-3-5-haiku-latest", "claude-3-5-haiku"},
		{"claude-sonnet-4@20250514", "claude-sonnet-4", "claude-sonnet-4@20250514", "claude-sonnet-4"},
		{"claude-opus-4-6@default", "claude-opus-4-6", "claude-opus-4-6@default", "claude-opus-4-6"},
		{"claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2", "claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2"},
		{"us.anthropic.claude-sonnet-4-20250514-v1:0", "us.anthropic.claude-sonnet-4", "anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"},
		{"global.anthropic.claude-opus-4-6-v1", "global.anthropic.claude-opus-4-6", "anthropic.claude-opus-4-6-v1", "claude-opus-4-6"},
		{"us-gov.anthropic.claude-opus-4-8", "us-gov.anthropic.claude-opus-4-8", "anthropic.claude-opus-4-8", "claude-opus-4-8"},
		{"anthropic.claude-v2:1", "anthropic.claude-v2:1", "anthropic.claude-v2:1", "claude-v2:1"},
		{"anthropic.claude-instant-v1", "anthropic.claude-instant-v1", "anthropic.claude-instant-v1", "claude-instant-v1"},
		{"gpt-4o-2024-08-06", "gpt-4o", "gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-4-0613", "gpt-4-0613", "gpt-4-0613", "gpt-4-0613"},
		{"openai.gpt-oss-120b-1:0", "openai.gpt-oss-120b-1:0", "openai.gpt-oss-120b-1:0", "gpt-oss-120b-1:0"},
		{"anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", "claude-sonnet-4.5"},
		// "us." is a region only before a vendor-qualified id.
		{"us.model", "us.model", "us.model", "us.model"},
	} {
		if got := Base(tt.in); got != tt.base {
			t.Errorf("Base(%q) = %q, want %q", tt.in, got, tt.base)
		}
		if got := NoRegion(tt.in); got != tt.noRegion {
			t.Errorf("NoRegion(%q) = %q, want %q", tt.in, got, tt.noRegion)
		}
		if got := Neutral(tt.in); got != tt.neutral {
			t.Errorf("Neutral(%q) = %q, want %q", tt.in, got, tt.neutral)
		}
	}
}

func TestCandidates(t *testing.T) {
	got := Candidates("us.anthropic.claude-sonnet-4-20250514-v1:0")
	want := [4]string{"us.anthropic.claude-sonnet-4-20250514-v1:0", "us.anthropic.claude-sonnet-4",
		"anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4"}
	if got != want {
		t.Errorf("Candidates = %q", got)
	}
	if got := Candidates("gpt-4o"); got != [4]string{"gpt-4o"} {
		t.Errorf("Candidates(gpt-4o) = %q", got)
	}
}

func TestFamily(t *testing.T) {
	for in, want := range map[string]string{
		"claude-opus-4-8":         "claude-opus",
		"claude-opus-5-5":         "claude-opus",
		"claude-3-opus":           "claude-opus",
		"claude-4-opus":           "claude-opus",
		"claude-sonnet-4-7":       "claude-sonnet",
		"claude-3-5-sonnet-v2":    "claude-sonnet",
		"claude-haiku-4-9":        "claude-haiku",
		"claude-3-5-haiku":        "claude-haiku",
		"claude-instant-v1":       "claude-instant",
		"claude-fable-5":          "claude-fable",
		"anthropic/claude-opus-4": "claude-opus",
		"claude-2.1":              "",
		"claude-v2:1":             "",
		"claude":                  "",
		"gpt-5.4-mini":            "gpt-5-mini",
		"gpt-5.9":                 "gpt-5",
		"gpt-5":                   "gpt-5",
		"gpt-4.1":                 "gpt-4",
		"gpt-4.1-nano":            "gpt-4-nano",
		"gpt-4o":                  "gpt-4o",
		"gpt-4o-mini":             "gpt-4o-mini",
		"gpt-4-0613":              "gpt-4",
		"gpt-4-32k":               "gpt-4-32k",
		"gpt-5-chat-latest":       "gpt-5-chat",
		"gpt-4o-search-preview":   "gpt-4o-search",
		"gpt-oss-120b":            "",
		"o3-mini":                 "",
		"gemini-2.5-pro":          "",
	} {
		if got := Family(in); got != want {
			t.Errorf("Family(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIndex(t *testing.T) {
	type e struct {
		provider, key string
		price         int
	}
	entries := []e{
		{"anthropic", "claude-3-5-sonnet-20240620", 3},
		{"anthropic", "claude-3-5-sonnet-20241022", 3},
		{"anthropic", "gpt-4o", 25},
		{"anthropic", "gpt-4o-2024-05-13", 50},
		{"anthropic", "x-20250101", 1},
		{"anthropic", "x-20250202", 2},
		{"anthropic", "x-20250303", 1},
		{"bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", 3},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 33},
		{"bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", 30},
	}
	ix := NewIndex(len(entries), func(i int) (string, string) { return entries[i].provider, entries[i].key },
		func(i, j int) bool { return entries[i].price == entries[j].price })
	for _, tt := range []struct {
		provider, key string
		want          int // entry index, -1 for none
	}{
		{"anthropic", "claude-3-5-sonnet-20241022", 1},
		{"anthropic", "claude-3-5-sonnet-latest", 0}, // same price: the alias is kept
		{"anthropic", "gpt-4o-2024-11-20", 2},        // an exact key beats the alias
		{"anthropic", "x-latest", -1},                // a third entry cannot undo an ambiguity
		{"bedrock", "anthropic.claude-sonnet-4-20250514", 7},
		{"bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", 7},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 8},
		{"bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", 9},
		{"vertex_ai", "claude-3-5-sonnet-20241022", -1},
	} {
		i, ok := ix.Lookup(tt.provider, tt.key)
		if !ok {
			i = -1
		}
		if i != tt.want {
			t.Errorf("Lookup(%q, %q) = %d, want %d", tt.provider, tt.key, i, tt.want)
		}
	}
	if _, ok := ix.LookupSameRegion("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"); ok {
		t.Error("LookupSameRegion dropped the region")
	}
	if _, ok := ix.LookupExact("bedrock", "anthropic.claude-sonnet-4-20250514"); ok {
		t.Error("LookupExact used the base")
	}
}

package claudeids

import (
	"slices"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// The embedded catalog's Bedrock ids map every current Claude model, in each
// geography, to an id the catalog prices under bedrock.
func TestBedrockFromCatalog(t *testing.T) {
	ids := Catalog("bedrock")
	tests := []struct {
		region, model, want string
	}{
		// Aliases and dated ids of the same model give the same id.
		{"us-east-1", "claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"us-east-1", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"us-west-2", "Claude-Sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"us-east-1", "claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0"},
		{"us-east-1", "claude-opus-4-1", "us.anthropic.claude-opus-4-1-20250805-v1:0"},
		{"us-east-1", "claude-opus-4-0", "us.anthropic.claude-opus-4-20250514-v1:0"},
		{"us-east-1", "claude-sonnet-4-0", "us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"us-east-1", "claude-sonnet-4-20250514", "us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"us-east-1", "claude-3-7-sonnet-latest", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"},
		{"us-east-1", "claude-3-5-sonnet-latest", "us.anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{"us-east-1", "claude-3-5-sonnet-20240620", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"},
		// Undated Bedrock ids serve a dated request; a version beats none.
		{"us-east-1", "claude-opus-4-6", "us.anthropic.claude-opus-4-6-v1"},
		{"us-east-1", "claude-opus-4-6-20260205", "us.anthropic.claude-opus-4-6-v1"},
		{"us-east-1", "claude-opus-4-8", "us.anthropic.claude-opus-4-8-v1"},
		{"us-east-1", "claude-sonnet-4-6", "us.anthropic.claude-sonnet-4-6"},
		// Other geographies, and the global profile where the region's
		// geography has none.
		{"eu-central-1", "claude-sonnet-4-5", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"ap-northeast-1", "claude-sonnet-4-5", "jp.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"ap-northeast-1", "claude-sonnet-4-20250514", "apac.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"ap-southeast-2", "claude-opus-4-6", "au.anthropic.claude-opus-4-6-v1"},
		{"ap-south-1", "claude-opus-4-5", "global.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"eu-west-1", "claude-sonnet-4-6", "eu.anthropic.claude-sonnet-4-6"},
		{"us-gov-west-1", "claude-sonnet-4-5", "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"sa-east-1", "claude-sonnet-4-5", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		// Only the in-region model id.
		{"sa-east-1", "claude-3-opus-20240229", "anthropic.claude-3-opus-20240229-v1:0"},
	}
	for _, tt := range tests {
		got, ok := NewBedrock(ids, tt.region).Map(tt.model)
		if !ok || got != tt.want {
			t.Errorf("%s: Map(%q) = %q, %v; want %q", tt.region, tt.model, got, ok, tt.want)
			continue
		}
		if _, ok := pricing.Embedded().Lookup("bedrock", got); !ok {
			t.Errorf("%s: the catalog has no bedrock price for %q", tt.region, got)
		}
	}
}

func TestVertexFromCatalog(t *testing.T) {
	v := NewVertex(Catalog("vertex"))
	tests := []struct{ model, want string }{
		{"claude-sonnet-4-5", "claude-sonnet-4-5@20250929"},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5@20250929"},
		{"claude-haiku-4-5", "claude-haiku-4-5@20251001"},
		{"claude-opus-4-1", "claude-opus-4-1@20250805"},
		{"claude-opus-4-0", "claude-opus-4@20250514"},
		{"claude-opus-4-5-20251101", "claude-opus-4-5@20251101"},
		{"claude-3-5-sonnet-latest", "claude-3-5-sonnet-v2@20241022"},
		{"claude-3-5-sonnet-20241022", "claude-3-5-sonnet-v2@20241022"},
		{"claude-3-5-sonnet-20240620", "claude-3-5-sonnet@20240620"},
		{"claude-3-7-sonnet-20250219", "claude-3-7-sonnet@20250219"},
		// No snapshot on Vertex: the bare name, before @default.
		{"claude-opus-4-6", "claude-opus-4-6"},
		{"claude-sonnet-4-6", "claude-sonnet-4-6"},
		{"claude-opus-4-8", "claude-opus-4-8"},
	}
	for _, tt := range tests {
		got, ok := v.Map(tt.model)
		if !ok || got != tt.want {
			t.Errorf("Map(%q) = %q, %v; want %q", tt.model, got, ok, tt.want)
			continue
		}
		if _, ok := pricing.Embedded().Lookup("vertex", got); !ok {
			t.Errorf("the catalog has no vertex price for %q", got)
		}
	}
}

// Ids that are not Anthropic's, and models the catalog lacks, are not
// mapped: the provider is sent them as they are. (A snapshot the catalog
// lacks of a model with an undated id, as Vertex's bare claude-sonnet-4-5,
// maps to that id.)
func TestUnmapped(t *testing.T) {
	b := NewBedrock(Catalog("bedrock"), "us-east-1")
	v := NewVertex(Catalog("vertex_ai"))
	for _, model := range []string{
		"", "claude-", "claude-opus-9", "claude-opus-9-20270101", "claude-x-throttled", "gpt-5",
		"claude-haiku-4-5-20990101", // a snapshot the catalog does not know
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0",
		"anthropic.claude-sonnet-4-5-20250929-v1:0",
		"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
		"claude-sonnet-4-5@20250929", "claude-2.1", "vertex_ai/claude-sonnet-4-5",
	} {
		if got, ok := b.Map(model); ok {
			t.Errorf("bedrock: Map(%q) = %q", model, got)
		}
		if got, ok := v.Map(model); ok {
			t.Errorf("vertex: Map(%q) = %q", model, got)
		}
	}
	var zeroB *Bedrock
	var zeroV *Vertex
	if _, ok := zeroB.Map("claude-sonnet-4-5"); ok {
		t.Error("a nil Bedrock maps")
	}
	if _, ok := zeroV.Map("claude-sonnet-4-5"); ok {
		t.Error("a nil Vertex maps")
	}
}

// The choice depends on the ids given, not on the catalog: a table of
// synthetic ids, in an order that must not matter.
func TestBedrockChoice(t *testing.T) {
	ids := []string{
		"anthropic.claude-new-1-20260101-v1:0",
		"global.anthropic.claude-new-1-20260101-v1:0",
		"eu.anthropic.claude-new-1-20260101-v1:0",
		"eu.anthropic.claude-new-1-20270101-v1:0", // newer, only in the EU
		"anthropic.claude-new-1-20260101-v2:0",
		"anthropic.claude-new-2",
		"anthropic.claude-new-2-v1",
		"anthropic.claude-new-2-v1:1",
		"us-east-1/anthropic.claude-new-3-v1:0", // not an id Bedrock's API takes
		"claude-new-3-20260101-v1:0",            // nor this
		"anthropic.claude-new-3@20260101",       // nor this
	}
	tests := []struct{ region, model, want string }{
		{"us-east-1", "claude-new-1", "global.anthropic.claude-new-1-20260101-v1:0"},
		{"eu-west-3", "claude-new-1", "eu.anthropic.claude-new-1-20270101-v1:0"},
		{"eu-west-3", "claude-new-1-20260101", "eu.anthropic.claude-new-1-20260101-v1:0"},
		{"me-south-1", "claude-new-1-20260101", "global.anthropic.claude-new-1-20260101-v1:0"},
		{"us-east-1", "claude-new-2", "anthropic.claude-new-2-v1:1"},
		{"us-east-1", "claude-new-2-20260101", "anthropic.claude-new-2-v1:1"},
		{"us-east-1", "claude-new-3", ""},
	}
	for _, order := range [][]string{ids, reversed(ids)} {
		for _, tt := range tests {
			got, ok := NewBedrock(order, tt.region).Map(tt.model)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("%s: Map(%q) = %q, %v; want %q", tt.region, tt.model, got, ok, tt.want)
			}
		}
	}
	// In the region's geography, the in-region id is the last resort.
	only := NewBedrock([]string{"anthropic.claude-new-1-20260101-v1:0"}, "us-east-1")
	if got, _ := only.Map("claude-new-1"); got != "anthropic.claude-new-1-20260101-v1:0" {
		t.Errorf("in-region: %q", got)
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func TestProfilePrefixes(t *testing.T) {
	for region, want := range map[string][]string{
		"us-east-1": {"us."}, "us-gov-east-1": {"us-gov."}, "eu-north-1": {"eu."},
		"ap-northeast-3": {"jp.", "apac."}, "ap-southeast-4": {"au.", "apac."}, "ap-south-2": {"apac."},
		"ca-central-1": {"ca."}, "sa-east-1": nil,
	} {
		if got := ProfilePrefixes(region); !slices.Equal(got, want) {
			t.Errorf("%s: %q; want %q", region, got, want)
		}
	}
}

func BenchmarkBedrockMap(b *testing.B) {
	m := NewBedrock(Catalog("bedrock"), "us-east-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.Map("claude-sonnet-4-5"); !ok {
			b.Fatal("unmapped")
		}
	}
}

func TestFoundationModel(t *testing.T) {
	for id, want := range map[string]string{
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0":                                               "anthropic.claude-sonnet-4-5-20250929-v1:0",
		"global.anthropic.claude-opus-4-8-v1":                                                        "anthropic.claude-opus-4-8-v1",
		"us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0":                                           "anthropic.claude-sonnet-4-5-20250929-v1:0",
		"anthropic.claude-sonnet-4-5-20250929-v1:0":                                                  "anthropic.claude-sonnet-4-5-20250929-v1:0",
		"arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0": "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
		"claude-sonnet-4-5":       "claude-sonnet-4-5",
		"us.amazon.nova-pro-v1:0": "us.amazon.nova-pro-v1:0",
	} {
		if got := FoundationModel(id); got != want {
			t.Errorf("FoundationModel(%q) = %q, want %q", id, got, want)
		}
	}
}

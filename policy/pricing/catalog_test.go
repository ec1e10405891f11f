package pricing

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// mtok parses "in/out/read/5m/1h" in USD per million tokens, the way the
// issue and Anthropic's pricing page write rates.
func mtok(t *testing.T, s string) Rates {
	t.Helper()
	parts := strings.Split(s, "/")
	if len(parts) != 5 {
		t.Fatalf("bad rates %q", s)
	}
	var v [5]int64
	for i, p := range parts {
		r, err := ParseUSDPerMTok(strings.TrimSpace(p))
		if err != nil {
			t.Fatalf("bad rates %q: %v", s, err)
		}
		v[i] = r
	}
	return Rates{Input: v[0], Output: v[1], CacheRead: v[2], CacheWrite5m: v[3], CacheWrite1h: v[4]}
}

func fmtRates(r Rates) string {
	return strings.Join([]string{FormatUSDPerMTok(r.Input), FormatUSDPerMTok(r.Output), FormatUSDPerMTok(r.CacheRead),
		FormatUSDPerMTok(r.CacheWrite5m), FormatUSDPerMTok(r.CacheWrite1h)}, "/")
}

func TestEmbeddedVersion(t *testing.T) {
	c := Embedded()
	if c != Embedded() {
		t.Error("Embedded must return the same catalog every time")
	}
	if !regexp.MustCompile(`^litellm-2026-03-03\+portkey-f654307\+anthropic-2026-12-03\+[0-9a-f]{12}$`).MatchString(c.Version()) {
		t.Errorf("Version() = %q", c.Version())
	}
}

// TestCatalogSize checks the coverage the issue asks for: more than 2,000
// chat models from LiteLLM. TestLiteLLMCoverage checks them one by one when
// the source table is at hand.
func TestCatalogSize(t *testing.T) {
	bySource := map[string]int{}
	for _, p := range Embedded().Models() {
		bySource[p.Source]++
	}
	if bySource["litellm"] <= 2000 {
		t.Errorf("%d LiteLLM entries, want more than 2,000 (%v)", bySource["litellm"], bySource)
	}
	if bySource["portkey"] == 0 {
		t.Errorf("no Portkey entries (%v)", bySource)
	}
}

// TestGoldenAnthropicRates checks Anthropic's published rates (the issue's
// table, WIRE-FORMATS 7) for each model under the ids of the Anthropic API,
// Bedrock (plain, cross-region and ARN) and Vertex.
func TestGoldenAnthropicRates(t *testing.T) {
	const (
		sonnet4 = "3/15/0.30/3.75/6"
		opus4   = "15/75/1.50/18.75/30"
		opus45  = "5/25/0.50/6.25/10"
		haiku45 = "1/5/0.10/1.25/2"
		haiku35 = "0.80/4/0.08/1/1.60"
		// Above 200K input tokens Sonnet 4.x doubles input and charges 1.5×
		// output; the cache rates follow the input rate.
		sonnet4Long = "6/22.50/0.60/7.50/12"
	)
	tests := []struct {
		provider, model, rates, long string
	}{
		{"anthropic", "claude-sonnet-4-20250514", sonnet4, sonnet4Long},
		{"anthropic", "claude-sonnet-4-latest", sonnet4, sonnet4Long},
		{"anthropic", "claude-sonnet-4-5", sonnet4, sonnet4Long},
		{"anthropic", "claude-sonnet-4-5-20250929", sonnet4, sonnet4Long},
		{"anthropic", "claude-sonnet-4-6", sonnet4, sonnet4Long},
		{"anthropic", "Claude-Sonnet-4-5", sonnet4, sonnet4Long},
		{"anthropic", "anthropic/claude-sonnet-4-5", sonnet4, sonnet4Long},
		{"bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", sonnet4, sonnet4Long},
		{"bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", sonnet4, sonnet4Long},
		{"bedrock", "anthropic.claude-sonnet-4-5-20250929", sonnet4, sonnet4Long},
		{"bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", sonnet4, sonnet4Long},
		{"bedrock", "global.anthropic.claude-sonnet-4-6", sonnet4, sonnet4Long},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0", sonnet4, sonnet4Long},
		{"bedrock", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0", sonnet4, sonnet4Long},
		{"vertex", "claude-sonnet-4@20250514", sonnet4, sonnet4Long},
		{"vertex", "claude-sonnet-4-5@20250929", sonnet4, sonnet4Long},
		{"vertex", "vertex_ai/claude-sonnet-4-6", sonnet4, sonnet4Long},
		{"vertex_ai", "claude-sonnet-4-6@default", sonnet4, sonnet4Long},

		{"anthropic", "claude-opus-4-20250514", opus4, ""},
		{"anthropic", "claude-opus-4-1", opus4, ""},
		{"anthropic", "claude-opus-4-1-20250805", opus4, ""},
		{"bedrock", "us.anthropic.claude-opus-4-1-20250805-v1:0", opus4, ""},
		{"bedrock", "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-opus-4-20250514-v1:0", opus4, ""},
		{"vertex", "claude-opus-4@20250514", opus4, ""},
		{"vertex", "claude-opus-4-1@20250805", opus4, ""},

		{"anthropic", "claude-opus-4-5", opus45, ""},
		{"anthropic", "claude-opus-4-5-20251101", opus45, ""},
		{"anthropic", "claude-opus-4-6", opus45, "10/37.50/1/12.50/20"},
		{"anthropic", "claude-opus-4-7", opus45, ""}, // Portkey
		{"anthropic", "claude-opus-4-8", opus45, ""}, // Portkey
		{"anthropic", "claude-opus-5", opus45, ""},   // Portkey
		{"bedrock", "global.anthropic.claude-opus-4-5-20251101-v1:0", opus45, ""},
		{"bedrock", "anthropic.claude-opus-4-6-v1", opus45, "10/37.50/1/12.50/20"},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-4-8", opus45, ""},
		{"vertex", "claude-opus-4-5@20251101", opus45, ""},
		{"vertex", "claude-opus-4-6@default", opus45, "10/37.50/1/12.50/20"},

		{"anthropic", "claude-haiku-4-5", haiku45, ""},
		{"anthropic", "claude-haiku-4-5-20251001", haiku45, ""},
		{"bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", haiku45, ""},
		{"bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0", haiku45, ""},
		{"vertex", "claude-haiku-4-5@20251001", haiku45, ""},

		// LiteLLM has the 1h write wrong (6), the -latest alias at the launch
		// price, the EU profile at Haiku 3's rates and Vertex at the launch
		// price; all are corrected by the generator.
		{"anthropic", "claude-3-5-haiku-20241022", haiku35, ""},
		{"anthropic", "claude-3-5-haiku-latest", haiku35, ""},
		{"bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", haiku35, ""},
		{"bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", haiku35, ""},
		{"bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", haiku35, ""},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0", haiku35, ""},
		{"vertex", "claude-3-5-haiku@20241022", haiku35, ""},
	}
	c := Embedded()
	for _, tt := range tests {
		p, ok := c.Lookup(tt.provider, tt.model)
		if !ok {
			t.Errorf("Lookup(%q, %q): not found", tt.provider, tt.model)
			continue
		}
		if got, want := fmtRates(p.Rates), fmtRates(mtok(t, tt.rates)); got != want {
			t.Errorf("Lookup(%q, %q) = %s (%s), want %s", tt.provider, tt.model, got, p.Model, want)
		}
		if p.Estimated {
			t.Errorf("Lookup(%q, %q) is estimated", tt.provider, tt.model)
		}
		switch {
		case tt.long == "" && p.LongContext != nil:
			t.Errorf("Lookup(%q, %q) has a long-context tier %s", tt.provider, tt.model, fmtRates(*p.LongContext))
		case tt.long != "" && (p.LongContext == nil || p.LongContextThreshold != 200_000):
			t.Errorf("Lookup(%q, %q) has no 200K long-context tier", tt.provider, tt.model)
		case tt.long != "":
			if got, want := fmtRates(*p.LongContext), fmtRates(mtok(t, tt.long)); got != want {
				t.Errorf("Lookup(%q, %q) above 200K = %s, want %s", tt.provider, tt.model, got, want)
			}
		}
	}
}

// TestRegionalPrices pins how Bedrock regions are priced: a regional profile
// the source prices (with AWS's 10% premium for Claude 4.5 and later) keeps
// its price, and one it lacks falls back to the model's base id.
func TestRegionalPrices(t *testing.T) {
	c := Embedded()
	for _, tt := range []struct{ model, rates, key string }{
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", "3.30/16.50/0.33/4.125/6.60", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", "3/15/0.30/3.75/6", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"apac.anthropic.claude-opus-4-5-20251101-v1:0", "5/25/0.50/6.25/10", "anthropic.claude-opus-4-5-20251101-v1:0"},
		{"us-gov.anthropic.claude-opus-4-8", "6/30/0.60/7.50/12", "us-gov.anthropic.claude-opus-4-8"},
	} {
		p, ok := c.Lookup("bedrock", tt.model)
		if !ok || fmtRates(p.Rates) != fmtRates(mtok(t, tt.rates)) || p.Model != tt.key {
			t.Errorf("Lookup(bedrock, %q) = %s %s, %v; want %s %s", tt.model, p.Model, fmtRates(p.Rates), ok, tt.key, tt.rates)
		}
	}
}

func TestLookupAnyProvider(t *testing.T) {
	c := Embedded()
	for _, tt := range []struct{ model, provider, key string }{
		{"claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"},
		{"us.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"claude-sonnet-4@20250514", "vertex_ai", "claude-sonnet-4@20250514"},
		{"vertex_ai/claude-sonnet-4-5", "vertex_ai", "claude-sonnet-4-5"},
		{"gpt-4o", "openai", "gpt-4o"},
		{"openrouter/anthropic/claude-sonnet-4", "openrouter", "anthropic/claude-sonnet-4"},
	} {
		p, ok := c.Lookup("", tt.model)
		if !ok || p.Provider != tt.provider || p.Model != tt.key {
			t.Errorf("Lookup(\"\", %q) = %s %s, %v; want %s %s", tt.model, p.Provider, p.Model, ok, tt.provider, tt.key)
		}
	}
	if p, ok := c.Lookup("", "no-such-model-anywhere"); ok {
		t.Errorf("found %+v", p)
	}
}

func TestOpenAIRates(t *testing.T) {
	c := Embedded()
	for _, tt := range []struct{ model, rates string }{
		{"gpt-4o", "2.50/10/1.25/0/0"},
		{"gpt-4.1", "2/8/0.50/0/0"},
		{"gpt-4.1-2025-04-14", "2/8/0.50/0/0"},
		{"openai/gpt-4.1", "2/8/0.50/0/0"},
	} {
		p, ok := c.Lookup("openai", tt.model)
		if !ok || fmtRates(p.Rates) != fmtRates(mtok(t, tt.rates)) {
			t.Errorf("Lookup(openai, %q) = %s, %v; want %s", tt.model, fmtRates(p.Rates), ok, tt.rates)
		}
	}
}

// TestUnpricedModels covers the three ways an unknown model is priced: an
// exact policy price, a family estimate (flagged), and a denial.
func TestUnpricedModels(t *testing.T) {
	base := Embedded()
	policyPrice := Price{Rates: mtok(t, "4/20/0.40/5/8")}
	withPolicy := base.With(map[string]Price{"claude-opus-5-5": policyPrice})

	t.Run("policy price", func(t *testing.T) {
		for _, tt := range []struct{ provider, model string }{
			{"anthropic", "claude-opus-5-5"},
			{"anthropic", "claude-opus-5-5-20270101"},
			{"bedrock", "us.anthropic.claude-opus-5-5-v1:0"},
			{"vertex", "claude-opus-5-5@20270101"},
		} {
			for _, unknown := range []UnknownModels{EstimateByFamily, Deny} {
				p, err := withPolicy.Resolve(tt.provider, tt.model, unknown)
				if err != nil {
					t.Fatalf("Resolve(%q, %q, %v): %v", tt.provider, tt.model, unknown, err)
				}
				if p.Rates != policyPrice.Rates || p.Source != "policy" || p.Estimated || p.Model != "claude-opus-5-5" {
					t.Errorf("Resolve(%q, %q, %v) = %+v", tt.provider, tt.model, unknown, p)
				}
			}
		}
	})

	t.Run("family estimate", func(t *testing.T) {
		for _, tt := range []struct{ provider, model, family, from, rates, long string }{
			// The newest member of each family (TestFamilyEstimateNewestMember
			// checks the rule on a catalog of its own).
			{"anthropic", "claude-opus-6", "claude-opus", "claude-opus-5-5", "4/20/0.20/5/8", ""},
			{"anthropic", "claude-opus-5-5-20270101", "claude-opus", "", "4/20/0.20/5/8", ""},
			{"anthropic", "claude-sonnet-6", "claude-sonnet", "claude-sonnet-5-5", "2/10/0.20/2.50/4", ""},
			// Haiku 5.5 is not in the catalog (see anthropic.go): Haiku 4.5 is
			// the newest priced Haiku.
			{"anthropic", "claude-haiku-5-5", "claude-haiku", "claude-haiku-4-5", "1/5/0.10/1.25/2", ""},
			// Vertex and Bedrock know Opus 5 but not Opus 5.5.
			{"vertex", "claude-opus-6@20270101", "claude-opus", "anthropic.claude-opus-5", "5/25/0.50/6.25/10", ""},
			{"bedrock", "global.anthropic.claude-opus-6-v1", "claude-opus", "anthropic.claude-opus-5", "5/25/0.50/6.25/10", ""},
			{"openai", "gpt-5.99-mini", "gpt-5-mini", "", "", ""},
			{"openai", "gpt-5.99", "gpt-5", "", "", ""},
		} {
			p, err := base.Resolve(tt.provider, tt.model, EstimateByFamily)
			if err != nil {
				t.Fatalf("Resolve(%q, %q): %v", tt.provider, tt.model, err)
			}
			if tt.from == "" && !p.Estimated {
				// Known since the catalog was refreshed.
				if fmtRates(p.Rates) != fmtRates(mtok(t, tt.rates)) {
					t.Errorf("Resolve(%q, %q) = %s, want %s", tt.provider, tt.model, fmtRates(p.Rates), tt.rates)
				}
				continue
			}
			if !p.Estimated || p.Source != "family:"+tt.family || p.Model != tt.model || (tt.from != "" && p.EstimatedFrom != tt.from) {
				t.Errorf("Resolve(%q, %q) = %+v; want an estimate by family %s from %s", tt.provider, tt.model, p, tt.family, tt.from)
			}
			if tt.rates != "" && fmtRates(p.Rates) != fmtRates(mtok(t, tt.rates)) {
				t.Errorf("Resolve(%q, %q) = %s, want %s", tt.provider, tt.model, fmtRates(p.Rates), tt.rates)
			}
			if tt.long != "" && (p.LongContext == nil || fmtRates(*p.LongContext) != fmtRates(mtok(t, tt.long))) {
				t.Errorf("Resolve(%q, %q) long context = %v above %d, want %s", tt.provider, tt.model, p.LongContext, p.LongContextThreshold, tt.long)
			}
			if tt.rates == "" && (p.Input == 0 || p.Output == 0) {
				t.Errorf("Resolve(%q, %q) = %s: no rates", tt.provider, tt.model, fmtRates(p.Rates))
			}
		}
	})

	t.Run("deny", func(t *testing.T) {
		_, err := base.Resolve("anthropic", "claude-opus-6", Deny)
		if !errors.Is(err, ErrUnpriced) || !strings.Contains(err.Error(), `"claude-opus-6"`) {
			t.Errorf("err = %v; want ErrUnpriced naming the model", err)
		}
		// A known model is priced as usual.
		if p, err := base.Resolve("anthropic", "claude-opus-4-5", Deny); err != nil || p.Estimated {
			t.Errorf("known model with deny: %+v, %v", p, err)
		}
	})

	t.Run("no family", func(t *testing.T) {
		_, err := base.Resolve("anthropic", "mystery-model-1", EstimateByFamily)
		if !errors.Is(err, ErrUnpriced) || !strings.Contains(err.Error(), "mystery-model-1") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestWith(t *testing.T) {
	base := Embedded()
	if base.With(nil) != base {
		t.Error("With(nil) must return the catalog itself")
	}
	long := mtok(t, "20/100/2/25/40")
	over := base.With(map[string]Price{
		// An override of a known model wins under every provider.
		"claude-sonnet-4-5": {Rates: mtok(t, "1/2/0.10/1.25/2")},
		// A newer Opus becomes the family estimate.
		"us.anthropic.claude-opus-9-v1:0": {Rates: mtok(t, "10/100/1/12.50/20"), LongContextThreshold: 100_000, LongContext: &long},
	})
	if over.Version() == base.Version() || !strings.HasPrefix(over.Version(), base.Version()+"+policy-") {
		t.Errorf("Version() = %q", over.Version())
	}
	for _, id := range [][2]string{
		{"anthropic", "claude-sonnet-4-5-20250929"},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"vertex", "claude-sonnet-4-5@20250929"},
	} {
		p, ok := over.Lookup(id[0], id[1])
		if !ok || p.Source != "policy" || fmtRates(p.Rates) != "1/2/0.10/1.25/2" {
			t.Errorf("Lookup(%q, %q) = %+v", id[0], id[1], p)
		}
	}
	if p, _ := over.Lookup("anthropic", "claude-opus-9"); p.Model != "claude-opus-9" || p.Provider != "anthropic" {
		t.Errorf("policy price = %+v", p)
	}
	est, err := over.Resolve("anthropic", "claude-opus-10", EstimateByFamily)
	if err != nil || fmtRates(est.Rates) != "10/100/1/12.50/20" || est.LongContextThreshold != 100_000 || est.EstimatedFrom != "claude-opus-9" ||
		fmtRates(*est.LongContext) != "20/100/2/25/40" {
		t.Errorf("family estimate with a policy price = %+v, %v", est, err)
	}
	// The family of a policy price applies under a provider that has none.
	est, err = over.Resolve("openrouter", "claude-opus-10", EstimateByFamily)
	if err != nil || est.Source != "family:claude-opus" {
		t.Errorf("family estimate under openrouter = %+v, %v", est, err)
	}
	// The base catalog is unchanged.
	if p, _ := base.Lookup("anthropic", "claude-sonnet-4-5"); p.Source != "litellm" {
		t.Errorf("base catalog changed: %+v", p)
	}
	models := over.Models()
	if len(models) != len(base.Models())+2 || models[0].Provider != "" || models[0].Source != "policy" {
		t.Errorf("Models(): %d models, first %+v", len(models), models[0])
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	c := Embedded()
	over := c.With(map[string]Price{"claude-opus-5-5": {Rates: Rates{Input: 1}}})
	u := Usage{InputTokens: 10, OutputTokens: 10}
	for _, tt := range []struct {
		c               *Catalog
		provider, model string
	}{
		{c, "anthropic", "claude-sonnet-4-5-20250929"},
		{c, "bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{c, "bedrock", "apac.anthropic.claude-opus-4-5-20251101-v1:0"},
		{c, "vertex", "claude-sonnet-4-5@20250929"},
		{c, "anthropic", "claude-opus-6"}, // family estimate
		{over, "anthropic", "claude-opus-5-5"},
		{over, "anthropic", "claude-sonnet-4-5"},
	} {
		var cost int64
		allocs := testing.AllocsPerRun(100, func() {
			p, err := tt.c.Resolve(tt.provider, tt.model, EstimateByFamily)
			if err != nil {
				t.Fatal(err)
			}
			cost += Cost(u, p)
		})
		if allocs != 0 || cost == 0 {
			t.Errorf("Resolve(%q, %q) + Cost: %v allocations, cost %d", tt.provider, tt.model, allocs, cost)
		}
	}
}

func BenchmarkLookupCost(b *testing.B) {
	c := Embedded()
	u := Usage{InputTokens: 3, CacheReadTokens: 120_000, CacheWrite5mTokens: 2_000, OutputTokens: 800}
	for _, bm := range []struct{ name, provider, model string }{
		{"anthropic", "anthropic", "claude-sonnet-4-5-20250929"},
		{"bedrock-arn", "bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"},
		{"vertex", "vertex", "claude-sonnet-4-5@20250929"},
		{"family-estimate", "anthropic", "claude-opus-6"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			var total int64
			for b.Loop() {
				p, err := c.Resolve(bm.provider, bm.model, EstimateByFamily)
				if err != nil {
					b.Fatal(err)
				}
				total += Cost(u, p)
			}
			if total == 0 {
				b.Fatal("no cost")
			}
		})
	}
}

// BenchmarkParseEmbedded measures the one-time cost of Embedded: decompress,
// decode and index the catalog.
func BenchmarkParseEmbedded(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseCatalog(catalogData); err != nil {
			b.Fatal(err)
		}
	}
}

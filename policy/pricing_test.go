package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// pricingDoc is a valid policy with the given lines as its pricing section.
func pricingDoc(lines ...string) []byte {
	return doc(append([]string{
		"version: 1",
		"providers: {a: {type: anthropic, api_key: '${K}'}}",
		"routes: {r: {chain: [a]}}",
		"keys: [{id: k, sha256: " + hashK + "}]",
	}, lines...)...)
}

func parsePricing(t *testing.T, lines ...string) *Policy {
	t.Helper()
	p, err := Parse("p.yaml", pricingDoc(lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func usdPerMTok(t *testing.T, s string) int64 {
	t.Helper()
	v, err := pricing.ParseUSDPerMTok(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPricingDefaults(t *testing.T) {
	p := parsePricing(t)
	if p.Pricing.Unknown != pricing.EstimateByFamily || len(p.Pricing.Models) != 0 {
		t.Errorf("Pricing = %+v", p.Pricing)
	}
	if p.Catalog() != pricing.Embedded() {
		t.Error("a policy without prices must use the embedded catalog as is")
	}
	if (&Policy{}).Catalog() != pricing.Embedded() {
		t.Error("the zero Policy must have the embedded catalog")
	}
	def, err := Default(LoadOptions{LookupEnv: anyEnv})
	if err != nil || def.Catalog() != pricing.Embedded() {
		t.Errorf("default policy: %v", err)
	}
}

func TestPricingSection(t *testing.T) {
	p := parsePricing(t,
		"pricing:",
		"  unknown_models: deny",
		"  models:",
		"    claude-opus-4-8: {input: 5, output: 25, cache_read: 0.5, cache_write_5m: 6.25, cache_write_1h: 10}",
		"    us.anthropic.claude-opus-5-5-v1:0:",
		"      input: 5",
		"      output: 25",
		"      web_search_per_1k: 10",
		"    my-model: {input: 1, output: 2, long_context: {threshold: 200000, input: 2, output: 3}}",
		"    free-cache: {input: 1.000001, output: 2, cache_read: 0, cache_write_5m: 0, cache_write_1h: 0}",
	)
	if p.Pricing.Unknown != pricing.Deny {
		t.Errorf("Unknown = %v", p.Pricing.Unknown)
	}
	long := pricing.Rates{Input: 2_000_000, Output: 3_000_000, CacheRead: 200_000, CacheWrite5m: 2_500_000, CacheWrite1h: 4_000_000}
	want := map[string]pricing.Price{
		"claude-opus-4-8": {Rates: pricing.Rates{Input: 5_000_000, Output: 25_000_000, CacheRead: 500_000, CacheWrite5m: 6_250_000, CacheWrite1h: 10_000_000}},
		// Keyed by the normalised id; omitted cache rates follow Anthropic's
		// multipliers.
		"claude-opus-5-5": {Rates: pricing.Rates{Input: 5_000_000, Output: 25_000_000, CacheRead: 500_000, CacheWrite5m: 6_250_000, CacheWrite1h: 10_000_000},
			WebSearchPerRequest: 10_000_000_000},
		"my-model": {Rates: pricing.Rates{Input: 1_000_000, Output: 2_000_000, CacheRead: 100_000, CacheWrite5m: 1_250_000, CacheWrite1h: 2_000_000},
			LongContextThreshold: 200_000, LongContext: &long},
		"free-cache": {Rates: pricing.Rates{Input: 1_000_001, Output: 2_000_000}},
	}
	if diff := cmp.Diff(want, p.Pricing.Models); diff != "" {
		t.Errorf("Models (-want +got):\n%s", diff)
	}

	// The policy's catalog prices them under every provider; others are
	// denied as the policy says.
	cat := p.Catalog()
	if cat == pricing.Embedded() || cat != p.Catalog() {
		t.Error("Catalog must be built once, with the policy's prices")
	}
	for _, id := range [][2]string{
		{"anthropic", "claude-opus-4-8"},
		{"bedrock", "global.anthropic.claude-opus-4-8-v1:0"},
		{"vertex", "claude-opus-5-5@20270101"},
		{"anthropic", "my-model"},
	} {
		price, err := cat.Resolve(id[0], id[1], p.Pricing.Unknown)
		if err != nil || price.Source != "policy" || price.Estimated {
			t.Errorf("Resolve(%q, %q) = %+v, %v", id[0], id[1], price, err)
		}
	}
	if _, err := cat.Resolve("anthropic", "claude-opus-6", p.Pricing.Unknown); !errors.Is(err, pricing.ErrUnpriced) {
		t.Errorf("unknown model with deny: %v", err)
	}
	// The whole request above the threshold is priced at the tier's rates.
	price, _ := cat.Resolve("anthropic", "my-model", p.Pricing.Unknown)
	if got := pricing.Cost(pricing.Usage{InputTokens: 200_001, OutputTokens: 1}, price); got != 200_001*2_000_000+3_000_000 {
		t.Errorf("long-context cost = %d", got)
	}
}

func TestPricingErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{
			name:  "unknown_models",
			lines: []string{"pricing: {unknown_models: dney}"},
			want:  []string{`p.yaml:5:27: pricing.unknown_models: must be estimate or deny, not "dney" (did you mean "deny"?)`},
		},
		{
			name:  "unknown field",
			lines: []string{"pricing: {unknown: deny}"},
			want:  []string{`p.yaml:5:11: pricing: unknown field "unknown"; known fields: unknown_models, models`},
		},
		{
			name: "too precise, negative, a string, not a number",
			lines: []string{
				"pricing:",
				"  models:",
				"    a: {input: 0.0000001, output: 1}",
				"    b: {input: -1, output: 1}",
				"    c: {input: '3', output: 1}",
				"    d: {input: [3], output: 1}",
			},
			want: []string{
				`p.yaml:7:16: pricing.models.a.input: 0.0000001 USD per million tokens is more precise than the catalog's unit, 1 pico-USD per token (0.000001 USD per million tokens)`,
				`p.yaml:8:16: pricing.models.b.input: -1: a price must not be negative`,
				`p.yaml:9:16: pricing.models.c.input: expected a number of USD per million tokens, such as 3 or 0.30, got a string`,
				`p.yaml:10:16: pricing.models.d.input: expected a number of USD per million tokens, such as 3 or 0.30, got a sequence`,
			},
		},
		{
			name: "missing rates and a typo",
			lines: []string{
				"pricing:",
				"  models:",
				"    a: {input: 1}",
				"    b: {input: 1, output: 2, cache_raed: 0.1}",
				"    c: {input: 1, output: 2, long_context: {input: 2, output: 3}}",
				"    d: {input: 1, output: 2, long_context: {threshold: 0, input: 2, output: 3}}",
			},
			want: []string{
				`p.yaml:7:5: pricing.models.a: input and output are required (USD per million tokens)`,
				`p.yaml:8:30: pricing.models.b: unknown field "cache_raed" (did you mean "cache_read"?)`,
				`p.yaml:9:30: pricing.models.c.long_context: threshold (input tokens above which the tier applies), input and output are required`,
				`p.yaml:10:56: pricing.models.d.long_context.threshold: must be a positive number of input tokens, such as 200000`,
			},
		},
		{
			name: "the same model twice",
			lines: []string{
				"pricing:",
				"  models:",
				"    claude-opus-4-8: {input: 5, output: 25}",
				"    us.anthropic.claude-opus-4-8-v1:0: {input: 5, output: 25}",
			},
			want: []string{`p.yaml:8:5: pricing.models.us.anthropic.claude-opus-4-8-v1:0: the same model as "claude-opus-4-8" at line 7 (both are "claude-opus-4-8" once provider, region and version are set aside)`},
		},
		{
			name:  "models not a mapping",
			lines: []string{"pricing: {models: [a]}"},
			want:  []string{`p.yaml:5:19: pricing.models: expected a mapping, got a sequence`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", pricingDoc(tt.lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExamplePolicyPricing checks the pricing section of the documented
// example policy.
func TestExamplePolicyPricing(t *testing.T) {
	p, err := LoadFile("../deploy/policy.example.yaml", LoadOptions{LookupEnv: anyEnv})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pricing.Unknown != pricing.EstimateByFamily {
		t.Errorf("unknown_models = %v", p.Pricing.Unknown)
	}
	price, err := p.Catalog().Resolve("anthropic", "claude-opus-6", p.Pricing.Unknown)
	if err != nil || price.Source != "policy" || price.Rates.Output != 20_000_000 {
		t.Errorf("claude-opus-6 = %+v, %v", price, err)
	}
}

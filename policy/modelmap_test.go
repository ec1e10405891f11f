package policy

import (
	"errors"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// modelMapPolicy has an Anthropic provider, a Bedrock provider in us-east-1
// with the default mapping, and one in eu-west-1 whose models field
// overrides one id; the route maps the alias sonnet.
func modelMapPolicy(t *testing.T, unknown string) *Policy {
	t.Helper()
	return mustParse(t, "p.yaml", doc(
		"version: 1",
		"providers:",
		"  a: {type: anthropic, api_key: '${K}'}",
		"  us: {type: bedrock, region: us-east-1, api_key: '${K}'}",
		"  eu:",
		"    type: bedrock",
		"    region: eu-west-1",
		"    api_key: '${K}'",
		"    models: {claude-sonnet-4-5: global.anthropic.claude-sonnet-4-5-20250929-v1:0, fast: claude-haiku-4-5}",
		"routes:",
		"  r: {chain: [a, us, eu], models: {sonnet: claude-sonnet-4-5}}",
		"pricing: {unknown_models: "+unknown+"}",
		"keys: [{id: k, sha256: "+HashKey("k")+"}]",
	), LoadOptions{LookupEnv: anyEnv})
}

func TestDefaultModelMapping(t *testing.T) {
	p := modelMapPolicy(t, "estimate")
	r, _ := p.Route("r")
	tests := []struct {
		route           *Route
		provider, model string
		want            string
	}{
		// Anthropic has no default mapping.
		{r, "a", "sonnet", "claude-sonnet-4-5"},
		{r, "a", "claude-sonnet-4-5", "claude-sonnet-4-5"},
		// Bedrock: the region's inference profile from the catalog, after the
		// route's alias.
		{r, "us", "sonnet", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{r, "us", "claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{r, "us", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{nil, "us", "claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0"},
		{r, "eu", "claude-opus-4-5", "eu.anthropic.claude-opus-4-5-20251101-v1:0"},
		// The provider's models field overrides the default, id by id; its
		// result is final.
		{r, "eu", "sonnet", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{r, "eu", "fast", "claude-haiku-4-5"},
		// Bedrock's own ids, ARNs and models the catalog lacks go as they are.
		{r, "us", "us.anthropic.claude-opus-4-8-v1", "us.anthropic.claude-opus-4-8-v1"},
		{r, "us", "arn:aws:bedrock:us-east-1:1:application-inference-profile/x", "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"},
		{r, "us", "claude-opus-9", "claude-opus-9"},
		{r, "us", "gpt-5", "gpt-5"},
	}
	for _, tt := range tests {
		if got := p.MapModel(tt.route, tt.provider, tt.model); got != tt.want {
			t.Errorf("MapModel(%v, %s, %s) = %s, want %s", tt.route != nil, tt.provider, tt.model, got, tt.want)
		}
	}
	if p.MapsModels(nil, "a") || !p.MapsModels(r, "a") || !p.MapsModels(nil, "us") || p.MapsModels(nil, "nope") {
		t.Error("MapsModels: want true for a route with models and for a Bedrock provider only")
	}
}

// A request Bedrock served is priced at the catalog's bedrock price of the
// id it was sent with, the region's inference profile, even when the
// response names the Anthropic model; exact costs for two models.
func TestPriceServedBedrock(t *testing.T) {
	p := modelMapPolicy(t, "estimate")
	r, _ := p.Route("r")
	u := pricing.Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 100}
	tests := []struct {
		provider, client, reported string
		wantModel                  string
		wantPico                   int64
	}{
		// us.…sonnet-4-5 costs $3.30/$16.50, cache read $0.33, write $4.125
		// per MTok (the global profile and Anthropic: $3/$15).
		{"us", "sonnet", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
			1000*3_300_000 + 500*16_500_000 + 2000*330_000 + 100*4_125_000},
		// us.…haiku-4-5: $1.10/$5.50, $0.11, $1.375.
		{"us", "claude-haiku-4-5", "claude-haiku-4-5-20251001", "us.anthropic.claude-haiku-4-5-20251001-v1:0",
			1000*1_100_000 + 500*5_500_000 + 2000*110_000 + 100*1_375_000},
		// The override to the global profile: $3/$15.
		{"eu", "sonnet", "claude-sonnet-4-5-20250929", "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
			1000*3_000_000 + 500*15_000_000 + 2000*300_000 + 100*3_750_000},
		// Anthropic is priced by the model its response names.
		{"a", "sonnet", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929",
			1000*3_000_000 + 500*15_000_000 + 2000*300_000 + 100*3_750_000},
	}
	for _, tt := range tests {
		sent := p.MapModel(r, tt.provider, tt.client)
		model, price, err := p.PriceServed(tt.provider, sent, tt.reported)
		if err != nil || model != tt.wantModel || price.Estimated {
			t.Errorf("%s %s: PriceServed = %q, %+v, %v; want %q", tt.provider, tt.client, model, price, err, tt.wantModel)
			continue
		}
		if got := pricing.Cost(u, price); got != tt.wantPico {
			t.Errorf("%s %s: cost %d pico-USD, want %d", tt.provider, tt.client, got, tt.wantPico)
		}
		// The budget's worst case uses the same price.
		if _, bp, err := p.PriceAt(r, tt.provider, tt.client, p.Pricing.Unknown); err != nil || bp.Rates != price.Rates {
			t.Errorf("%s %s: PriceAt = %+v, %v", tt.provider, tt.client, bp.Rates, err)
		}
	}
}

// Above 200,000 input tokens the Bedrock profile's long-context tier
// applies: $6.60/$24.75 per MTok for us.…sonnet-4-5.
func TestPriceServedBedrockLongContext(t *testing.T) {
	p := modelMapPolicy(t, "estimate")
	r, _ := p.Route("r")
	_, price, err := p.PriceServed("us", p.MapModel(r, "us", "sonnet"), "claude-sonnet-4-5-20250929")
	if err != nil {
		t.Fatal(err)
	}
	u := pricing.Usage{InputTokens: 250_000, OutputTokens: 1000}
	if got, want := pricing.Cost(u, price), int64(250_000*6_600_000+1000*24_750_000); got != want {
		t.Errorf("cost %d pico-USD, want %d", got, want)
	}
}

// A model the catalog has no Bedrock price for is sent as it is; it is
// priced by its family's estimate, or, when the policy denies unknown
// models, not at all (an error wrapping ErrUnpriced, which the extproc
// records as unpriced and counts in tollgate_price_estimated_total).
func TestPriceServedBedrockUnknown(t *testing.T) {
	est := modelMapPolicy(t, "estimate")
	model, price, err := est.PriceServed("us", "claude-opus-9", "claude-opus-9")
	if err != nil || model != "claude-opus-9" || !price.Estimated || price.Provider != "bedrock" {
		t.Errorf("estimate: %q, %+v, %v", model, price, err)
	}
	deny := modelMapPolicy(t, "deny")
	if _, _, err := deny.PriceServed("us", "claude-opus-9", "claude-opus-9"); !errors.Is(err, pricing.ErrUnpriced) {
		t.Errorf("deny: %v; want ErrUnpriced", err)
	}
	if _, _, err := deny.PriceServed("us", "claude-nothing-1", ""); !errors.Is(err, pricing.ErrUnpriced) {
		t.Errorf("deny, no reported model: %v", err)
	}
	// An id the catalog does not price (an application inference profile)
	// falls back to the model the response names.
	arn := "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
	model, price, err = deny.PriceServed("us", arn, "claude-sonnet-4-5-20250929")
	if err != nil || model != "claude-sonnet-4-5-20250929" || price.Provider != "bedrock" {
		t.Errorf("application profile: %q, %+v, %v", model, price, err)
	}
}

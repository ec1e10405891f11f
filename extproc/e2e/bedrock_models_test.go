package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/tollgate-dev/tollgate/records"
)

// Without a models field, a Bedrock provider is sent the catalog's id for
// the client's model in its region's inference profile, and the request is
// priced exactly at the catalog's bedrock price of that id (the us. profiles
// of these models cost 10% more than Anthropic's API).
func TestBedrockDefaultModelIDs(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{defaultIDs: true})
	// The usage of messages.json.
	const in, out, read, w5m, w1h = 2095, 503, 1024, 2000, 51
	for i, c := range []struct {
		model, path string
		rates       [5]int64 // pico-USD per token: input, output, cache read, 5m and 1h cache writes
	}{
		{"claude-sonnet-4-5", "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
			[5]int64{3_300_000, 16_500_000, 330_000, 4_125_000, 6_600_000}},
		{"claude-haiku-4-5-20251001", "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
			[5]int64{1_100_000, 5_500_000, 110_000, 1_375_000, 2_200_000}},
	} {
		if _, err := s.client.Messages.New(context.Background(), hello(c.model)); err != nil {
			t.Fatal(err)
		}
		reqs := s.bedrock.Requests()
		if got := reqs[len(reqs)-1].Path; got != c.path {
			t.Errorf("%s: path %s; want %s", c.model, got, c.path)
		}
		rec := s.recs.wait(t, i+1)[i]
		u := rec.Usage
		if u.InputTokens != in || u.OutputTokens != out || u.CacheReadTokens != read || u.CacheWrite5mTokens != w5m || u.CacheWrite1hTokens != w1h {
			t.Fatalf("%s: usage %+v", c.model, u)
		}
		r := c.rates
		want := in*r[0] + out*r[1] + read*r[2] + w5m*r[3] + w1h*r[4]
		if rec.Outcome != records.OutcomeOK || rec.CostPicoUSD != want || rec.PriceEstimated {
			t.Errorf("%s: record model %q outcome %q cost %d (estimated %v); want %d", c.model, rec.Model, rec.Outcome, rec.CostPicoUSD, rec.PriceEstimated, want)
		}
	}
}

// A model the catalog has no Bedrock id or price for is sent as it is; the
// record says it is unpriced, and tollgate_price_estimated_total counts it.
func TestBedrockUnpricedModel(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{defaultIDs: true})
	if _, err := s.client.Messages.New(context.Background(), hello("claude-nothing-1")); err != nil {
		t.Fatal(err)
	}
	if got := s.bedrock.Requests()[0].Path; got != "/model/claude-nothing-1/invoke" {
		t.Errorf("path %s", got)
	}
	rec := s.recs.wait(t, 1)[0]
	if rec.Cost != "" || !rec.PriceEstimated || rec.Usage.OutputTokens == 0 {
		t.Errorf("record cost %q estimated %v usage %+v", rec.Cost, rec.PriceEstimated, rec.Usage)
	}
	// The metrics follow the record; poll for them.
	labels := map[string]string{"provider": "demo", "kind": "unpriced"}
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, s.reg, "tollgate_price_estimated_total", labels) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("unpriced requests counted: %v", metricValue(t, s.reg, "tollgate_price_estimated_total", labels))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// count_tokens with the default ids goes to the foundation model of the
// region's profile: Bedrock's CountTokens refuses profile ids.
func TestBedrockCountTokensDefaultModelID(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{defaultIDs: true})
	res, err := s.client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "claude-sonnet-4-5",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))},
	})
	if err != nil || res.InputTokens <= 0 {
		t.Fatalf("count_tokens: %+v, %v", res, err)
	}
	if got := s.bedrock.Requests()[0].Path; got != "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens" {
		t.Errorf("path %s", got)
	}
}

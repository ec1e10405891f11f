package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// sonnetCost prices usage at Anthropic's published Sonnet 4.x rates (USD per
// million tokens: 3 input, 15 output, 0.30 cache read, 3.75 5m write, 6 1h
// write), in pico-USD, independently of the catalog.
func sonnetCost(u pricing.Usage) int64 {
	return u.InputTokens*3_000_000 + u.OutputTokens*15_000_000 + u.CacheReadTokens*300_000 +
		u.CacheWrite5mTokens*3_750_000 + u.CacheWrite1hTokens*6_000_000
}

// catalogCost is what the embedded catalog charges for u on model, by the
// family rule when the catalog does not know the model (the fake provider's
// "-cut" and "-slow" variants).
func catalogCost(t *testing.T, model string, u pricing.Usage) int64 {
	t.Helper()
	price, err := pricing.Embedded().Resolve("anthropic", model, pricing.EstimateByFamily)
	if err != nil {
		t.Fatal(err)
	}
	return pricing.Cost(u, price)
}

func TestRecordOfAMessage(t *testing.T) {
	s := newStack(t)
	var httpResp *http.Response
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"),
		option.WithHeader("x-tollgate-metadata", `{"ticket":"ENG-42"}`), option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatal(err)
	}
	r := s.records.wait(t, 1)[0]
	// From the fake's messages.json (testdata of internal/envoytest).
	want := pricing.Usage{InputTokens: 2095, CacheReadTokens: 1024, CacheWrite5mTokens: 2000, CacheWrite1hTokens: 51, OutputTokens: 503}
	if r.Usage != want {
		t.Errorf("usage = %+v; want %+v", r.Usage, want)
	}
	if r.CostPicoUSD != sonnetCost(want) || r.Cost != "0.0219432" {
		t.Errorf("cost = %d (%s); want %d (0.0219432)", r.CostPicoUSD, r.Cost, sonnetCost(want))
	}
	if r.Outcome != records.OutcomeOK || r.Status != 200 || r.KeyID != "alice" || r.User != "alice" || r.Team != "platform" ||
		r.Route != "demo" || r.Provider != "demo" || r.Endpoint != "messages" || r.Stream || r.Metadata["ticket"] != "ENG-42" {
		t.Errorf("record = %+v", r)
	}
	if r.ID == "" || r.TraceID == "" || r.PriceCatalog == "" || r.LatencyMS <= 0 {
		t.Errorf("record lacks ids, catalog or latency: %+v", r)
	}
	if got := httpResp.Header.Get("x-tollgate-trace-id"); got != r.TraceID {
		t.Errorf("x-tollgate-trace-id = %q; record has %q", got, r.TraceID)
	}
}

func TestRecordOfAStream(t *testing.T) {
	s := newStack(t)
	stream := s.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5"),
		option.WithHeader("x-claude-code-session-id", "session-1"), option.WithHeader("x-claude-code-agent-id", "agent-7"),
		option.WithHeader("x-claude-code-request-class", "subagent"))
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	r := s.records.wait(t, 1)[0]

	sse, err := os.ReadFile("../../internal/envoytest/testdata/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	var p anthropicfmt.StreamParser
	p.Write(sse)
	if r.Usage != p.Usage() || r.Usage.CacheWrite1hTokens == 0 {
		t.Errorf("usage = %+v; the fixture says %+v", r.Usage, p.Usage())
	}
	if r.CostPicoUSD != sonnetCost(r.Usage) {
		t.Errorf("cost = %d; want %d", r.CostPicoUSD, sonnetCost(r.Usage))
	}
	if r.Outcome != records.OutcomeOK || !r.Stream || r.TraceID != "session-1" || r.SessionID != "session-1" || r.AgentID != "agent-7" || r.RequestClass != "subagent" {
		t.Errorf("record = %+v", r)
	}
	if r.TTFTMS <= 0 || r.TTFTMS > r.LatencyMS {
		t.Errorf("ttft %v ms, latency %v ms", r.TTFTMS, r.LatencyMS)
	}
}

func TestTraceIDPrecedenceAndMetadataErrors(t *testing.T) {
	s := newStack(t)
	resp := post(t, s, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[]}`, map[string]string{
		"x-tollgate-trace-id": "trace-A", "x-portkey-trace-id": "trace-B", "x-claude-code-session-id": "session-C",
	})
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if got := resp.Header.Get("x-tollgate-trace-id"); got != "trace-A" {
		t.Errorf("echoed trace id %q", got)
	}
	if r := s.records.wait(t, 1)[0]; r.TraceID != "trace-A" || r.SessionID != "session-C" {
		t.Errorf("trace %q session %q", r.TraceID, r.SessionID)
	}
	if h := s.lastRequest(t).Header; h.Get("x-tollgate-trace-id") != "" || h.Get("x-claude-code-session-id") != "session-C" {
		t.Errorf("provider headers: trace %q, session %q", h.Get("x-tollgate-trace-id"), h.Get("x-claude-code-session-id"))
	}

	for _, bad := range []string{`not json`, `{"a":1}`, `{"` + strings.Repeat("k", 65) + `":"v"}`, `{"a":"` + strings.Repeat("v", 5000) + `"}`} {
		resp := post(t, s, "/v1/messages", `{"model":"claude-sonnet-4-5"}`, map[string]string{"x-portkey-metadata": bad})
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"invalid_request_error"`) || !strings.Contains(string(body), "x-portkey-metadata") {
			t.Errorf("metadata %.20q: %d %s", bad, resp.StatusCode, body)
		}
	}
	recs := s.records.wait(t, 5)
	for _, r := range recs[1:] {
		if r.Outcome != records.OutcomeInvalid || r.Status != 400 {
			t.Errorf("record of a bad request: %+v", r)
		}
	}
}

// TestCancelRecordsPartialUsage cancels a stream after three deltas: the record
// says cancelled and carries the usage message_start reported.
func TestCancelRecordsPartialUsage(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5-slow","max_tokens":10,"stream":true,"messages":[]}`))
	req.Header.Set("x-api-key", gatewayKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for deltas := 0; deltas < 3 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "event: content_block_delta") {
			deltas++
		}
	}
	cancel()
	resp.Body.Close()

	r := s.records.wait(t, 1)[0]
	if r.Outcome != records.OutcomeCancelled || r.Status != 200 {
		t.Errorf("outcome %s status %d", r.Outcome, r.Status)
	}
	if r.Usage.InputTokens != 12 || r.Usage.CacheReadTokens != 30500 || r.CostPicoUSD == 0 {
		t.Errorf("partial usage %+v cost %d; want message_start's input and its cost", r.Usage, r.CostPicoUSD)
	}
}

// TestCutStreamEndsWithErrorEvent: the provider ends a stream before
// message_stop; the client gets an Anthropic error event, the record says
// incomplete.
func TestCutStreamEndsWithErrorEvent(t *testing.T) {
	s := newStack(t)
	stream := s.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5-cut"))
	for stream.Next() {
	}
	err := stream.Err()
	if err == nil || !strings.Contains(err.Error(), "ended before message_stop") {
		t.Errorf("stream error = %v; want the gateway's error event", err)
	}
	r := s.records.wait(t, 1)[0]
	if r.Outcome != records.OutcomeIncomplete || r.Usage.InputTokens != 12 {
		t.Errorf("record = %+v", r)
	}
	// "Hello" and " from the fake provider." were relayed: 29 characters.
	if want := catalogCost(t, "claude-sonnet-4-5-cut", r.Usage); r.Usage.OutputTokens != 8 || !r.UsageEstimated || r.CostPicoUSD != want {
		t.Errorf("output %d tokens, estimated %v, cost %d; want 8 (29 characters / 4, rounded up), estimated, %d",
			r.Usage.OutputTokens, r.UsageEstimated, r.CostPicoUSD, want)
	}
	if !r.PriceEstimated {
		t.Error("claude-sonnet-4-5-cut is priced by the family rule and must say so")
	}
}

func TestRecordsOfErrorsAndRejections(t *testing.T) {
	s := newStack(t)
	_, err := s.client.Messages.New(context.Background(), hello("fake-error-429"))
	if err == nil {
		t.Fatal("want a 429")
	}
	bad := anthropic.NewClient(option.WithBaseURL(s.harness.URL()), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	bad.Messages.New(context.Background(), hello("claude-sonnet-4-5")) //nolint:errcheck // the 401 is the point
	req, _ := http.NewRequest(http.MethodHead, s.harness.URL()+"/api/hello", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	resp := post(t, s, "/v1/complete", `{}`, nil)
	resp.Body.Close()

	recs := s.records.wait(t, 3) // the probe writes none
	byStatus := map[int]records.Record{}
	for _, r := range recs {
		byStatus[r.Status] = r
	}
	if r := byStatus[429]; r.Outcome != records.OutcomeProviderError || r.ErrorType != "rate_limit_error" || r.CostPicoUSD != 0 {
		t.Errorf("429 record = %+v", r)
	}
	if r := byStatus[401]; r.Outcome != records.OutcomeDenied || r.ErrorType != "authentication_error" || r.KeyID != "" {
		t.Errorf("401 record = %+v", r)
	}
	if r := byStatus[404]; r.Outcome != records.OutcomeInvalid || r.Endpoint != "unknown" || r.Path != "/v1/complete" {
		t.Errorf("404 record = %+v", r)
	}
}

// TestMetricsScrape scrapes /metrics after a message and a stream and checks
// the series and their values.
func TestMetricsScrape(t *testing.T) {
	s := newStack(t)
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err != nil {
		t.Fatal(err)
	}
	// A model the catalog prices only by the family rule is labelled by the
	// family, so clients cannot mint series with made-up model names.
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5-made-up")); err != nil {
		t.Fatal(err)
	}
	s.records.wait(t, 2)
	srv := httptest.NewServer(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`tollgate_requests_total{model="claude-sonnet-4-5",provider="demo",route="demo",status="200"} 1`,
		`tollgate_tokens_total{model="claude-sonnet-4-5",provider="demo",type="input"} 2095`,
		`tollgate_tokens_total{model="claude-sonnet-4-5",provider="demo",type="output"} 503`,
		`tollgate_tokens_total{model="claude-sonnet-4-5",provider="demo",type="cache_read"} 1024`,
		`tollgate_tokens_total{model="claude-sonnet-4-5",provider="demo",type="cache_write_5m"} 2000`,
		`tollgate_tokens_total{model="claude-sonnet-4-5",provider="demo",type="cache_write_1h"} 51`,
		`tollgate_cost_usd_total{model="claude-sonnet-4-5",provider="demo",team="platform"} 0.0219432`,
		`tollgate_requests_total{model="family:claude-sonnet",provider="demo",route="demo",status="200"} 1`,
		`tollgate_price_estimated_total{kind="estimated",model="family:claude-sonnet",provider="demo"} 1`,
		`tollgate_request_duration_seconds_count{route="demo"} 2`,
		`tollgate_upstream_ttft_seconds_count{provider="demo"} 2`,
		`tollgate_phase_duration_seconds_count{phase="request_body",role="policy"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestCancelBillsRelayedOutput reads part of a long stream and disconnects
// before message_delta: the output relayed so far is billed, estimated at a
// token per four characters, and the budget is charged that cost.
func TestCancelBillsRelayedOutput(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 10, per: day}, {tokens: 1000000, per: day}]`})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5-slow","max_tokens":1000,"stream":true,"messages":[]}`))
	req.Header.Set("x-api-key", gatewayKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The fake sends "tick " (5 characters) per delta.
	const read = 12
	sc := bufio.NewScanner(resp.Body)
	for deltas := 0; deltas < read && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "event: content_block_delta") {
			deltas++
		}
	}
	cancel()
	resp.Body.Close()

	r := s.records.wait(t, 1)[0]
	if r.Outcome != records.OutcomeCancelled || !r.UsageEstimated {
		t.Errorf("outcome %s, usage_estimated %v; want cancelled and estimated", r.Outcome, r.UsageEstimated)
	}
	// Tollgate may have passed on a few more deltas than the client read.
	out := r.Usage.OutputTokens
	if n := metricValue(t, s.reg, "tollgate_usage_estimated_total", map[string]string{"provider": "demo"}); n != 1 {
		t.Errorf("tollgate_usage_estimated_total = %v; want 1", n)
	}
	if !estimateOfDeltas(out, read) {
		t.Errorf("output tokens %d is not ceil(5n/4) for any n >= %d", out, read)
	}
	inputOnly := r.Usage
	inputOnly.OutputTokens = 1 // what message_start said
	want, wantInput := catalogCost(t, "claude-sonnet-4-5-slow", r.Usage), catalogCost(t, "claude-sonnet-4-5-slow", inputOnly)
	if r.CostPicoUSD != want || r.CostPicoUSD <= wantInput || r.Cost == "" {
		t.Errorf("cost %d (%q); want %d, above the input-only %d", r.CostPicoUSD, r.Cost, want, wantInput)
	}
	got := used(t, ledger,
		budget.Limit{Unit: budget.USD, Per: budget.Day, Max: 10 * 1e12},
		budget.Limit{Unit: budget.Tokens, Per: budget.Day, Max: 1_000_000})
	if got[0] != r.CostPicoUSD || got[1] != r.Usage.TotalTokens() {
		t.Errorf("ledger charged %d pico-USD, %d tokens; the record says %d, %d", got[0], got[1], r.CostPicoUSD, r.Usage.TotalTokens())
	}
}

// estimateOfDeltas reports whether tokens is ceil(5n/4) for some n >= min:
// the estimate for n deltas of "tick ".
func estimateOfDeltas(tokens int64, min int) bool {
	for n := int64(min); (5*n+3)/4 <= tokens; n++ {
		if (5*n+3)/4 == tokens {
			return true
		}
	}
	return false
}

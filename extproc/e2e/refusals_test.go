package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

// zeroCost is the cost of a request that got no usage, as the records API
// writes its totals.
const zeroCost = "0.00"

// TestProviderDownRecord stops the provider: Envoy's 503 is recorded against
// the route's provider with the model's label, with no time to first token
// (it came from Envoy, not from a provider) and a zero cost.
func TestProviderDownRecord(t *testing.T) {
	s := newStack(t)
	s.fake.Close()
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err == nil {
		t.Fatal("want a 503")
	}
	r := s.records.wait(t, 1)[0]
	if r.Status != 503 || r.Outcome != records.OutcomeProviderError || r.Provider != "demo" {
		t.Errorf("status %d outcome %s provider %q; want 503 provider_error demo", r.Status, r.Outcome, r.Provider)
	}
	if r.TTFTMS != 0 || r.CostPicoUSD != 0 || r.Cost != zeroCost {
		t.Errorf("ttft %v cost %d %q; want none and %q", r.TTFTMS, r.CostPicoUSD, r.Cost, zeroCost)
	}
	want := map[string]string{"route": "demo", "provider": "demo", "model": "claude-sonnet-4-5", "status": "503"}
	if n := metricValue(t, s.reg, "tollgate_requests_total", want); n != 1 {
		t.Errorf("tollgate_requests_total%v = %v; want 1", want, n)
	}
	if n := metricValue(t, s.reg, "tollgate_upstream_ttft_seconds", nil); n != 0 {
		t.Errorf("%v TTFT observations of Envoy's own reply", n)
	}
}

// TestRefusalSeriesAndRecords: a budget 429 is labelled with the model it
// refused, a 401 at the headers (no model read) with "none"; both records
// carry a zero cost as a number, as the records API totals do.
func TestRefusalSeriesAndRecords(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{requests: 1, per: minute}]`})
	for i := 0; i < 2; i++ {
		s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")) //nolint:errcheck // the second is refused
	}
	resp := post(t, s, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[]}`, map[string]string{"x-api-key": "wrong"})
	resp.Body.Close()
	recs := s.records.wait(t, 3)
	byStatus := map[int]records.Record{}
	for _, r := range recs {
		byStatus[r.Status] = r
	}
	for _, st := range []int{429, 401} {
		r := byStatus[st]
		if r.Outcome != records.OutcomeDenied || r.CostPicoUSD != 0 || r.Cost != zeroCost {
			t.Errorf("%d record: outcome %s cost %d %q; want denied, 0 %q", st, r.Outcome, r.CostPicoUSD, r.Cost, zeroCost)
		}
	}
	for _, want := range []map[string]string{
		{"route": "demo", "model": "claude-sonnet-4-5", "status": "429"},
		{"route": "", "model": "none", "status": "401"},
	} {
		if n := metricValue(t, s.reg, "tollgate_requests_total", want); n != 1 {
			t.Errorf("tollgate_requests_total%v = %v; want 1", want, n)
		}
	}
	tr, err := recordsTrace(recs, byStatus[401].TraceID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Totals.Cost != byStatus[401].Cost {
		t.Errorf("records API totals %q, the record %q", tr.Totals.Cost, byStatus[401].Cost)
	}
}

// recordsTrace reads a trace back through the in-memory store the records API
// serves.
func recordsTrace(recs []records.Record, traceID string) (records.Trace, error) {
	st := records.NewMemoryStore(len(recs))
	if err := st.Write(context.Background(), recs); err != nil {
		return records.Trace{}, err
	}
	return st.Trace(context.Background(), traceID)
}

// postErr posts a message body with the gateway key and returns what the
// client got, error included (Envoy may answer before reading a large body).
func postErr(s *stack, body string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, s.harness.URL()+"/v1/messages", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", gatewayKey)
	return http.DefaultClient.Do(req)
}

// TestLedgerDownIsUnavailable: a request refused because the budget ledger is
// down (budget_fail_mode closed) is recorded as unavailable, not invalid.
func TestLedgerDownIsUnavailable(t *testing.T) {
	ledger := downLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 5, per: day}]`, policyTail: "budget_fail_mode: closed\n"})
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err == nil {
		t.Fatal("want a 503")
	}
	r := s.records.wait(t, 1)[0]
	if r.Status != 503 || r.Outcome != records.OutcomeUnavailable || r.Cost != zeroCost {
		t.Errorf("status %d outcome %s cost %q; want 503 unavailable %q", r.Status, r.Outcome, r.Cost, zeroCost)
	}
}

// TestBodyOverBufferLimitIsInvalid: Envoy answers 413 for a body above the
// buffer limit (lowered to 64 KiB here); the record says invalid, not
// provider_error, and names no provider, since none was tried.
func TestBodyOverBufferLimitIsInvalid(t *testing.T) {
	yaml, err := os.ReadFile("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(small, []byte(strings.ReplaceAll(string(yaml), "33554432", "65536")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, stackOptions{envoyYAML: small})
	body := `{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":"` + strings.Repeat("x", 100<<10) + `"}]}`
	if resp, err := postErr(s, body); err == nil {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("status %d; want 413", resp.StatusCode)
		}
	}
	r := s.records.wait(t, 1)[0]
	if r.Status != 413 || r.Outcome != records.OutcomeInvalid || r.Provider != "" || r.Cost != zeroCost || r.TTFTMS != 0 {
		t.Errorf("record: status %d outcome %s provider %q cost %q ttft %v; want 413 invalid, no provider, %q, none",
			r.Status, r.Outcome, r.Provider, r.Cost, r.TTFTMS, zeroCost)
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the provider saw %d requests", n)
	}
}

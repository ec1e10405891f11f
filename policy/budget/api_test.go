package budget

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const adminToken = "admin-secret"

func apiConfig() *Config {
	return &Config{
		Location: berlin,
		Limits: map[Scope][]Limit{
			keyA:                    {{USD, Day, usd("20")}, {Concurrent, NoWindow, 8}},
			{Kind: ScopeSession}:    {{USD, Session, usd("5")}},
			Global:                  {{Requests, Minute, 1000}},
			{ScopeTeam, "platform"}: {{Tokens, Month, 5_000_000}},
		},
	}
}

func newTestAPI(t *testing.T, l Ledger, now time.Time) (http.Handler, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := newAPIHandler(l, apiConfig, adminToken, zap.New(core), func() time.Time { return now })
	return h, logs
}

func call(t *testing.T, h http.Handler, method, target, body, token string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body, err)
	}
	return rec.Code, out
}

func TestAPIGetAndReset(t *testing.T) {
	l := NewMemoryLedger(0)
	now := at(2025, 3, 12, 15, 0, 0)
	cfg := apiConfig()
	r := mustAllow(t, l, cfg.Request("r1", Subject{Key: "alice-laptop"}).with(usd("3")), now)
	settle(t, l, r, Actual{CostPicoUSD: usd("1.25")}, now)
	mustAllow(t, l, cfg.Request("r2", Subject{Key: "alice-laptop"}).with(usd("0.50")), now)
	h, logs := newTestAPI(t, l, now)

	code, got := call(t, h, "GET", "/v1/budgets?scope=key:alice-laptop", "", adminToken)
	want := map[string]any{
		"scope": "key:alice-laptop", "timezone": "Europe/Berlin",
		"windows": []any{
			map[string]any{"unit": "usd", "per": "day", "limit": "20.00", "used": "1.75", "held": "0.50", "remaining": "18.25",
				"window_start": "2025-03-12T00:00:00+01:00", "resets_at": "2025-03-13T00:00:00+01:00"},
			map[string]any{"unit": "concurrent", "limit": "8", "used": "1", "held": "0", "remaining": "7"},
		},
	}
	if diff := cmp.Diff(want, got); code != 200 || diff != "" {
		t.Errorf("GET: %d, (-want +got):\n%s", code, diff)
	}

	code, got = call(t, h, "POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "usd", "per": "day"}`, adminToken)
	if code != 200 || got["before"].(map[string]any)["used"] != "1.75" || got["after"].(map[string]any)["used"] != "0.50" {
		t.Errorf("reset: %d %v", code, got)
	}
	entries := logs.FilterMessage("budget reset").All()
	if len(entries) != 1 || entries[0].ContextMap()["scope"] != "key:alice-laptop" || entries[0].ContextMap()["used_before"] != "1.75" {
		t.Errorf("audit log: %+v", entries)
	}

	code, got = call(t, h, "POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "concurrent"}`, adminToken)
	if code != 200 || got["after"].(map[string]any)["used"] != "0" {
		t.Errorf("reset concurrency: %d %v", code, got)
	}
	code, got = call(t, h, "GET", "/v1/budgets?scope=session:abc", "", adminToken)
	if code != 200 || len(got["windows"].([]any)) != 1 {
		t.Errorf("session scope: %d %v", code, got)
	}
}

// with sets a request's worst-case cost.
func (r Request) with(cost int64) Request {
	r.CostPicoUSD = cost
	return r
}

func TestAPIErrors(t *testing.T) {
	h, _ := newTestAPI(t, NewMemoryLedger(0), t0)
	tests := []struct {
		method, target, body, token string
		status                      int
		typ                         string
	}{
		{"GET", "/v1/budgets?scope=key:alice-laptop", "", "", 401, "authentication_error"},
		{"GET", "/v1/budgets?scope=key:alice-laptop", "", "wrong", 401, "authentication_error"},
		{"GET", "/v1/budgets", "", adminToken, 400, "invalid_request"},
		{"GET", "/v1/budgets?scope=wallet:x", "", adminToken, 400, "invalid_request"},
		{"GET", "/v1/budgets?scope=key:a&scope=key:b", "", adminToken, 400, "invalid_request"},
		{"GET", "/v1/budgets?scope=key:bob", "", adminToken, 404, "not_found"},
		{"DELETE", "/v1/budgets", "", adminToken, 405, "method_not_allowed"},
		{"GET", "/v1/budgets/reset", "", adminToken, 405, "method_not_allowed"},
		{"GET", "/v1/other", "", adminToken, 404, "not_found"},
		{"POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "usd"}`, adminToken, 404, "not_found"},
		{"POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "usd", "per": "fortnight"}`, adminToken, 400, "invalid_request"},
		{"POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "euro", "per": "day"}`, adminToken, 400, "invalid_request"},
		{"POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop", "unit": "usd", "per": "day", "x": 1}`, adminToken, 400, "invalid_request"},
		{"POST", "/v1/budgets/reset", `{"scope": "key:alice-laptop"} {}`, adminToken, 400, "invalid_request"},
		{"POST", "/v1/budgets/reset", strings.Repeat(" ", 5000) + "{}", adminToken, 400, "invalid_request"},
	}
	for _, tt := range tests {
		code, got := call(t, h, tt.method, tt.target, tt.body, tt.token)
		if typ, _ := got["error"].(map[string]any)["type"].(string); code != tt.status || typ != tt.typ {
			t.Errorf("%s %s %s: %d %v, want %d %s", tt.method, tt.target, tt.body, code, got, tt.status, tt.typ)
		}
	}

	disabled := NewAPIHandler(NewMemoryLedger(0), apiConfig, "", nil)
	if code, _ := call(t, disabled, "GET", "/v1/budgets?scope=global", "", "anything"); code != 403 {
		t.Errorf("without an admin token: %d, want 403", code)
	}
	down, _ := newTestAPI(t, downLedger{}, t0)
	if code, got := call(t, down, "GET", "/v1/budgets?scope=global", "", adminToken); code != 503 {
		t.Errorf("ledger down: %d %v, want 503", code, got)
	}
}

// downLedger is a Ledger whose store is unreachable.
type downLedger struct{ Ledger }

func (downLedger) Read(context.Context, Query, time.Time) ([]Balance, error) {
	return nil, errors.Join(ErrUnavailable, errors.New("connection refused"))
}

package records

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testToken = "admin-token-0123456789"

// get sends a GET through h with the admin token (or auth, when not empty) and
// decodes the JSON answer into out.
func get(t *testing.T, h http.Handler, target, auth string, out any) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if auth == "" {
		auth = "Bearer " + testToken
	}
	req.Header.Set("Authorization", auth)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
	}
	return resp
}

type apiErrorBody struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

type recordsBody struct {
	Records []Record `json:"records"`
}

func filledStore(t *testing.T) *MemoryStore {
	t.Helper()
	m := NewMemoryStore(100)
	recs := testRecords(4, "trace-a", "key-1")
	recs = append(recs, testRecord(5, "trace-b", "key-2"), testRecord(6, "trace/with space", "key-2"))
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAPIAuth(t *testing.T) {
	h := NewAPIHandler(filledStore(t), testToken)
	for _, auth := range []string{
		"Bearer wrong",
		"Bearer " + testToken + "x",
		"Bearer " + testToken[:len(testToken)-1],
		"Basic " + testToken,
		testToken,
		"Bearer",
	} {
		var body apiErrorBody
		resp := get(t, h, "/v1/records", auth, &body)
		if resp.StatusCode != http.StatusUnauthorized || body.Error.Type != "authentication_error" {
			t.Errorf("Authorization %q: %d %+v, want 401 authentication_error", auth, resp.StatusCode, body)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: no WWW-Authenticate", auth)
		}
	}
	// No header at all, and unknown paths, are refused before anything else.
	req := httptest.NewRequest(http.MethodGet, "/v1/nothing-here", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("no Authorization: %d, want 401", rec.Code)
	}
	// The scheme is case-insensitive.
	if resp := get(t, h, "/v1/records", "bearer "+testToken, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d", resp.StatusCode)
	}
	if resp := get(t, h, "/v1/records", "", nil); resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
}

func TestAPIDisabledWithoutToken(t *testing.T) {
	h := NewAPIHandler(filledStore(t), "")
	for _, auth := range []string{"Bearer ", "Bearer anything"} {
		var body apiErrorBody
		resp := get(t, h, "/v1/records", auth, &body)
		if resp.StatusCode != http.StatusForbidden || body.Error.Type != "api_disabled" || !strings.Contains(body.Error.Message, "disabled") {
			t.Errorf("Authorization %q: %d %+v, want 403 api_disabled", auth, resp.StatusCode, body)
		}
	}
}

func TestAPIRecords(t *testing.T) {
	h := NewAPIHandler(filledStore(t), testToken)
	since := t0.Add(3 * time.Second)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"req-0006", "req-0005", "req-0004", "req-0003", "req-0002", "req-0001"}},
		{"?trace_id=trace-a", []string{"req-0004", "req-0003", "req-0002", "req-0001"}},
		{"?trace_id=" + url.QueryEscape("trace/with space"), []string{"req-0006"}},
		{"?key=key-2", []string{"req-0006", "req-0005"}},
		{"?trace_id=trace-a&key=key-2", nil},
		{"?since=" + since.Format(time.RFC3339), []string{"req-0006", "req-0005", "req-0004", "req-0003"}},
		{"?since=" + url.QueryEscape(since.In(time.FixedZone("x", 2*3600)).Format(time.RFC3339Nano)), []string{"req-0006", "req-0005", "req-0004", "req-0003"}},
		{"?since=" + strconv.FormatInt(since.Unix(), 10), []string{"req-0006", "req-0005", "req-0004", "req-0003"}},
		{"?limit=2", []string{"req-0006", "req-0005"}},
		{"?limit=1000&trace_id=trace-b", []string{"req-0005"}},
		{"?trace_id=nope", nil},
	} {
		var body recordsBody
		resp := get(t, h, "/v1/records"+tc.query, "", &body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", tc.query, resp.StatusCode)
			continue
		}
		if body.Records == nil {
			t.Errorf("%s: records is null, want an array", tc.query)
		}
		if diff := cmp.Diff(tc.want, ids(body.Records)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	// Records come back whole.
	var body recordsBody
	get(t, h, "/v1/records?trace_id=trace-b", "", &body)
	if diff := cmp.Diff([]Record{testRecord(5, "trace-b", "key-2")}, body.Records); diff != "" {
		t.Errorf("record round trip (-want +got):\n%s", diff)
	}
}

func TestAPIBadRequests(t *testing.T) {
	h := NewAPIHandler(filledStore(t), testToken)
	for _, target := range []string{
		"/v1/records?limit=0",
		"/v1/records?limit=1001",
		"/v1/records?limit=ten",
		"/v1/records?limit=",
		"/v1/records?since=yesterday",
		"/v1/records?since=2026-05-01",
		"/v1/records?since=-5",
		"/v1/records?since=",
		"/v1/records?since=99999999999999999999",
		"/v1/records?trace=trace-a", // a typo must not widen the query
		"/v1/records?trace_id=a&trace_id=b",
		"/v1/records?trace_id=",
		"/v1/records?key=" + strings.Repeat("k", maxIDLen+1),
		"/v1/records?key=%00",
		"/v1/records?trace_id=%ff",
		"/v1/traces/x?limit=1",
		"/v1/traces/" + strings.Repeat("t", maxIDLen+1),
		"/v1/traces/a%0Ab",
	} {
		var body apiErrorBody
		resp := get(t, h, target, "", &body)
		if resp.StatusCode != http.StatusBadRequest || body.Error.Type != "invalid_request" || body.Error.Message == "" {
			t.Errorf("%s: %d %+v, want 400 invalid_request with a message", target, resp.StatusCode, body)
		}
	}
	for target, want := range map[string]int{
		"/v1/nothing": http.StatusNotFound,
		"/v1/traces/": http.StatusNotFound,
		"/":           http.StatusNotFound,
	} {
		var body apiErrorBody
		if resp := get(t, h, target, "", &body); resp.StatusCode != want || body.Error.Type == "" {
			t.Errorf("%s: %d %+v, want %d with a JSON error", target, resp.StatusCode, body, want)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/records", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("POST /v1/records: %d, Allow %q, body %q", rec.Code, rec.Header().Get("Allow"), rec.Body)
	}
}

func TestAPITrace(t *testing.T) {
	h := NewAPIHandler(filledStore(t), testToken)
	var tr Trace
	if resp := get(t, h, "/v1/traces/trace-a", "", &tr); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if diff := cmp.Diff([]string{"req-0001", "req-0002", "req-0003", "req-0004"}, ids(tr.Requests)); diff != "" {
		t.Errorf("requests in start order (-want +got):\n%s", diff)
	}
	// Records 1..4: input 10*i, cache read i, 5m 2, 1h 1, output 5*i, reasoning 1;
	// cost 0.00375 USD * i.
	want := Totals{Requests: 4, CostPicoUSD: 10 * 3_750_000_000, Cost: "0.0375"}
	want.Usage.InputTokens, want.Usage.CacheReadTokens, want.Usage.CacheWrite5mTokens = 100, 10, 8
	want.Usage.CacheWrite1hTokens, want.Usage.OutputTokens, want.Usage.ReasoningTokens = 4, 50, 4
	if diff := cmp.Diff(want, tr.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if tr.ID != "trace-a" {
		t.Errorf("id %q", tr.ID)
	}

	// The JSON names of the totals.
	req := httptest.NewRequest(http.MethodGet, "/v1/traces/trace-b", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, field := range []string{`"id":"trace-b"`, `"requests":[`, `"totals":{"requests":1,`, `"cost_pico_usd":18750000000`, `"cost_usd":"0.01875"`} {
		if !strings.Contains(rec.Body.String(), field) {
			t.Errorf("trace JSON lacks %s: %s", field, rec.Body)
		}
	}

	// An id with a slash and a space, escaped in the path.
	if resp := get(t, h, "/v1/traces/"+url.PathEscape("trace/with space"), "", &tr); resp.StatusCode != http.StatusOK || len(tr.Requests) != 1 {
		t.Errorf("escaped id: %d, %d requests", resp.StatusCode, len(tr.Requests))
	}

	var body apiErrorBody
	if resp := get(t, h, "/v1/traces/nope", "", &body); resp.StatusCode != http.StatusNotFound || body.Error.Type != "not_found" {
		t.Errorf("unknown trace: %d %+v, want 404 not_found", resp.StatusCode, body)
	}
}

func TestAPIStoreError(t *testing.T) {
	srv, c := startRedis(t)
	h := NewAPIHandler(NewRedisStore(c, DefaultRedisStream), testToken)
	srv.Stop()
	for _, target := range []string{"/v1/records", "/v1/traces/x"} {
		var body apiErrorBody
		if resp := get(t, h, target, "", &body); resp.StatusCode != http.StatusInternalServerError || body.Error.Type != "store_error" {
			t.Errorf("%s with Redis down: %d %+v, want 500 store_error", target, resp.StatusCode, body)
		}
	}
}

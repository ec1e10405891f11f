package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/records"
)

// send posts body to path through the harness with exactly the headers given
// (an empty value is sent as an empty header), and returns the status and the
// response body.
func send(t *testing.T, s *stack, path, body string, hdr [][2]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.harness.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	for _, kv := range hdr {
		req.Header[http.CanonicalHeaderKey(kv[0])] = []string{kv[1]}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

const hiBody = `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

// TestClientRequestIDIsNotTheRecordID is issue 9's first two items, through
// the real Redis sink and the records API: a request with an empty
// x-request-id, two with the same one, and a refused one with that same id
// again. Before the fix, the first stopped the Redis sink for good and the
// repeats hid each other; now each request has a record with its own id, the
// client's id is kept beside it, and the error body names the record's id.
func TestClientRequestIDIsNotTheRecordID(t *testing.T) {
	rdb := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: rdb.Addr(), DialTimeout: time.Second, MaxRetries: -1})
	defer client.Close()
	w, err := records.NewWriter(records.WriterOptions{
		Sinks:         []records.Sink{records.NewRedisSink(client, "tollgate:records", 10_000)},
		SpoolDir:      t.TempDir(),
		RetryInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background()) //nolint:errcheck
	s := newStackWith(t, stackOptions{recorder: w})

	const trace = "trace-request-ids"
	auth := [2]string{"x-api-key", gatewayKey}
	tr := [2]string{"x-tollgate-trace-id", trace}
	for i, rid := range []string{"", "dup", "dup"} {
		if status, body := send(t, s, "/v1/messages", hiBody, [][2]string{auth, tr, {"x-request-id", rid}}); status != 200 {
			t.Fatalf("request %d (x-request-id %q): %d %s", i, rid, status, body)
		}
	}
	status, body := send(t, s, "/v1/messages", hiBody, [][2]string{{"x-api-key", "tg-wrong"}, tr, {"x-request-id", "dup"}})
	var errBody struct {
		Type      string `json:"type"`
		RequestID string `json:"request_id"`
	}
	if status != 401 || json.Unmarshal(body, &errBody) != nil || errBody.Type != "error" {
		t.Fatalf("wrong key: %d %s", status, body)
	}

	api := httptest.NewServer(records.NewAPIHandler(records.NewRedisStore(client, "tollgate:records"), "admin"))
	defer api.Close()
	var got []records.Record
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got = fetchRecords(t, api.URL); len(got) >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != 4 {
		t.Fatalf("the records API holds %d records, want 4: %+v", len(got), got)
	}
	ids := map[string]bool{}
	clientIDs := map[string]int{}
	for _, r := range got {
		if r.ID == "" || ids[r.ID] || r.ID == "dup" {
			t.Errorf("record id %q: want a fresh id of Tollgate's own for each request", r.ID)
		}
		ids[r.ID] = true
		clientIDs[r.ClientRequestID]++
		if r.TraceID != trace {
			t.Errorf("record %s: trace %q", r.ID, r.TraceID)
		}
		if r.Status == 401 && r.ID != errBody.RequestID {
			t.Errorf("the 401's body names request_id %q, its record is %q", errBody.RequestID, r.ID)
		}
	}
	if clientIDs[""] != 1 || clientIDs["dup"] != 3 {
		t.Errorf("client request ids %v, want one empty and three dup", clientIDs)
	}
}

// TestClientHeadersInRecordsAreBounded is issue 9's third item: headers a
// client chooses freely never reach a record unbounded, whether the request is
// refused for its key or authenticated. Oversized session and agent ids are
// refused with a 400 (before the key is even looked at); a long x-request-id
// and a long path are cut.
func TestClientHeadersInRecordsAreBounded(t *testing.T) {
	s := newStack(t)
	huge := strings.Repeat("a", 28<<10)
	long := strings.Repeat("b", 20<<10)
	const recordBound = 2048 // bytes of JSON: ids, path, principal, usage

	for _, key := range []string{"tg-wrong", gatewayKey} {
		for _, h := range []string{"x-claude-code-session-id", "x-claude-code-agent-id", "x-claude-code-parent-agent-id"} {
			hdr := [][2]string{{"x-api-key", key}, {"x-tollgate-trace-id", "t"}, {h, huge}}
			if h != "x-claude-code-session-id" {
				hdr = append(hdr, [2]string{"x-claude-code-session-id", "s"})
			}
			if status, body := send(t, s, "/v1/messages", hiBody, hdr); status != 400 || !strings.Contains(string(body), h) {
				t.Errorf("key %s, %d KB %s: %d %.200s; want a 400 naming it", key, len(huge)>>10, h, status, body)
			}
		}
		// The three at once, with a long x-request-id and a long query.
		status, _ := send(t, s, "/v1/messages?q="+long[:8<<10], hiBody, [][2]string{{"x-api-key", key},
			{"x-claude-code-session-id", huge}, {"x-claude-code-agent-id", huge}, {"x-claude-code-parent-agent-id", huge}})
		if status != 400 {
			t.Errorf("key %s, all three oversized: %d", key, status)
		}
		if status, body := send(t, s, "/v1/messages?q="+long, hiBody, [][2]string{{"x-api-key", key}, {"x-request-id", long}}); key == gatewayKey && status != 200 {
			t.Errorf("long x-request-id and query: %d %.200s", status, body)
		}
	}
	// The largest ids that are accepted reach the record whole.
	id128 := strings.Repeat("c", 128)
	if status, body := send(t, s, "/v1/messages", hiBody, [][2]string{{"x-api-key", gatewayKey}, {"x-claude-code-session-id", id128},
		{"x-claude-code-agent-id", id128}, {"x-claude-code-parent-agent-id", id128}, {"x-request-id", "ids-128"}}); status != 200 {
		t.Fatalf("128-byte ids: %d %s", status, body)
	}

	recs := s.records.wait(t, 11)
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > recordBound {
			t.Errorf("record of %s %.60s (status %d, key %q) is %d bytes of JSON, want at most %d",
				r.Method, r.Path, r.Status, r.KeyID, len(b), recordBound)
		}
	}
	// Records are written as each stream ends, after its client has the
	// answer, so the last request's may not be the last record: it is found
	// by its x-request-id.
	var last records.Record
	for _, r := range recs {
		if r.ClientRequestID == "ids-128" {
			last = r
		}
	}
	if last.SessionID != id128 || last.AgentID != id128 || last.ParentAgentID != id128 {
		t.Errorf("128-byte ids in the record: session %d, agent %d, parent %d bytes",
			len(last.SessionID), len(last.AgentID), len(last.ParentAgentID))
	}
	for _, r := range recs {
		if r.Status == 200 && strings.HasPrefix(r.Path, "/v1/messages?q=") {
			if len(r.Path) != 512 || len(r.ClientRequestID) != 128 {
				t.Errorf("long path and x-request-id recorded as %d and %d bytes, want cut to 512 and 128", len(r.Path), len(r.ClientRequestID))
			}
		}
	}
}

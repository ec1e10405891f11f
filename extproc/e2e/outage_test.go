package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/records"
)

// TestRedisOutageLosesNoRecord stops Redis, serves 100 requests through the
// gateway, restarts Redis, and reads the records back through the records API:
// all 100, each exactly once (issue 3, "Redis outage").
func TestRedisOutageLosesNoRecord(t *testing.T) {
	rdb := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: rdb.Addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	w, err := records.NewWriter(records.WriterOptions{
		Sinks:         []records.Sink{records.NewRedisSink(client, "tollgate:records", 10_000)},
		SpoolDir:      t.TempDir(),
		RetryInterval: 50 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background()) //nolint:errcheck
	s := newStackWith(t, stackOptions{recorder: w})

	rdb.Stop()
	for i := range 100 {
		if _, err := s.client.Messages.New(context.Background(), hello(fmt.Sprintf("claude-sonnet-4-5-%03d", i))); err != nil {
			t.Fatalf("request %d with Redis down: %v", i, err)
		}
	}
	rdb.Restart()

	api := httptest.NewServer(records.NewAPIHandler(records.NewRedisStore(client, "tollgate:records"), "admin"))
	defer api.Close()
	var got []records.Record
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got = fetchRecords(t, api.URL)
		if len(got) >= 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.ID] {
			t.Errorf("record %s twice", r.ID)
		}
		seen[r.ID] = true
	}
	if len(seen) != 100 || len(got) != 100 {
		t.Fatalf("%d records (%d distinct); want 100", len(got), len(seen))
	}
	if n, err := client.XLen(context.Background(), records.RedisStreamKey("tollgate:records")).Result(); err != nil || n != 100 {
		t.Errorf("stream length %d, %v", n, err)
	}
}

func fetchRecords(t *testing.T, base string) []records.Record {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/records?limit=1000", nil)
	req.Header.Set("authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Records []records.Record `json:"records"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil {
		return nil
	}
	return out.Records
}

package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/loopback"
)

// TestServeLogsRedisThroughZap points serve at a Redis that is not there: the
// records sink's failed dials make go-redis log, and its lines must arrive in
// the JSON log as warnings of the "redis" logger, with no plain-text line.
func TestServeLogsRedisThroughZap(t *testing.T) {
	grpcAddr, _, cancel, done, logs := startServe(t, func(c *Config) { c.RedisURL = "redis://" + loopback.FreeAddr(t) + "/0" })
	stream := policyStream(t, grpcAddr)
	// A refused request still writes a record, which the Redis sink tries to store.
	if err := stream.Send(headers(":method", "POST", ":path", "/v1/messages", "x-api-key", "wrong", "x-request-id", "rid-redislog")); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	stream.Recv() //nolint:errcheck // the end of the stream

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), `"logger":"redis"`) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry struct {
			Level  string `json:"level"`
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		if entry.Logger == "redis" {
			found = true
			if entry.Level != "warn" || !strings.Contains(entry.Msg, "dial") {
				t.Errorf("go-redis line: %+v; want a warning about the failed dial", entry)
			}
		}
	}
	if !found {
		t.Errorf("no go-redis line in the log:\n%s", logs.String())
	}
}

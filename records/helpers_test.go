package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// t0 is the start of the first test record; fixed so that tests read the same
// on every run.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testRecord is record number i: it starts i seconds after t0 and costs i
// times a fixed usage.
func testRecord(i int, trace, key string) Record {
	start := t0.Add(time.Duration(i) * time.Second)
	u := pricing.Usage{
		InputTokens: int64(10 * i), CacheReadTokens: int64(i), CacheWrite5mTokens: 2,
		CacheWrite1hTokens: 1, OutputTokens: int64(5 * i), ReasoningTokens: 1,
	}
	cost := int64(i) * 3_750_000_000
	return Record{
		ID:      fmt.Sprintf("req-%04d", i),
		Start:   start,
		End:     start.Add(1500 * time.Millisecond),
		TraceID: trace, KeyID: key, User: "alice", Team: "platform",
		Metadata: map[string]string{"cost_center": "42"},
		Route:    "demo", Provider: "demo", Endpoint: "messages", Method: "POST", Path: "/v1/messages",
		Model: "claude-sonnet-4-5", Stream: true, Status: 200, Outcome: OutcomeOK,
		Usage: u, CostPicoUSD: cost, Cost: pricing.FormatUSD(cost), LatencyMS: 1500,
	}
}

func testRecords(n int, trace, key string) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = testRecord(i+1, trace, key)
	}
	return recs
}

// startRedis starts a redis-server for the test and a client with short
// timeouts, so that an outage fails fast.
func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{
		Addr:                     srv.Addr(),
		Protocol:                 2,
		DisableIdentity:          true,
		DialTimeout:              250 * time.Millisecond,
		ReadTimeout:              time.Second,
		WriteTimeout:             time.Second,
		MaxRetries:               -1,
		DialerRetries:            1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// ids lists the records' ids in order (nil for none).
func ids(recs []Record) []string {
	if len(recs) == 0 {
		return nil
	}
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = recs[i].ID
	}
	return out
}

// eventually polls cond every few milliseconds until it holds, and fails the
// test after a generous bound. It waits for background work, never for a
// duration that the test asserts.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeSink is a sink under the test's control: it fails while failing is set,
// blocks in Write while gate is set and not closed, and keeps what it stored.
type fakeSink struct {
	name string

	mu      sync.Mutex
	failing bool
	gate    chan struct{} // Write waits for it to close, when not nil
	entered chan struct{} // receives once per Write that waits on gate
	stored  []Record
	writes  int
	closed  bool
}

func newFakeSink(name string) *fakeSink { return &fakeSink{name: name} }

func (f *fakeSink) Name() string { return f.name }

func (f *fakeSink) Write(ctx context.Context, recs []Record) error {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.failing {
		return errors.New("fake sink is down")
	}
	f.stored = append(f.stored, slices.Clone(recs)...)
	return nil
}

func (f *fakeSink) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeSink) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

func (f *fakeSink) storedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ids(f.stored)
}

func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

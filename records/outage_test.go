package records

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRedisOutage is the acceptance test of issue 3: with Redis stopped, 100
// requests end and are emitted; Redis is restarted; the records API then
// returns all 100, exactly once.
func TestRedisOutage(t *testing.T) {
	srv, c := startRedis(t)
	ctx := context.Background()
	const stream = DefaultRedisStream
	w, reg := newTestWriter(t, WriterOptions{
		Sinks:         []Sink{NewRedisSink(c, stream, 10_000)},
		BatchSize:     16,
		RetryInterval: 20 * time.Millisecond,
		WriteTimeout:  2 * time.Second,
	})
	api := NewAPIHandler(NewRedisStore(c, stream), testToken)

	srv.Stop()
	want := make([]string, 100)
	for i := range want {
		r := testRecord(i+1, fmt.Sprintf("trace-%d", i%4), "key-1")
		want[i] = r.ID
		w.Emit(r)
	}
	eventually(t, "100 records spooled during the outage", func() bool {
		return metricValue(t, reg, "tollgate_records_spooled_total", "redis") == 100
	})
	if n := metricValue(t, reg, "tollgate_records_written_total", "redis"); n != 0 {
		t.Fatalf("%v records written while Redis was down", n)
	}

	srv.Restart()
	eventually(t, "the spool to be replayed into Redis", func() bool {
		return metricValue(t, reg, "tollgate_records_written_total", "redis") == 100 && !w.spools[0].pending()
	})

	var body recordsBody
	get(t, api, "/v1/records?limit=1000", "", &body)
	got := ids(body.Records)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records API after the outage (-want +got):\n%s", diff)
	}
	// Exactly once in the stream itself, not only after the store's dedupe.
	if n := c.XLen(ctx, RedisStreamKey(stream)).Val(); n != 100 {
		t.Errorf("XLEN = %d, want 100", n)
	}
	// The traces add up.
	total := 0
	for i := range 4 {
		var tr Trace
		get(t, api, fmt.Sprintf("/v1/traces/trace-%d", i), "", &tr)
		if tr.Totals.Requests != 25 || len(tr.Requests) != 25 {
			t.Errorf("trace-%d: %d requests", i, tr.Totals.Requests)
		}
		total += tr.Totals.Requests
	}
	if total != 100 {
		t.Errorf("traces hold %d requests, want 100", total)
	}
	if n := metricValue(t, reg, "tollgate_record_spool_bytes", "redis"); n != 0 {
		t.Errorf("spool bytes = %v after the replay", n)
	}
	if n := metricValue(t, reg, "tollgate_records_dropped_total", "redis"); n != 0 {
		t.Errorf("dropped = %v", n)
	}
	if n := metricValue(t, reg, "tollgate_record_sink_errors_total", "redis"); n < 1 {
		t.Errorf("sink errors = %v, want at least 1", n)
	}
	closeWriter(t, w)
}

// TestRedisReplayIsIdempotent replays a spool whose first records Redis already
// holds, as after a crash between a successful replay batch and cutting it off
// the spool, or a write whose reply was lost: nothing is added twice.
func TestRedisReplayIsIdempotent(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	recs := testRecords(15, "t", "k")
	if err := NewRedisSink(c, "s", 0).Write(ctx, recs[:10]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var spool []byte
	for i := range recs {
		spool, _ = appendJSONLine(spool, &recs[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "redis.replay"), spool, 0o600); err != nil {
		t.Fatal(err)
	}
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{NewRedisSink(c, "s", 0)}, SpoolDir: dir, BatchSize: 4})
	eventually(t, "the replay", func() bool { return !w.spools[0].pending() })
	// The counter says what the sink accepted; the stream says what it kept.
	if n := metricValue(t, reg, "tollgate_records_written_total", "redis"); n != 15 {
		t.Errorf("written = %v, want 15", n)
	}
	closeWriter(t, w)
	msgs, err := c.XRange(ctx, RedisStreamKey("s"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Values["id"].(string))
	}
	if diff := cmp.Diff(ids(recs), got); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

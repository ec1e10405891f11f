package records

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogSink(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := NewLogSink(zap.New(core))
	r := testRecord(1, "trace-a", "key-a")
	r.RequestBody, r.ResponseBody = `{"secret":"request body"}`, `{"secret":"response body"}`
	r.SessionID, r.ErrorType = "session-1", "overloaded_error"
	if err := s.Write(context.Background(), []Record{r, testRecord(2, "trace-a", "key-a")}); err != nil {
		t.Fatal(err)
	}
	if s.Name() != "log" {
		t.Errorf("Name() = %q", s.Name())
	}
	if logs.Len() != 2 {
		t.Fatalf("%d log lines, want one per record (2)", logs.Len())
	}
	e := logs.All()[0]
	if e.Message != "cost record" {
		t.Errorf("message %q", e.Message)
	}
	fields := e.ContextMap()
	for k, want := range map[string]any{
		"request_id": "req-0001", "trace_id": "trace-a", "key_id": "key-a", "team": "platform",
		"session_id": "session-1", "error_type": "overloaded_error", "status": int64(200),
		"input_tokens": int64(10), "output_tokens": int64(5), "cost_pico_usd": int64(3_750_000_000),
		"cost_usd": "0.00375", "outcome": "ok",
	} {
		if fields[k] != want {
			t.Errorf("field %s = %#v, want %#v", k, fields[k], want)
		}
	}
	for k, v := range fields {
		if strings.Contains(k, "body") || strings.Contains(k, "authorization") || strings.Contains(k, "api_key") {
			t.Errorf("log line has field %s", k)
		}
		if s, ok := v.(string); ok && strings.Contains(s, "secret") {
			t.Errorf("field %s carries a body: %q", k, s)
		}
	}
}

// readLines decodes a JSON-lines file.
func readLines(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileSinkRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	s, err := NewFileSink(path, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := testRecords(5, "trace-a", "key-a")
	ctx := context.Background()
	if err := s.Write(ctx, want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, want[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, readLines(t, path)); diff != "" {
		t.Errorf("file content (-want +got):\n%s", diff)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}

	// Reopening appends.
	s, err = NewFileSink(path, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	more := testRecord(6, "trace-a", "key-a")
	if err := s.Write(ctx, []Record{more}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := readLines(t, path); len(got) != 6 || got[5].ID != more.ID {
		t.Errorf("after reopening: ids %v, want 6 ending with %s", ids(got), more.ID)
	}
	if err := s.Write(ctx, []Record{more}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestFileSinkRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	line, err := appendJSONLine(nil, new(testRecord(1, "trace-a", "key-a")))
	if err != nil {
		t.Fatal(err)
	}
	// Room for two records per file (the test records all encode to the same
	// length), and two rotated files kept.
	maxBytes := int64(2*len(line) + len(line)/2)
	s, err := NewFileSink(path, maxBytes, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := testRecords(9, "trace-a", "key-a")
	ctx := context.Background()
	// One batch that crosses several rotations, then single records.
	if err := s.Write(ctx, recs[:5]); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < len(recs); i++ {
		if err := s.Write(ctx, recs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	// Files hold 1-2, 3-4, 5-6, 7-8, 9; the oldest two rotated away.
	for file, want := range map[string][]string{
		path:        {"req-0009"},
		path + ".1": {"req-0007", "req-0008"},
		path + ".2": {"req-0005", "req-0006"},
	} {
		if diff := cmp.Diff(want, ids(readLines(t, file))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", filepath.Base(file), diff)
		}
		if st, err := os.Stat(file); err != nil || st.Size() > maxBytes {
			t.Errorf("%s: size over %d bytes (%v)", filepath.Base(file), maxBytes, err)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists (err %v), want only 2 rotated files", filepath.Base(path), err)
	}

	// A record larger than maxBytes gets a file of its own.
	big := testRecord(10, "trace-a", "key-a")
	big.ResponseBody = strings.Repeat("x", int(maxBytes))
	if err := s.Write(ctx, []Record{big, testRecord(11, "trace-a", "key-a")}); err != nil {
		t.Fatal(err)
	}
	if got := ids(readLines(t, path+".1")); !cmp.Equal(got, []string{"req-0010"}) {
		t.Errorf("the oversized record's file holds %v", got)
	}
	if got := ids(readLines(t, path)); !cmp.Equal(got, []string{"req-0011"}) {
		t.Errorf("the current file holds %v", got)
	}
}

func TestFileSinkKeepZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	s, err := NewFileSink(path, 1, 0) // every record rotates, nothing is kept
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), testRecords(3, "t", "k")); err != nil {
		t.Fatal(err)
	}
	if got := ids(readLines(t, path)); !cmp.Equal(got, []string{"req-0003"}) {
		t.Errorf("file holds %v", got)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("a rotated file exists with keep = 0 (err %v)", err)
	}
}

func TestNewFileSinkErrors(t *testing.T) {
	if _, err := NewFileSink("", 0, 1); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := NewFileSink(filepath.Join(t.TempDir(), "f"), 0, -1); err == nil {
		t.Error("negative keep accepted")
	}
	if _, err := NewFileSink(filepath.Join(t.TempDir(), "missing", "f"), 0, 1); err == nil {
		t.Error("a file in a missing directory accepted")
	}
}

func TestRedisStreamKey(t *testing.T) {
	for stream, want := range map[string]string{
		"tollgate:records":    "{tollgate:records}",
		"{tollgate}:records":  "{tollgate}:records",
		"records:{eu}":        "records:{eu}",
		"{}records":           "{{}records}", // an empty tag is no tag
		"a}b{c":               "{a}b{c}",
		"tollgate:{records":   "{tollgate:{records}",
		"tollgate:{records}x": "tollgate:{records}x",
	} {
		if got := RedisStreamKey(stream); got != want {
			t.Errorf("RedisStreamKey(%q) = %q, want %q", stream, got, want)
		}
		if !hasHashTag(RedisStreamKey(stream)) {
			t.Errorf("RedisStreamKey(%q) has no hash tag", stream)
		}
	}
}

func TestRedisSinkRoundTripAndIdempotency(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	s := NewRedisSink(c, DefaultRedisStream, 1000)
	if s.Name() != "redis" {
		t.Errorf("Name() = %q", s.Name())
	}
	recs := testRecords(3, "trace-a", "key-a")
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// The same records again, alone and mixed with a new one, are not added.
	if err := s.Write(ctx, recs[1:2]); err != nil {
		t.Fatal(err)
	}
	fourth := testRecord(4, "trace-a", "key-a")
	if err := s.Write(ctx, append(recs, fourth)); err != nil {
		t.Fatal(err)
	}

	key := RedisStreamKey(DefaultRedisStream)
	msgs, err := c.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	for _, m := range msgs {
		var r Record
		if err := json.Unmarshal([]byte(m.Values["record"].(string)), &r); err != nil {
			t.Fatal(err)
		}
		if m.Values["id"] != r.ID || m.Values["trace_id"] != r.TraceID || m.Values["key_id"] != r.KeyID {
			t.Errorf("entry %s: fields %v do not match record %s", m.ID, m.Values, r.ID)
		}
		got = append(got, r)
	}
	if diff := cmp.Diff(append(recs, fourth), got); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}

	// Each id key expires, and lives in the stream's slot.
	idKey := redisIDKey(key, recs[0].ID)
	if ttl := c.PTTL(ctx, idKey).Val(); ttl <= 0 || ttl > redisDedupeTTL {
		t.Errorf("PTTL %s = %v, want (0, %v]", idKey, ttl, redisDedupeTTL)
	}
	if a, b := c.ClusterKeySlot(ctx, key).Val(), c.ClusterKeySlot(ctx, idKey).Val(); a != b {
		t.Errorf("stream slot %d, id key slot %d", a, b)
	}

	if err := s.Write(ctx, []Record{{TraceID: "no-id"}}); err == nil {
		t.Error("a record without an id was accepted")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("Close closed the caller's client: %v", err)
	}
}

func TestRedisSinkTrimsAndBatches(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	s := NewRedisSink(c, "trim", 100)
	// More than one script call's worth, to cross the batch boundary.
	recs := testRecords(redisScriptBatch*2+10, "trace-a", "key-a")
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	n := c.XLen(ctx, RedisStreamKey("trim")).Val()
	// Approximate trimming keeps at least MAXLEN entries and removes whole
	// nodes, so it stays below the total without being exact.
	if n < 100 || n >= int64(len(recs)) {
		t.Errorf("XLEN = %d after %d records with MAXLEN ~100", n, len(recs))
	}
	last, err := c.XRevRangeN(ctx, RedisStreamKey("trim"), "+", "-", 1).Result()
	if err != nil || len(last) != 1 || last[0].Values["id"] != recs[len(recs)-1].ID {
		t.Errorf("newest entry %v (%v), want %s", last, err, recs[len(recs)-1].ID)
	}
}

func TestRedisSinkDown(t *testing.T) {
	srv, c := startRedis(t)
	srv.Stop()
	if err := NewRedisSink(c, "s", 0).Write(context.Background(), testRecords(1, "t", "k")); err == nil {
		t.Fatal("Write succeeded with Redis stopped")
	}
}

// TestRedisSinkFailedXADDHidesNothing makes XADD fail inside the script (the
// stream key holds a string): the id key set before it is removed, so the
// retry adds the record.
func TestRedisSinkFailedXADDHidesNothing(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	key := RedisStreamKey("s")
	if err := c.Set(ctx, key, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := NewRedisSink(c, "s", 0)
	recs := testRecords(2, "t", "k")
	if err := s.Write(ctx, recs); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Write onto a string key: %v, want WRONGTYPE", err)
	}
	if n := c.Exists(ctx, redisIDKey(key, recs[0].ID)).Val(); n != 0 {
		t.Error("the id key of a record XADD refused is still set")
	}
	c.Del(ctx, key)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n := c.XLen(ctx, key).Val(); n != 2 {
		t.Errorf("XLEN = %d after the retry, want 2", n)
	}
}

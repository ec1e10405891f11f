package records

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// poisonRecord is a record the Redis sink can never store: it has no id, as
// records had when a client sent an empty x-request-id (issue 9).
func poisonRecord(trace string) Record {
	r := testRecord(99, trace, "key-p")
	r.ID = ""
	return r
}

// readDeadLetters reads a dead-letter file.
func readDeadLetters(t *testing.T, path string) []deadLetter {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadLetter
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d deadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamIDs lists the record ids in the Redis stream named stream, oldest
// first.
func streamIDs(t *testing.T, c *redis.Client, stream string) []string {
	t.Helper()
	msgs, err := c.XRange(context.Background(), RedisStreamKey(stream), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Values["id"].(string))
	}
	return out
}

// TestRedisSinkRefusesOnlyTheRecordsWithoutAnID writes batches that mix good
// records with records that have no id, across the script's batch boundary:
// the good ones are stored and the error names exactly the others.
func TestRedisSinkRefusesOnlyTheRecordsWithoutAnID(t *testing.T) {
	_, c := startRedis(t)
	s := NewRedisSink(c, "s", 0)
	recs := testRecords(redisScriptBatch+5, "t", "k")
	bad := []int{0, 7, redisScriptBatch, redisScriptBatch + 4}
	var want []string
	for i := range recs {
		if slicesContains(bad, i) {
			recs[i].ID = ""
			continue
		}
		want = append(want, recs[i].ID)
	}
	err := s.Write(context.Background(), recs)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("Write = %v, want a *RejectedError", err)
	}
	var got []int
	for _, r := range rej.Records {
		got = append(got, r.Index)
		if r.Reason == nil || !strings.Contains(r.Reason.Error(), "without an id") {
			t.Errorf("record %d refused because %v", r.Index, r.Reason)
		}
	}
	if diff := cmp.Diff(bad, got); diff != "" {
		t.Errorf("refused indexes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, streamIDs(t, c, "s")); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	// A batch of nothing but refused records stores nothing and says so.
	if err := s.Write(context.Background(), []Record{poisonRecord("p")}); !errors.As(err, &rej) || len(rej.Records) != 1 {
		t.Errorf("Write of one record without an id = %v", err)
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestWriterDeadLettersWhatTheSinkRefuses is issue 9's first item on the direct
// path: a record the Redis sink refuses for good, in the middle of a batch,
// goes to the dead-letter file; the rest of the batch is stored, nothing is
// spooled, and later records flow straight to Redis.
func TestWriterDeadLettersWhatTheSinkRefuses(t *testing.T) {
	_, c := startRedis(t)
	dir := t.TempDir()
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{NewRedisSink(c, "s", 0)}, SpoolDir: dir, BatchSize: 10})
	r1, r2, r3 := testRecord(1, "t", "k"), testRecord(2, "t", "k"), testRecord(3, "t", "k")
	w.Emit(r1)
	w.Emit(poisonRecord("poison"))
	w.Emit(r2)
	eventually(t, "two records written and one dead-lettered", func() bool {
		return metricValue(t, reg, "tollgate_records_written_total", "redis") == 2 &&
			metricValue(t, reg, "tollgate_records_dead_lettered_total", "redis") == 1
	})
	w.Emit(r3)
	eventually(t, "a later record written", func() bool {
		return metricValue(t, reg, "tollgate_records_written_total", "redis") == 3
	})
	if n := metricValue(t, reg, "tollgate_records_spooled_total", "redis"); n != 0 {
		t.Errorf("spooled = %v: the refused record held up the queue", n)
	}
	if n := metricValue(t, reg, "tollgate_record_sink_errors_total", "redis"); n != 0 {
		t.Errorf("sink errors = %v: a refusal is not an outage", n)
	}
	closeWriter(t, w)
	if diff := cmp.Diff([]string{r1.ID, r2.ID, r3.ID}, streamIDs(t, c, "s")); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	dead := readDeadLetters(t, filepath.Join(dir, "redis.dead"))
	if len(dead) != 1 || dead[0].Record.TraceID != "poison" || dead[0].Sink != "redis" ||
		!strings.Contains(dead[0].Reason, "without an id") || dead[0].Time.IsZero() {
		t.Errorf("dead letters = %+v, want the record of trace poison with its reason", dead)
	}
}

// TestWriterDeadLettersAPoisonedSpoolOnReplay is the restart case: a spool left
// behind begins with a record the sink refuses (and holds another further on).
// The new Writer's replay moves both to the dead-letter file, stores the rest,
// and records emitted afterwards flow.
func TestWriterDeadLettersAPoisonedSpoolOnReplay(t *testing.T) {
	_, c := startRedis(t)
	dir := t.TempDir()
	good := testRecords(6, "t", "k")
	left := []Record{poisonRecord("poison-1"), good[0], good[1], good[2], poisonRecord("poison-2"), good[3], good[4]}
	var spool []byte
	for i := range left {
		spool, _ = appendJSONLine(spool, &left[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "redis.spool"), spool, 0o600); err != nil {
		t.Fatal(err)
	}
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{NewRedisSink(c, "s", 0)}, SpoolDir: dir, BatchSize: 3})
	eventually(t, "the spool to be replayed", func() bool {
		return !w.spools[0].pending() && metricValue(t, reg, "tollgate_records_written_total", "redis") == 5
	})
	w.Emit(good[5])
	eventually(t, "a later record written", func() bool {
		return metricValue(t, reg, "tollgate_records_written_total", "redis") == 6
	})
	if n := metricValue(t, reg, "tollgate_records_dead_lettered_total", "redis"); n != 2 {
		t.Errorf("dead-lettered = %v, want 2", n)
	}
	closeWriter(t, w)
	if diff := cmp.Diff(ids(good), streamIDs(t, c, "s")); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	var traces []string
	for _, d := range readDeadLetters(t, filepath.Join(dir, "redis.dead")) {
		traces = append(traces, d.Record.TraceID)
	}
	if diff := cmp.Diff([]string{"poison-1", "poison-2"}, traces); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	for _, name := range []string{"redis.spool", "redis.replay"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s left behind (err %v)", name, err)
		}
	}
}

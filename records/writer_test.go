package records

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// newTestWriter starts a Writer with short intervals and its own registry.
func newTestWriter(t *testing.T, opts WriterOptions) (*Writer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.SpoolDir == "" {
		opts.SpoolDir = t.TempDir()
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 10 * time.Millisecond
	}
	opts.Logger = zaptest.NewLogger(t)
	opts.Registerer = reg
	w, err := NewWriter(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, reg
}

// metricValue reads one series from reg: name, and for per-sink series the
// sink label. A missing series fails the test.
func metricValue(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if sink != "" && !hasLabel(m, "sink", sink) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s{sink=%q}", name, sink)
	return 0
}

// gatherText is everything reg exports, in the text exposition format, names
// sorted.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// collectValue reads a counter or gauge that is not registered anywhere.
func collectValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestWriterDeliversToEverySink(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, b, mem := newFakeSink("a"), newFakeSink("b"), NewMemoryStore(100)
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{a, b, mem}, BatchSize: 7})
	want := testRecords(50, "trace-a", "key-a")
	for _, r := range want {
		w.Emit(r)
	}
	eventually(t, "every sink to store 50 records", func() bool {
		for _, name := range []string{"a", "b", "memory"} {
			if metricValue(t, reg, "tollgate_records_written_total", name) != 50 {
				return false
			}
		}
		return true
	})
	if diff := cmp.Diff(deliveredMetrics[1:], gatherText(t, reg)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	closeWriter(t, w)
	for _, s := range []*fakeSink{a, b} {
		if diff := cmp.Diff(ids(want), s.storedIDs()); diff != "" {
			t.Errorf("sink %s (-want +got):\n%s", s.name, diff)
		}
		if !s.closed {
			t.Errorf("sink %s not closed", s.name)
		}
	}
	if got, _ := mem.Query(context.Background(), Query{}); len(got) != 50 {
		t.Errorf("memory sink holds %d records", len(got))
	}
	if got := gatherText(t, reg); got != "" {
		t.Errorf("series left registered after Close:\n%s", got)
	}
}

// deliveredMetrics are the Writer's series after 50 records reached three
// healthy sinks.
const deliveredMetrics = `
# HELP tollgate_record_journal_errors_total Failed writes to the admission journal; a crash would lose the records of those requests.
# TYPE tollgate_record_journal_errors_total counter
tollgate_record_journal_errors_total 0
# HELP tollgate_record_journal_open Admitted requests whose cost record has not been emitted yet: what a crash now would turn into incomplete records.
# TYPE tollgate_record_journal_open gauge
tollgate_record_journal_open 0
# HELP tollgate_record_queue_depth Cost records waiting in memory for the sinks.
# TYPE tollgate_record_queue_depth gauge
tollgate_record_queue_depth 0
# HELP tollgate_record_sink_errors_total Failed writes to a sink (one per failed batch, direct or replayed).
# TYPE tollgate_record_sink_errors_total counter
tollgate_record_sink_errors_total{sink="a"} 0
tollgate_record_sink_errors_total{sink="b"} 0
tollgate_record_sink_errors_total{sink="memory"} 0
# HELP tollgate_record_spool_bytes Size of a sink's spool on disk.
# TYPE tollgate_record_spool_bytes gauge
tollgate_record_spool_bytes{sink="a"} 0
tollgate_record_spool_bytes{sink="b"} 0
tollgate_record_spool_bytes{sink="memory"} 0
# HELP tollgate_records_dead_lettered_total Cost records a sink refused for good (a record without an id, say), moved to its dead-letter file NAME.dead in the spool directory instead of holding up the records behind them.
# TYPE tollgate_records_dead_lettered_total counter
tollgate_records_dead_lettered_total{sink="a"} 0
tollgate_records_dead_lettered_total{sink="b"} 0
tollgate_records_dead_lettered_total{sink="memory"} 0
# HELP tollgate_records_dropped_total Cost records lost for a sink: the spool could not be written or read back, or the record was emitted after shutdown.
# TYPE tollgate_records_dropped_total counter
tollgate_records_dropped_total{sink="a"} 0
tollgate_records_dropped_total{sink="b"} 0
tollgate_records_dropped_total{sink="memory"} 0
# HELP tollgate_records_recovered_total Incomplete records (error type gateway_crashed) emitted at start for requests an earlier process admitted and never finished.
# TYPE tollgate_records_recovered_total counter
tollgate_records_recovered_total 0
# HELP tollgate_records_spooled_total Cost records appended to a sink's spool on disk: the sink failed or was recovering, the queue was full, or shutdown ran out of time.
# TYPE tollgate_records_spooled_total counter
tollgate_records_spooled_total{sink="a"} 0
tollgate_records_spooled_total{sink="b"} 0
tollgate_records_spooled_total{sink="memory"} 0
# HELP tollgate_records_written_total Cost records a sink stored, directly or replayed from its spool.
# TYPE tollgate_records_written_total counter
tollgate_records_written_total{sink="a"} 50
tollgate_records_written_total{sink="b"} 50
tollgate_records_written_total{sink="memory"} 50
`

func TestWriterFailingSinkSpoolsAndReplays(t *testing.T) {
	down, up := newFakeSink("down"), newFakeSink("up")
	down.setFailing(true)
	dir := t.TempDir()
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{down, up}, SpoolDir: dir, BatchSize: 4})
	want := testRecords(10, "trace-a", "key-a")
	for _, r := range want {
		w.Emit(r)
	}
	eventually(t, "10 records spooled for the failing sink and written by the other", func() bool {
		return metricValue(t, reg, "tollgate_records_spooled_total", "down") == 10 &&
			metricValue(t, reg, "tollgate_records_written_total", "up") == 10
	})
	if diff := cmp.Diff(ids(want), up.storedIDs()); diff != "" {
		t.Errorf("the healthy sink is held up by the failing one (-want +got):\n%s", diff)
	}
	if n := metricValue(t, reg, "tollgate_record_sink_errors_total", "down"); n < 1 {
		t.Errorf("sink errors = %v, want at least 1", n)
	}
	if n := metricValue(t, reg, "tollgate_record_spool_bytes", "down"); n <= 0 {
		t.Errorf("spool bytes = %v while records are spooled", n)
	}
	if n := metricValue(t, reg, "tollgate_records_written_total", "down"); n != 0 {
		t.Errorf("written = %v for the failing sink", n)
	}

	down.setFailing(false)
	eventually(t, "the spool to be replayed", func() bool { return !w.spools[0].isFailing() })
	if n := metricValue(t, reg, "tollgate_records_written_total", "down"); n != 10 {
		t.Errorf("written = %v after the replay, want 10", n)
	}
	if diff := cmp.Diff(ids(want), down.storedIDs()); diff != "" {
		t.Errorf("replayed records (-want +got):\n%s", diff)
	}
	if n := metricValue(t, reg, "tollgate_record_spool_bytes", "down"); n != 0 {
		t.Errorf("spool bytes = %v after the replay", n)
	}
	// Once recovered, the sink gets batches directly again.
	w.Emit(testRecord(11, "trace-a", "key-a"))
	eventually(t, "a direct write", func() bool { return down.count() == 11 })
	if n := metricValue(t, reg, "tollgate_records_spooled_total", "down"); n != 10 {
		t.Errorf("spooled = %v after recovery, want still 10", n)
	}
	if n := metricValue(t, reg, "tollgate_records_spooled_total", "up"); n != 0 {
		t.Errorf("the healthy sink spooled %v records", n)
	}
	closeWriter(t, w)
	for _, name := range []string{"down.spool", "down.replay"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s left behind (err %v)", name, err)
		}
	}
}

func TestWriterCloseFlushesTheQueue(t *testing.T) {
	s := newFakeSink("s")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, QueueSize: 5000})
	want := testRecords(3000, "t", "k")
	for _, r := range want {
		w.Emit(r)
	}
	closeWriter(t, w)
	if diff := cmp.Diff(ids(want), s.storedIDs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWriterSpoolSurvivesRestart closes a Writer whose sink hangs: Close gives up
// at its deadline and spools the queue; the next Writer replays the spool.
func TestWriterSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	hung := newFakeSink("s")
	hung.gate = make(chan struct{}) // never opened
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{hung}, SpoolDir: dir, RetryInterval: time.Hour})
	want := testRecords(5, "t", "k")
	for _, r := range want {
		w.Emit(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with an ended context: %v, want context.Canceled", err)
	}
	if n := hung.count(); n != 0 {
		t.Fatalf("the hung sink stored %d records", n)
	}
	if diff := cmp.Diff(ids(want), ids(readLines(t, filepath.Join(dir, "s.spool")))); diff != "" {
		t.Fatalf("spool after Close (-want +got):\n%s", diff)
	}

	// A second Writer on the same directory, with the sink working, replays the
	// spool at once (the retry interval is an hour).
	// The sink holds the replay until the gauge is read: without the gate the
	// replay may finish, and zero the gauge, before the test looks.
	s := newFakeSink("s")
	s.gate = make(chan struct{})
	w2, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, SpoolDir: dir, RetryInterval: time.Hour})
	if n := metricValue(t, reg, "tollgate_record_spool_bytes", "s"); n <= 0 {
		t.Errorf("spool bytes at start = %v, want the size of the spool left behind", n)
	}
	close(s.gate)
	eventually(t, "the spool to be replayed", func() bool { return s.count() == 5 })
	closeWriter(t, w2)
	if diff := cmp.Diff(ids(want), s.storedIDs()); diff != "" {
		t.Errorf("replayed (-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "LOCK" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("spool directory holds %v, want only LOCK", names)
	}
}

func TestWriterQueueFull(t *testing.T) {
	s := newFakeSink("s")
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 10)
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, QueueSize: 1, BatchSize: 1, RetryInterval: 5 * time.Millisecond})
	recs := testRecords(3, "t", "k")
	w.Emit(recs[0])
	<-s.entered     // the writer holds record 1 in a Write that waits
	w.Emit(recs[1]) // fills the queue
	w.Emit(recs[2]) // finds it full: straight to the spool
	if n := metricValue(t, reg, "tollgate_records_spooled_total", "s"); n != 1 {
		t.Errorf("spooled = %v, want 1", n)
	}
	if n := metricValue(t, reg, "tollgate_record_queue_depth", ""); n != 1 {
		t.Errorf("queue depth = %v, want 1", n)
	}
	close(s.gate)
	eventually(t, "all three records", func() bool { return s.count() == 3 })
	closeWriter(t, w)
	got := s.storedIDs()
	slices.Sort(got)
	if diff := cmp.Diff(ids(recs), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWriterEmitAfterClose(t *testing.T) {
	s := newFakeSink("s")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{s}})
	closeWriter(t, w)
	w.Emit(testRecord(1, "t", "k"))
	// Close unregistered the collectors; read the counter itself.
	if n := collectValue(t, w.spools[0].m.dropped); n != 1 {
		t.Errorf("dropped = %v, want 1", n)
	}
	if s.count() != 0 {
		t.Error("a record emitted after Close reached the sink")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewWriterErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts WriterOptions
		want string
	}{
		{"no sinks", WriterOptions{SpoolDir: dir}, "no sinks"},
		{"no spool dir", WriterOptions{Sinks: []Sink{newFakeSink("a")}}, "no spool directory"},
		{"bad name", WriterOptions{Sinks: []Sink{newFakeSink("../a")}, SpoolDir: dir}, "sink name"},
		{"duplicate names", WriterOptions{Sinks: []Sink{newFakeSink("a"), newFakeSink("a")}, SpoolDir: dir}, `two sinks named "a"`},
	} {
		if _, err := NewWriter(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}

	// One Writer per spool directory, until it is closed.
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: dir})
	if _, err := NewWriter(WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: dir}); err == nil || !strings.Contains(err.Error(), "held by another Writer") {
		t.Errorf("a second Writer on a locked directory: %v", err)
	}
	closeWriter(t, w)
	w, _ = newTestWriter(t, WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: dir})
	closeWriter(t, w)

	// Metrics that collide with registered ones are an error, and leave the
	// directory unlocked.
	reg := prometheus.NewRegistry()
	w1, err := NewWriter(WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer closeWriter(t, w1)
	if _, err := NewWriter(WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: dir, Registerer: reg}); err == nil {
		t.Error("a second Writer registered the same metrics")
	}
	w, _ = newTestWriter(t, WriterOptions{Sinks: []Sink{newFakeSink("a")}, SpoolDir: dir})
	closeWriter(t, w)
}

// TestWriterSpoolCrashLeftovers starts a Writer on a spool directory as a crash
// leaves it: a NAME.replay partly written to the sink already, a NAME.spool
// whose last append was cut mid-line, and a stale NAME.replay.tmp.
func TestWriterSpoolCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	recs := testRecords(6, "t", "k")
	var replay, spoolFile []byte
	for i := range recs[:3] {
		replay, _ = appendJSONLine(replay, &recs[i])
	}
	for i := range recs[3:5] {
		spoolFile, _ = appendJSONLine(spoolFile, &recs[3+i])
	}
	torn, _ := appendJSONLine(nil, &recs[5])
	spoolFile = append(spoolFile, torn[:len(torn)/2]...)
	for name, b := range map[string][]byte{"s.replay": replay, "s.spool": spoolFile, "s.replay.tmp": []byte("junk")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s := newFakeSink("s")
	s.setFailing(true) // the first direct write fails, so the next record is spooled behind the torn line
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, SpoolDir: dir})
	// The replay, failing at once, may be rewriting NAME.replay through a
	// fresh NAME.replay.tmp by now: only the stale bytes must be gone.
	if b, err := os.ReadFile(filepath.Join(dir, "s.replay.tmp")); err == nil && string(b) == "junk" {
		t.Error("stale s.replay.tmp not removed")
	}
	after := testRecord(7, "t", "k")
	w.Emit(after)
	eventually(t, "the new record to be spooled", func() bool {
		return metricValue(t, reg, "tollgate_records_spooled_total", "s") == 1
	})
	s.setFailing(false)
	eventually(t, "the replay", func() bool { return !w.spools[0].isFailing() && !w.spools[0].pending() })
	if n := metricValue(t, reg, "tollgate_records_dropped_total", "s"); n != 1 {
		t.Errorf("dropped = %v, want 1 (the torn line)", n)
	}
	closeWriter(t, w)
	want := append(ids(recs[:5]), after.ID)
	if diff := cmp.Diff(want, s.storedIDs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWriterReplayFailureKeepsTheRest fails a replay half way: the batches the
// sink stored are cut off the spool, the rest is replayed later, and nothing
// is written twice.
func TestWriterReplayFailureKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	recs := testRecords(10, "t", "k")
	var replay []byte
	for i := range recs {
		replay, _ = appendJSONLine(replay, &recs[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "s.replay"), replay, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &failAfterSink{fakeSink: newFakeSink("s"), okWrites: 2}
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, SpoolDir: dir, BatchSize: 3})
	eventually(t, "the replay to finish", func() bool { return s.count() == 10 && !w.spools[0].pending() })
	if n := metricValue(t, reg, "tollgate_record_sink_errors_total", "s"); n < 1 {
		t.Errorf("sink errors = %v, want at least 1", n)
	}
	closeWriter(t, w)
	if diff := cmp.Diff(ids(recs), s.storedIDs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// failAfterSink fails its third Write, once.
type failAfterSink struct {
	*fakeSink
	okWrites int
	calls    int
}

func (f *failAfterSink) Write(ctx context.Context, recs []Record) error {
	f.calls++ // only the replay goroutine writes in this test
	if f.calls == f.okWrites+1 {
		return errors.New("fails once")
	}
	return f.fakeSink.Write(ctx, recs)
}

// TestWriterRealSinks runs every real sink behind one Writer.
func TestWriterRealSinks(t *testing.T) {
	_, c := startRedis(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	file, err := NewFileSink(path, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	mem := NewMemoryStore(100)
	w, _ := newTestWriter(t, WriterOptions{
		Sinks: []Sink{NewLogSink(zap.New(core)), file, NewRedisSink(c, DefaultRedisStream, 1000), mem},
	})
	want := testRecords(20, "trace-a", "key-a")
	for _, r := range want {
		w.Emit(r)
	}
	closeWriter(t, w)

	if diff := cmp.Diff(want, readLines(t, path)); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
	if logs.Len() != 20 {
		t.Errorf("%d log lines, want 20", logs.Len())
	}
	ctx := context.Background()
	for name, store := range map[string]Store{"redis": NewRedisStore(c, DefaultRedisStream), "memory": mem} {
		tr, err := store.Trace(ctx, "trace-a")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, tr.Requests); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestWriterCloseCutsAReplayShort closes a Writer whose replay waits on a hung
// sink: Close does not wait for it, and the spool keeps every record.
func TestWriterCloseCutsAReplayShort(t *testing.T) {
	dir := t.TempDir()
	recs := testRecords(4, "t", "k")
	var spool []byte
	for i := range recs {
		spool, _ = appendJSONLine(spool, &recs[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "s.spool"), spool, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newFakeSink("s")
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 10)
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, SpoolDir: dir, WriteTimeout: time.Hour})
	<-s.entered // the replay is inside Write
	closeWriter(t, w)
	if diff := cmp.Diff(ids(recs), ids(readLines(t, filepath.Join(dir, "s.replay")))); diff != "" {
		t.Errorf("spool after Close (-want +got):\n%s", diff)
	}
}

// TestWriterFlushDelayBatches: records emitted one after another wait for
// each other, up to BatchSize, and go to the sink in one Write; Close does not
// wait out the delay.
func TestWriterFlushDelayBatches(t *testing.T) {
	s := newFakeSink("s")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, BatchSize: 5, FlushDelay: time.Hour})
	want := testRecords(7, "t", "k")
	for _, r := range want[:5] {
		w.Emit(r)
	}
	eventually(t, "the first batch written", func() bool { return s.count() == 5 })
	for _, r := range want[5:] {
		w.Emit(r)
	}
	closeWriter(t, w)
	if diff := cmp.Diff(ids(want), s.storedIDs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writes != 2 {
		t.Errorf("%d writes for two batches", s.writes)
	}
}

// TestWriterNoFlushDelay: a negative FlushDelay writes what is queued at once.
func TestWriterNoFlushDelay(t *testing.T) {
	s := newFakeSink("s")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{s}, FlushDelay: -1})
	defer closeWriter(t, w)
	w.Emit(testRecord(1, "t", "k"))
	eventually(t, "the record written without waiting for more", func() bool { return s.count() == 1 })
	if w.flushDelay != 0 {
		t.Errorf("flush delay %v", w.flushDelay)
	}
}

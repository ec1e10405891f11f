package records

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// admitted is record i as the policy role knows it when the request goes on
// to the provider: no end, no status, no usage, a reservation.
func admitted(i int) Record {
	r := testRecord(i, "trace-j", "key-j")
	r.End, r.LatencyMS, r.Status, r.Outcome = time.Time{}, 0, 0, OutcomeIncomplete
	r.Usage, r.CostPicoUSD, r.Cost = Record{}.Usage, 0, ""
	r.ReservationID, r.ReservedPicoUSD = r.ID+"-res", int64(i)*1_000_000
	return r
}

// crashCopy copies the files of a running Writer's spool directory, but the
// lock, to a new directory: what a Writer finds there after a kill -9 at this
// instant (the kernel keeps every completed write(2)).
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(dir, e.Name()))
		os.Chtimes(filepath.Join(out, e.Name()), st.ModTime(), st.ModTime()) //nolint:errcheck
	}
	return out
}

// TestJournalCrashLeavesIncompleteRecords: requests admitted and not finished
// when the process dies, and requests whose record was still on its way to the
// sinks, become incomplete records at the next start, once; finished ones do
// not.
func TestJournalCrashLeavesIncompleteRecords(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sink := newFakeSink("mem")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{sink}, SpoolDir: dir})
	for i := 1; i <= 4; i++ {
		w.Admit(admitted(i))
	}
	done := testRecord(1, "trace-j", "key-j")
	w.Emit(done)
	eventually(t, "record 1 delivered", func() bool { return sink.count() == 1 })
	// Record 2 reaches Emit but the sink holds it: a crash now loses it from
	// memory, so its admission must still count as open.
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	sink.mu.Lock()
	sink.gate, sink.entered = gate, entered
	sink.mu.Unlock()
	w.Emit(testRecord(2, "trace-j", "key-j"))
	<-entered
	w.Emit(testRecord(99, "trace-j", "key-j")) // never admitted (a refusal): no journal line
	w.journal.flush()
	crashed := crashCopy(t, dir)
	st, err := os.Stat(filepath.Join(crashed, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	lastWrite := st.ModTime()
	close(gate)
	closeWriter(t, w)

	after := NewMemoryStore(100)
	w2, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{after}, SpoolDir: crashed})
	if got := metricValue(t, reg, "tollgate_records_recovered_total", ""); got != 3 {
		t.Errorf("tollgate_records_recovered_total = %v; want 3", got)
	}
	var got []Record
	eventually(t, "incomplete records", func() bool {
		got, _ = after.Query(t.Context(), Query{})
		return len(got) == 3
	})
	slices.SortFunc(got, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	for k, i := range []int{2, 3, 4} {
		want := admitted(i)
		want.End, want.ErrorType = lastWrite, ErrorTypeGatewayCrashed
		want.LatencyMS = float64(lastWrite.Sub(want.Start).Microseconds()) / 1000
		if want.End.Before(want.Start) {
			want.End, want.LatencyMS = want.Start, 0
		}
		if diff := cmp.Diff(want, got[k]); diff != "" {
			t.Errorf("incomplete record %d (-want +got):\n%s", i, diff)
		}
	}
	closeWriter(t, w2)

	// A second start emits nothing again.
	again := newFakeSink("mem")
	w3, reg3 := newTestWriter(t, WriterOptions{Sinks: []Sink{again}, SpoolDir: crashed})
	if n := metricValue(t, reg3, "tollgate_records_recovered_total", ""); n != 0 || w3.spools[0].pending() {
		t.Errorf("second start: recovered %v, spool pending %v; want nothing", n, w3.spools[0].pending())
	}
	closeWriter(t, w3)
	if again.count() != 0 {
		t.Errorf("second start emitted %v", again.storedIDs())
	}
}

// TestJournalCloseLeavesNoIncompletes: after a drain in which every admitted
// request got its record, Close removes the journal and the next start reports
// nothing. A request whose record never came is reported, once.
func TestJournalCloseLeavesNoIncompletes(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{newFakeSink("mem")}, SpoolDir: dir})
	for i := 1; i <= 5; i++ {
		w.Admit(admitted(i))
	}
	w.journal.flush()
	if got := metricValue(t, reg, "tollgate_record_journal_open", ""); got != 5 {
		t.Errorf("tollgate_record_journal_open = %v; want 5", got)
	}
	for i := 1; i <= 5; i++ {
		w.Emit(testRecord(i, "trace-j", "key-j"))
	}
	closeWriter(t, w)
	if _, err := os.Stat(filepath.Join(dir, JournalFile)); !os.IsNotExist(err) {
		t.Errorf("journal after a clean Close: %v; want it removed", err)
	}
	sink := newFakeSink("mem")
	w, reg = newTestWriter(t, WriterOptions{Sinks: []Sink{sink}, SpoolDir: dir})
	if n := metricValue(t, reg, "tollgate_records_recovered_total", ""); n != 0 {
		t.Errorf("recovered %v after a clean Close", n)
	}
	w.Admit(admitted(7)) // its record never reaches Emit
	closeWriter(t, w)
	w, _ = newTestWriter(t, WriterOptions{Sinks: []Sink{sink}, SpoolDir: dir})
	eventually(t, "the record of the request that never ended", func() bool { return sink.count() == 1 })
	closeWriter(t, w)
	if got := sink.storedIDs(); !slices.Equal(got, []string{"req-0007"}) {
		t.Errorf("stored %v", got)
	}
}

// TestReadJournal: a torn last line, a line of neither kind, a completion
// written before its admission and repeated ids are all read sensibly.
func TestReadJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	line := func(r Record) string {
		var b bytes.Buffer
		b.WriteString(`{"admit":`)
		enc, err := appendJSONLine(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(bytes.TrimSuffix(enc, []byte("\n")))
		b.WriteString("}\n")
		return b.String()
	}
	dup := admitted(5)
	dup.Path = "/v1/messages?second"
	torn := line(admitted(9))
	src := line(admitted(1)) + line(admitted(2)) + `{"done":"req-0001"}` + "\n" +
		`{"done":"req-0003"}` + "\n" + line(admitted(3)) + // completion first: both closed
		"{}\n" + "not json\n" +
		line(admitted(5)) + line(dup) + `{"done":"req-0005"}` + "\n" + // the oldest of two closes
		torn[:len(torn)/2]
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	open, _, tornLines, err := readJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if tornLines != 3 {
		t.Errorf("torn = %d; want 3", tornLines)
	}
	if diff := cmp.Diff([]Record{admitted(2), dup}, open); diff != "" {
		t.Errorf("open admissions (-want +got):\n%s", diff)
	}

	// A Writer on that directory reports exactly those, and its own journal
	// starts whole after the torn line.
	sink := newFakeSink("mem")
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{sink}, SpoolDir: filepath.Dir(path)})
	eventually(t, "two incomplete records", func() bool { return sink.count() == 2 })
	w.Admit(admitted(11))
	w.journal.flush()
	crashed := crashCopy(t, filepath.Dir(path))
	closeWriter(t, w)
	open, _, tornLines, err = readJournal(filepath.Join(crashed, JournalFile))
	if err != nil || tornLines != 0 || len(open) != 1 || open[0].ID != "req-0011" {
		t.Errorf("journal after restart: open %v, torn %d, %v", ids(open), tornLines, err)
	}
}

// TestJournalCompacts: completions rewrite a grown journal with only its open
// admissions, which survive the rewrite.
func TestJournalCompacts(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	w, _ := newTestWriter(t, WriterOptions{Sinks: []Sink{newFakeSink("mem")}, SpoolDir: dir})
	w.journal.mu.Lock()
	w.journal.compactAt = 16 << 10
	w.journal.mu.Unlock()
	w.Admit(admitted(1)) // stays open throughout
	for i := 2; i < 500; i++ {
		w.Admit(admitted(i))
		w.Emit(testRecord(i, "trace-j", "key-j"))
	}
	eventually(t, "every completion journaled", func() bool {
		w.journal.mu.Lock()
		defer w.journal.mu.Unlock()
		return w.journal.nOpen == 1
	})
	crashed := crashCopy(t, dir)
	closeWriter(t, w)
	// About 250 KB of admissions were written; once the completions are in,
	// the file is at most the threshold (a completion past it compacts).
	st, err := os.Stat(filepath.Join(crashed, JournalFile))
	if err != nil || st.Size() > 16<<10 {
		t.Errorf("journal after 499 requests: %v bytes, %v; compaction at 16 KiB", st.Size(), err)
	}
	open, _, torn, err := readJournal(filepath.Join(crashed, JournalFile))
	if err != nil || torn != 0 || len(open) != 1 || open[0].ID != "req-0001" {
		t.Errorf("after compaction: open %v, torn %d, %v", ids(open), torn, err)
	}
}

// BenchmarkWriterAdmit is the request path's share of the journal: one
// admission handed to the journal's goroutine (which encodes and writes it
// meanwhile, on the other core). Every 4,096
// admissions are completed outside the timer, so the journal stays at the
// size it has in service.
func BenchmarkWriterAdmit(b *testing.B) {
	w, err := NewWriter(WriterOptions{Sinks: []Sink{NewMemoryStore(10)}, SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(b.Context()) //nolint:errcheck
	batch := make([]Record, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := admitted(1)
		r.ID = strconv.Itoa(i)
		w.Admit(r)
		if batch = append(batch, Record{ID: r.ID}); len(batch) == cap(batch) {
			b.StopTimer()
			w.journal.complete(batch)
			batch = batch[:0]
			b.StartTimer()
		}
	}
}

// BenchmarkWriterAdmitEmit is one whole request's journal and Writer work:
// the admission on the request path, Emit, and the completion the Writer's
// goroutine journals after delivering the record (with a compaction every
// few thousand requests).
func BenchmarkWriterAdmitEmit(b *testing.B) {
	w, err := NewWriter(WriterOptions{Sinks: []Sink{NewMemoryStore(10)}, SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(b.Context()) //nolint:errcheck
	a, r := admitted(1), testRecord(1, "trace-j", "key-j")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.ID = strconv.Itoa(i)
		r.ID = a.ID
		w.Admit(a)
		w.Emit(r)
	}
}

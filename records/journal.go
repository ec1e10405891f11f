package records

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// JournalFile is the admission journal's name in the spool directory.
const JournalFile = "admissions.journal"

// ErrorTypeGatewayCrashed is the error type of the record a Writer emits at
// start for a request that an earlier process admitted and never finished:
// the process died (kill -9, out of memory, a panic) while it was in flight.
const ErrorTypeGatewayCrashed = "gateway_crashed"

// journalCompactBytes is the size past which a completion rewrites the
// journal with only its open admissions.
const journalCompactBytes = 4 << 20

// A journal is the admission journal of a Writer: a file of JSON lines in the
// spool directory with one line per admitted request, written by Admit when the
// request goes on to the provider, and one per completion, written when Emit
// gets the request's record:
//
//	{"admit":{...the record as known at admission...}}
//	{"done":"ID"}
//
// Admit hands the admission to the journal's goroutine, which encodes it and
// appends it with one write(2) (several admissions that wait together in one)
// without an fsync: the kernel keeps it when the process is killed, a machine
// crash may lose the last seconds of it. The request does not wait for the
// write, which costs tens of microseconds on a loaded VM; a crash in the
// moment between an admission and its write (microseconds, longer only when
// the queue is backed up) loses that request's incomplete record.
// Completions go through the same queue, so a completion is never written
// before its admission. A Writer
// that starts and finds admissions without their completion emits an
// incomplete record for each ([crashedRecord]), through the spools, and clears
// the journal. Completions rewrite the journal with only the open admissions
// once it grows past journalCompactBytes; Close leaves only the admissions
// whose record never came (none after a clean drain).
//
// Admissions are matched to completions by record id. Should two requests share
// an id, a completion closes the oldest open admission of that id.
type journal struct {
	path      string
	log       *zap.Logger
	m         journalMetrics
	compactAt int64

	// ops carries admissions, completions and flushes to the goroutine that
	// writes the file (loop), in order; opsMu guards sends against close.
	ops       chan journalOp
	opsMu     sync.RWMutex
	opsClosed bool
	loopDone  chan struct{}

	mu     sync.Mutex
	f      *os.File
	size   int64               // bytes in the file
	open   map[string][][]byte // admission lines by record id, oldest first
	nOpen  int                 // admissions in open
	bytes  int64               // bytes of the admission lines in open
	closed bool
}

// journalQueue is how many operations wait for the journal's goroutine
// before Admit writes an admission itself.
const journalQueue = 4096

// journalOp is one operation for the journal's goroutine: an admission, the
// completions of a batch of record ids, or a flush (flushed is closed once
// everything queued before it is written).
type journalOp struct {
	admit   *Record
	done    []string
	flushed chan struct{}
}

// journalLine is one line of the journal: an admission or a completion.
type journalLine struct {
	Admit *Record `json:"admit,omitempty"`
	Done  *string `json:"done,omitempty"`
}

// journalMetrics are the journal's series.
type journalMetrics struct {
	open      prometheus.Gauge
	recovered prometheus.Counter
	errors    prometheus.Counter
}

func newJournalMetrics() journalMetrics {
	return journalMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_record_journal_open",
			Help: "Admitted requests whose cost record has not been emitted yet: what a crash now would turn into incomplete records.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_records_recovered_total",
			Help: "Incomplete records (error type gateway_crashed) emitted at start for requests an earlier process admitted and never finished.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_record_journal_errors_total",
			Help: "Failed writes to the admission journal; a crash would lose the records of those requests.",
		}),
	}
}

func (m journalMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.open, m.recovered, m.errors}
}

// readJournal returns the admissions of the journal at path that have no
// completion, oldest first, and when the file was last written. Unreadable
// lines (a write cut short) are skipped and counted in torn. A missing file
// holds nothing.
func readJournal(path string) (open []Record, modTime time.Time, torn int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, 0, nil
	}
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("open journal: %w", err)
	}
	type entry struct {
		r    Record
		done bool
	}
	var (
		entries []entry
		byID    = make(map[string][]int) // open entries by id, oldest first
		early   = make(map[string]int)   // completions seen before their admission
	)
	rd := bufio.NewReaderSize(f, 64<<10)
	for {
		line, rerr := rd.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, time.Time{}, 0, fmt.Errorf("read journal: %w", rerr)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var jl journalLine
			switch err := json.Unmarshal(line, &jl); {
			case err != nil || (jl.Admit == nil) == (jl.Done == nil):
				torn++
			case jl.Admit != nil:
				id := jl.Admit.ID
				if early[id] > 0 {
					early[id]--
					break
				}
				byID[id] = append(byID[id], len(entries))
				entries = append(entries, entry{r: *jl.Admit})
			default:
				id := *jl.Done
				if idx := byID[id]; len(idx) > 0 {
					entries[idx[0]].done = true
					byID[id] = idx[1:]
				} else {
					early[id]++
				}
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	for _, e := range entries {
		if !e.done {
			open = append(open, e.r)
		}
	}
	return open, st.ModTime(), torn, nil
}

// crashedRecord is the record of a request admitted by a process that died
// before its end: what was known at admission, with outcome incomplete, error
// type gateway_crashed, no status, no usage and no cost (it is unknown; the
// reservation, ReservedPicoUSD, is the worst case that was held for it). End
// is the last write to the journal before the crash, when the process was
// still alive.
func crashedRecord(a Record, lastAlive time.Time) Record {
	r := a
	r.End = lastAlive
	if r.End.Before(r.Start) {
		r.End = r.Start
	}
	r.LatencyMS = float64(r.End.Sub(r.Start).Microseconds()) / 1000
	r.Status, r.Outcome, r.ErrorType = 0, OutcomeIncomplete, ErrorTypeGatewayCrashed
	r.Usage = Record{}.Usage
	r.CostPicoUSD, r.Cost = 0, ""
	r.TTFTMS = 0
	r.RequestBody, r.ResponseBody = "", ""
	return r
}

// openJournal opens the journal at path for appending, truncated: the caller
// has read what it held.
func openJournal(path string, log *zap.Logger, m journalMetrics) (*journal, error) {
	j := &journal{path: path, log: log, m: m, compactAt: journalCompactBytes, open: make(map[string][][]byte)}
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// The truncation must outlive a machine crash, or the records just
	// spooled for its admissions would be emitted a second time.
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.f = f
	return j, nil
}

// start starts the goroutine that writes the journal.
func (j *journal) start() {
	j.ops = make(chan journalOp, journalQueue)
	j.loopDone = make(chan struct{})
	go j.loop()
}

// loop writes queued operations until close closes the queue. Admissions
// that wait together (up to 64) go out in one write(2).
func (j *journal) loop() {
	defer close(j.loopDone)
	var admits []*Record
	for op := range j.ops {
		admits = j.apply(op, admits)
	drain:
		for len(admits) < 64 {
			select {
			case next, ok := <-j.ops:
				if !ok {
					break drain
				}
				admits = j.apply(next, admits)
			default:
				break drain
			}
		}
		j.admitNow(admits...)
		clear(admits)
		admits = admits[:0]
	}
}

// apply adds an admission to those waiting in admits, or writes them and
// then carries out a completion or a flush. It returns what still waits.
func (j *journal) apply(op journalOp, admits []*Record) []*Record {
	if op.admit != nil {
		return append(admits, op.admit)
	}
	j.admitNow(admits...)
	clear(admits)
	admits = admits[:0]
	if op.done != nil {
		j.completeIDs(op.done)
	}
	if op.flushed != nil {
		close(op.flushed)
	}
	return admits
}

// send queues op and reports whether it was queued; with wait it waits for
// room, without it it gives up on a full queue. Nothing is queued after close.
func (j *journal) send(op journalOp, wait bool) bool {
	j.opsMu.RLock()
	defer j.opsMu.RUnlock()
	if j.opsClosed || j.ops == nil {
		return false
	}
	if wait {
		j.ops <- op
		return true
	}
	select {
	case j.ops <- op:
		return true
	default:
		return false
	}
}

// admit journals the admission of r. It does not wait for the write, unless
// the queue is full, when it writes r itself.
func (j *journal) admit(r *Record) {
	if !j.send(journalOp{admit: r}, false) {
		j.admitNow(r)
	}
}

// flush waits until everything queued so far is written.
func (j *journal) flush() {
	ch := make(chan struct{})
	if j.send(journalOp{flushed: ch}, true) {
		<-ch
	}
}

// admitNow appends the admissions of recs in one write.
func (j *journal) admitNow(recs ...*Record) {
	if len(recs) == 0 {
		return
	}
	var buf []byte
	lines := make([][]byte, 0, len(recs))
	for _, r := range recs {
		start := len(buf)
		var err error
		if buf, err = appendAdmitLine(buf, r); err != nil {
			j.m.errors.Inc()
			j.log.Error("cannot journal an admission", zap.String("request_id", r.ID), zap.Error(err))
			buf = buf[:start]
			lines = append(lines, nil)
			continue
		}
		lines = append(lines, buf[start:len(buf):len(buf)])
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || len(buf) == 0 {
		return
	}
	if err := j.writeLocked(buf); err != nil {
		j.m.errors.Inc()
		j.log.Error("cannot journal admissions; a crash would lose their records", zap.Int("requests", len(recs)), zap.Error(err))
		return
	}
	for i, r := range recs {
		if lines[i] == nil {
			continue
		}
		j.open[r.ID] = append(j.open[r.ID], lines[i])
		j.nOpen++
		j.bytes += int64(len(lines[i]))
	}
	j.m.open.Set(float64(j.nOpen))
}

// appendAdmitLine appends the admission line of r to dst.
func appendAdmitLine(dst []byte, r *Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return dst, err
	}
	dst = append(dst, `{"admit":`...)
	dst = append(dst, b...)
	return append(dst, "}\n"...), nil
}

// complete journals the completion of recs: it queues their ids behind the
// admissions queued before, waiting for room if need be.
func (j *journal) complete(recs []Record) {
	ids := make([]string, len(recs))
	for i := range recs {
		ids[i] = recs[i].ID
	}
	if !j.send(journalOp{done: ids}, true) {
		j.completeIDs(ids) // closed or not started: nothing to write
	}
}

// completeIDs appends, in one write, the completion of the oldest open
// admission of each id, for the ids that have one, and compacts the journal
// when it has grown.
func (j *journal) completeIDs(ids []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.nOpen == 0 {
		return
	}
	var buf []byte
	for _, id := range ids {
		lines := j.open[id]
		if len(lines) == 0 {
			continue // never admitted: refused, or a replayed record
		}
		q, _ := json.Marshal(id) // a string always encodes
		buf = append(append(append(buf, `{"done":`...), q...), "}\n"...)
		j.bytes -= int64(len(lines[0]))
		if len(lines) == 1 {
			delete(j.open, id)
		} else {
			j.open[id] = lines[1:]
		}
		j.nOpen--
	}
	if len(buf) == 0 {
		return
	}
	j.m.open.Set(float64(j.nOpen))
	if err := j.writeLocked(buf); err != nil {
		// The admissions are closed in memory all the same: the next
		// compaction or Close drops them. A crash before then reports them
		// as incomplete beside their real records (same ids, which the Redis
		// sink keeps once).
		j.m.errors.Inc()
		j.log.Error("cannot journal completions", zap.Error(err))
	}
	if j.size > j.compactAt && j.size > 4*j.bytes {
		if err := j.rewriteLocked(false); err != nil {
			j.m.errors.Inc()
			j.log.Error("cannot compact the admission journal", zap.Error(err))
		}
	}
}

// writeLocked appends line with one write(2). A partial write is cut off so
// the next line starts on a line of its own.
func (j *journal) writeLocked(line []byte) error {
	n, err := j.f.Write(line)
	if err != nil {
		if n > 0 && j.f.Truncate(j.size) != nil {
			j.size += int64(n) // a torn line, skipped when read
		}
		return err
	}
	j.size += int64(n)
	return nil
}

// rewriteLocked replaces the journal by its open admissions, through a
// temporary file and a rename. With durable, both are fsync'd.
func (j *journal) rewriteLocked(durable bool) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, j.bytes)
	for _, lines := range j.open {
		for _, l := range lines {
			buf = append(buf, l...)
		}
	}
	_, err = f.Write(buf)
	if err == nil && durable {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if durable {
		syncDir(filepath.Dir(j.path))
	}
	j.f.Close()
	j.f, j.size = f, int64(len(buf))
	return nil
}

// close stops the journal. The admissions still open, those whose record never
// reached Emit, stay in the file for the next Writer to report; with none
// left, the file is removed.
func (j *journal) close() error {
	j.opsMu.Lock()
	wasOpen := !j.opsClosed && j.ops != nil
	j.opsClosed = true
	if wasOpen {
		close(j.ops)
	}
	j.opsMu.Unlock()
	if wasOpen {
		<-j.loopDone
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var err error
	if j.nOpen == 0 {
		err = os.Remove(j.path)
		if err == nil {
			syncDir(filepath.Dir(j.path))
		}
	} else {
		j.log.Warn("closing with admitted requests that have no record; the next start reports them as incomplete",
			zap.Int("requests", j.nOpen))
		err = j.rewriteLocked(true)
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("records: close journal: %w", err)
	}
	return nil
}

// recoverJournal reads the journal a previous Writer left at path, emits an
// incomplete record for each admission it holds without a completion, and
// opens the journal afresh. The records are appended to every sink's spool
// with an fsync before the journal is cleared, so they are emitted once: a
// crash between the two emits them again at the next start, with the same
// ids (the Redis sink keeps one of each).
func (w *Writer) recoverJournal(path string, m journalMetrics) error {
	open, lastAlive, torn, err := readJournal(path)
	if err != nil {
		return err
	}
	if torn > 0 {
		w.log.Warn("skipped unreadable lines of the admission journal (a write cut short by a crash)",
			zap.String("file", path), zap.Int("lines", torn))
	}
	if len(open) > 0 {
		recs := make([]Record, len(open))
		for i := range open {
			recs[i] = crashedRecord(open[i], lastAlive)
		}
		lines, n := w.encode(recs)
		if n > 0 {
			for _, s := range w.spools {
				if err := s.append(lines, n, true); err != nil {
					return fmt.Errorf("spool the records of requests a crash cut short: %w", err)
				}
			}
		}
		m.recovered.Add(float64(n))
		w.log.Warn("requests were in flight when the previous process died; their records are emitted as incomplete (error type "+ErrorTypeGatewayCrashed+")",
			zap.Int("requests", n), zap.Time("last_journal_write", lastAlive))
	}
	w.journal, err = openJournal(path, w.log, m)
	return err
}

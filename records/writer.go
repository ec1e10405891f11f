package records

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// WriterOptions configure a Writer. Zero values take the defaults below.
type WriterOptions struct {
	// Sinks receive every record. At least one; names must differ.
	Sinks []Sink
	// QueueSize is how many records wait in memory for the sinks (10,000).
	QueueSize int
	// BatchSize is the most records handed to a sink in one Write (100).
	BatchSize int
	// FlushDelay is how long a batch waits for more records before it is
	// written, once its first record is taken off the queue (50ms; negative:
	// not at all). At a few hundred requests a second it turns one sink write
	// per record (a Redis script call each) into one per handful. A record
	// waits no longer than this on top of its sink, and a process killed
	// meanwhile loses it as it would lose the queue: the journal's admission
	// still yields its incomplete record (see Admit).
	FlushDelay time.Duration
	// SpoolDir holds one spool per sink (NAME.spool, NAME.replay), the
	// records each sink refused for good (NAME.dead) and a LOCK file.
	// Required: it is what keeps records when a sink fails. Created with mode
	// 0700 if missing.
	SpoolDir string
	// RetryInterval is how often a spool is replayed into its sink (5s).
	RetryInterval time.Duration
	// WriteTimeout bounds one sink Write (5s).
	WriteTimeout time.Duration
	// Logger receives sink failures and recoveries (nothing when nil).
	Logger *zap.Logger
	// Registerer receives the metrics (none when nil). Close unregisters them,
	// so a later Writer may register with the same registry.
	Registerer prometheus.Registerer
}

// Writer defaults.
const (
	DefaultQueueSize     = 10_000
	DefaultBatchSize     = 100
	DefaultFlushDelay    = 50 * time.Millisecond
	DefaultRetryInterval = 5 * time.Second
	DefaultWriteTimeout  = 5 * time.Second
)

// sinkName is what a sink name may look like: it names files and metric series.
var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Writer delivers cost records to sinks in the background, and never loses one
// to a failing sink.
//
// Emit puts a record on a bounded queue; one goroutine takes records off it in
// batches and writes each batch to every sink. A sink whose Write fails has the
// batch appended to its spool, a file of JSON lines in SpoolDir, fsync'd before
// the Writer moves on; until the spool has been replayed into the sink, later
// batches for that sink go straight to the spool. Every RetryInterval the
// spool is replayed, oldest first, and once it is empty the sink gets batches
// directly again. When the queue is full, Emit appends the record to every
// sink's spool itself (without waiting for an fsync), so the request path
// waits for one small file write at worst.
//
// A record the sink refuses for good (Write returns a [*RejectedError] naming
// it, directly or on a replay) is neither retried nor spooled: it goes to the
// sink's dead-letter file, NAME.dead in SpoolDir, is logged at error and counted
// in tollgate_records_dead_lettered_total, and the rest of the batch counts as
// written. So one bad record never holds up the records behind it.
//
// Spools survive the process: a Writer replays what it finds in SpoolDir when it
// starts. Delivery is at least once per sink, and exactly once for sinks that
// skip ids they already hold (the Redis sink). Records in the queue when the
// process dies without Close are lost; Close writes or spools them. What is
// not lost is the admission of each request the caller passed to Admit: the
// next Writer emits an incomplete record for each admission whose record was
// not yet written or spooled (see journal).
//
// A Writer is safe for concurrent use.
type Writer struct {
	queue        chan Record
	spools       []*spool
	batchSize    int
	flushDelay   time.Duration // 0: no waiting for more records
	retry        time.Duration
	writeTimeout time.Duration
	log          *zap.Logger

	mu     sync.RWMutex // guards closed against Emit sending on a closed queue
	closed bool

	writeCtx    context.Context // ended when Close gives up on the sinks
	abortWrites context.CancelFunc
	replayCtx   context.Context // ended when Close stops the replays, or gives up
	stopReplays context.CancelFunc
	runDone     chan struct{}
	replays     sync.WaitGroup

	journal *journal

	unlock     func() error
	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

// NewWriter checks opts, locks SpoolDir, and starts delivering. Spools left by a
// previous Writer are replayed at once.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if len(opts.Sinks) == 0 {
		return nil, errors.New("records: writer: no sinks")
	}
	seen := make(map[string]bool)
	for _, s := range opts.Sinks {
		name := s.Name()
		if !sinkName.MatchString(name) {
			return nil, fmt.Errorf("records: writer: sink name %q: want lower-case letters, digits, '-' and '_'", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("records: writer: two sinks named %q", name)
		}
		seen[name] = true
	}
	if opts.SpoolDir == "" {
		return nil, errors.New("records: writer: no spool directory: a failing sink would lose records")
	}
	w := &Writer{
		batchSize:    cmpOr(opts.BatchSize, DefaultBatchSize),
		flushDelay:   flushDelay(opts.FlushDelay),
		retry:        cmpOr(opts.RetryInterval, DefaultRetryInterval),
		writeTimeout: cmpOr(opts.WriteTimeout, DefaultWriteTimeout),
		log:          opts.Logger,
		reg:          opts.Registerer,
		runDone:      make(chan struct{}),
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.queue = make(chan Record, cmpOr(opts.QueueSize, DefaultQueueSize))

	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("records: writer: %w", err)
	}
	unlock, err := lockDir(filepath.Join(opts.SpoolDir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("records: writer: spool directory: %w", err)
	}
	w.unlock = unlock
	fail := func(err error) (*Writer, error) {
		for _, s := range w.spools {
			_ = s.close()
		}
		if w.journal != nil {
			_ = w.journal.f.Close()
		}
		_ = unlock()
		return nil, fmt.Errorf("records: writer: %w", err)
	}

	m := newWriterMetrics(func() float64 { return float64(len(w.queue)) })
	for _, sink := range opts.Sinks {
		s, err := newSpool(opts.SpoolDir, sink, w.batchSize, w.log, m.forSink(sink.Name()))
		if err != nil {
			return fail(fmt.Errorf("spool of sink %s: %w", sink.Name(), err))
		}
		w.spools = append(w.spools, s)
	}
	w.warnOrphans(opts.SpoolDir, seen)
	jm := newJournalMetrics()
	if err := w.recoverJournal(filepath.Join(opts.SpoolDir, JournalFile), jm); err != nil {
		return fail(err)
	}
	if w.reg != nil {
		for _, c := range append(m.collectors(), jm.collectors()...) {
			if err := w.reg.Register(c); err != nil {
				for _, done := range w.collectors {
					w.reg.Unregister(done)
				}
				return fail(fmt.Errorf("register metrics: %w", err))
			}
			w.collectors = append(w.collectors, c)
		}
	}

	w.writeCtx, w.abortWrites = context.WithCancel(context.Background())
	w.replayCtx, w.stopReplays = context.WithCancel(w.writeCtx)
	w.journal.start()
	go w.run()
	for _, s := range w.spools {
		w.replays.Add(1)
		go w.replayLoop(s, s.pending())
	}
	return w, nil
}

// flushDelay is WriterOptions.FlushDelay with its default: zero is
// DefaultFlushDelay, negative is none.
func flushDelay(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultFlushDelay
	case d < 0:
		return 0
	}
	return d
}

// cmpOr is v, or def when v is zero or negative.
func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// warnOrphans logs spool files of sinks this Writer does not have: their
// records wait until a Writer with such a sink starts.
func (w *Writer) warnOrphans(dir string, sinks map[string]bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".spool")
		if !ok {
			name, ok = strings.CutSuffix(e.Name(), ".replay")
		}
		if ok && !sinks[name] {
			w.log.Warn("spool of a sink that is not configured; its records wait for it",
				zap.String("file", filepath.Join(dir, e.Name())))
		}
	}
}

// Emit queues r for the sinks. It does not wait for them: when the queue is
// full, or the Writer is closed, it appends r to every sink's spool instead.
// The Writer owns r from now on, Metadata map included. After Close, the
// record is dropped. Once r is written or spooled, the admission of its id
// (see Admit), if any, is journaled as complete.
func (w *Writer) Emit(r Record) {
	w.mu.RLock()
	if !w.closed {
		select {
		case w.queue <- r:
			w.mu.RUnlock()
			return
		default:
		}
	}
	w.mu.RUnlock()
	lines, n := w.encode([]Record{r})
	for _, s := range w.spools {
		w.spoolLines(s, lines, n, false)
	}
	w.journal.complete([]Record{r})
}

// Admit journals r, the record of a request as known when it is admitted (ids,
// principal, route, model, start and reservation; bodies are left out), so
// that if the process dies before Emit gets the request's final record, the
// next Writer on this spool directory emits r as an incomplete record (error
// type gateway_crashed). It does not wait for the disk: the journal's
// goroutine encodes it and appends it to a file in SpoolDir with one write(2)
// and no fsync, so a killed process loses at most the admissions of the last
// moment before the kill, a machine crash the last seconds.
func (w *Writer) Admit(r Record) {
	r.RequestBody, r.ResponseBody = "", ""
	w.journal.admit(&r)
}

// run takes batches off the queue and delivers them until Close closes it.
func (w *Writer) run() {
	defer close(w.runDone)
	batch := make([]Record, 0, w.batchSize)
	for r := range w.queue {
		batch = w.fill(append(batch[:0], r))
		w.deliver(batch)
		w.journal.complete(batch)
		clear(batch) // drop references to metadata and bodies
	}
}

// fill adds queued records to batch until it holds batchSize, the queue is
// closed, or the queue has been empty for flushDelay since batch started.
func (w *Writer) fill(batch []Record) []Record {
	var timeout <-chan time.Time
	if w.flushDelay > 0 {
		t := time.NewTimer(w.flushDelay)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < w.batchSize {
		select {
		case r, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			continue
		default:
		}
		if timeout == nil {
			return batch
		}
		select {
		case r, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-timeout:
			return batch
		}
	}
	return batch
}

// deliver writes a batch to every sink, or to its spool when the sink is
// failing, fails now, or Close has given up on the sinks.
func (w *Writer) deliver(batch []Record) {
	var lines []byte
	var n int
	encoded := false
	for _, s := range w.spools {
		if w.writeCtx.Err() == nil && !s.isFailing() {
			ctx, cancel := w.newWriteCtx()
			_, err := s.write(ctx, batch)
			cancel()
			if err == nil {
				continue
			}
			if w.writeCtx.Err() == nil {
				s.m.errors.Inc()
				if s.setFailing() {
					s.log.Warn("record sink failed; spooling its records until it recovers", zap.Error(err))
				}
			}
		}
		if !encoded {
			lines, n = w.encode(batch)
			encoded = true
		}
		w.spoolLines(s, lines, n, true)
	}
}

func (w *Writer) newWriteCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(w.writeCtx, w.writeTimeout)
}

// encode turns records into JSON lines. A record that cannot be encoded (a time
// outside years 0-9999) is logged and counted as dropped by every sink.
func (w *Writer) encode(recs []Record) ([]byte, int) {
	var lines []byte
	n := 0
	for i := range recs {
		var err error
		if lines, err = appendJSONLine(lines, &recs[i]); err != nil {
			w.log.Error("dropping a record that cannot be encoded", zap.String("request_id", recs[i].ID), zap.Error(err))
			for _, s := range w.spools {
				s.m.dropped.Inc()
			}
			continue
		}
		n++
	}
	return lines, n
}

// spoolLines appends n encoded records to a spool, counting them as dropped if
// even that fails.
func (w *Writer) spoolLines(s *spool, lines []byte, n int, sync bool) {
	if n == 0 {
		return
	}
	if err := s.append(lines, n, sync); err != nil {
		s.m.dropped.Add(float64(n))
		s.log.Error("cannot spool records; they are lost", zap.Int("records", n), zap.Error(err))
	}
}

// replayLoop replays one spool every RetryInterval (and at once when it starts
// with records left by an earlier Writer), and syncs appends Emit made without
// an fsync.
func (w *Writer) replayLoop(s *spool, now bool) {
	defer w.replays.Done()
	t := time.NewTicker(w.retry)
	defer t.Stop()
	for {
		if now {
			s.replay(w.replayCtx, func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(w.replayCtx, w.writeTimeout)
			})
		}
		now = true
		select {
		case <-w.replayCtx.Done():
			return
		case <-t.C:
		}
		if err := s.sync(); err != nil {
			s.log.Error("cannot sync the spool", zap.Error(err))
		}
	}
}

// Close stops accepting records, writes what the queue holds to the sinks, and
// closes the sinks. When ctx ends first, it stops waiting for the sinks and
// spools the rest, and returns an error wrapping ctx.Err(); no record is lost
// either way. A replay still running when the queue is drained is cut short;
// what it has not replayed stays on disk for the next Writer.
//
// Emit after Close loses the record (logged and counted as dropped), so stop the
// request path before closing the Writer.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()

	var errs []error
	select {
	case <-w.runDone:
	case <-ctx.Done():
		w.abortWrites()
		<-w.runDone
		errs = append(errs, fmt.Errorf("records: close: %w (records not yet written were spooled)", ctx.Err()))
	}
	w.stopReplays()
	w.replays.Wait()
	w.abortWrites()
	if err := w.journal.close(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range w.spools {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("records: close sink %s: %w", s.name, err))
		}
	}
	for _, c := range w.collectors {
		w.reg.Unregister(c)
	}
	if err := w.unlock(); err != nil {
		errs = append(errs, fmt.Errorf("records: unlock spool directory: %w", err))
	}
	return errors.Join(errs...)
}

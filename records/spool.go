package records

import (
	"bufio"
	"bytes"
	"context"
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

// A spool holds, on disk, the records one sink has not stored yet, and replays
// them into the sink.
//
// It uses two files in the spool directory, both JSON lines of Record:
//
//   - NAME.spool receives new records (appends only).
//   - NAME.replay is the part being replayed. A replay renames NAME.spool to
//     NAME.replay when there is no NAME.replay, writes it to the sink batch by
//     batch, and removes it when every batch is stored. If a batch fails, the
//     rest of the file, that batch included, replaces NAME.replay (through
//     NAME.replay.tmp and a rename), so nothing written is written again by
//     this spool.
//
// Appends and the rename hold mu; the replay itself runs without it, so Emit
// can spool while a long replay runs.
type spool struct {
	sink       Sink
	name       string
	path       string // NAME.spool
	replayPath string // NAME.replay
	deadPath   string // NAME.dead
	batchSize  int
	log        *zap.Logger
	m          sinkMetrics

	deadMu sync.Mutex // serializes appends to NAME.dead

	mu         sync.Mutex
	f          *os.File // NAME.spool open for appending, or nil
	size       int64    // bytes in NAME.spool
	replaySize int64    // bytes of NAME.replay not yet replayed
	dirty      bool     // appended to without an fsync
	failing    bool     // the sink's last write failed: batches go to the spool
	closed     bool
}

// sinkMetrics are one sink's series.
type sinkMetrics struct {
	written, errors, spooled, dropped, dead prometheus.Counter
	spoolBytes                              prometheus.Gauge
}

func newSpool(dir string, sink Sink, batchSize int, log *zap.Logger, m sinkMetrics) (*spool, error) {
	name := sink.Name()
	s := &spool{
		sink:       sink,
		name:       name,
		path:       filepath.Join(dir, name+".spool"),
		replayPath: filepath.Join(dir, name+".replay"),
		deadPath:   filepath.Join(dir, name+".dead"),
		batchSize:  batchSize,
		log:        log.With(zap.String("sink", name)),
		m:          m,
	}
	// A crash while rewriting NAME.replay leaves a stale temporary file; the
	// rename never happened, so NAME.replay is still whole.
	if err := os.Remove(s.replayPath + ".tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if st, err := os.Stat(s.replayPath); err == nil {
		s.replaySize = st.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if st, err := os.Stat(s.path); err == nil && st.Size() > 0 {
		if err := s.openLocked(); err != nil {
			return nil, err
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.m.spoolBytes.Set(float64(s.size + s.replaySize))
	if st, err := os.Stat(s.deadPath); err == nil && st.Size() > 0 {
		s.log.Warn("the sink's dead-letter file holds records it refused; see why in the file",
			zap.String("file", s.deadPath), zap.Int64("bytes", st.Size()))
	}
	return s, nil
}

// openLocked opens NAME.spool for appending. A file that does not end with a
// newline (a crash cut the last append short) gets one, so the torn line stays
// alone and the records after it are whole.
func (s *spool) openLocked() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open spool: %w", err)
	}
	size := st.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			f.Close()
			return fmt.Errorf("open spool: %w", err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return fmt.Errorf("open spool: %w", err)
			}
			size++
		}
	}
	s.f, s.size = f, size
	return nil
}

// pending reports whether the spool holds records.
func (s *spool) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size > 0 || s.replaySize > 0
}

// isFailing reports whether batches should go to the spool rather than to the
// sink.
func (s *spool) isFailing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing
}

// append adds n encoded records (JSON lines) to NAME.spool. With sync, it
// returns after an fsync; the fsync runs outside mu, so concurrent appends do
// not wait for the disk.
func (s *spool) append(lines []byte, n int, sync bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("the writer is closed")
	}
	if s.f == nil {
		if err := s.openLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	f := s.f
	w, err := f.Write(lines)
	if err != nil && w > 0 {
		// Cut a partial line off, so that the next append starts a line of
		// its own; if that fails too, the replay drops the joined line.
		if f.Truncate(s.size) == nil {
			w = 0
		}
	}
	s.size += int64(w)
	s.dirty = true
	s.m.spoolBytes.Set(float64(s.size + s.replaySize))
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	s.m.spooled.Add(float64(n))
	if sync {
		// A replay may have closed f after syncing it itself.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("sync spool: %w", err)
		}
	}
	return nil
}

// sync flushes appends made without an fsync.
func (s *spool) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.f == nil {
		return nil
	}
	s.dirty = false
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	return nil
}

// setFailing marks the sink failing and reports whether it was healthy before.
func (s *spool) setFailing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.failing
	s.failing = true
	return !was
}

// replay writes the spooled records to the sink until the spool is empty, a
// write fails or ctx ends. An empty spool marks the sink healthy again.
func (s *spool) replay(ctx context.Context, writeCtx func() (context.Context, context.CancelFunc)) {
	replayed := 0
	for ctx.Err() == nil {
		more, recovered, err := s.takeSpool()
		if err != nil {
			s.log.Error("cannot move the spool aside for replay; will retry", zap.Error(err))
			return
		}
		if !more {
			if recovered || replayed > 0 {
				s.log.Info("spool replayed; the sink gets records directly", zap.Int("records", replayed))
			}
			return
		}
		n, err := s.replayFile(ctx, writeCtx)
		replayed += n
		if err != nil {
			first := s.setFailing()
			if ctx.Err() == nil {
				s.m.errors.Inc()
				if first {
					s.log.Warn("spool replay failed; will retry", zap.Error(err))
				} else {
					s.log.Debug("spool replay failed; will retry", zap.Error(err))
				}
			}
			return
		}
	}
}

// takeSpool makes sure NAME.replay holds the oldest spooled records: it keeps
// an existing NAME.replay, or renames a non-empty NAME.spool to it. It reports
// whether there is anything to replay. When there is not, the sink gets
// batches directly again, and recovered says whether it was failing: the
// check and the change are one step, so no append slips in between.
func (s *spool) takeSpool() (more, recovered bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replaySize > 0 {
		return true, false, nil
	}
	if s.size == 0 {
		recovered, s.failing = s.failing, false
		return false, recovered, nil
	}
	if err := s.f.Sync(); err != nil {
		return false, false, err
	}
	s.dirty = false
	if err := s.f.Close(); err != nil {
		return false, false, err
	}
	s.f = nil
	if err := os.Rename(s.path, s.replayPath); err != nil {
		// Reopen so that appends go on; the replay retries the rename.
		if oerr := s.openLocked(); oerr != nil {
			err = errors.Join(err, oerr)
		}
		return false, false, err
	}
	syncDir(filepath.Dir(s.path))
	s.replaySize, s.size = s.size, 0
	return true, false, nil
}

// replayFile writes NAME.replay to the sink in batches and removes it. After a
// failed batch it keeps only that batch and what follows. It returns how many
// records the sink stored.
func (s *spool) replayFile(ctx context.Context, writeCtx func() (context.Context, context.CancelFunc)) (int, error) {
	f, err := os.Open(s.replayPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed it; there is nothing left to replay from it.
		s.mu.Lock()
		s.replaySize = 0
		s.m.spoolBytes.Set(float64(s.size))
		s.mu.Unlock()
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", s.replayPath, err)
	}
	defer f.Close()
	rd := bufio.NewReaderSize(f, 64<<10)
	var (
		offset   int64 // where the current batch begins
		read     int64 // bytes read so far
		stored   int
		batch    []Record
		finished bool
	)
	for !finished {
		batch = batch[:0]
		for len(batch) < s.batchSize {
			line, err := rd.ReadBytes('\n')
			read += int64(len(line))
			if err == io.EOF {
				finished = true
			} else if err != nil {
				return stored, fmt.Errorf("read %s: %w", s.replayPath, err)
			}
			line = bytes.TrimSpace(line)
			if len(line) > 0 {
				var r Record
				if err := json.Unmarshal(line, &r); err != nil {
					// A line cut short by a crash: nothing can bring it back.
					s.m.dropped.Inc()
					s.log.Error("dropping an unreadable spooled record", zap.Int64("offset", read-int64(len(line))), zap.Error(err))
				} else {
					batch = append(batch, r)
				}
			}
			if finished {
				break
			}
		}
		if len(batch) > 0 {
			if err := ctx.Err(); err != nil {
				return stored, s.keepFrom(f, offset, err)
			}
			wctx, cancel := writeCtx()
			n, err := s.write(wctx, batch)
			cancel()
			if err != nil {
				return stored, s.keepFrom(f, offset, err)
			}
			stored += n
		}
		offset = read
	}
	if err := os.Remove(s.replayPath); err != nil {
		return stored, fmt.Errorf("remove %s: %w", s.replayPath, err)
	}
	syncDir(filepath.Dir(s.replayPath))
	s.mu.Lock()
	s.replaySize = 0
	s.m.spoolBytes.Set(float64(s.size))
	s.mu.Unlock()
	return stored, nil
}

// write writes batch to the sink and returns how many records it stored,
// counted as written. The records the sink refuses for good (a
// [*RejectedError]) go to NAME.dead, so that they never come back first on
// every replay, holding up all that follows; any other error is returned, and
// the whole batch is to be written again.
func (s *spool) write(ctx context.Context, batch []Record) (int, error) {
	err := s.sink.Write(ctx, batch)
	var rej *RejectedError
	if err != nil && !errors.As(err, &rej) {
		return 0, err
	}
	n := len(batch)
	if rej != nil {
		n -= s.deadLetter(batch, rej)
	}
	s.m.written.Add(float64(n))
	return n, nil
}

// deadLetter appends the records of batch that rej names to NAME.dead, with
// their reasons, and returns how many it names. Each is logged at error and
// counted, as dead-lettered or, when even NAME.dead cannot be written, as
// dropped. A line of NAME.dead is {"time":...,"sink":...,"reason":...,
// "record":{...}}; after fixing the cause, the records can be fed back by
// appending their "record" objects, one a line, to NAME.spool while no Writer
// runs. A crash during a replay may dead-letter a record twice, as the replay
// starts again from the last batch cut off NAME.replay.
func (s *spool) deadLetter(batch []Record, rej *RejectedError) int {
	seen := make(map[int]bool, len(rej.Records))
	var lines []byte
	var ids []string
	for _, r := range rej.Records {
		if r.Index < 0 || r.Index >= len(batch) || seen[r.Index] {
			s.log.Error("the sink refused a record that is not in the batch; ignored", zap.Int("index", r.Index))
			continue
		}
		seen[r.Index] = true
		rec := &batch[r.Index]
		reason := "unknown"
		if r.Reason != nil {
			reason = r.Reason.Error()
		}
		line, err := json.Marshal(deadLetter{Time: time.Now().UTC(), Sink: s.name, Reason: reason, Record: rec})
		if err != nil {
			// Only a time outside years 0-9999 fails to encode; keep what can be.
			rec := *rec
			rec.Start, rec.End = time.Time{}, time.Time{}
			line, _ = json.Marshal(deadLetter{Time: time.Now().UTC(), Sink: s.name, Reason: reason + "; " + err.Error(), Record: &rec})
		}
		lines = append(append(lines, line...), '\n')
		ids = append(ids, rec.ID)
		s.log.Error("the sink refused a record for good; moved to its dead-letter file",
			zap.String("request_id", rec.ID), zap.String("trace_id", rec.TraceID),
			zap.String("reason", reason), zap.String("file", s.deadPath))
	}
	if len(ids) == 0 {
		return 0
	}
	s.deadMu.Lock()
	err := appendSync(s.deadPath, lines)
	s.deadMu.Unlock()
	if err != nil {
		s.m.dropped.Add(float64(len(ids)))
		s.log.Error("cannot write the dead-letter file; the refused records are lost",
			zap.Strings("request_ids", ids), zap.Error(err))
		return len(ids)
	}
	s.m.dead.Add(float64(len(ids)))
	return len(ids)
}

// deadLetter is one line of a dead-letter file.
type deadLetter struct {
	Time   time.Time `json:"time"`
	Sink   string    `json:"sink"`
	Reason string    `json:"reason"`
	Record *Record   `json:"record"`
}

// appendSync appends b to the file at path, creating it, and fsyncs it.
func appendSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// keepFrom replaces NAME.replay with its bytes from offset on, after a failed
// batch that began there, and returns cause.
func (s *spool) keepFrom(f *os.File, offset int64, cause error) error {
	tmp := s.replayPath + ".tmp"
	err := func() error {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return err
		}
		out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(out, f)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, s.replayPath); err != nil {
			os.Remove(tmp)
			return err
		}
		syncDir(filepath.Dir(s.replayPath))
		s.mu.Lock()
		s.replaySize = n
		s.m.spoolBytes.Set(float64(s.size + s.replaySize))
		s.mu.Unlock()
		return nil
	}()
	if err != nil {
		// The sink stored the batches before offset and NAME.replay still
		// holds them: the next replay writes them again. The Redis sink skips
		// them; the file and log sinks see them twice.
		return errors.Join(cause, fmt.Errorf("cut the replayed part off %s: %w", s.replayPath, err))
	}
	return cause
}

// close syncs and closes NAME.spool. Later appends fail.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("close spool %s: %w", s.path, err)
	}
	return nil
}

// syncDir makes renames and removals in dir durable, as far as the file system
// allows; failure only weakens durability, so it is ignored.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

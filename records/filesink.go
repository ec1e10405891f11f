package records

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// fileSink appends records to a file as JSON lines (the Record JSON, one object
// per line) and rotates it by size: when the next record would take the file past
// maxBytes, path becomes path.1, path.1 becomes path.2, and so on up to path.keep;
// the oldest is deleted. A record larger than maxBytes gets a file of its own.
//
// Every Write ends with an fsync, so a record counted as written survives a
// crash. A failed Write truncates the file back to where the batch began, so a
// retried batch never follows a torn line; records that a rotation during the
// failed batch already moved to path.1 are written again by the retry.
type fileSink struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
}

// NewFileSink returns a sink that appends records to the file at path (created
// with mode 0600) as JSON lines, rotated by size; see fileSink. maxBytes <= 0
// disables rotation; keep is how many rotated files to keep (0 deletes the full
// file on rotation).
func NewFileSink(path string, maxBytes int64, keep int) (Sink, error) {
	if path == "" {
		return nil, errors.New("records: file sink: empty path")
	}
	if keep < 0 {
		return nil, fmt.Errorf("records: file sink: keep = %d, want >= 0", keep)
	}
	s := &fileSink{path: path, maxBytes: maxBytes, keep: keep}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("records: file sink: %w", err)
	}
	return s, nil
}

// Name implements [Sink.Name].
func (*fileSink) Name() string { return "file" }

// Write implements [Sink.Write].
func (s *fileSink) Write(ctx context.Context, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("records: file sink: closed")
	}
	start := s.size // where this batch began in the current file
	fail := func(err error) error {
		// A failed rotation leaves no file open: reopen path, whichever file it
		// now names.
		if s.f == nil && s.open() != nil {
			return fmt.Errorf("records: file sink %s: %w", s.path, err)
		}
		// Cut the batch off so that a retry does not follow a torn line.
		if start <= s.size && s.f.Truncate(start) == nil {
			s.size = start
		}
		return fmt.Errorf("records: file sink %s: %w", s.path, err)
	}
	s.buf = s.buf[:0]
	for i := range recs {
		line, err := appendJSONLine(nil, &recs[i])
		if err != nil {
			return fail(err)
		}
		pending := int64(len(s.buf))
		if s.maxBytes > 0 && s.size+pending > 0 && s.size+pending+int64(len(line)) > s.maxBytes {
			if err := s.flush(); err != nil {
				return fail(err)
			}
			if err := s.rotate(); err != nil {
				return fail(err)
			}
			start = 0
		}
		s.buf = append(s.buf, line...)
	}
	if err := s.flush(); err != nil {
		return fail(err)
	}
	if err := s.f.Sync(); err != nil {
		return fail(err)
	}
	return nil
}

// flush writes the buffered lines to the current file.
func (s *fileSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	s.buf = s.buf[:0]
	return err
}

// rotate closes the full file, shifts the numbered files up by one and opens a
// new, empty file at path.
func (s *fileSink) rotate() error {
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	if s.keep == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	} else {
		if err := os.Remove(s.rotated(s.keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for i := s.keep - 1; i >= 1; i-- {
			if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Rename(s.path, s.rotated(1)); err != nil {
			return err
		}
	}
	return s.open()
}

func (s *fileSink) rotated(i int) string { return s.path + "." + strconv.Itoa(i) }

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Close implements [Sink.Close].
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("records: file sink %s: %w", s.path, err)
	}
	return nil
}

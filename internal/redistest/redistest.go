// Package redistest starts a real redis-server for tests.
//
// Every test that needs Redis gets its own server on a free loopback port, with no
// persistence and its own directory, stopped when the test ends. Stop and Restart
// let a test take Redis away and bring it back on the same address, to exercise
// outages. The binary must be installed (CI installs it); a missing binary fails
// the test rather than skipping it, so a green run always means Redis was there.
package redistest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/redisproc"
)

// Server is one redis-server process owned by a test. Its methods are safe for
// concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	port int

	mu   sync.Mutex
	proc *redisproc.Proc // nil while stopped
}

// Start starts redis-server on a free port of 127.0.0.1 and waits until it answers
// PING. The server is stopped when the test and its subtests end.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := redisproc.Binary()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	// Another process may take the free port between the probe and the bind; try
	// a few ports before giving up.
	var lastErr error
	for range 3 {
		if lastErr = s.start(0); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr is the server's host:port, for redis.Options.Addr.
func (s *Server) Addr() string { return s.addr }

// URL is the server's redis:// URL, for redis.ParseURL or TOLLGATE_REDIS_URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Stop kills the server and waits for it to exit. Data is lost, since the
// server keeps none on disk. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop()
		s.proc = nil
	}
}

// Restart stops the server if it runs and starts a new one on the same port. The
// new server is empty. The test fails if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(s.port); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// start runs redis-server on port (0: a free one); its log is shown if it fails.
func (s *Server) start(port int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out lockedBuffer
	p, err := redisproc.Start(s.bin, s.dir, port, &out)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out.String())
	}
	s.proc, s.port, s.addr = p, p.Port(), p.Addr()
	return nil
}

// lockedBuffer collects the server's output while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

//go:build unix

package redistest

import (
	"os"
	"syscall"
)

// Pause stops the server's process with SIGSTOP. It keeps its connections
// and accepts new ones (the kernel queues them), answers nothing, and runs
// what it received once resumed, as a Redis stalled by its host would: a
// command that timed out for its client may still run after Resume. Pausing
// a stopped server does nothing.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	p, err := os.FindProcess(s.proc.PID())
	if err == nil {
		err = p.Signal(sig)
	}
	if err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

package redistest

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/redisproc"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if err := redisproc.Ping(s.Addr()); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if want := "redis://" + s.Addr(); s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want a loopback address", s.Addr())
	}

	s.Stop()
	if err := redisproc.Ping(s.Addr()); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // a second Stop does nothing

	addr := s.Addr()
	s.Restart()
	if s.Addr() != addr {
		t.Errorf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if err := redisproc.Ping(s.Addr()); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	s.Restart() // restarting a running server works too
	if err := redisproc.Ping(s.Addr()); err != nil {
		t.Fatalf("PING after a second Restart: %v", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	a.Stop()
	if err := redisproc.Ping(b.Addr()); err != nil {
		t.Fatalf("stopping one server affected the other: %v", err)
	}
}

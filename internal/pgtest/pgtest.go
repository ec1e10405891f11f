// Package pgtest starts a real PostgreSQL server for tests.
//
// Start runs initdb in a fresh directory and postgres on a free loopback port,
// with fsync off and no Unix socket, and stops it when the test ends. Database
// gives each test (or subtest) a database of its own on that server. Stop and
// Restart take the server away and bring it back on the same port with the
// same data, to exercise outages.
//
// The binaries come from Debian's postgresql package (/usr/lib/postgresql/N/bin,
// the newest N), or from PATH. Postgres refuses to run as root, so when the
// tests run as root the server runs as the unprivileged account "postgres"
// (created by the package) or, without it, "nobody", and its directory is
// handed to that account.
//
// A missing PostgreSQL skips the test with a message saying what to install,
// except in CI (CI=true), where it fails it: a green CI run always means
// Postgres was there.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/internal/loopback"
)

// StartTimeout bounds how long a server may take to accept connections.
const StartTimeout = 60 * time.Second

// Server is one postgres process owned by a test. Its methods are safe for
// concurrent use.
type Server struct {
	t    testing.TB
	bin  string // directory of initdb and postgres
	dir  string // owned by the server's account; data in dir/data
	port int
	cred *syscall.Credential // nil: run as the test's own user

	mu   sync.Mutex
	proc *exec.Cmd // nil while stopped
	done chan struct{}
	log  *lockedBuffer
	dbs  int
}

// Start runs initdb and postgres and waits until the server accepts
// connections. The server is stopped, and its directory removed, when the
// test and its subtests end.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		if inCI() {
			t.Fatalf("pgtest: %v (CI is set, so a missing PostgreSQL is a failure)", err)
		}
		t.Skipf("pgtest: %v; skipping (outside CI only)", err)
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	// Not t.TempDir: its parents are private to the test's user, and the
	// server's account must reach its directory.
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(s.dir) })
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	var out bytes.Buffer
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", filepath.Join(s.dir, "data"), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Stdout, initdb.Stderr = &out, &out
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if err := initdb.Run(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out.String())
	}
	t.Cleanup(s.Stop)
	// Another process may take the free port between the probe and the bind;
	// try a few ports before giving up.
	for range 3 {
		addr := loopback.FreeAddr(t)
		_, p, _ := net.SplitHostPort(addr)
		s.port, _ = strconv.Atoi(p)
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("pgtest: %v", err)
	return nil
}

// inCI reports whether the tests run in CI: CI set, and not to false or 0.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// The newest major version first: "9" must sort below "15".
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "postgres")) && isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		d := filepath.Dir(p)
		if isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server found in /usr/lib/postgresql/*/bin or on PATH: install it (apt-get install -y postgresql)")
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// unprivileged returns the credentials of an account postgres agrees to run
// as, for tests running as root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody account exists to run the server as")
}

// start runs postgres on s.port and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := &lockedBuffer{}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=50",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: the kernel kills the server if the test binary dies without
	// stopping it. Go sets it after the credentials, which would clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.url("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			s.proc, s.done, s.log = cmd, done, log
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres on port %d exited before accepting connections:\n%s", s.port, log.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres on port %d did not accept connections within %v: %v\n%s", s.port, StartTimeout, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// url is the URL of database db, as the superuser "postgres".
func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr(), db)
}

// Database creates a new, empty database for t and returns its URL
// (postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable).
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("test_%d", s.dbs)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.url(name)
}

// Stop shuts the server down (fast shutdown: sessions are ended, data is
// kept) and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(StartTimeout):
		_ = s.proc.Process.Kill()
		<-s.done
	}
	s.proc = nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data. The test fails if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("pgtest: restart: %v", err)
	}
}

// Log is what the server has written since it last started.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
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
	return strings.Clone(b.buf.String())
}

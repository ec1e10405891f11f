package benchcmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/internal/redisproc"
)

// child is a server the bench started from its own binary.
type child struct {
	name                string
	cmd                 *exec.Cmd
	grpc, admin, pprofA string
	log                 string
	exited              chan struct{}
	err                 error
}

// startChild runs exe with args, its output in a log file, and waits for the
// JSON line naming its gRPC and admin addresses (and pprof when wantPprof).
func startChild(ctx context.Context, name, exe string, args, env []string, logDir string, wantPprof bool) (*child, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.readAddrs()
		if c.grpc != "" && c.admin != "" && (c.pprofA != "" || !wantPprof) {
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("bench: %s exited before serving (%v); its log: %s", name, c.err, tail(logPath))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("bench: %s did not report its addresses within 20s; its log: %s", name, tail(logPath))
		}
	}
}

// readAddrs scans the child's log for its JSON address lines.
func (c *child) readAddrs() {
	f, err := os.Open(c.log)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		if g, a := str("grpc"), str("admin"); g != "" && a != "" {
			c.grpc, c.admin = g, a
		}
		if p := str("pprof"); p != "" {
			c.pprofA = p
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// stop ends the child with SIGTERM, then SIGKILL after 10 s.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill() //nolint:errcheck
		<-c.exited
	}
}

func (c *child) target(name string, strict bool) *bench.Target {
	return &bench.Target{Name: name, Addr: c.grpc, PID: c.cmd.Process.Pid, MetricsURL: "http://" + c.admin + "/metrics", Strict: strict}
}

// childEnv is this process's environment without TOLLGATE_* variables, so the
// measured server runs as the bench says and not as the shell happens to say.
func childEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOLLGATE_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

func saveProfile(ctx context.Context, url, file string, stderr io.Writer) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			defer resp.Body.Close()
			var f *os.File
			if f, err = os.Create(file); err == nil {
				_, err = io.Copy(f, resp.Body)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: profile %s: %v\n", url, err)
	}
}

// startRedis runs a redis-server for the scenarios that need Redis and were
// given no --redis-url: loopback, no persistence, its log in dir/redis.log.
func startRedis(dir string) (*redisproc.Proc, error) {
	bin, err := redisproc.Binary()
	if err != nil {
		return nil, err
	}
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p, err := redisproc.Start(bin, rdir, 0, logf)
	if err != nil {
		return nil, fmt.Errorf("%w; its log: %s", err, tail(filepath.Join(dir, "redis.log")))
	}
	return p, nil
}

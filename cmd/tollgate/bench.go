package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
	"github.com/tollgate-dev/tollgate/internal/redisproc"
)

const benchUsage = `usage:
  tollgate bench [flags]                      measure Tollgate against an echo processor
  tollgate bench echo [--addr A] [--admin-addr B]
  tollgate bench --echo [--addr A]            serve the echo processor (the floor)
  tollgate bench serve [--pprof-addr A] -- [serve flags]
                                              tollgate serve with a CPU/heap profiling
                                              listener (what --profile runs)
  tollgate bench body [--bytes N] [--seed S]  print a Claude Code-shaped request body

By default the bench starts 'tollgate serve' and 'tollgate bench echo' as child
processes of this binary on loopback, replays every scenario against both in
rounds that alternate which goes first, has the echo hold a ballast as large as
Tollgate's live heap so both collect garbage at one pace, and reads each server's
CPU time from /proc/<pid>/stat and its allocations from its /metrics. README
"Performance" describes the method. Flags:
`

// benchConfig is a bench run's command line.
type benchConfig struct {
	addr, echoAddr             string
	pid, echoPID               int
	metricsURL, echoMetricsURL string
	scenarios                  string
	run                        string
	envoyConfig                string
	opts                       bench.Options
	json                       bool
	jsonOut                    string
	profile                    string
	redisURL                   string
	serveArgs                  string
	keepLogs                   bool
	matchHeap                  bool
	echoMode                   bool // --echo: serve the echo processor instead
}

func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.BoolVar(&c.echoMode, "echo", false, "serve the echo processor on --addr (default 127.0.0.1:50052) instead of running the bench")
	fs.StringVar(&c.addr, "addr", "", "gRPC address of a running Tollgate; empty starts 'tollgate serve' as a child process")
	fs.IntVar(&c.pid, "pid", 0, "process id of the Tollgate at --addr, for CPU time and RSS")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "/metrics URL of the Tollgate at --addr, for allocations")
	fs.StringVar(&c.echoAddr, "echo-addr", "", "gRPC address of a running echo processor; empty starts 'tollgate bench echo' as a child")
	fs.IntVar(&c.echoPID, "echo-pid", 0, "process id of the echo processor at --echo-addr")
	fs.StringVar(&c.echoMetricsURL, "echo-metrics-url", "", "/metrics URL of the echo processor at --echo-addr")
	fs.StringVar(&c.scenarios, "scenarios", "", "directory of scenario files (*.yaml); empty uses the ones built in from internal/bench/scenarios")
	fs.StringVar(&c.run, "run", "", "comma-separated scenario names or patterns (path.Match) to run; empty runs all")
	fs.StringVar(&c.envoyConfig, "envoy-config", "", "envoy.yaml to read the ext_proc filters from; empty uses the built-in copy of this repository's")
	fs.Float64Var(&c.opts.Rate, "rate", 200, "open-loop requests per second for scenarios that set none")
	fs.DurationVar(&c.opts.Duration, "duration", 10*time.Second, "measured open-loop window per scenario and server")
	fs.DurationVar(&c.opts.Warmup, "warmup", 2*time.Second, "unmeasured open loop before the window")
	fs.DurationVar(&c.opts.Closed, "closed", 2*time.Second, "closed loop at concurrency 1 after the open loop (0 skips)")
	fs.IntVar(&c.opts.Rounds, "rounds", 2, "rounds each window is split in, alternating which server goes first (ABBA)")
	fs.IntVar(&c.opts.Conns, "conns", 2, "HTTP/2 connections per server (Envoy opens one per worker thread)")
	fs.IntVar(&c.opts.HoldStreams, "hold", 1000, "streams held open in scenarios with a hold section (0 skips)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON instead of tables")
	fs.StringVar(&c.jsonOut, "json-out", "", "also write the JSON report to this file")
	fs.StringVar(&c.profile, "profile", "", "write CPU profiles of both servers per scenario, and heap and allocation profiles at the end, to this directory")
	fs.StringVar(&c.redisURL, "redis-url", "", "Redis for scenarios that need it (passed to Tollgate as TOLLGATE_REDIS_URL); empty starts a redis-server on a free loopback port when a scenario needs one")
	fs.StringVar(&c.serveArgs, "serve-args", "", "extra flags for the Tollgate child, space-separated (e.g. --records-log=false)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the child processes' logs (their directory is printed)")
	fs.BoolVar(&c.matchHeap, "match-heap", true, "before every round, have the echo child hold a ballast as large as Tollgate's live heap, so both collect garbage at the same pace")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate bench: unexpected argument %q\n", fs.Arg(0))
		return c, errUsage
	}
	if c.opts.Closed == 0 {
		c.opts.Closed = -1
	}
	if c.opts.HoldStreams == 0 {
		c.opts.HoldStreams = -1
	}
	if c.opts.Rate <= 0 || c.opts.Duration <= 0 || c.opts.Warmup < 0 || c.opts.Conns < 1 || c.opts.HoldStreams < -1 || c.opts.Rounds < 1 {
		fmt.Fprintln(stderr, "tollgate bench: --rate, --duration, --conns and --rounds must be positive; --warmup and --hold not negative")
		return c, errUsage
	}
	return c, nil
}

// benchCommand is `tollgate bench`.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "echo":
			return echoCommand(ctx, args[1:], stderr)
		case "serve":
			return benchServe(ctx, args[1:], stderr)
		case "body":
			return bodyCommand(args[1:], stdout, stderr)
		}
	}
	c, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.echoMode {
		addr := c.addr
		if addr == "" {
			addr = "127.0.0.1:50052"
		}
		return serveEcho(ctx, addr, "", "", &ballast{}, stderr)
	}
	return runBench(ctx, c, stdout, stderr)
}

func echoCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:50052", "gRPC listen address, host:port or unix:/path")
	admin := fs.String("admin-addr", "", "HTTP listen address for /metrics (Go and process collectors, as serve exports); empty serves none")
	pprofAddr := fs.String("pprof-addr", "", "HTTP listen address for CPU and heap profiles; empty serves none")
	ballastMiB := fs.Float64("ballast-mib", 0, "MiB of never-touched heap to hold, so that the garbage collector paces as in a server with that much live data")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *ballastMiB < 0 {
		return errUsage
	}
	bl := &ballast{}
	bl.resize(int64(*ballastMiB * (1 << 20)))
	return serveEcho(ctx, *addr, *admin, *pprofAddr, bl, stderr)
}

// ballast is heap the echo processor holds so that its garbage collector paces
// as in a server with that much live data: a pointer-free allocation the
// collector counts as live but never scans, and whose pages are never written,
// so it costs no resident memory.
type ballast struct {
	mu sync.Mutex
	b  []byte
}

func (bl *ballast) resize(n int64) {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	bl.b = nil
	runtime.GC()
	bl.b = make([]byte, max(n, 0))
}

// match resizes the ballast so that the live heap after a collection is live
// bytes, and returns the ballast's size.
func (bl *ballast) match(live int64) int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	bl.mu.Lock()
	own := int64(ms.HeapAlloc) - int64(len(bl.b))
	bl.mu.Unlock()
	n := max(live-own, 0)
	bl.resize(n)
	runtime.GC() // the heap goal follows the new live heap at once
	return n
}

// ServeHTTP answers POST ?live=N with the new ballast size.
func (bl *ballast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	live, err := strconv.ParseInt(r.URL.Query().Get("live"), 10, 64)
	if err != nil || live < 0 {
		http.Error(w, "live: want a byte count", http.StatusBadRequest)
		return
	}
	fmt.Fprintln(w, bl.match(live))
}

// serveEcho runs the echo processor with the gRPC options serve uses, and an
// admin listener with the same collectors (and POST /ballast), until ctx ends. It prints one JSON line
// with its addresses to stderr, as serve's "tollgate serving" line does.
func serveEcho(ctx context.Context, addr, adminAddr, pprofAddr string, bl *ballast, stderr io.Writer) error {
	lis, err := listen(addr)
	if err != nil {
		return fmt.Errorf("echo listen: %w", err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(maxGRPCMessage), grpc.MaxSendMsgSize(maxGRPCMessage))
	extprocv3.RegisterExternalProcessorServer(gs, bench.Echo{})
	line := map[string]string{"msg": "echo serving", "grpc": lis.Addr().String()}
	var servers []*http.Server
	if adminAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("POST /ballast", bl)
		a, err := startHTTP(adminAddr, mux)
		if err != nil {
			gs.Stop()
			return fmt.Errorf("echo admin: %w", err)
		}
		servers = append(servers, a.srv)
		line["admin"] = a.addr
	}
	if pprofAddr != "" {
		p, err := startHTTP(pprofAddr, profileHandler())
		if err != nil {
			gs.Stop()
			return fmt.Errorf("pprof: %w", err)
		}
		servers = append(servers, p.srv)
		line["pprof"] = p.addr
	}
	b, _ := json.Marshal(line)
	fmt.Fprintf(stderr, "%s\n", b)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		gs.Stop()
		err = nil
	case err = <-errc:
	}
	for _, s := range servers {
		s.Close()
	}
	return err
}

type httpListener struct {
	srv  *http.Server
	addr string
}

func startHTTP(addr string, h http.Handler) (httpListener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return httpListener{}, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis) //nolint:errcheck // ends with Close
	return httpListener{srv: srv, addr: lis.Addr().String()}, nil
}

// profileHandler serves CPU, heap and allocation profiles for the bench's
// children. It is never part of `tollgate serve`; `tollgate bench serve` runs it
// beside serve on a loopback port of its own, so production has no debug
// endpoint.
func profileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err != nil || secs <= 0 {
			secs = 10
		}
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	})
	for _, name := range []string{"heap", "allocs", "goroutine"} {
		mux.HandleFunc("GET /debug/pprof/"+name, func(w http.ResponseWriter, _ *http.Request) {
			pprof.Lookup(name).WriteTo(w, 0) //nolint:errcheck // the client sees a short profile
		})
	}
	return mux
}

// benchServe is `tollgate bench serve`: serve, plus a profiling listener.
func benchServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pprofAddr := fs.String("pprof-addr", "127.0.0.1:0", "HTTP listen address for CPU and heap profiles")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := parseServeFlags(fs.Args(), os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	p, err := startHTTP(*pprofAddr, profileHandler())
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	defer p.srv.Close()
	b, _ := json.Marshal(map[string]string{"msg": "bench pprof", "pprof": p.addr})
	fmt.Fprintf(stderr, "%s\n", b)
	return serve(ctx, cfg, stderr)
}

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

func selectScenarios(all []*bench.Scenario, patterns string) ([]*bench.Scenario, error) {
	if patterns == "" {
		return all, nil
	}
	var out []*bench.Scenario
	pats := strings.Split(patterns, ",")
	for _, s := range all {
		for _, p := range pats {
			if ok, err := path.Match(strings.TrimSpace(p), s.Name); err != nil {
				return nil, fmt.Errorf("--run %q: %w", p, err)
			} else if ok {
				out = append(out, s)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--run %q matches no scenario", patterns)
	}
	return out, nil
}

func runBench(ctx context.Context, c benchConfig, stdout, stderr io.Writer) (err error) {
	var fsys fs.FS = bench.DefaultScenarios()
	if c.scenarios != "" {
		fsys = os.DirFS(c.scenarios)
	}
	all, err := bench.LoadScenarios(fsys)
	if err != nil {
		return err
	}
	scenarios, err := selectScenarios(all, c.run)
	if err != nil {
		return err
	}
	if c.envoyConfig != "" {
		bs, err := envoyconfig.LoadFile(c.envoyConfig)
		if err != nil {
			return err
		}
		m, err := envoyconfig.NewModel(bs)
		if err != nil {
			return err
		}
		if c.opts.Policy, c.opts.Adapter, err = bench.FiltersFromEnvoy(m); err != nil {
			return err
		}
	}
	c.opts.Progress = stderr

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: finding this binary to start the servers: %w", err)
	}
	logDir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if c.keepLogs {
			fmt.Fprintf(stderr, "bench: server logs in %s\n", logDir)
		} else {
			os.RemoveAll(logDir)
		}
	}()
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return err
		}
	}

	var children []*child
	defer func() {
		for _, ch := range children {
			if c.profile != "" && ch.pprofA != "" {
				for _, kind := range []string{"heap", "allocs"} {
					saveProfile(ctx, "http://"+ch.pprofA+"/debug/pprof/"+kind, filepath.Join(c.profile, ch.name+"."+kind+".pprof"), stderr)
				}
			}
			ch.stop()
		}
	}()
	start := func(name string, args []string, env map[string]string) (*child, error) {
		ch, err := startChild(ctx, name, exe, args, childEnv(env), logDir, c.profile != "")
		if err != nil {
			return nil, err
		}
		children = append(children, ch)
		fmt.Fprintf(stderr, "bench: started %s (pid %d) on %s, metrics on %s\n", name, ch.cmd.Process.Pid, ch.grpc, ch.admin)
		return ch, nil
	}

	// A redis-server the bench started for scenarios that need one.
	var redisProcs []*redisproc.Proc
	defer func() {
		for _, r := range redisProcs {
			r.Stop()
		}
	}()
	var servers []string

	// Tollgate servers, one per distinct server section; the default one is
	// shared by every scenario without a section.
	tollgates := map[string]*bench.Target{}
	tollgateFor := func(s *bench.Scenario) (*bench.Target, string, error) {
		if c.addr != "" {
			if !s.Server.Default() {
				return nil, "needs its own Tollgate (a server section); run without --addr", nil
			}
			return &bench.Target{Name: "tollgate", Addr: c.addr, PID: c.pid, MetricsURL: c.metricsURL, Strict: true}, "", nil
		}
		env := map[string]string{}
		for k, v := range s.Server.Env {
			env[k] = v
		}
		for _, n := range s.Needs {
			if n == "redis" {
				if c.redisURL == "" {
					r, err := startRedis(logDir)
					if err != nil {
						return nil, "needs Redis: pass --redis-url (" + err.Error() + ")", nil
					}
					redisProcs = append(redisProcs, r)
					c.redisURL = "redis://" + r.Addr() + "/0"
					fmt.Fprintf(stderr, "bench: started redis-server (pid %d) on %s\n", r.PID(), r.Addr())
					servers = append(servers, "redis: child process 'redis-server' on "+r.Addr()+" (no persistence)")
				}
				env["TOLLGATE_REDIS_URL"] = c.redisURL
			}
		}
		key := s.Server.Key() + "\x01" + env["TOLLGATE_REDIS_URL"]
		if t, ok := tollgates[key]; ok {
			return t, "", nil
		}
		args := []string{"serve"}
		if c.profile != "" {
			args = []string{"bench", "serve", "--pprof-addr", "127.0.0.1:0", "--"}
		}
		args = append(args, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--shutdown-timeout", "2s",
			"--spool-dir", filepath.Join(logDir, fmt.Sprintf("spool%d", len(tollgates))))
		args = append(args, strings.Fields(c.serveArgs)...)
		if s.Server.Policy != "" {
			pf := filepath.Join(logDir, fmt.Sprintf("policy%d.yaml", len(tollgates)))
			if err := os.WriteFile(pf, []byte(s.Server.Policy), 0o600); err != nil {
				return nil, "", err
			}
			args = append(args, "--policy", pf)
		}
		args = append(args, s.Server.Args...)
		name := "tollgate"
		if len(tollgates) > 0 {
			name = fmt.Sprintf("tollgate-%d", len(tollgates))
		}
		ch, err := start(name, args, env)
		if err != nil {
			return nil, "", err
		}
		t := ch.target("tollgate", true)
		tollgates[key] = t
		return t, "", nil
	}
	if c.addr == "" {
		desc := "tollgate: child process 'tollgate serve' (embedded demo policy, records in memory and logged, JSON logs to a file)"
		if c.profile != "" {
			desc = "tollgate: child process 'tollgate bench serve' (serve plus a profiling listener; CPU figures include profiling)"
		}
		if c.serveArgs != "" {
			desc += ", extra flags: " + c.serveArgs
		}
		servers = append(servers, desc)
	} else {
		servers = append(servers, "tollgate: external at "+c.addr)
	}

	// The shared Tollgate first, so that its startup is not measured on echo.
	if c.addr == "" {
		if _, _, err := tollgateFor(&bench.Scenario{}); err != nil {
			return err
		}
	}
	echo := &bench.Target{Name: "echo", Addr: c.echoAddr, PID: c.echoPID, MetricsURL: c.echoMetricsURL}
	if c.echoAddr == "" {
		args := []string{"bench", "echo", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
		if c.profile != "" {
			args = append(args, "--pprof-addr", "127.0.0.1:0")
		}
		ch, err := start("echo", args, nil)
		if err != nil {
			return err
		}
		echo = ch.target("echo", false)
		desc := "echo: child process 'tollgate bench echo'"
		if c.matchHeap {
			echo.BallastURL = "http://" + ch.admin + "/ballast"
			desc += ", holding a ballast as large as Tollgate's live heap (matched before every round)"
		}
		servers = append(servers, desc)
	} else {
		servers = append(servers, "echo: external at "+c.echoAddr)
	}

	if c.profile != "" {
		c.opts.Observe = func(ctx context.Context, s *bench.Scenario, t *bench.Target, window time.Duration) func() {
			var pprofAddr string
			for _, ch := range children {
				if ch.grpc == t.Addr {
					pprofAddr = ch.pprofA
				}
			}
			if pprofAddr == "" {
				return func() {}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%g", pprofAddr, window.Seconds())
				saveProfile(ctx, url, filepath.Join(c.profile, s.Name+"."+t.Name+".cpu.pprof"), stderr)
			}()
			return func() { <-done }
		}
	}

	rep := &bench.Report{Machine: bench.ThisMachine(time.Now()), Settings: c.opts.Settings(strings.Join(servers, "; "))}
	rep.Settings.Notes = "CPU per request: server process utime+stime (/proc/<pid>/stat) over the measured window / requests; " +
		"allocations: go_memstats_mallocs_total from the server's /metrics, less the scrapes; latency: sum of a request's ext_proc round trips from its scheduled start"
	for _, s := range scenarios {
		if !s.Ready() {
			sr, err := bench.RunScenario(ctx, s, nil, c.opts)
			if err != nil {
				return err
			}
			rep.Scenarios = append(rep.Scenarios, sr)
			continue
		}
		tg, skip, err := tollgateFor(s)
		if err != nil {
			return err
		}
		if skip != "" {
			fmt.Fprintf(stderr, "bench: %s: skipped: %s\n", s.Name, skip)
			rep.Scenarios = append(rep.Scenarios, &bench.ScenarioReport{Name: s.Name, Description: s.Description, Status: "skipped", Reason: skip})
			continue
		}
		targets := []*bench.Target{echo, tg}
		sr, err := bench.RunScenario(ctx, s, targets, c.opts)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, sr)
		if s.Hold != nil && c.opts.HoldStreams > 0 {
			mr, err := bench.RunMemory(ctx, s, targets, c.opts)
			if err != nil {
				return err
			}
			rep.Memory = append(rep.Memory, mr)
		}
	}
	rep.Evaluate()

	if c.jsonOut != "" {
		f, err := os.Create(c.jsonOut)
		if err != nil {
			return err
		}
		if err := rep.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if c.json {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
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

// bodyCommand is `tollgate bench body`: one Claude Code-shaped request body, as
// the scenarios generate them, on stdout (deploy/bench.sh posts it with wrk).
func bodyCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench body", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int("bytes", 102400, "exact size of the body")
	model := fs.String("model", "claude-opus-4-8", "model field")
	stream := fs.Bool("stream", true, "stream field")
	seed := fs.Uint64("seed", 1, "same seed, same bytes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	b, err := bench.ClaudeCodeBody(*size, *model, *stream, *seed)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

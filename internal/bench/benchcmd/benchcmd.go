// Package benchcmd is `tollgate bench`: the command line over the bench driver
// in package bench. It starts the measured servers as child processes of the
// running binary (`serve`, `bench serve` with a profiling listener, and `bench
// echo`, the floor), replays the scenarios against them and prints the report.
// It also serves the echo processor and prints a Claude Code-shaped request
// body (`bench body`). It is a tool, not the product: the tollgate command
// keeps only a one-line subcommand that calls Run.
package benchcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

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
	soak                       int  // --soak: requests of the mixed soak run instead of the scenarios' measurements
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
	fs.IntVar(&c.soak, "soak", 0, "instead of measuring each scenario, play this many requests of the selected scenarios mixed (round-robin) in one open loop at --rate, and report Tollgate's and Redis's RSS and CPU per request at the start and the end")
	fs.BoolVar(&c.matchHeap, "match-heap", true, "before every round, have the echo child hold a ballast as large as Tollgate's live heap, so both collect garbage at the same pace")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate bench: unexpected argument %q\n", fs.Arg(0))
		return c, ErrUsage
	}
	if c.opts.Closed == 0 {
		c.opts.Closed = -1
	}
	if c.opts.HoldStreams == 0 {
		c.opts.HoldStreams = -1
	}
	if c.soak < 0 {
		fmt.Fprintln(stderr, "tollgate bench: --soak must not be negative")
		return c, ErrUsage
	}
	if c.opts.Rate <= 0 || c.opts.Duration <= 0 || c.opts.Warmup < 0 || c.opts.Conns < 1 || c.opts.HoldStreams < -1 || c.opts.Rounds < 1 {
		fmt.Fprintln(stderr, "tollgate bench: --rate, --duration, --conns and --rounds must be positive; --warmup and --hold not negative")
		return c, ErrUsage
	}
	return c, nil
}

// ErrUsage marks a command-line mistake; the tollgate command exits 2 for it.
var ErrUsage = errors.New("usage")

// ServeFunc reads the flags of `tollgate serve` from args (reporting mistakes
// on stderr) and returns the function that serves with them until its context
// ends, logging to stderr. `tollgate bench serve` calls it with the arguments
// after its own flags.
type ServeFunc func(args []string, stderr io.Writer) (serve func(context.Context) error, err error)

// Run is `tollgate bench ARGS`: the bench itself, or one of its subcommands
// (echo, serve, body). serve is the tollgate command's serve; the bench starts
// its servers as child processes of this binary (os.Executable), as
// `BINARY serve` and `BINARY bench echo|serve`, so the binary calling Run must
// dispatch those command lines here and to serve.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, serve ServeFunc) error {
	if len(args) > 0 {
		switch args[0] {
		case "echo":
			return echoCommand(ctx, args[1:], stderr)
		case "serve":
			return benchServe(ctx, args[1:], stderr, serve)
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
	// Probes of the Redis servers the scenarios use, by URL.
	probes := map[string]*bench.RedisProbe{}
	defer func() {
		for _, p := range probes {
			p.Close()
		}
	}()
	redisPID := 0

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
					redisPID = r.PID()
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
		if u := env["TOLLGATE_REDIS_URL"]; u != "" {
			if probes[u] == nil {
				p, err := bench.NewRedisProbe(u, redisPID)
				if err != nil {
					return nil, "", err
				}
				probes[u] = p
			}
			t.Redis = probes[u]
		}
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
		"allocations: go_memstats_mallocs_total from the server's /metrics, less the scrapes; " +
		"Redis (scenarios with needs: [redis]): redis-server's utime+stime over Tollgate's windows / requests (when the bench started it), and INFO commandstats deltas; latency: sum of a request's ext_proc round trips from its scheduled start"
	if c.soak > 0 {
		var parts []bench.SoakPart
		for _, s := range scenarios {
			if !s.Ready() {
				continue
			}
			tg, skip, err := tollgateFor(s)
			if err != nil {
				return err
			}
			if skip != "" {
				fmt.Fprintf(stderr, "bench: soak: %s: skipped: %s\n", s.Name, skip)
				continue
			}
			parts = append(parts, bench.SoakPart{Scenario: s, Target: tg})
		}
		if rep.Soak, err = bench.RunSoak(ctx, parts, c.soak, c.opts.Rate, c.opts); err != nil {
			return err
		}
		scenarios = nil
	}
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
	if c.soak == 0 {
		rep.Evaluate()
	}

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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/internal/logbuf"
)

// benchChildEnv makes this test binary act as the tollgate binary, so that
// `tollgate bench` can start its servers by re-executing itself as it does in
// production. The name avoids the TOLLGATE_ prefix, which the bench strips from
// its children's environment.
const benchChildEnv = "BENCH_TEST_RUN_AS_TOLLGATE"

func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			os.Stderr.WriteString("tollgate: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The whole command, with its servers as child processes: a short run whose
// JSON report has the expected structure. Nothing is timed.
func TestBenchCommandSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes and runs load for a few seconds")
	}
	t.Setenv(benchChildEnv, "1")
	dir := t.TempDir()
	var stdout bytes.Buffer
	var stderr logbuf.Buffer
	err := benchCommand(context.Background(), []string{
		"--run", "2k-sse50,deny-bad-key,budget-memory,cache-hit", "--rate", "20", "--duration", "300ms", "--warmup", "100ms",
		"--closed", "100ms", "--hold", "0", "--json", "--json-out", filepath.Join(dir, "report.json"), "--profile", dir,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Scenarios) != 4 {
		t.Fatalf("%d scenarios", len(rep.Scenarios))
	}
	for _, sc := range rep.Scenarios {
		for _, target := range []string{"tollgate", "echo"} {
			r := sc.Run(target, bench.LoopOpen)
			if r == nil || r.Requests == 0 || r.Errors != 0 || r.CPU == nil || r.Allocs == nil {
				t.Errorf("%s on %s: %+v", sc.Name, target, r)
			}
		}
		if sc.Run("tollgate", bench.LoopOpen).ServerPhases == nil {
			t.Errorf("%s: no Tollgate handler times", sc.Name)
		}
	}
	// The cache-hit scenario's requests after the first misses end at their
	// body (Tollgate's HIT): no upstream attempt, no response chunk.
	if s := rep.Scenarios[3]; s.Name != "cache-hit" || s.Run("tollgate", bench.LoopOpen).Phase(bench.PhasePolicyRequestBody) == nil ||
		s.Run("echo", bench.LoopOpen).Phase(bench.PhaseResponseChunk) != nil {
		t.Errorf("cache-hit: %+v", s)
	} else if r := s.Run("tollgate", bench.LoopOpen); r.Phase(bench.PhaseAdapterRequestHeaders) != nil && r.Phase(bench.PhaseAdapterRequestHeaders).Count >= uint64(r.Requests) {
		t.Errorf("cache-hit: every one of %d requests went upstream: no HIT", r.Requests)
	}
	// cache-hit uses the Redis the bench started: its CPU and commands are
	// reported beside Tollgate's; scenarios without Redis have none.
	if r := rep.Scenarios[3].Run("tollgate", bench.LoopOpen); r.Redis == nil || r.Redis.CPUPerRequestUS == nil || r.Redis.CommandsPerRequest <= 0 {
		t.Errorf("cache-hit: no Redis figures: %+v", r.Redis)
	}
	if r := rep.Scenarios[0].Run("tollgate", bench.LoopOpen); r.Redis != nil {
		t.Errorf("%s: Redis figures %+v", rep.Scenarios[0].Name, r.Redis)
	}
	if !strings.Contains(rep.Settings.Servers, "ballast") || rep.Machine.Cores == 0 {
		t.Errorf("settings %+v machine %+v", rep.Settings, rep.Machine)
	}
	for _, f := range []string{"report.json", "2k-sse50.tollgate.cpu.pprof", "2k-sse50.echo.cpu.pprof", "tollgate.allocs.pprof", "echo.heap.pprof"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestBenchSoakSmoke: --soak plays the selected scenarios mixed and reports
// every Tollgate's and the Redis's RSS and CPU at the start and the end.
func TestBenchSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes and runs load for a few seconds")
	}
	t.Setenv(benchChildEnv, "1")
	var stdout bytes.Buffer
	var stderr logbuf.Buffer
	err := benchCommand(context.Background(), []string{"--run", "2k-json,cache-hit", "--soak", "40", "--rate", "40", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	s := rep.Soak
	if s == nil || s.Requests != 40 || s.Errors != 0 || len(s.Scenarios) != 2 || len(rep.Scenarios) != 0 || len(rep.Targets) != 0 {
		t.Fatalf("soak report %+v, %d scenarios, %d targets", s, len(rep.Scenarios), len(rep.Targets))
	}
	names := ""
	for _, p := range s.Processes {
		names += p.Name + ";"
		if p.StartRSSBytes <= 0 || p.WarmRSSBytes <= 0 || p.LastTenthRSSBytes <= 0 || p.EndRSSBytes <= 0 {
			t.Errorf("%s: RSS %d, %d, %d, %d", p.Name, p.StartRSSBytes, p.WarmRSSBytes, p.LastTenthRSSBytes, p.EndRSSBytes)
		}
	}
	if len(s.Processes) != 3 || !strings.Contains(names, "redis-server") {
		t.Errorf("processes %s", names)
	}
}

// TestBenchUsage: the bench's command-line mistakes exit 2 like every other
// command's, and -h is no mistake.
func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"bench", "--rate", "0"}, {"bench", "extra"}, {"bench", "echo", "--nope"}, {"bench", "serve", "--", "--nope"}} {
		if _, err := runCmd(t, "", args...); err != errUsage {
			t.Errorf("%v: %v; want usage", args, err)
		}
	}
	out, err := runCmd(t, "", "bench", "-h")
	if err != nil || !strings.Contains(out, "tollgate bench [flags]") || !strings.Contains(out, "-match-heap") {
		t.Errorf("bench -h: %v\n%s", err, out)
	}
}

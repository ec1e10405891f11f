package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-dev/tollgate/internal/bench"
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

func TestParseBenchFlags(t *testing.T) {
	c, err := parseBenchFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Rate != 200 || c.opts.Duration != 10*time.Second || c.opts.Warmup != 2*time.Second || c.opts.Conns != 2 ||
		c.opts.HoldStreams != 1000 || c.opts.Rounds != 2 || !c.matchHeap || c.json {
		t.Errorf("defaults: %+v", c)
	}
	c, err = parseBenchFlags([]string{"--closed", "0", "--hold", "0", "--run", "2k-*", "--json"}, io.Discard)
	if err != nil || c.opts.Closed >= 0 || c.opts.HoldStreams >= 0 || c.run != "2k-*" || !c.json {
		t.Errorf("zeros must skip: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"--rate", "0"}, {"--duration", "-1s"}, {"--conns", "0"}, {"--rounds", "0"}, {"extra"}, {"--nope"}} {
		if _, err := parseBenchFlags(bad, io.Discard); err != errUsage {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all, err := bench.LoadScenarios(bench.DefaultScenarios())
	if err != nil {
		t.Fatal(err)
	}
	got, err := selectScenarios(all, "2k-*, deny-bad-key")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "2k-json,2k-sse50,deny-bad-key" {
		t.Errorf("selected %v", names)
	}
	if _, err := selectScenarios(all, "nothing-like-this"); err == nil {
		t.Error("a pattern matching nothing was accepted")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
// syncBuffer guards a buffer written by a server and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBenchEchoServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- benchCommand(ctx, []string{"echo", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ballast-mib", "1"}, io.Discard, &stderr)
	}()
	var addrs map[string]string
	for deadline := time.Now().Add(10 * time.Second); addrs == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no address line: %q", stderr.String())
		}
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			json.Unmarshal(sc.Bytes(), &addrs) //nolint:errcheck // retried until it parses
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":path", RawValue: []byte("/")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRequestHeaders() == nil || resp.GetRequestHeaders().GetResponse() != nil {
		t.Errorf("echo replied %v; want an empty request_headers CONTINUE", resp)
	}
	m, err := bench.Scrape(ctx, "http://"+addrs["admin"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("go_memstats_mallocs_total"); !ok {
		t.Error("echo metrics lack the Go collector")
	}
	resp2, err := http.Post("http://"+addrs["admin"]+"/ballast?live=20000000", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if n, err := strconv.Atoi(strings.TrimSpace(string(held))); err != nil || n <= 0 || n > 20000000 {
		t.Errorf("ballast answer %q", held)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("echo ended with %v", err)
	}
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
	var stderr syncBuffer
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
	for _, sc := range rep.Scenarios[:3] {
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
	if s := rep.Scenarios[3]; s.Status != bench.StatusNotYet || len(s.Runs) != 0 {
		t.Errorf("cache-hit: %+v", s)
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

func TestBenchBody(t *testing.T) {
	var out, errb bytes.Buffer
	if err := benchCommand(context.Background(), []string{"body", "--bytes", "4096", "--stream=false"}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var m map[string]any
	if out.Len() != 4096 || json.Unmarshal(out.Bytes(), &m) != nil || m["stream"] != false || m["model"] != "claude-opus-4-8" {
		t.Errorf("body: %d bytes, %v", out.Len(), m["stream"])
	}
}

package gateway

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/internal/logbuf"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy"
)

// crashChild is a serving process: this test binary re-executed to call Run
// (see TestMain).
type crashChild struct {
	cmd             *exec.Cmd
	grpc, admin     string
	logs            *logbuf.Buffer
	exited          chan struct{}
	adminTokenValue string
}

// startCrashChild starts a serving process on the given policy, Redis and
// spool directory, and waits until it is ready.
func startCrashChild(t *testing.T, policyPath, redisURL, spoolDir, tokenFile string) *crashChild {
	t.Helper()
	cfg := testConfig(t)
	cfg.PolicyPath, cfg.RedisURL, cfg.SpoolDir, cfg.AdminTokenFile = policyPath, redisURL, spoolDir, tokenFile
	// The test is about the crash, not about a slow Redis: 20 reserves at
	// once under the race detector on a busy machine can take longer than
	// the default 100 ms and would be refused (fail_mode closed).
	cfg.BudgetTimeout = 10 * time.Second
	c := &crashChild{grpc: cfg.GRPCAddr, admin: cfg.AdminAddr, logs: &logbuf.Buffer{}, exited: make(chan struct{}), adminTokenValue: "admin-secret"}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(os.Args[0])
	c.cmd.Env = append(os.Environ(), childConfigEnv+"="+string(cfgJSON), "CRASH_PROVIDER_KEY=provider-key")
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }() //nolint:errcheck // the exit is checked by the caller
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill() //nolint:errcheck
			<-c.exited
		}
	})
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + c.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case <-c.exited:
			t.Fatalf("tollgate exited at start:\n%s", c.logs.String())
		default:
		}
		if i == 600 {
			t.Fatalf("tollgate never ready:\n%s", c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get reads an admin endpoint with the admin token.
func (c *crashChild) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.admin+path, nil)
	req.Header.Set("authorization", "Bearer "+c.adminTokenValue)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	return string(b)
}

// metric is the value of an unlabelled series on /metrics, or "" when absent.
func (c *crashChild) metric(t *testing.T, name string) string {
	for _, line := range strings.Split(c.get(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// crashRecord is what the test reads of a record from the records API.
type crashRecord struct {
	ID              string `json:"id"`
	Outcome         string `json:"outcome"`
	ErrorType       string `json:"error_type"`
	Stream          bool   `json:"stream"`
	KeyID           string `json:"key_id"`
	Model           string `json:"model"`
	ReservationID   string `json:"reservation_id"`
	ReservedPicoUSD int64  `json:"reserved_pico_usd"`
	CostPicoUSD     int64  `json:"cost_pico_usd"`
}

func (c *crashChild) records(t *testing.T) []crashRecord {
	t.Helper()
	var out struct {
		Records []crashRecord `json:"records"`
	}
	if err := json.Unmarshal([]byte(c.get(t, "/v1/records?limit=1000")), &out); err != nil {
		t.Fatal(err)
	}
	return out.Records
}

// TestServeKillLeavesIncompleteRecords streams N requests through the Envoy
// stand-in to a real serving process with a Redis records sink and
// Redis budgets, kills the process with SIGKILL while every stream is in
// flight, and restarts it on the same spool directory: the records API must
// then hold one incomplete record per stream (error type gateway_crashed,
// with its reservation), each once; a graceful stop and a third start add
// none.
func TestServeKillLeavesIncompleteRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three tollgate processes")
	}
	const n = 20
	rdb := redistest.Start(t)
	fake := envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: "provider-key"})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })

	dir := t.TempDir()
	policyPath, tokenFile, spoolDir := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "token"), filepath.Join(dir, "spool")
	pol := `version: 1
providers:
  demo: {type: anthropic, base_url: '` + fake.URL() + `', api_key: '${CRASH_PROVIDER_KEY}'}
routes:
  demo: {chain: [demo], cluster: chain_demo}
default_route: demo
keys:
  - {id: alice, sha256: ` + policy.HashKey("tg-crash") + `, team: platform, budgets: [{usd: 1000, per: day}]}
`
	os.WriteFile(policyPath, []byte(pol), 0o600)
	os.WriteFile(tokenFile, []byte("admin-secret\n"), 0o600)

	first := startCrashChild(t, policyPath, rdb.URL(), spoolDir, tokenFile)
	h, err := envoytest.Start(envoytest.Config{
		EnvoyYAML: "../envoy.yaml",
		Clusters:  map[string]string{"tollgate": first.grpc, "prov_demo": fake.Addr(), "prov_anthropic": fake.Addr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })

	// N streams, each held open by the fake provider (a "-slow" model sends a
	// delta every 20 ms for a minute), each read up to its first event: by
	// then its request was admitted and went on to the provider.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	started := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"model":"claude-sonnet-4-5-slow","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL()+"/v1/messages", strings.NewReader(body))
			req.Header.Set("x-api-key", "tg-crash")
			req.Header.Set("anthropic-version", "2023-06-01")
			req.Header.Set("content-type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				started <- err
				return
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			line, err := rd.ReadString('\n')
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(line, "event: message_start") {
				started <- fmt.Errorf("status %d, first line %q, %v", resp.StatusCode, line, err)
				return
			}
			started <- nil
			io.Copy(io.Discard, rd) //nolint:errcheck // until the kill cuts it
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-started; err != nil {
			t.Fatalf("stream %d: %v\nlogs:\n%s", i, err, first.logs.String())
		}
	}
	if got := first.records(t); len(got) != 0 {
		t.Fatalf("records before the kill: %+v", got)
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	cancel()
	wg.Wait()

	second := startCrashChild(t, policyPath, rdb.URL(), spoolDir, tokenFile)
	var got []crashRecord
	for i := 0; ; i++ {
		got = second.records(t)
		if len(got) >= n || i == 300 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, r := range got {
		seen[r.ID]++
		if r.Outcome != "incomplete" || r.ErrorType != "gateway_crashed" || !r.Stream || r.KeyID != "alice" ||
			r.Model != "claude-sonnet-4-5-slow" || r.ReservationID == "" || r.ReservedPicoUSD <= 0 || r.CostPicoUSD != 0 {
			t.Errorf("record after the crash: %+v", r)
		}
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("after a kill -9 with %d streams in flight and a restart: %d records, %d distinct ids; want %d\nlogs:\n%s",
			n, len(got), len(seen), n, second.logs.String())
	}
	if v := second.metric(t, "tollgate_records_recovered_total"); v != fmt.Sprint(n) {
		t.Errorf("tollgate_records_recovered_total = %q; want %d", v, n)
	}

	// A graceful stop leaves nothing to report, and a third start reports
	// nothing again.
	second.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	<-second.exited
	if code := second.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("graceful stop: exit %d\n%s", code, second.logs.String())
	}
	third := startCrashChild(t, policyPath, rdb.URL(), spoolDir, tokenFile)
	if v := third.metric(t, "tollgate_records_recovered_total"); v != "0" {
		t.Errorf("third start: tollgate_records_recovered_total = %q; want 0", v)
	}
	if got := third.records(t); len(got) != n {
		t.Errorf("third start: %d records; want still %d", len(got), n)
	}
}

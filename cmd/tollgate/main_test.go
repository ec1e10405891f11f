package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate-dev/tollgate/policy"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestParseServeFlagsEnvAndFlags(t *testing.T) {
	env := map[string]string{"TOLLGATE_GRPC_ADDR": "unix:/tmp/tg.sock", "TOLLGATE_POLICY": "/etc/p.yaml", "TOLLGATE_SHUTDOWN_TIMEOUT": "5s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := parseServeFlags([]string{"--admin-addr", "127.0.0.1:1"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "unix:/tmp/tg.sock" || c.PolicyPath != "/etc/p.yaml" || c.ShutdownTimeout != 5*time.Second || c.AdminAddr != "127.0.0.1:1" {
		t.Errorf("config = %+v", c)
	}
	c, err = parseServeFlags([]string{"--grpc-addr", ":1"}, lookup, io.Discard)
	if err != nil || c.GRPCAddr != ":1" {
		t.Errorf("a flag must override the environment: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"--nope"}, {"extra"}, {"--log-format", "xml"}} {
		if _, err := parseServeFlags(bad, lookup, io.Discard); err != errUsage {
			t.Errorf("%v: err = %v; want usage", bad, err)
		}
	}
	env["TOLLGATE_SHUTDOWN_TIMEOUT"] = "soon"
	if _, err := parseServeFlags(nil, lookup, io.Discard); err != errUsage {
		t.Errorf("bad duration in env accepted: %v", err)
	}
}

func TestPolicyCheck(t *testing.T) {
	out, err := runCmd(t, "", "policy", "check", "../../deploy/policy.example.yaml")
	if err != nil {
		t.Fatalf("example policy: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok") {
		t.Errorf("output: %s", out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nproviders:\n  a: {type: anthropic, api_key: '${K}', colour: red}\nroutes:\n  r: {chain: [a, b]}\n"), 0o600)
	out, err = runCmd(t, "", "policy", "check", bad)
	if err == nil {
		t.Fatalf("broken policy passed:\n%s", out)
	}
	for _, want := range []string{bad + ":3:", bad + ":5:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCmd(t, "", "policy", "check"); err != errUsage {
		t.Errorf("missing FILE: %v", err)
	}
}

func TestHashKey(t *testing.T) {
	out, err := runCmd(t, "tg-demo-key\n", "hash-key")
	if err != nil || strings.TrimSpace(out) != policy.HashKey("tg-demo-key") {
		t.Fatalf("hash-key = %q, %v", out, err)
	}
	out, err = runCmd(t, "", "hash-key", "--generate")
	if err != nil || !strings.Contains(out, "key:    tg-") || !strings.Contains(out, "sha256: ") {
		t.Fatalf("--generate = %q, %v", out, err)
	}
	if _, err := runCmd(t, "", "hash-key"); err != errUsage {
		t.Errorf("empty stdin: %v", err)
	}
}

func TestVersionAndUsage(t *testing.T) {
	if out, err := runCmd(t, "", "version"); err != nil || !strings.HasPrefix(out, "tollgate ") {
		t.Errorf("version: %q %v", out, err)
	}
	if _, err := runCmd(t, ""); err != errUsage {
		t.Errorf("no command: %v", err)
	}
	if _, err := runCmd(t, "", "frobnicate"); err != errUsage {
		t.Errorf("unknown command: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeStartsOnEmbeddedDefault runs `serve` with no policy: it must come up
// on the embedded demo policy, answer health checks on both ports, and drain
// when its context ends.
func TestServeStartsOnEmbeddedDefault(t *testing.T) {
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	c, err := parseServeFlags([]string{"--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--shutdown-timeout", "5s"},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, logs) }()

	ready := false
	for i := 0; i < 100 && !ready; i++ {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == 200
		}
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ready {
		cancel()
		t.Fatalf("never ready; logs:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("go_goroutines")) {
		t.Error("/metrics lacks the Go collector")
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health = %v, %v", hc, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "embedded demo policy") {
		t.Errorf("no warning about the demo policy in the logs:\n%s", logs.String())
	}
}

// syncWriter guards a buffer written by the server and read by the test.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/tollgate-dev/tollgate/internal/redistest"
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
	if c.BudgetEarlyBodyTimeout != 10*time.Second {
		t.Errorf("--budget-early-body-timeout defaults to %v, want 10s", c.BudgetEarlyBodyTimeout)
	}
	if c, err := parseServeFlags([]string{"--budget-early-body-timeout", "3s"}, lookup, io.Discard); err != nil || c.BudgetEarlyBodyTimeout != 3*time.Second {
		t.Errorf("--budget-early-body-timeout 3s: %v, %v", c.BudgetEarlyBodyTimeout, err)
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
	grpcAddr, adminAddr, cancel, done, logs := startServe(t)

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

// startServe runs serve on free loopback ports with no policy file. The returned
// cancel starts the drain; done yields serve's result.
func startServe(t *testing.T, extra ...string) (grpcAddr, adminAddr string, cancel context.CancelFunc, done chan error, logs *syncBuffer) {
	t.Helper()
	grpcAddr, adminAddr = freeAddr(t), freeAddr(t)
	args := append([]string{"--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--shutdown-timeout", "5s",
		"--spool-dir", t.TempDir(), "--records-log=false"}, extra...)
	c, err := parseServeFlags(args, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs = &syncBuffer{}
	done = make(chan error, 1)
	go func() { done <- serve(ctx, c, logs) }()
	return grpcAddr, adminAddr, cancel, done, logs
}

// TestServeDrainsInFlightStreams starts a request, signals shutdown in the middle
// of it, and checks that the request still completes while new streams are
// refused and readiness fails.
func TestServeDrainsInFlightStreams(t *testing.T) {
	grpcAddr, adminAddr, cancel, done, logs := startServe(t)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := extprocv3.NewExternalProcessorClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tollgate-role", "policy")

	var stream extprocv3.ExternalProcessor_ProcessClient
	for i := 0; i < 100; i++ {
		if stream, err = client.Process(ctx, grpc.WaitForReady(true)); err == nil {
			if err = stream.Send(headers(":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-demo-key")); err == nil {
				if _, err = stream.Recv(); err == nil {
					break
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("first message: %v; logs:\n%s", err, logs.String())
	}

	cancel() // SIGTERM
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil || resp.StatusCode == http.StatusServiceUnavailable {
			if resp != nil {
				resp.Body.Close()
			}
			break
		}
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}

	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"claude-sonnet-4-5","max_tokens":1}`), EndOfStream: true}}}); err != nil {
		t.Fatalf("in-flight stream cut by the drain: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetRequestBody() == nil {
		t.Fatalf("in-flight stream did not complete: %v %v", resp, err)
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("stream end: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after the last stream ended")
	}
}

func headers(kv ...string) *extprocv3.ProcessingRequest {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: m}}}
}

// TestServeRecordsToRedis wires serve to a real redis-server: a refused request's
// record reaches the Redis stream and the records API reads it back.
func TestServeRecordsToRedis(t *testing.T) {
	rdb := redistest.Start(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("admin-secret\n"), 0o600)
	grpcAddr, adminAddr, cancel, done, logs := startServe(t, "--redis-url", rdb.URL(), "--admin-token-file", tokenFile)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tollgate-role", "policy")
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	req := headers(":method", "POST", ":path", "/v1/messages", "x-api-key", "wrong", "x-request-id", "rid-redis-1")
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetImmediateResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("want a 401, got %v %v", resp, err)
	}
	stream.CloseSend()
	stream.Recv() //nolint:errcheck // the end of the stream

	var body string
	for i := 0; i < 200 && !strings.Contains(body, "rid-redis-1"); i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/records?limit=10", nil)
		req.Header.Set("authorization", "Bearer admin-secret")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !strings.Contains(body, `"client_request_id":"rid-redis-1"`) || !strings.Contains(body, `"outcome":"denied"`) {
		t.Fatalf("records API: %s\nlogs:\n%s", body, logs.String())
	}
	req2, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/records", nil)
	if resp, err := http.DefaultClient.Do(req2); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("records API without the token: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestServeReloadsOnSIGHUP: with polling effectively off, a changed policy file
// is loaded when the process gets SIGHUP, and a broken one is refused and
// counted while the last good policy stays.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	good := func(route string) []byte {
		return []byte("version: 1\nproviders:\n  demo: {type: anthropic, base_url: 'http://127.0.0.1:1', api_key: '${X:-k}'}\n" +
			"routes:\n  " + route + ": {chain: [demo]}\nkeys:\n  - {id: a, sha256: " + policy.HashKey("tg-a") + "}\n")
	}
	os.WriteFile(path, good("one"), 0o600)
	_, adminAddr, cancel, done, logs := startServe(t, "--policy", path, "--policy-poll", "1h")
	defer func() { cancel(); <-done }()

	metric := func(result string) string {
		for i := 0; i < 100; i++ {
			if resp, err := http.Get("http://" + adminAddr + "/metrics"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, line := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(line, `tollgate_policy_reloads_total{result="`+result+`"}`) {
						return strings.Fields(line)[1]
					}
				}
				return "0"
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no /metrics; logs:\n%s", logs.String())
		return ""
	}
	waitFor := func(result, want string) {
		t.Helper()
		for i := 0; i < 200; i++ {
			if metric(result) == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("tollgate_policy_reloads_total{result=%q} never reached %s; logs:\n%s", result, want, logs.String())
	}
	metric("ok") // serving

	os.WriteFile(path, good("two"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP) //nolint:errcheck
	waitFor("ok", "1")

	os.WriteFile(path, []byte("version: 1\nbogus: true\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP) //nolint:errcheck
	waitFor("error", "1")
	if !strings.Contains(logs.String(), "keeping the last good policy") {
		t.Errorf("the failed reload was not logged:\n%s", logs.String())
	}
}

// TestHealthcheck: the container healthcheck succeeds on 200 only.
func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if _, err := runCmd(t, "", "healthcheck", "--url", srv.URL); err != nil {
		t.Errorf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if _, err := runCmd(t, "", "healthcheck", "--url", srv.URL); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	if _, err := runCmd(t, "", "healthcheck", "--url", "http://127.0.0.1:1/readyz", "--timeout", "1s"); err == nil {
		t.Error("nothing listening, yet healthy")
	}
}

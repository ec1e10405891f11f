package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
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

	"github.com/tollgate-dev/tollgate/internal/logbuf"
	"github.com/tollgate-dev/tollgate/internal/loopback"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy"
)

// TestServeStartsOnEmbeddedDefault runs Run with no policy: it must come up
// on the embedded demo policy, answer health checks on both ports, and drain
// when its context ends.
func TestServeStartsOnEmbeddedDefault(t *testing.T) {
	grpcAddr, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.Warnings = []string{"a warning of the command"} })

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
	for _, want := range []string{"embedded demo policy", `"msg":"a warning of the command"}`, `"version":"dev"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

// startServe runs Run on free loopback ports with no policy file, the default
// settings otherwise, changed by each of with. The returned cancel starts the
// drain; done yields Run's result.
func startServe(t *testing.T, with ...func(*Config)) (grpcAddr, adminAddr string, cancel context.CancelFunc, done chan error, logs *logbuf.Buffer) {
	t.Helper()
	c := testConfig(t)
	for _, f := range with {
		f(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs = &logbuf.Buffer{}
	done = make(chan error, 1)
	go func() { done <- Run(ctx, c, logs) }()
	return c.GRPCAddr, c.AdminAddr, cancel, done, logs
}

// testConfig is DefaultConfig on free loopback ports, with a spool directory
// of the test's, a short shutdown deadline and no record logging.
func testConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.GRPCAddr, c.AdminAddr = loopback.FreeAddr(t), loopback.FreeAddr(t)
	c.ShutdownTimeout = 5 * time.Second
	c.SpoolDir = t.TempDir()
	c.RecordsLog = "false"
	return c
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
		RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[]}`), EndOfStream: true}}}); err != nil {
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

// policyStream opens a Process stream to the server at grpcAddr in the policy
// role, waiting for the server to come up; the connection closes when the
// test ends.
func policyStream(t *testing.T, grpcAddr string) extprocv3.ExternalProcessor_ProcessClient {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tollgate-role", "policy")
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	return stream
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
	grpcAddr, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.RedisURL, c.AdminTokenFile = rdb.URL(), tokenFile })

	stream := policyStream(t, grpcAddr)
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
	_, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.PolicyPath, c.PolicyPoll = path, time.Hour })
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

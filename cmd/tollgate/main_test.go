package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/logbuf"
	"github.com/tollgate-dev/tollgate/internal/loopback"
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
	if c.SpendMemoryRecords != 100_000 {
		t.Errorf("--spend-memory-records defaults to %d, want 100000", c.SpendMemoryRecords)
	}
	if c, err := parseServeFlags([]string{"--spend-memory-records", "5000"}, lookup, io.Discard); err != nil || c.SpendMemoryRecords != 5000 {
		t.Errorf("--spend-memory-records 5000: %v, %v", c.SpendMemoryRecords, err)
	}
	if c.EndingWait != 2*time.Second {
		t.Errorf("--ending-wait defaults to %v, want 2s", c.EndingWait)
	}
	if c, err := parseServeFlags([]string{"--ending-wait", "500ms"}, lookup, io.Discard); err != nil || c.EndingWait != 500*time.Millisecond {
		t.Errorf("--ending-wait 500ms: %v, %v", c.EndingWait, err)
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

// TestParseServeFlagsDefaults: with no flags and no environment, serve runs on
// gateway.DefaultConfig, stamped with this binary's version.
func TestParseServeFlagsDefaults(t *testing.T) {
	c, err := parseServeFlags(nil, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.DefaultConfig()
	want.Version = version
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// TestParseServeFlagsDeprecatedSecret: the decision secret settings are
// accepted and ignored, with one warning for the log.
func TestParseServeFlagsDeprecatedSecret(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		env   map[string]string
		warns int
	}{
		{nil, nil, 0},
		{[]string{"--decision-secret-file", "/nonexistent"}, nil, 1},
		{nil, map[string]string{"TOLLGATE_DECISION_SECRET_FILE": "/nonexistent"}, 1},
		{nil, map[string]string{"TOLLGATE_DECISION_SECRET": "s3cret"}, 1},
		{[]string{"--decision-secret-file", "/x"}, map[string]string{"TOLLGATE_DECISION_SECRET": "s3cret"}, 1},
	} {
		lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		c, err := parseServeFlags(tt.args, lookup, io.Discard)
		if err != nil || len(c.Warnings) != tt.warns {
			t.Errorf("%v %v: warnings %q, %v", tt.args, tt.env, c.Warnings, err)
		}
		for _, w := range c.Warnings {
			if !strings.Contains(w, "deprecated and ignored") || strings.Contains(w, "s3cret") {
				t.Errorf("warning %q", w)
			}
		}
	}
}

// TestServeCommand runs `tollgate serve` through the command line: it serves
// until its context ends, logs this binary's version and the deprecation
// warning, and returns nil after the drain.
func TestServeCommand(t *testing.T) {
	grpcAddr, adminAddr := loopback.FreeAddr(t), loopback.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs logbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--spool-dir", t.TempDir(),
			"--records-log=false", "--shutdown-timeout", "5s", "--decision-secret-file", "/nonexistent"}, strings.NewReader(""), io.Discard, &logs)
	}()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + adminAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 400 {
			t.Fatalf("never ready; logs:\n%s", logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	for _, want := range []string{`"msg":"tollgate serving","version":"` + version + `","grpc":"` + grpcAddr + `"`, "deprecated and ignored", `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/records"
)

// TestSecondAttemptStartsClean runs a two-provider chain whose first provider
// refuses connections: Envoy retries on the second (previous_priorities over the
// aggregate cluster), keeping attempt 1's header map (ENVOY-EXTPROC section 12).
// Attempt 2's adapter finds the policy role's decision in the dynamic metadata
// both attempts share, and must give attempt 2 its own host, path and key, map
// the model from the original body, and leave nothing of attempt 1 behind.
func TestSecondAttemptStartsClean(t *testing.T) {
	second := envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: "key-second", BasePath: "/second"})
	if err := second.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // connections to it are refused

	src := `version: 1
providers:
  demo:
    type: anthropic
    base_url: http://first.invalid:9/first
    api_key: ${FIRST}
    models: {claude-sonnet-4-5: first-model-id}
  anthropic:
    type: anthropic
    base_url: ` + second.URL() + `/second
    api_key: ${SECOND}
    models: {claude-sonnet-4-5: second-model-id}
routes:
  demo: {chain: [demo, anthropic], cluster: chain_demo}
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform}
`
	env := map[string]string{"FIRST": "key-first", "SECOND": "key-second"}
	p, err := policy.Parse("fallback.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	recs := &collector{}
	tollgate := serveExtProc(t, p, recs, prometheus.NewRegistry(), nil)

	h, err := envoytest.Start(envoytest.Config{
		EnvoyYAML: withFallback(t),
		Clusters:  map[string]string{"tollgate": tollgate, "prov_demo": deadAddr, "prov_anthropic": second.Addr()},
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })

	client := anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	var resp *http.Response
	msg, err := client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Model != "second-model-id" {
		t.Errorf("model %q: attempt 2 must map the original body, not attempt 1's", msg.Model)
	}
	if resp.Header.Get("x-tollgate-provider") != "anthropic" || resp.Header.Get("x-tollgate-attempts") != "2" {
		t.Errorf("served by %q on attempt %q", resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"))
	}
	reqs := second.Requests()
	if len(reqs) != 1 {
		t.Fatalf("second provider got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/second/v1/messages" || r.Header.Get("x-api-key") != "key-second" || strings.Contains(string(r.Body), "first-model-id") {
		t.Errorf("attempt 2 request: path %q key %q body %s", r.Path, r.Header.Get("x-api-key"), r.Body)
	}
	if v := second.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
	rec := recs.wait(t, 1)[0]
	if rec.Provider != "anthropic" || rec.Outcome != "ok" {
		t.Errorf("record provider %q outcome %q", rec.Provider, rec.Outcome)
	}
	// The record names the model the client asked for, the one the serving
	// provider was sent, and every attempt with the model it sent.
	if rec.RequestedModel != "claude-sonnet-4-5" || rec.Model != "second-model-id" {
		t.Errorf("record models: requested %q, sent %q", rec.RequestedModel, rec.Model)
	}
	// Attempt 1 never got response headers (status 0, no time to headers).
	want := []records.Attempt{{N: 1, Provider: "demo", Model: "first-model-id"}, {N: 2, Provider: "anthropic", Model: "second-model-id", Status: 200}}
	got := slices.Clone(rec.Attempts)
	if len(got) == 2 {
		if got[0].TimeToHeadersMS != 0 || got[1].TimeToHeadersMS < 0 {
			t.Errorf("times to headers %v, %v", got[0].TimeToHeadersMS, got[1].TimeToHeadersMS)
		}
		got[1].TimeToHeadersMS = 0
	}
	if !slices.Equal(got, want) {
		t.Errorf("attempts %+v; want %+v", rec.Attempts, want)
	}
}

// withFallback renders the Envoy configuration (envoy.base.yaml) for a
// demo chain that falls back from prov_demo to prov_anthropic.
func withFallback(t *testing.T) string {
	t.Helper()
	return withFallbackRetry(t, 2, "")
}

// withFallbackRetry is withFallback with numRetries retries and extra lines
// of the route's retry_policy (indented by 20 spaces). The providers are
// envoy.yaml's (fake-provider:8080 and api.anthropic.com), for tests to
// point elsewhere with Config.Clusters.
func withFallbackRetry(t *testing.T, numRetries int, extra string) string {
	t.Helper()
	src := `version: 1
providers:
  demo: {type: anthropic, base_url: "http://fake-provider:8080", api_key: "${A:-a}"}
  anthropic: {type: anthropic, base_url: "https://api.anthropic.com", api_key: "${B:-b}"}
routes:
  demo:
    chain: [demo, anthropic]
    cluster: chain_demo
    fallback_on: [429, 500, 502, 503, 504, 529, connect-failure, reset]
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `}
`
	p, err := policy.Parse("fallback.yaml", []byte(src), policy.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// More retries than providers, beyond what a policy file may say, as
	// some tests need.
	p.Routes["demo"].Fallback.MaxAttempts = numRetries + 1
	s := string(renderEnvoy(t, p))
	const at = "                  retry_policy:\n"
	if strings.Count(s, at) != 1 {
		t.Fatalf("rendered configuration: %q not found once", at)
	}
	s = strings.Replace(s, at, at+extra, 1)
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

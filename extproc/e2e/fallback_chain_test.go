package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

// chain is a two-provider fallback chain through the harness: provider
// "demo" (fake a, which is sent aModel for claude-sonnet-4-5) then
// "anthropic" (fake b, sent bModel; empty: no mapping). The fakes' model
// suffixes choose their failures (FakeAnthropic).
type chain struct {
	a, b   *envoytest.FakeAnthropic
	recs   *collector
	client anthropic.Client
	pol    *policy.Policy
	// reg is the Tollgate server's metrics; with split, regAdapter and
	// recsAdapter are the second server's, which serves the adapter.
	reg, regAdapter *prometheus.Registry
	recsAdapter     *collector
}

type chainOptions struct {
	aModel, bModel string
	aDead          bool // prov_demo refuses connections
	numRetries     int  // default 1: each provider once
	retryExtra     string
	// rendered runs on the configuration rendered from the chain's policy
	// alone (renderEnvoy); numRetries, retryExtra and aDead are unused.
	rendered bool
	// split sends the adapter filter's streams to a second Tollgate server,
	// with its own memory, metrics and records: Envoy's policy filter talks
	// to one replica and every attempt's adapter to another.
	split bool
	// ledger and keyBudgets enforce budgets, on both servers when split.
	ledger     budget.Ledger
	keyBudgets string
	// aRelease is the first provider's FakeAnthropicConfig.MidBodyRelease.
	aRelease <-chan struct{}
	// endings, when set, is the endings store of both servers (Redis,
	// shared); otherwise each server keeps its own in memory.
	endings extproc.Endings
	// endingWait is the servers' EndingWait (default: extproc's).
	endingWait time.Duration
	// accessLogOnAdapter sends Envoy's access log to the second server
	// (split only): the entry of a request reaches another replica than
	// its policy stream.
	accessLogOnAdapter bool
}

// The retry policy lines every chain test adds: a short back-off and a
// per-try idle timeout that a stalled provider outlives.
const chainRetryExtra = "                    retry_back_off: {base_interval: 0.005s, max_interval: 0.02s}\n" +
	"                    per_try_idle_timeout: 1s\n"

func newChain(t *testing.T, o chainOptions) *chain {
	t.Helper()
	start := func(key, base string, release <-chan struct{}) *envoytest.FakeAnthropic {
		f := envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: key, BasePath: base, MidBodyRelease: release})
		if err := f.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	c := &chain{a: start("key-a", "/a", o.aRelease), b: start("key-b", "/b", nil), recs: &collector{}}
	aAddr := c.a.Addr()
	if o.aDead {
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		aAddr = dead.Addr().String()
		dead.Close()
	}
	bModels := ""
	if o.bModel != "" {
		bModels = "\n    models: {claude-sonnet-4-5: " + o.bModel + "}"
	}
	src := `version: 1
providers:
  demo:
    type: anthropic
    base_url: http://` + c.a.Addr() + `/a
    api_key: ${KEY_A}
    models: {claude-sonnet-4-5: ` + o.aModel + `}
  anthropic:
    type: anthropic
    base_url: http://` + c.b.Addr() + `/b
    api_key: ${KEY_B}` + bModels + `
routes:
  demo: {chain: [demo, anthropic], cluster: chain_demo, per_try_idle_timeout: 1s}
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform` + keyBudgets(o.keyBudgets) + `}
`
	env := map[string]string{"KEY_A": "key-a", "KEY_B": "key-b"}
	p, err := policy.Parse("chain.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	c.pol, c.reg = p, prometheus.NewRegistry()
	ends := func() extproc.Endings {
		if o.endings != nil {
			return o.endings
		}
		return endings.NewMemory(0, nil)
	}
	clusters := map[string]string{"tollgate": serveExtProcWith(t, p, c.recs, c.reg, o.ledger, ends(), o.endingWait)}
	if o.numRetries == 0 {
		o.numRetries = 1
	}
	if o.retryExtra == "" {
		o.retryExtra = chainRetryExtra
	}
	var envoyYAML string
	if o.rendered {
		envoyYAML = renderEnvoyFile(t, p)
	} else {
		envoyYAML = withFallbackRetry(t, o.numRetries, o.retryExtra)
		clusters["prov_demo"], clusters["prov_anthropic"] = aAddr, c.b.Addr()
	}
	if o.split {
		c.recsAdapter, c.regAdapter = &collector{}, prometheus.NewRegistry()
		clusters[adapterCluster] = serveExtProcWith(t, p, c.recsAdapter, c.regAdapter, o.ledger, ends(), o.endingWait)
		envoyYAML = withAdapterCluster(t, envoyYAML)
		if o.accessLogOnAdapter {
			envoyYAML = withAccessLogCluster(t, envoyYAML, adapterCluster)
		}
	}
	h, err := envoytest.Start(envoytest.Config{EnvoyYAML: envoyYAML, Clusters: clusters, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c.client = anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	return c
}

// serveExtProc starts a Tollgate ext_proc server of its own (its own memory,
// as another process would have) for policy p, and returns its address.
func serveExtProc(t *testing.T, p *policy.Policy, recs *collector, reg *prometheus.Registry, ledger budget.Ledger) string {
	t.Helper()
	return serveExtProcWith(t, p, recs, reg, ledger, endings.NewMemory(0, nil), 0)
}

// serveExtProcWith is serveExtProc with the server's endings store and
// ending wait (0: the default); the server also receives Envoy's access log,
// as gateway.Run's does.
func serveExtProcWith(t *testing.T, p *policy.Policy, recs *collector, reg *prometheus.Registry, ledger budget.Ledger,
	ends extproc.Endings, endingWait time.Duration) string {
	t.Helper()
	srv, err := extproc.NewServer(extproc.Options{Policies: fixedPolicy{p}, ClientFormats: []extproc.ClientFormat{anthropicfmt.Format{}},
		Translation: translations, Recorder: recs, Metrics: extproc.NewMetrics(reg), Ledger: ledger,
		Endings: ends, EndingWait: endingWait})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	accesslogv3.RegisterAccessLogServiceServer(gs, srv.AccessLogServer())
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// attemptsOf returns a record's attempts as (provider, status) pairs.
func attemptsOf(as []records.Attempt) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Provider + ":" + http.StatusText(a.Status) + ";")
	}
	return b.String()
}

// send makes one request, streaming or not, and returns the model the SDK
// saw, the response headers and the error.
func (c *chain) send(t *testing.T, stream bool) (string, http.Header, error) {
	t.Helper()
	var resp *http.Response
	if !stream {
		msg, err := c.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
		if err != nil {
			return "", nil, err
		}
		return string(msg.Model), resp.Header, nil
	}
	s := c.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	var msg anthropic.Message
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		return "", nil, err
	}
	var h http.Header
	if resp != nil {
		h = resp.Header
	}
	return string(msg.Model), h, nil
}

// A 529 from the first provider moves the request to the second, streaming
// and not: the client gets b's answer, the record both attempts and b's
// cost, and attempt 2 the original body with nothing of attempt 1's headers.
func TestFallbackOn529(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-overloaded"})
			model, hdr, err := c.send(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			if model != "claude-sonnet-4-5" {
				t.Errorf("model %q: want b's answer", model)
			}
			if hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("served by %q on attempt %q", hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}
			rec := c.recs.wait(t, 1)[0]
			if got := attemptsOf(rec.Attempts); got != "demo:"+http.StatusText(529)+";anthropic:OK;" {
				t.Errorf("attempts %s (%+v)", got, rec.Attempts)
			}
			if rec.Provider != "anthropic" || rec.Outcome != records.OutcomeOK || rec.Status != 200 || rec.Model != "claude-sonnet-4-5" ||
				rec.CostPicoUSD <= 0 || rec.PriceEstimated {
				t.Errorf("record provider %q outcome %q status %d model %q cost %d estimated %v",
					rec.Provider, rec.Outcome, rec.Status, rec.Model, rec.CostPicoUSD, rec.PriceEstimated)
			}
			if len(rec.Attempts) == 2 && (rec.Attempts[0].Model != "claude-sonnet-4-5-overloaded" || rec.Attempts[0].TimeToHeadersMS < 0) {
				t.Errorf("attempt 1 %+v", rec.Attempts[0])
			}

			// Attempt 2 starts clean: its own key, host and path, the
			// original body, and nothing of attempt 1's headers.
			ra, rb := c.a.Requests(), c.b.Requests()
			if len(ra) != 1 || len(rb) != 1 {
				t.Fatalf("requests: a %d, b %d", len(ra), len(rb))
			}
			if rb[0].Path != "/b/v1/messages" || rb[0].Host != c.b.Addr() || rb[0].Header.Get("x-api-key") != "key-b" {
				t.Errorf("attempt 2: path %q host %q key %q", rb[0].Path, rb[0].Host, rb[0].Header.Get("x-api-key"))
			}
			for k, vs := range rb[0].Header {
				for _, v := range vs {
					if strings.Contains(v, "key-a") || strings.Contains(v, c.a.Addr()) || strings.Contains(v, "/a/") {
						t.Errorf("attempt 2 header %s: %q is attempt 1's", k, v)
					}
				}
			}
			if want := bytes.Replace(ra[0].Body, []byte("claude-sonnet-4-5-overloaded"), []byte("claude-sonnet-4-5"), 1); !bytes.Equal(rb[0].Body, want) {
				t.Errorf("attempt 2 body %s; want the original %s", rb[0].Body, want)
			}
			for _, f := range []*envoytest.FakeAnthropic{c.a, c.b} {
				if v := f.Violations(); len(v) > 0 {
					t.Errorf("violations: %v", v)
				}
			}
		})
	}
}

// A connect failure, a reset before headers and a stall longer than
// per_try_idle_timeout each move the request to the next provider; the
// first attempt has no response headers, so status 0.
func TestFallbackOnConnectionFailures(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    chainOptions
	}{
		{"connect failure", chainOptions{aModel: "claude-sonnet-4-5", aDead: true}},
		{"reset", chainOptions{aModel: "claude-sonnet-4-5-reset"}},
		{"stall", chainOptions{aModel: "claude-sonnet-4-5-stall"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newChain(t, tt.o)
			model, hdr, err := c.send(t, false)
			if err != nil {
				t.Fatal(err)
			}
			if model != "claude-sonnet-4-5" || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("model %q served by %q on attempt %q", model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}
			rec := c.recs.wait(t, 1)[0]
			if len(rec.Attempts) != 2 || rec.Attempts[0].Provider != "demo" || rec.Attempts[0].Status != 0 || rec.Attempts[0].TimeToHeadersMS != 0 ||
				rec.Attempts[1].Provider != "anthropic" || rec.Attempts[1].Status != 200 {
				t.Errorf("attempts %+v", rec.Attempts)
			}
			if rec.Provider != "anthropic" || rec.Outcome != records.OutcomeOK {
				t.Errorf("record provider %q outcome %q", rec.Provider, rec.Outcome)
			}
			if len(c.b.Requests()) != 1 {
				t.Errorf("b got %d requests", len(c.b.Requests()))
			}
		})
	}
}

// A 400 from the first provider is the client's fault: it reaches the client
// as it is, and the second provider is never tried.
func TestFallbackNeverRetries400(t *testing.T) {
	c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-invalid"})
	_, _, err := c.send(t, false)
	e := apiError(t, err)
	if e.StatusCode != 400 || !strings.Contains(e.RawJSON(), `"invalid_request_error"`) {
		t.Errorf("got %d %s", e.StatusCode, e.RawJSON())
	}
	if e.Response.Header.Get("x-tollgate-provider") != "demo" || e.Response.Header.Get("x-tollgate-attempts") != "1" {
		t.Errorf("served by %q on attempt %q", e.Response.Header.Get("x-tollgate-provider"), e.Response.Header.Get("x-tollgate-attempts"))
	}
	if n := len(c.b.Requests()); n != 0 {
		t.Errorf("b got %d requests", n)
	}
	rec := c.recs.wait(t, 1)[0]
	if len(rec.Attempts) != 1 || rec.Attempts[0].Status != 400 || rec.Status != 400 {
		t.Errorf("record status %d attempts %+v", rec.Status, rec.Attempts)
	}
}

// When every provider fails, the client gets the last provider's error in
// Anthropic's shape, with its retry-after (whole seconds) and
// x-should-retry as the provider sent them.
func TestFallbackAllFailReturnsTheLastError(t *testing.T) {
	t.Run("529 then 529", func(t *testing.T) {
		c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-reset", bModel: "claude-sonnet-4-5-overloaded"})
		_, _, err := c.send(t, false)
		e := apiError(t, err)
		h := e.Response.Header
		if e.StatusCode != 529 || !strings.Contains(e.RawJSON(), `"overloaded_error"`) || errorType(t, e.RawJSON()) != "overloaded_error" {
			t.Errorf("got %d %s", e.StatusCode, e.RawJSON())
		}
		if h.Get("retry-after") != "3" || h.Get("x-should-retry") != "true" {
			t.Errorf("retry-after %q x-should-retry %q", h.Get("retry-after"), h.Get("x-should-retry"))
		}
		if h.Get("x-tollgate-provider") != "anthropic" || h.Get("x-tollgate-attempts") != "2" {
			t.Errorf("served by %q on attempt %q", h.Get("x-tollgate-provider"), h.Get("x-tollgate-attempts"))
		}
		rec := c.recs.wait(t, 1)[0]
		if got := attemptsOf(rec.Attempts); got != "demo:;anthropic:"+http.StatusText(529)+";" || rec.Status != 529 || rec.Provider != "anthropic" {
			t.Errorf("record status %d provider %q attempts %s", rec.Status, rec.Provider, got)
		}
	})
	t.Run("529 then 500", func(t *testing.T) {
		c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-overloaded", bModel: "fake-error-500"})
		_, _, err := c.send(t, false)
		e := apiError(t, err)
		if e.StatusCode != 500 || errorType(t, e.RawJSON()) != "api_error" {
			t.Errorf("got %d %s", e.StatusCode, e.RawJSON())
		}
		// b gave no retry-after: attempt 1's must not leak through.
		if h := e.Response.Header; h.Get("retry-after") != "" || h.Get("x-should-retry") != "" {
			t.Errorf("retry-after %q x-should-retry %q", h.Get("retry-after"), h.Get("x-should-retry"))
		}
	})
}

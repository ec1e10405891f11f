// Package e2e runs Tollgate end to end: the official anthropic-sdk-go client talks
// to the Envoy harness (internal/envoytest, driven by the repository's envoy.yaml),
// which consults a real Tollgate ext_proc server over gRPC and forwards to a fake
// Anthropic upstream that asserts what it received. Everything is on loopback
// sockets.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	openaifmt "github.com/tollgate-dev/tollgate/clientformat/openai"
	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/provider"
	"github.com/tollgate-dev/tollgate/records"
)

// TestMain fails the package if any goroutine outlives the tests: a stream the
// harness or Tollgate forgot to end, for instance. HTTP keep-alive connection
// loops are left out: they belong to the clients' and the harness's connection
// pools, end when their peer closes, and are not the code under test; so is a
// server connection lingering in net/http's closeWriteAndWait (it sleeps
// 500 ms after a client left with its request body unread, as the stalled-body
// tests do, which is longer than goleak retries).
func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	gatewayKey  = "tg-e2e-alice"
	providerKey = "sk-fake-provider"
)

type stack struct {
	fake    *envoytest.FakeAnthropic
	harness *envoytest.Harness
	client  anthropic.Client
	records *collector
	reg     *prometheus.Registry
	pol     *policy.Policy
}

// collector is a Recorder that keeps every record for the test to inspect.
type collector struct {
	mu   sync.Mutex
	recs []records.Record
}

func (c *collector) Admit(records.Record) {}

func (c *collector) Emit(r records.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
}

// wait returns the records once there are n of them. A record is written when
// Envoy closes the ext_proc stream, just after the client has its response.
func (c *collector) wait(t *testing.T, n int) []records.Record {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	for {
		c.mu.Lock()
		got := append([]records.Record(nil), c.recs...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d records; want %d: %+v", len(got), n, got)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stackOptions adjust newStack.
type stackOptions struct {
	recorder   extproc.Recorder // default: a collector
	ledger     budget.Ledger    // default: none, no budgets enforced
	keyBudgets string           // YAML flow list for the key's budgets, e.g. [{requests: 2, per: minute}]
	policyTail string           // top-level YAML appended to the policy
	envoyYAML  string           // default: ../../envoy.yaml
	extraKeys  string           // more entries of the policy's keys list, one "  - {...}" line each
	// earlyBodyTimeout is extproc.Options.EarlyBodyTimeout.
	earlyBodyTimeout time.Duration
	cache            extproc.ResponseCache // default: none, nothing cached
	now              func() time.Time      // default: time.Now
	// openAIFormat also serves the OpenAI client format (POST
	// /v1/chat/completions).
	openAIFormat bool
	// splitSeed is the fake provider's FakeAnthropicConfig.SplitSeed.
	splitSeed uint64
}

type fixedPolicy struct{ p *policy.Policy }

func (f fixedPolicy) Current() *policy.Policy { return f.p }

// newStack starts the fake provider, a Tollgate ext_proc server, and the harness
// built from ../../envoy.yaml with its clusters pointed at them.
func newStack(t *testing.T) *stack { return newStackWith(t, stackOptions{}) }

func newStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{records: &collector{}, reg: prometheus.NewRegistry()}
	if o.recorder == nil {
		o.recorder = s.records
	}
	fake := envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{
		APIKey:           providerKey,
		ForbiddenHeaders: []string{"x-tollgate-api-key", "x-portkey-api-key", "x-tollgate-provider", "x-portkey-provider"},
		SplitSeed:        o.splitSeed,
	})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })

	src := `version: 1
providers:
  demo:
    type: anthropic
    base_url: ` + fake.URL() + `
    api_key: ${E2E_PROVIDER_KEY}
routes:
  demo:
    chain: [demo]
    cluster: chain_demo
    models: {sonnet: claude-sonnet-4-5-20250929}
default_route: demo
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, user: alice, team: platform` + keyBudgets(o.keyBudgets) + `}
` + o.extraKeys + o.policyTail
	p, err := policy.Parse("e2e.yaml", []byte(src), policy.LoadOptions{
		RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) {
			if k == "E2E_PROVIDER_KEY" {
				return providerKey, true
			}
			return "", false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	formats := []extproc.ClientFormat{anthropicfmt.Format{}}
	if o.openAIFormat {
		formats = append(formats, openaifmt.Format{})
	}
	srv, err := extproc.NewServer(extproc.Options{Policies: fixedPolicy{p}, ClientFormats: formats, Translation: translations,
		Recorder: o.recorder, Metrics: extproc.NewMetrics(s.reg), Ledger: o.ledger, EarlyBodyTimeout: o.earlyBodyTimeout,
		Endings: endings.NewMemory(0, nil), Cache: o.cache, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	accesslogv3.RegisterAccessLogServiceServer(gs, srv.AccessLogServer())
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)

	if o.envoyYAML == "" {
		o.envoyYAML = "../../envoy.yaml"
	}
	h, err := envoytest.Start(envoytest.Config{
		EnvoyYAML: o.envoyYAML,
		Clusters: map[string]string{
			"tollgate":       lis.Addr().String(),
			"prov_demo":      fake.Addr(),
			"prov_anthropic": fake.Addr(),
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })

	s.fake, s.harness, s.pol = fake, h, p
	s.client = anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	t.Cleanup(func() {
		if v := fake.Violations(); len(v) > 0 {
			t.Errorf("the provider received what it must not: %v", v)
		}
	})
	return s
}

func keyBudgets(b string) string {
	if b == "" {
		return ""
	}
	return ", budgets: " + b
}

func (s *stack) lastRequest(t *testing.T) envoytest.RecordedRequest {
	t.Helper()
	reqs := s.fake.Requests()
	if len(reqs) == 0 {
		t.Fatal("the provider received no request")
	}
	return reqs[len(reqs)-1]
}

func hello(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 1024,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))},
	}
}

func TestMessage(t *testing.T) {
	s := newStack(t)
	msg, err := s.client.Messages.New(context.Background(), hello("sonnet"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Model != "claude-sonnet-4-5-20250929" {
		t.Errorf("model = %q; the route maps sonnet to claude-sonnet-4-5-20250929", msg.Model)
	}
	if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 || len(msg.Content) == 0 {
		t.Errorf("incomplete message: %+v", msg)
	}
	r := s.lastRequest(t)
	if r.Header.Get("x-api-key") != providerKey {
		t.Errorf("provider got x-api-key %q", r.Header.Get("x-api-key"))
	}
	if r.Header.Get("anthropic-version") == "" {
		t.Error("anthropic-version missing")
	}
	if !strings.HasPrefix(r.Path, "/v1/messages") {
		t.Errorf("path = %q", r.Path)
	}
}

func TestStreamingMessage(t *testing.T) {
	s := newStack(t)
	stream := s.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5"))
	var types []string
	var text strings.Builder
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
			text.WriteString(d.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 4 || types[0] != "message_start" || types[len(types)-1] != "message_stop" {
		t.Fatalf("events = %v", types)
	}
	if text.Len() == 0 {
		t.Error("no text deltas")
	}
}

// TestStreamPassesBytesUnchanged compares the SSE bytes the client receives with
// the file the fake provider serves: the gateway relays, it does not re-encode.
func TestStreamPassesBytesUnchanged(t *testing.T) {
	s := newStack(t)
	want, err := os.ReadFile("../../internal/envoytest/testdata/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	model := modelIn(t, want)
	resp := post(t, s, "/v1/messages", `{"model":"`+model+`","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("content-type"), "text/event-stream") {
		t.Fatalf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stream changed in transit:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// modelIn returns the model named in the message_start event of an SSE file.
func modelIn(t *testing.T, sse []byte) string {
	t.Helper()
	_, rest, ok := bytes.Cut(sse, []byte(`"model":"`))
	if !ok {
		t.Fatal("no model in the stream file")
	}
	model, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(model)
}

func post(t *testing.T, s *stack, path, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.harness.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", gatewayKey)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestCountTokens(t *testing.T) {
	s := newStack(t)
	res, err := s.client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "claude-sonnet-4-5",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.InputTokens <= 0 {
		t.Errorf("input_tokens = %d", res.InputTokens)
	}

	// Claude Code calls it with ?beta=true: the query string does not change matching
	// and reaches the provider as sent.
	resp := post(t, s, "/v1/messages/count_tokens?beta=true", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("count_tokens?beta=true: %d", resp.StatusCode)
	}
	if p := s.lastRequest(t).Path; p != "/v1/messages/count_tokens?beta=true" {
		t.Errorf("provider path = %q", p)
	}
	for _, r := range s.records.wait(t, 2) {
		if r.Endpoint != "count_tokens" || r.Outcome != records.OutcomeOK || r.Status != 200 || r.CostPicoUSD != 0 {
			t.Errorf("count_tokens record: %+v", r)
		}
	}
}

func TestModels(t *testing.T) {
	s := newStack(t)
	page, err := s.client.Models.List(context.Background(), anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) == 0 {
		t.Error("no models listed")
	}
}

func TestBadKeyIs401(t *testing.T) {
	s := newStack(t)
	for _, key := range []string{"tg-wrong", ""} {
		client := anthropic.NewClient(option.WithBaseURL(s.harness.URL()), option.WithAPIKey(key), option.WithMaxRetries(0))
		_, err := client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" {
			t.Errorf("key %q: got %v; want 401 authentication_error", key, err)
		}
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the provider saw %d requests", n)
	}
}

func TestUnknownPathIs404(t *testing.T) {
	s := newStack(t)
	resp := post(t, s, "/v1/complete", `{}`, nil)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || resp.Header.Get("content-type") != "application/json" {
		t.Fatalf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}
	// One Anthropic error object, not wrapped again by Envoy's local_reply_config.
	if !bytes.HasPrefix(body, []byte(`{"type":"error","error":{"type":"not_found_error"`)) {
		t.Errorf("body = %s", body)
	}
}

// TestProviderDownIsAnthropicShaped stops the provider: Envoy's own 503 must
// reach the client as an Anthropic error (local_reply_config in envoy.yaml).
func TestProviderDownIsAnthropicShaped(t *testing.T) {
	s := newStack(t)
	s.fake.Close()
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Type() != "api_error" {
		t.Fatalf("got %v; want a 503 api_error", err)
	}
	if !strings.Contains(apiErr.Message, "upstream connect error") {
		t.Errorf("message = %q", apiErr.Message)
	}
}

func TestWarmUpProbe(t *testing.T) {
	s := newStack(t)
	for _, path := range []string{"/", "/api/hello"} {
		req, _ := http.NewRequest(http.MethodHead, s.harness.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", path, resp.StatusCode)
		}
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the probe reached the provider %d times", n)
	}
}

func TestBetaHeadersForwarded(t *testing.T) {
	s := newStack(t)
	const beta = "claude-code-20250219,context-management-2025-06-27,effort-2025-11-24,oauth-2025-04-20"
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"),
		option.WithHeader("anthropic-beta", beta), option.WithHeader("anthropic-version", "2023-06-01"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.lastRequest(t)
	if got := r.Header.Get("anthropic-beta"); got != beta {
		t.Errorf("anthropic-beta = %q; want %q", got, beta)
	}
	if got := r.Header.Values("anthropic-version"); len(got) != 1 || got[0] != "2023-06-01" {
		t.Errorf("anthropic-version = %q", got)
	}
}

// TestClaudeCodeBodyPassesByteForByte sends a Claude Code-shaped body routed with
// "@demo/model": the provider must get the same bytes with only the model edited.
func TestClaudeCodeBodyPassesByteForByte(t *testing.T) {
	s := newStack(t)
	body, err := os.ReadFile("testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	resp := post(t, s, "/v1/messages?beta=true", string(body), map[string]string{
		"x-api-key":                    "",
		"authorization":                "Bearer " + gatewayKey,
		"anthropic-beta":               "claude-code-20250219,context-management-2025-06-27",
		"x-claude-code-session-id":     "0b1f6a52-3c1e-4d7a-9f0e-8d2b7c4e5a61",
		"accept-encoding":              "gzip, deflate, br, zstd",
		"x-tollgate-internal-decision": "forged",
	})
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if p, a := resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"); p != "demo" || a != "1" {
		t.Errorf("x-tollgate-provider %q, x-tollgate-attempts %q; want demo, 1", p, a)
	}
	r := s.lastRequest(t)
	want := bytes.Replace(body, []byte(`"model":"@demo/claude-opus-4-8"`), []byte(`"model":"claude-opus-4-8"`), 1)
	if !bytes.Equal(r.Body, want) {
		t.Errorf("body changed beyond the model:\ngot:  %s\nwant: %s", r.Body, want)
	}
	if r.Path != "/v1/messages?beta=true" {
		t.Errorf("path = %q", r.Path)
	}
	if ae := r.Header.Get("accept-encoding"); strings.Contains(ae, "gzip") || strings.Contains(ae, "br") {
		t.Errorf("accept-encoding reached the provider: %q", ae)
	}
	if v := r.Header.Get("anthropic-version"); v != "2023-06-01" {
		t.Errorf("anthropic-version = %q; the gateway adds 2023-06-01 when the client sent none", v)
	}
	if r.Header.Get("x-claude-code-session-id") == "" {
		t.Error("x-claude-code-session-id was dropped")
	}
}

// TestLargeRequest sends a 20 MB prompt: envoy.yaml's buffer limits and the gRPC
// message size must admit it.
func TestLargeRequest(t *testing.T) {
	s := newStack(t)
	big := strings.Repeat("All work and no play makes Jack a dull boy. ", 20<<20/44+1)
	_, err := s.client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 16,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(big))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.lastRequest(t).Body); n < 20<<20 {
		t.Errorf("provider got %d bytes", n)
	}
}

// TestClientCancelMidStream cancels a slow stream after a few events: the events
// must have arrived one by one (the stream is far from done), the provider must
// see the cancellation, and no goroutine may leak (TestMain checks).
func TestClientCancelMidStream(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-fake-slow","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", gatewayKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	deltas := 0
	for deltas < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: content_block_delta") {
			deltas++
		}
	}
	if deltas < 3 {
		t.Fatalf("stream ended after %d deltas: %v", deltas, sc.Err())
	}
	cancel()
	resp.Body.Close()

	deadline := time.Now().Add(10 * time.Second)
	for s.fake.Cancellations() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.fake.Cancellations() == 0 {
		t.Error("the provider never saw the cancellation")
	}
}

// TestAdapterAsksForTheBodyOnlyToRewriteIt: an attempt whose body the adapter
// leaves as it is switches the body off in its headers reply (mode_override),
// so Envoy sends it no body; a model the route maps still gets its body read
// and rewritten.
func TestAdapterAsksForTheBodyOnlyToRewriteIt(t *testing.T) {
	s := newStack(t)
	adapterBodies := func() float64 {
		return metricValue(t, s.reg, "tollgate_phase_duration_seconds", map[string]string{"role": "adapter", "phase": "request_body"})
	}

	for _, c := range []struct {
		model, sent string
		bodies      float64 // adapter body messages so far
	}{
		{"claude-sonnet-4-5", "claude-sonnet-4-5", 0},                 // unmapped: no body to the adapter
		{"sonnet", "claude-sonnet-4-5-20250929", 1},                   // the route's mapping: body read and rewritten
		{"claude-sonnet-4-5-made-up", "claude-sonnet-4-5-made-up", 1}, // unmapped again
	} {
		if _, err := s.client.Messages.New(context.Background(), hello(c.model)); err != nil {
			t.Fatal(err)
		}
		if got := providerModel(t, s.lastRequest(t).Body); got != c.sent {
			t.Errorf("%s: the provider got model %q, want %q", c.model, got, c.sent)
		}
		if n := adapterBodies(); n != c.bodies {
			t.Errorf("after %s: the adapter received %v bodies in all, want %v", c.model, n, c.bodies)
		}
	}
}

func providerModel(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("provider body: %v", err)
	}
	return v.Model
}

// translations is extproc.Options.Translation as the wiring sets it.
func translations(clientFormat, providerType string) (extproc.Translation, bool) {
	return provider.Translation(clientFormat, providerType)
}

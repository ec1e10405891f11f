package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/prometheus/client_golang/prometheus"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// The project and region the fake Vertex AI serves, and the Vertex id
// claude-sonnet-4-5 maps to.
const (
	vertexProject = "fake-project"
	vertexRegion  = "us-east5"
	vertexModel   = "claude-sonnet-4-5@20250929"
)

// vertexPath is the path under which the fake Vertex AI serves the Anthropic
// models.
const vertexPath = "/v1/projects/" + vertexProject + "/locations/" + vertexRegion + "/publishers/anthropic/models/"

// vertexStack is a Tollgate in front of a fake Vertex AI (provider "demo",
// route demo), or with anthropicFirst, a fake Anthropic (provider "demo",
// whose model suffix chooses its failure) falling back to the fake Vertex AI
// (provider "anthropic", of type vertex), or with vertexFirst the other way
// round.
type vertexStack struct {
	vertex    *envoytest.FakeVertex
	anthropic *envoytest.FakeAnthropic
	harness   *envoytest.Harness
	client    anthropic.Client
	recs      *collector
	reg       *prometheus.Registry
}

type vertexOptions struct {
	tokenLifetime time.Duration
	// foreignKey has Tollgate take its tokens from another fake's token
	// endpoint: tokens this fake never issued.
	foreignKey bool
	// deadTokenEndpoint points the key's token_uri at a closed port.
	deadTokenEndpoint bool
	anthropicFirst    bool
	aModel            string // with anthropicFirst, what the fake Anthropic is sent
	vertexFirst       bool
	vModel            string // what Vertex AI is sent for claude-sonnet-4-5; default vertexModel
	// defaultModels leaves the models field out: the type's default
	// mapping applies (vModel is ignored).
	defaultModels bool
	compat        string // the Vertex provider's compat mapping, if any
	violations    bool   // the test provokes violations of the fake Vertex AI
}

func newFakeVertex(t *testing.T, lifetime time.Duration) *envoytest.FakeVertex {
	t.Helper()
	v, err := envoytest.NewFakeVertex(envoytest.FakeVertexConfig{Project: vertexProject, Region: vertexRegion, TokenLifetime: lifetime,
		ForbiddenHeaders: []string{"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func newVertexStack(t *testing.T, o vertexOptions) *vertexStack {
	t.Helper()
	s := &vertexStack{recs: &collector{}, reg: prometheus.NewRegistry()}
	s.vertex = newFakeVertex(t, o.tokenLifetime)
	key := s.vertex.ServiceAccountJSON()
	if o.foreignKey {
		key = newFakeVertex(t, 0).ServiceAccountJSON()
	}
	if o.deadTokenEndpoint {
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead.Close() // connections to it are refused
		key = bytes.Replace(key, []byte(s.vertex.TokenURL()), []byte("http://"+dead.Addr().String()+"/token"), 1)
	}
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if o.vModel == "" {
		o.vModel = vertexModel
	}
	vertexName, chain, envoyYAML := "demo", "[demo]", "../../envoy.yaml"
	clusters := map[string]string{"prov_demo": s.vertex.Addr()}
	providers := ""
	if o.anthropicFirst || o.vertexFirst {
		s.anthropic = envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: providerKey})
		if err := s.anthropic.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.anthropic.Close() })
		chain, envoyYAML = "[demo, anthropic]", withFallbackRetry(t, 1, chainRetryExtra)
		aName, models := "anthropic", ""
		if o.anthropicFirst {
			aName, vertexName, models = "demo", "anthropic", "\n    models: {claude-sonnet-4-5: "+o.aModel+"}"
		}
		clusters = map[string]string{"prov_" + vertexName: s.vertex.Addr(), "prov_" + aName: s.anthropic.Addr()}
		providers = "  " + aName + ":\n    type: anthropic\n    base_url: " + s.anthropic.URL() + "\n    api_key: ${ANTHROPIC_KEY}" + models + "\n"
	}
	providers += `  ` + vertexName + `:
    type: vertex
    project: ` + vertexProject + `
    region: ` + vertexRegion + `
    base_url: ` + s.vertex.URL() + `
    credentials_file: ` + keyFile + "\n"
	if !o.defaultModels {
		providers += `    models: {claude-sonnet-4-5: "` + o.vModel + `"}` + "\n"
	}
	if o.compat != "" {
		providers += "    compat: " + o.compat + "\n"
	}
	src := "version: 1\nproviders:\n" + providers + `routes:
  demo: {chain: ` + chain + `, cluster: chain_demo}
default_route: demo
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform}
`
	p, err := policy.Parse("vertex.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { return providerKey, k == "ANTHROPIC_KEY" }})
	if err != nil {
		t.Fatal(err)
	}
	clusters["tollgate"] = serveExtProc(t, p, s.recs, s.reg, nil)
	h, err := envoytest.Start(envoytest.Config{EnvoyYAML: envoyYAML, Clusters: clusters, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.harness = h
	s.client = anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	t.Cleanup(func() {
		if v := s.vertex.Violations(); len(v) > 0 && !o.violations {
			t.Errorf("the fake Vertex AI received what it must not: %v", v)
		}
		if s.anthropic != nil {
			if v := s.anthropic.Violations(); len(v) > 0 {
				t.Errorf("the fake Anthropic received what it must not: %v", v)
			}
		}
	})
	return s
}

func (s *vertexStack) post(t *testing.T, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.harness.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", gatewayKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// checkVertexRequest checks that the fake Vertex AI got a request for the
// method of vertexModel with a bearer token and no gateway key.
func checkVertexRequest(t *testing.T, r envoytest.RecordedRequest, method string) {
	t.Helper()
	if want := vertexPath + vertexModel + ":" + method; r.Path != want {
		t.Errorf("path %s; want %s", r.Path, want)
	}
	if !strings.HasPrefix(r.Header.Get("authorization"), "Bearer ya29.fake-") || r.Header.Get("x-api-key") != "" {
		t.Errorf("authorization %q, x-api-key %q", r.Header.Get("authorization"), r.Header.Get("x-api-key"))
	}
}

// vertexCost checks that a record is priced at the catalog's Vertex AI
// price of claude-sonnet-4-5@20250929 (the Claude API's rates for Sonnet
// 4.5: $3 / $15 per MTok, cache reads $0.30, 5-minute writes $3.75, 1-hour
// writes $6), exactly.
func vertexCost(t *testing.T, rec records.Record) {
	t.Helper()
	price, ok := pricing.Embedded().Lookup("vertex", vertexModel)
	if !ok || price.Estimated {
		t.Fatalf("the catalog has no Vertex AI price for %s: %+v", vertexModel, price)
	}
	if rec.CostPicoUSD != sonnetCost(rec.Usage) || rec.PriceEstimated || rec.CostPicoUSD != pricing.Cost(rec.Usage, price) || rec.CostPicoUSD == 0 {
		t.Errorf("cost %d (estimated %v) for %+v; want %d", rec.CostPicoUSD, rec.PriceEstimated, rec.Usage, sonnetCost(rec.Usage))
	}
}

// Through the harness with anthropic-sdk-go, a message from Vertex AI is the
// Message the Anthropic fixture holds, and the record has its usage and
// its cost at the Vertex AI price.
func TestVertexMessage(t *testing.T) {
	s := newVertexStack(t, vertexOptions{})
	var resp *http.Response
	msg, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	sameMessage(t, *msg, fixtureMessage(t, vertexModel))
	if resp.Header.Get("x-tollgate-provider") != "demo" {
		t.Errorf("served by %q", resp.Header.Get("x-tollgate-provider"))
	}
	reqs := s.vertex.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	checkVertexRequest(t, reqs[0], "rawPredict")
	if !bytes.HasPrefix(reqs[0].Body, []byte(`{"anthropic_version":"vertex-2023-10-16","max_tokens":1024,"messages":`)) {
		t.Errorf("body %s", reqs[0].Body)
	}
	rec := s.recs.wait(t, 1)[0]
	want := pricing.Usage{InputTokens: 2095, CacheReadTokens: 1024, CacheWrite5mTokens: 2000, CacheWrite1hTokens: 51, OutputTokens: 503}
	if rec.Outcome != records.OutcomeOK || rec.Status != 200 || rec.Usage != want || rec.Model != vertexModel {
		t.Errorf("record outcome %q status %d usage %+v model %q", rec.Outcome, rec.Status, rec.Usage, rec.Model)
	}
	vertexCost(t, rec)
}

// A stream from Vertex AI reaches the client as the Anthropic fixture's SSE,
// byte for byte (Vertex AI streams Anthropic's events, pings included); the
// SDK accumulates the same Message as from Anthropic, and the record has the
// stream's usage at the Vertex AI price.
func TestVertexStream(t *testing.T) {
	s := newVertexStack(t, vertexOptions{})
	resp, got := s.post(t, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" {
		t.Fatalf("status %d, content-type %q: %s", resp.StatusCode, resp.Header.Get("content-type"), got)
	}
	fixture, err := os.ReadFile("../../internal/envoytest/testdata/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Replace(fixture, []byte(`"model":"claude-sonnet-4-5"`), []byte(`"model":"`+vertexModel+`"`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("stream:\n%s\nwant:\n%s", got, want)
	}
	checkVertexRequest(t, s.vertex.Requests()[0], "streamRawPredict")
	if b := s.vertex.Requests()[0].Body; !bytes.Contains(b, []byte(`"stream":true`)) {
		t.Errorf("stream left the body: %s", b)
	}
	rec := s.recs.wait(t, 1)[0]
	var p anthropicfmt.StreamParser
	p.Write(fixture)
	if rec.Outcome != records.OutcomeOK || !rec.Stream || rec.Usage != p.Usage() {
		t.Errorf("record outcome %q stream %v usage %+v; the fixture says %+v", rec.Outcome, rec.Stream, rec.Usage, p.Usage())
	}
	vertexCost(t, rec)

	st := s.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5"))
	var msg anthropic.Message
	for st.Next() {
		if err := msg.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	ref := newStack(t)
	rst := ref.client.Messages.NewStreaming(context.Background(), hello("claude-sonnet-4-5"))
	var refMsg anthropic.Message
	for rst.Next() {
		if err := refMsg.Accumulate(rst.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := rst.Err(); err != nil {
		t.Fatal(err)
	}
	refMsg.Model = vertexModel
	sameMessage(t, msg, refMsg)
}

// count_tokens goes to count-tokens:rawPredict with the model in the body,
// and costs nothing.
func TestVertexCountTokens(t *testing.T) {
	s := newVertexStack(t, vertexOptions{})
	res, err := s.client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "claude-sonnet-4-5",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.InputTokens <= 0 {
		t.Errorf("input_tokens %d", res.InputTokens)
	}
	r := s.vertex.Requests()[0]
	if r.Path != vertexPath+"count-tokens:rawPredict" || !bytes.Contains(r.Body, []byte(`"model":"`+vertexModel+`"`)) {
		t.Errorf("path %s body %s", r.Path, r.Body)
	}
	if rec := s.recs.wait(t, 1)[0]; rec.Endpoint != "count_tokens" || rec.Outcome != records.OutcomeOK || rec.CostPicoUSD != 0 {
		t.Errorf("record endpoint %q outcome %q cost %d", rec.Endpoint, rec.Outcome, rec.CostPicoUSD)
	}
}

// Tokens that live 2 s are refreshed across their expiry while requests keep
// coming: every request carries a token the fake's endpoint issued and that
// is still valid when it arrives (the fake refuses any other), and tokens are
// fetched far less often than requests are sent.
func TestVertexTokenRefreshedAcrossExpiry(t *testing.T) {
	s := newVertexStack(t, vertexOptions{tokenLifetime: 2 * time.Second})
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	sent := 0
	// Past two lifetimes of the first token, and three tokens.
	for s.vertex.TokensIssued() < 3 || time.Since(start) < 4*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("%d tokens issued after %d requests", s.vertex.TokensIssued(), sent)
		}
		if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err != nil {
			t.Fatalf("request %d: %v", sent, err)
		}
		sent++
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.vertex.TokensRejected(); n != 0 {
		t.Errorf("%d requests refused for their token", n)
	}
	if issued := s.vertex.TokensIssued(); issued*3 > sent {
		t.Errorf("%d tokens for %d requests: fetched per request", issued, sent)
	}
}

// A token Vertex AI did not issue is refused there (401 UNAUTHENTICATED),
// which the client gets in Anthropic's shape.
func TestVertexWrongTokenIsRejected(t *testing.T) {
	s := newVertexStack(t, vertexOptions{foreignKey: true})
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
	e := apiError(t, err)
	if e.StatusCode != 401 || !strings.Contains(e.RawJSON(), `"type":"authentication_error"`) || !strings.Contains(e.RawJSON(), "invalid authentication credentials") {
		t.Errorf("status %d body %s", e.StatusCode, e.RawJSON())
	}
	if s.vertex.TokensRejected() != 1 || s.vertex.TokensIssued() != 0 {
		t.Errorf("rejected %d, issued %d", s.vertex.TokensRejected(), s.vertex.TokensIssued())
	}
}

// Vertex AI's errors before the first byte reach the client as HTTP errors
// in Anthropic's shape, streaming or not: Google's translated, the model's
// own (Anthropic-shaped) passed as they are.
func TestVertexErrors(t *testing.T) {
	s := newVertexStack(t, vertexOptions{})
	for _, c := range []struct {
		model, typ string
		status     int
		message    string
	}{
		{"claude-x-exhausted", "rate_limit_error", 429, "Quota exceeded for aiplatform.googleapis.com"},
		{"claude-x-unavailable", "overloaded_error", 529, "The service is currently unavailable."},
		{"claude-x-denied", "permission_error", 403, "Permission 'aiplatform.endpoints.predict' denied"},
		{"claude-x-overloaded", "overloaded_error", 529, "Overloaded (fake)"},
		{"claude-x-invalid", "invalid_request_error", 400, "Invalid request (fake)"},
	} {
		for _, stream := range []string{"false", "true"} {
			resp, body := s.post(t, "/v1/messages", `{"model":"`+c.model+`","max_tokens":10,"stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != c.status || e.Type != "error" || e.Error.Type != c.typ ||
				!strings.HasPrefix(e.Error.Message, c.message) || resp.Header.Get("content-type") != "application/json" {
				t.Errorf("%s stream %s: status %d %q body %s", c.model, stream, resp.StatusCode, resp.Header.Get("content-type"), body)
			}
		}
	}
}

// A 529 from Anthropic falls back to Vertex AI, streaming and not: the
// second attempt carries a bearer token and the Vertex body, and the answer
// and the cost are Vertex AI's.
func TestFallbackAnthropicToVertex(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			s := newVertexStack(t, vertexOptions{anthropicFirst: true, aModel: "claude-sonnet-4-5-overloaded"})
			c := &chain{recs: s.recs, client: s.client}
			model, hdr, err := c.send(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			if model != vertexModel || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("model %q served by %q on attempt %q", model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}
			rec := s.recs.wait(t, 1)[0]
			if got := attemptsOf(rec.Attempts); got != "demo:"+http.StatusText(529)+";anthropic:OK;" {
				t.Errorf("attempts %s", got)
			}
			if rec.Outcome != records.OutcomeOK {
				t.Errorf("record outcome %q", rec.Outcome)
			}
			vertexCost(t, rec)
			reqs := s.vertex.Requests()
			if len(reqs) != 1 {
				t.Fatalf("vertex got %d requests", len(reqs))
			}
			checkVertexRequest(t, reqs[0], map[bool]string{false: "rawPredict", true: "streamRawPredict"}[stream])
			if reqs[0].Host != s.vertex.Addr() {
				t.Errorf("host %q", reqs[0].Host)
			}
		})
	}
}

// A Vertex AI out of quota (Google's 429) falls back to Anthropic: the 429
// is the status the retry policy sees, and attempt 2 carries neither the
// bearer token (the fake Anthropic refuses authorization) nor the Vertex
// body.
func TestFallbackVertexToAnthropic(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			s := newVertexStack(t, vertexOptions{vertexFirst: true, vModel: "claude-sonnet-4-5-exhausted"})
			c := &chain{recs: s.recs, client: s.client}
			model, hdr, err := c.send(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			if model != "claude-sonnet-4-5" || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("model %q served by %q on attempt %q", model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}
			rec := s.recs.wait(t, 1)[0]
			if got := attemptsOf(rec.Attempts); got != "demo:"+http.StatusText(429)+";anthropic:OK;" {
				t.Errorf("attempts %s", got)
			}
			ra := s.anthropic.Requests()
			if len(ra) != 1 || ra[0].Path != "/v1/messages" || ra[0].Host != s.anthropic.Addr() {
				t.Fatalf("anthropic requests %+v", ra)
			}
			if bytes.Contains(ra[0].Body, []byte("anthropic_version")) || !bytes.Contains(ra[0].Body, []byte(`"model":"claude-sonnet-4-5"`)) {
				t.Errorf("attempt 2 body %s", ra[0].Body)
			}
		})
	}
}

// A token endpoint that cannot be reached refuses the attempt with a 503 in
// Anthropic's shape; Vertex AI is not sent the request.
func TestVertexTokenEndpointDown(t *testing.T) {
	s := newVertexStack(t, vertexOptions{deadTokenEndpoint: true})
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
	e := apiError(t, err)
	if e.StatusCode != 503 || !strings.Contains(e.RawJSON(), `"type":"overloaded_error"`) || !strings.Contains(e.RawJSON(), "Google access token") {
		t.Errorf("status %d body %s", e.StatusCode, e.RawJSON())
	}
	if n := len(s.vertex.Requests()); n != 0 {
		t.Errorf("Vertex AI got %d requests", n)
	}
}

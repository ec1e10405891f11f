package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/records"
)

// The credentials the fake Bedrock checks signatures with.
const (
	awsKeyID  = "AKIDFAKEBEDROCK"
	awsSecret = "fake-bedrock-secret"
	awsToken  = "fake-session-token"
)

// bedrockProfile is the inference profile ARN claude-sonnet-4-5 maps to: its
// ":" and "/" must reach Bedrock escaped in one path segment.
const bedrockProfile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"

// bedrockStack is a Tollgate in front of a fake Bedrock (provider "demo",
// route demo), or with chain, a fake Anthropic (provider "demo", whose
// model suffix chooses its failure) falling back to the fake Bedrock
// (provider "anthropic", of type bedrock).
type bedrockStack struct {
	bedrock   *envoytest.FakeBedrock
	anthropic *envoytest.FakeAnthropic
	harness   *envoytest.Harness
	client    anthropic.Client
	recs      *collector
	reg       *prometheus.Registry
}

type bedrockOptions struct {
	secret string // what Tollgate signs with; default awsSecret
	chain  bool
	aModel string // with chain, what the fake Anthropic is sent
	// bedrockFirst puts Bedrock first in the chain (provider "demo") and
	// the fake Anthropic second (provider "anthropic", no mapping).
	bedrockFirst bool
	bModel       string // what Bedrock is sent for claude-sonnet-4-5; default bedrockProfile
	// defaultIDs gives the Bedrock provider no models field: it is sent the
	// catalog's ids for its region (us-east-1).
	defaultIDs bool
	// compat is the Bedrock provider's compat mapping (YAML flow style),
	// if any; violations says the fake Bedrock is meant to refuse requests.
	compat     string
	violations bool
	// pause is the fake Bedrock's Pause; afterFunc and pingInterval the
	// Tollgate's ping timers and interval (default: the real ones).
	pause        func(context.Context)
	afterFunc    extproc.AfterFunc
	pingInterval time.Duration
}

func newBedrockStack(t *testing.T, o bedrockOptions) *bedrockStack {
	t.Helper()
	s := &bedrockStack{recs: &collector{}, reg: prometheus.NewRegistry()}
	s.bedrock = envoytest.NewFakeBedrock(envoytest.FakeBedrockConfig{Region: "us-east-1",
		AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, SessionToken: awsToken, Pause: o.pause})
	if err := s.bedrock.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.bedrock.Close() })
	if o.secret == "" {
		o.secret = awsSecret
	}
	bedrockName, clusters, envoyYAML := "demo", map[string]string{"prov_demo": s.bedrock.Addr()}, "../../envoy.yaml"
	providers := ""
	if o.bModel == "" {
		o.bModel = bedrockProfile
	}
	if o.bedrockFirst {
		s.anthropic = envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: providerKey,
			ForbiddenHeaders: []string{"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}})
		if err := s.anthropic.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.anthropic.Close() })
		clusters["prov_anthropic"] = s.anthropic.Addr()
		envoyYAML = withFallbackRetry(t, 1, chainRetryExtra)
		providers = `  anthropic:
    type: anthropic
    base_url: ` + s.anthropic.URL() + `
    api_key: ${ANTHROPIC_KEY}
`
	}
	if o.chain {
		s.anthropic = envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: providerKey})
		if err := s.anthropic.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.anthropic.Close() })
		bedrockName = "anthropic"
		clusters = map[string]string{"prov_demo": s.anthropic.Addr(), "prov_anthropic": s.bedrock.Addr()}
		envoyYAML = withFallbackRetry(t, 1, chainRetryExtra)
		providers = `  demo:
    type: anthropic
    base_url: ` + s.anthropic.URL() + `
    api_key: ${ANTHROPIC_KEY}
    models: {claude-sonnet-4-5: ` + o.aModel + `}
`
	}
	providers += `  ` + bedrockName + `:
    type: bedrock
    region: us-east-1
    base_url: ` + s.bedrock.URL() + `
    access_key_id: ${AWS_ID}
    secret_access_key: ${AWS_SECRET}
    session_token: ${AWS_TOKEN}
`
	if !o.defaultIDs {
		providers += `    models: {claude-sonnet-4-5: "` + o.bModel + `"}
`
	}
	if o.compat != "" {
		providers += "    compat: " + o.compat + "\n"
	}
	chain := "[demo]"
	if o.chain || o.bedrockFirst {
		chain = "[demo, anthropic]"
	}
	src := "version: 1\nproviders:\n" + providers + `routes:
  demo: {chain: ` + chain + `, cluster: chain_demo}
default_route: demo
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform}
`
	env := map[string]string{"AWS_ID": awsKeyID, "AWS_SECRET": o.secret, "AWS_TOKEN": awsToken, "ANTHROPIC_KEY": providerKey}
	p, err := policy.Parse("bedrock.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extproc.NewServer(extproc.Options{Policies: fixedPolicy{p}, ClientFormats: []extproc.ClientFormat{anthropicfmt.Format{}},
		Translation: translations, Recorder: s.recs, Metrics: extproc.NewMetrics(s.reg),
		AfterFunc: o.afterFunc, PingInterval: o.pingInterval})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	clusters["tollgate"] = lis.Addr().String()
	h, err := envoytest.Start(envoytest.Config{EnvoyYAML: envoyYAML, Clusters: clusters, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.harness = h
	s.client = anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	t.Cleanup(func() {
		if v := s.bedrock.Violations(); len(v) > 0 && !o.violations {
			t.Errorf("the fake Bedrock received what it must not: %v", v)
		}
	})
	return s
}

func (s *bedrockStack) post(t *testing.T, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.harness.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
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

// fixtureMessage is the Message the fake Anthropic answers (messages.json),
// with model.
func fixtureMessage(t *testing.T, model string) anthropic.Message {
	t.Helper()
	data, err := os.ReadFile("../../internal/envoytest/testdata/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var m anthropic.Message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m.Model = anthropic.Model(model)
	return m
}

// sameMessage compares what a client sees of two messages.
func sameMessage(t *testing.T, got, want anthropic.Message) {
	t.Helper()
	type view struct {
		ID, Model, StopReason, Text    string
		In, Out, CacheRead, CacheWrite int64
	}
	v := func(m anthropic.Message) view {
		var text strings.Builder
		for _, b := range m.Content {
			text.WriteString(b.Text)
		}
		return view{m.ID, string(m.Model), string(m.StopReason), text.String(),
			m.Usage.InputTokens, m.Usage.OutputTokens, m.Usage.CacheReadInputTokens, m.Usage.CacheCreationInputTokens}
	}
	if v(got) != v(want) {
		t.Errorf("message\n got  %+v\n want %+v", v(got), v(want))
	}
}

// checkSigned checks that the fake Bedrock got a signed request at the
// profile's escaped path.
func checkSigned(t *testing.T, r envoytest.RecordedRequest, op string) {
	t.Helper()
	wantPath := "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/" + op
	if r.Path != wantPath {
		t.Errorf("path %s; want %s", r.Path, wantPath)
	}
	if a := r.Header.Get("authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential="+awsKeyID+"/") || !strings.Contains(a, "/us-east-1/bedrock/aws4_request") ||
		r.Header.Get("x-amz-security-token") != awsToken {
		t.Errorf("authorization %q, token %q", a, r.Header.Get("x-amz-security-token"))
	}
	if r.Header.Get("x-api-key") != "" {
		t.Error("x-api-key reached Bedrock")
	}
}

// Through the harness with anthropic-sdk-go, a message from Bedrock is the
// Message the Anthropic fixture holds, and the record has its usage and cost.
func TestBedrockMessage(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	var resp *http.Response
	msg, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	sameMessage(t, *msg, fixtureMessage(t, bedrockProfile))
	if resp.Header.Get("x-tollgate-provider") != "demo" {
		t.Errorf("served by %q", resp.Header.Get("x-tollgate-provider"))
	}
	reqs := s.bedrock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	checkSigned(t, reqs[0], "invoke")
	rec := s.recs.wait(t, 1)[0]
	if rec.Outcome != records.OutcomeOK || rec.Status != 200 || rec.Usage.InputTokens != msg.Usage.InputTokens ||
		rec.Usage.OutputTokens != msg.Usage.OutputTokens || rec.CostPicoUSD <= 0 {
		t.Errorf("record outcome %q status %d usage %+v cost %d", rec.Outcome, rec.Status, rec.Usage, rec.CostPicoUSD)
	}
}

// A stream from Bedrock reaches the client as the Anthropic fixture's SSE,
// byte for byte, less the pings Bedrock never sends; the SDK accumulates the
// same Message, and the record has the stream's usage.
func TestBedrockStream(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	resp, got := s.post(t, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" || resp.Header.Get("content-length") != "" {
		t.Fatalf("status %d, content-type %q, content-length %q: %s", resp.StatusCode, resp.Header.Get("content-type"), resp.Header.Get("content-length"), got)
	}
	fixture, err := os.ReadFile("../../internal/envoytest/testdata/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, ev := range bytes.SplitAfter(fixture, []byte("\n\n")) {
		if !bytes.HasPrefix(ev, []byte("event: ping")) {
			want = append(want, ev...)
		}
	}
	want = bytes.Replace(want, []byte(`"model":"claude-sonnet-4-5"`), []byte(`"model":"`+bedrockProfile+`"`), 1)
	// Bedrock's message_stop carries its invocation metrics, passed on.
	want = bytes.Replace(want, []byte(`data: {"type":"message_stop"}`), []byte(`data: {"type":"message_stop","amazon-bedrock-invocationMetrics":`+
		`{"inputTokenCount":12,"outputTokenCount":15,"invocationLatency":1234,"firstByteLatency":321,"cacheReadInputTokenCount":30500,"cacheWriteInputTokenCount":2048}}`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("stream:\n%s\nwant:\n%s", got, want)
	}
	checkSigned(t, s.bedrock.Requests()[0], "invoke-with-response-stream")
	if n := metricValue(t, s.reg, "tollgate_translation_warnings_total", nil); n != 0 {
		t.Errorf("%v translation warnings for invocation metrics that agree", n)
	}
	rec := s.recs.wait(t, 1)[0]
	if rec.Outcome != records.OutcomeOK || !rec.Stream || rec.Usage.OutputTokens != 15 || rec.CostPicoUSD <= 0 {
		t.Errorf("record outcome %q stream %v usage %+v cost %d", rec.Outcome, rec.Stream, rec.Usage, rec.CostPicoUSD)
	}

	// The SDK accumulates the Message the fake Anthropic streams.
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
	refMsg.Model = bedrockProfile
	sameMessage(t, msg, refMsg)
}

// A wrong secret fails the fake's signature check: a 403 from Bedrock, in
// Anthropic's shape for the client.
func TestBedrockWrongSecretIsRejected(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{secret: "not-the-secret"})
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
	e := apiError(t, err)
	if e.StatusCode != 403 || !strings.Contains(e.RawJSON(), `"type":"permission_error"`) || !strings.Contains(e.RawJSON(), "signature") {
		t.Errorf("status %d body %s", e.StatusCode, e.RawJSON())
	}
}

// Bedrock's errors reach the client as Anthropic's, streaming or not.
func TestBedrockErrors(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	for _, c := range []struct {
		model, typ string
		status     int
	}{
		{"claude-x-throttled", "rate_limit_error", 429},
		{"claude-x-unavailable", "overloaded_error", 529},
	} {
		for _, stream := range []string{"false", "true"} {
			resp, body := s.post(t, "/v1/messages", `{"model":"`+c.model+`","max_tokens":10,"stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != c.status || e.Type != "error" || e.Error.Type != c.typ || e.Error.Message == "" {
				t.Errorf("%s stream %s: status %d body %s", c.model, stream, resp.StatusCode, body)
			}
		}
	}
}

// An exception frame mid-stream reaches the client as an Anthropic error
// event after the events before it; the SDK reports it.
func TestBedrockExceptionMidStream(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	resp, got := s.post(t, "/v1/messages", `{"model":"claude-x-exception","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !bytes.HasPrefix(got, []byte("event: message_start\n")) || !bytes.HasSuffix(got, []byte(
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The model stream failed (fake).\"}}\n\n")) {
		t.Errorf("stream:\n%s", got)
	}
	st := s.client.Messages.NewStreaming(context.Background(), hello("claude-x-exception"))
	for st.Next() {
	}
	if err := st.Err(); err == nil || !strings.Contains(err.Error(), "The model stream failed") {
		t.Errorf("SDK error %v", err)
	}
}

// count_tokens goes to Bedrock's CountTokens and answers in Anthropic's shape.
func TestBedrockCountTokens(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
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
	checkSigned(t, s.bedrock.Requests()[0], "count-tokens")
}

// A 529 from Anthropic falls back to Bedrock, streaming and not: the second
// attempt is signed, with the Bedrock body, and the answer is Bedrock's.
func TestFallbackAnthropicToBedrock(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			s := newBedrockStack(t, bedrockOptions{chain: true, aModel: "claude-sonnet-4-5-overloaded"})
			c := &chain{recs: s.recs, client: s.client}
			model, hdr, err := c.send(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			if model != bedrockProfile || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("model %q served by %q on attempt %q", model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}
			rec := s.recs.wait(t, 1)[0]
			if got := attemptsOf(rec.Attempts); got != "demo:"+http.StatusText(529)+";anthropic:OK;" {
				t.Errorf("attempts %s", got)
			}
			if rec.Outcome != records.OutcomeOK || rec.CostPicoUSD <= 0 {
				t.Errorf("record outcome %q cost %d", rec.Outcome, rec.CostPicoUSD)
			}
			reqs := s.bedrock.Requests()
			if len(reqs) != 1 {
				t.Fatalf("bedrock got %d requests", len(reqs))
			}
			checkSigned(t, reqs[0], map[bool]string{false: "invoke", true: "invoke-with-response-stream"}[stream])
			if reqs[0].Host != s.bedrock.Addr() {
				t.Errorf("host %q", reqs[0].Host)
			}
		})
	}
}

// A Claude Code-shaped body reaches Bedrock with only the documented edits:
// model and stream out, anthropic_version and the header's betas Bedrock
// accepts in (claude-code-20250219 dropped, advanced-tool-use renamed), the
// mid-conversation system message folded into the user turn before it
// (compatibility table), every other member's bytes as they were. TestBedrockClaudeCodeSDK compares the
// whole body.
func TestBedrockClaudeCodeBody(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	body, err := os.ReadFile("testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte(`"model":"@demo/claude-opus-4-8"`), []byte(`"model":"claude-sonnet-4-5"`), 1)
	resp, out := s.post(t, "/v1/messages?beta=true", string(body), "anthropic-beta", claudeCodeBetas)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	got := s.bedrock.Requests()[0].Body
	var in, sent map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &sent); err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		switch {
		case k == "model" || k == "stream":
			if _, ok := sent[k]; ok {
				t.Errorf("%s reached Bedrock", k)
			}
		case k == "messages":
			if !bytes.Equal(sent[k], bytes.Replace(v, []byte(fixtureSystemMessage), []byte(fixtureFoldedMessage), 1)) {
				t.Errorf("messages: %s", sent[k])
			}
		case !bytes.Equal(sent[k], v):
			t.Errorf("%s changed", k)
		}
	}
	if !bytes.HasPrefix(got, []byte(`{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07","interleaved-thinking-2025-05-14","context-management-2025-06-27","effort-2025-11-24","tool-search-tool-2025-10-19"],`)) {
		t.Errorf("body starts %.200s", got)
	}
	_, hasStream := in["stream"]
	if len(sent) != len(in)+1-map[bool]int{true: 1, false: 0}[hasStream] {
		t.Errorf("%d members sent for %d", len(sent), len(in))
	}
}

// A throttled Bedrock falls back to Anthropic: the 429 Bedrock sends is the
// status the retry policy sees, and attempt 2 carries nothing of Bedrock's
// signature (the fake Anthropic refuses x-amz-* and authorization).
func TestFallbackBedrockToAnthropic(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			s := newBedrockStack(t, bedrockOptions{bedrockFirst: true, bModel: "us.anthropic.claude-sonnet-4-5-throttled"})
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
			if v := s.anthropic.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
			if bytes.Contains(ra[0].Body, []byte("anthropic_version")) || !bytes.Contains(ra[0].Body, []byte(`"model":"claude-sonnet-4-5"`)) {
				t.Errorf("attempt 2 body %s", ra[0].Body)
			}
		})
	}
}

// Invocation metrics that disagree with the events' usage are logged and
// counted; the record bills the events' usage.
func TestBedrockInvocationMetricsMismatch(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{bModel: "us.anthropic.claude-sonnet-4-5-miscounted"})
	resp, got := s.post(t, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !bytes.Contains(got, []byte(`"inputTokenCount":13`)) {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	rec := s.recs.wait(t, 1)[0]
	if rec.Usage.InputTokens != 12 || rec.Outcome != records.OutcomeOK {
		t.Errorf("record usage %+v outcome %q", rec.Usage, rec.Outcome)
	}
	if n := metricValue(t, s.reg, "tollgate_translation_warnings_total", map[string]string{"provider": "demo", "kind": "usage_mismatch"}); n != 1 {
		t.Errorf("usage mismatches counted: %v", n)
	}
}

// TestBedrockExceptionFirstFrameFallsBack: a Bedrock stream whose first
// frame is an exception (throttlingException right after the 200) becomes
// an HTTP error in Anthropic's shape, which the chain falls back on. The
// adapter takes Bedrock's streamed response body in FULL_DUPLEX_STREAMED
// mode, in which Envoy sends body chunks while the response headers reply is
// awaited (ext_proc.cc Filter::onData), and holds that reply until the
// stream's first event: an error event there becomes the reply's status
// (429 for a throttlingException) and its body. Alone, the client gets that
// 429; in a chain, the router retries on the next provider.
func TestBedrockExceptionFirstFrameFallsBack(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{bModel: "us.anthropic.claude-sonnet-4-5-exception-first"})
	resp, got := s.post(t, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	want := `{"type":"error","error":{"type":"rate_limit_error","message":"Too many requests, please wait before trying again (fake)."}}`
	if resp.StatusCode != 429 || resp.Header.Get("content-type") != "application/json" || string(got) != want {
		t.Errorf("alone: status %d content-type %q body %s", resp.StatusCode, resp.Header.Get("content-type"), got)
	}
	if rec := s.recs.wait(t, 1)[0]; rec.Status != 429 || len(rec.Attempts) != 1 || rec.Attempts[0].Status != 429 {
		t.Errorf("record status %d attempts %+v", rec.Status, rec.Attempts)
	}

	s = newBedrockStack(t, bedrockOptions{bedrockFirst: true, bModel: "us.anthropic.claude-sonnet-4-5-exception-first"})
	resp, got = s.post(t, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("x-tollgate-provider") != "anthropic" || resp.Header.Get("x-tollgate-attempts") != "2" ||
		!bytes.HasPrefix(got, []byte("event: message_start\n")) {
		t.Errorf("chain: status %d served by %q on attempt %q: %.200s", resp.StatusCode, resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"), got)
	}
	if n := len(s.anthropic.Requests()); n != 1 {
		t.Errorf("the chain did not fall back: anthropic got %d requests", n)
	}
}

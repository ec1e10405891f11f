package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	openaifmt "github.com/tollgate-dev/tollgate/clientformat/openai"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// openAIKey is the key the fake OpenAI wants as its bearer token.
const openAIKey = "sk-fake-openai"

// openAIStack is a Tollgate in front of a fake OpenAI (provider "demo" of
// type openai, route demo). The provider maps claude-sonnet-4-5 to gpt-4o
// (text), claude-tools and claude-opus-4-8 to gpt-4o-tools (tool calls),
// and claude-x-SUFFIX to gpt-4o-SUFFIX (the fake's failures).
type openAIStack struct {
	openai    *envoytest.FakeOpenAI
	anthropic *envoytest.FakeAnthropic // with a chain
	harness   *envoytest.Harness
	client    anthropic.Client
	recs      *collector
	reg       *prometheus.Registry
}

func newOpenAIStack(t *testing.T, cfg envoytest.FakeOpenAIConfig) *openAIStack {
	t.Helper()
	return newOpenAIChain(t, cfg, "")
}

// newOpenAIChain is newOpenAIStack, or with aModel a chain: a fake
// Anthropic first (provider "demo", sent aModel for claude-sonnet-4-5),
// falling back to the fake OpenAI (provider "anthropic", of type openai,
// on the harness' second cluster).
func newOpenAIChain(t *testing.T, cfg envoytest.FakeOpenAIConfig, aModel string) *openAIStack {
	t.Helper()
	s := &openAIStack{recs: &collector{}, reg: prometheus.NewRegistry()}
	cfg.APIKey = openAIKey
	s.openai = envoytest.NewFakeOpenAI(cfg)
	if err := s.openai.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.openai.Close() })
	openaiName, chain, envoyYAML := "demo", "[demo]", "../../envoy.yaml"
	clusters := map[string]string{"prov_demo": s.openai.Addr()}
	anthropicProvider := ""
	if aModel != "" {
		s.anthropic = envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: providerKey})
		if err := s.anthropic.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.anthropic.Close() })
		openaiName, chain, envoyYAML = "anthropic", "[demo, anthropic]", withFallbackRetry(t, 1, chainRetryExtra)
		clusters = map[string]string{"prov_demo": s.anthropic.Addr(), "prov_anthropic": s.openai.Addr()}
		anthropicProvider = `  demo:
    type: anthropic
    base_url: ` + s.anthropic.URL() + `
    api_key: ${ANTHROPIC_KEY}
    models: {claude-sonnet-4-5: ` + aModel + `}
`
	}
	src := `version: 1
providers:
` + anthropicProvider + `  ` + openaiName + `:
    type: openai
    base_url: ` + s.openai.URL() + `/v1
    api_key: ${OPENAI_KEY}
    headers: "X-Title: Tollgate e2e"
    models: {claude-sonnet-4-5: gpt-4o, claude-tools: gpt-4o-tools, claude-opus-4-8: gpt-4o-tools,
      claude-x-ratelimited: gpt-4o-ratelimited, claude-x-unavailable: gpt-4o-unavailable, claude-x-miderror: gpt-4o-miderror}
routes:
  demo: {chain: ` + chain + `, cluster: chain_demo}
default_route: demo
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform}
`
	env := map[string]string{"OPENAI_KEY": openAIKey, "ANTHROPIC_KEY": providerKey}
	p, err := policy.Parse("openai.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extproc.NewServer(extproc.Options{Policies: fixedPolicy{p}, ClientFormats: []extproc.ClientFormat{anthropicfmt.Format{}, openaifmt.Format{}},
		Translation: translations, Recorder: s.recs, Metrics: extproc.NewMetrics(s.reg)})
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
	h, err := envoytest.Start(envoytest.Config{EnvoyYAML: envoyYAML, Logf: t.Logf, Clusters: clusters})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.harness = h
	s.client = anthropic.NewClient(option.WithBaseURL(h.URL()), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	t.Cleanup(func() {
		if v := s.openai.Violations(); len(v) > 0 {
			t.Errorf("the fake OpenAI received what it must not: %v", v)
		}
		if s.anthropic != nil {
			if v := s.anthropic.Violations(); len(v) > 0 {
				t.Errorf("the fake Anthropic received what it must not: %v", v)
			}
		}
	})
	return s
}

// send sends p, streaming or not, and returns the Message the SDK has.
func (s *openAIStack) send(t *testing.T, p anthropic.MessageNewParams, stream bool) (anthropic.Message, http.Header) {
	t.Helper()
	var resp *http.Response
	if !stream {
		msg, err := s.client.Messages.New(context.Background(), p, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		return *msg, resp.Header
	}
	st := s.client.Messages.NewStreaming(context.Background(), p, option.WithResponseInto(&resp))
	var msg anthropic.Message
	for st.Next() {
		if err := msg.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return msg, resp.Header
}

// The usage the fake reports, as an Anthropic client sees it: OpenAI's
// prompt_tokens include the cached ones.
const (
	wantInput     = envoytest.FakeOpenAIPromptTokens - envoytest.FakeOpenAICachedTokens
	wantCacheRead = envoytest.FakeOpenAICachedTokens
	wantOutput    = envoytest.FakeOpenAICompletionTokens
	// wantCostPicoUSD is gpt-4o's price of that usage from the catalog's
	// openai entry: 176 × 2.5 + 1024 × 1.25 + 25 × 10 USD per MTok.
	wantCostPicoUSD = 176*2_500_000 + 1024*1_250_000 + 25*10_000_000
)

// checkUsage checks the usage a client sees and the record's usage and cost.
func checkUsage(t *testing.T, msg anthropic.Message, rec records.Record) {
	t.Helper()
	u := msg.Usage
	if u.InputTokens != wantInput || u.CacheReadInputTokens != wantCacheRead || u.CacheCreationInputTokens != 0 || u.OutputTokens != wantOutput {
		t.Errorf("client usage %+v", u)
	}
	want := pricing.Usage{InputTokens: wantInput, CacheReadTokens: wantCacheRead, OutputTokens: wantOutput,
		ReasoningTokens: envoytest.FakeOpenAIReasoningTokens}
	if rec.Outcome != records.OutcomeOK || rec.Usage != want || rec.CostPicoUSD != wantCostPicoUSD || rec.PriceEstimated || rec.ResponseModel == "" {
		t.Errorf("record outcome %q usage %+v cost %d (want %d) estimated %v model %q", rec.Outcome, rec.Usage, rec.CostPicoUSD, int64(wantCostPicoUSD),
			rec.PriceEstimated, rec.ResponseModel)
	}
}

// Through the harness with anthropic-sdk-go, streaming and not, a text
// answer from the fake OpenAI is an Anthropic Message with its usage split
// (input and cache read), and the record has the usage and the catalog's
// cost for gpt-4o under openai. The fake got a Chat Completions body with
// the bearer key and nothing the client did not send.
func TestOpenAIText(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	for i, stream := range []bool{false, true} {
		msg, hdr := s.send(t, hello("claude-sonnet-4-5"), stream)
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake OpenAI." || msg.StopReason != "end_turn" || msg.Model != "gpt-4o" {
			t.Errorf("stream %v: message %s", stream, msg.RawJSON())
		}
		if hdr.Get("x-tollgate-provider") != "demo" || hdr.Get("openai-organization") != "" ||
			stream && hdr.Get("content-type") != "text/event-stream" || !stream && hdr.Get("content-type") != "application/json" {
			t.Errorf("served by %q; openai-organization %q, content-type %q", hdr.Get("x-tollgate-provider"), hdr.Get("openai-organization"), hdr.Get("content-type"))
		}
		checkUsage(t, msg, s.recs.wait(t, i+1)[i])
		r := s.openai.Requests()[i]
		if r.Path != "/v1/chat/completions" || r.Header.Get("authorization") != "Bearer "+openAIKey || r.Header.Get("x-title") != "Tollgate e2e" {
			t.Errorf("path %s, authorization %q, x-title %q", r.Path, r.Header.Get("authorization"), r.Header.Get("x-title"))
		}
		want := `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}],"max_completion_tokens":1024}`
		if stream {
			want = strings.TrimSuffix(want, "}") + `,"stream":true,"stream_options":{"include_usage":true}}`
		}
		if string(r.Body) != want {
			t.Errorf("body %s\nwant %s", r.Body, want)
		}
	}
}

// weatherTool is a tool the SDK sends, and one with a name over OpenAI's
// 64-character limit, which goes shortened and comes back whole.
func toolParams(model, firstTool string) anthropic.MessageNewParams {
	p := hello(model)
	for _, name := range []string{firstTool, "get_weather"} {
		p.Tools = append(p.Tools, anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: name, Description: anthropic.String("Weather"),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}})
	}
	return p
}

// A tool-calling answer, streaming and not, is Anthropic tool_use blocks
// with parsed input and the tool's whole name, stop_reason tool_use; the
// tool results sent back reach the fake as tool messages, and its answer
// comes back as text: the loop round-trips. With every upstream chunk cut
// at random offsets (seeded) the SDK accumulates the same Message.
func TestOpenAIToolUse(t *testing.T) {
	long := "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository"
	for _, seed := range []uint64{0, 1, 7, 42} {
		s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{SplitSeed: seed})
		for _, stream := range []bool{false, true} {
			p := toolParams("claude-tools", long)
			msg, _ := s.send(t, p, stream)
			if msg.StopReason != "tool_use" || len(msg.Content) != 3 || msg.Content[0].Text != "Let me check." {
				t.Fatalf("seed %d stream %v: message %s", seed, stream, msg.RawJSON())
			}
			for i, want := range []string{`{"city":"Paris","days":3}`, `{"city":"Oslo"}`} {
				b := msg.Content[i+1]
				var in, w map[string]any
				if err := json.Unmarshal(b.Input, &in); err != nil || json.Unmarshal([]byte(want), &w) != nil || b.Type != "tool_use" || b.Name != long ||
					b.ID != "call_fake_"+string(rune('0'+i)) || !jsonEqual(in, w) {
					t.Errorf("seed %d stream %v: block %d %s (input %s: %v)", seed, stream, i+1, b.RawJSON(), b.Input, err)
				}
			}
			// The loop: the assistant turn and the tool results go back.
			p.Messages = append(p.Messages, msg.ToParam(), anthropic.NewUserMessage(
				anthropic.NewToolResultBlock(msg.Content[1].ID, "18 C in Paris", false),
				anthropic.NewToolResultBlock(msg.Content[2].ID, "9 C in Oslo", false)))
			next, _ := s.send(t, p, stream)
			if next.StopReason != "end_turn" || len(next.Content) != 1 || next.Content[0].Text != "Tool said: 9 C in Oslo" {
				t.Errorf("seed %d stream %v: after the tool results %s", seed, stream, next.RawJSON())
			}
		}
		reqs := s.openai.Requests()
		var body struct {
			Messages []struct {
				Role       string `json:"role"`
				ToolCallID string `json:"tool_call_id"`
			} `json:"messages"`
			Tools []struct {
				Function struct{ Name string } `json:"function"`
			} `json:"tools"`
		}
		if err := json.Unmarshal(reqs[1].Body, &body); err != nil {
			t.Fatal(err)
		}
		roles := ""
		for _, m := range body.Messages {
			roles += m.Role + ":" + m.ToolCallID + " "
		}
		if roles != "user: assistant: tool:call_fake_0 tool:call_fake_1 " || len(body.Tools[0].Function.Name) != 64 {
			t.Errorf("second request: roles %s, tool name %q", roles, body.Tools[0].Function.Name)
		}
		for i, rec := range s.recs.wait(t, 4) {
			if rec.Outcome != records.OutcomeOK || rec.CostPicoUSD != wantCostPicoUSD {
				t.Errorf("seed %d record %d: outcome %q cost %d", seed, i, rec.Outcome, rec.CostPicoUSD)
			}
		}
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// The text answer streamed in chunks cut at random offsets gives the SDK
// the same Message as uncut.
func TestOpenAISplitChunks(t *testing.T) {
	for _, seed := range []uint64{3, 11, 2026} {
		s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{SplitSeed: seed})
		msg, _ := s.send(t, hello("claude-sonnet-4-5"), true)
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake OpenAI." {
			t.Errorf("seed %d: %s", seed, msg.RawJSON())
		}
		checkUsage(t, msg, s.recs.wait(t, 1)[0])
	}
}

// The Claude Code-shaped body translates and its tool loop round-trips:
// the answer's tool_use goes back with a tool_result, and the fake's answer
// to it comes back.
func TestOpenAIClaudeCodeBody(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	body, err := os.ReadFile("testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(b []byte) anthropic.Message {
		t.Helper()
		resp, got := (&bedrockStack{harness: s.harness}).post(t, "/v1/messages?beta=true", string(b),
			"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14", "anthropic-version", "2023-06-01")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		return accumulateSSE(t, got)
	}
	msg := post(body)
	if msg.StopReason != "tool_use" || len(msg.Content) != 3 || msg.Content[1].Name != "Read" {
		t.Fatalf("first turn: %s", msg.RawJSON())
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(doc["messages"], &msgs); err != nil {
		t.Fatal(err)
	}
	assistant := []byte(`{"role":"assistant","content":` + string(contentOf(t, msg)) + `}`)
	result, _ := json.Marshal(map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "tool_result", "tool_use_id": msg.Content[1].ID, "content": "package parser"},
		map[string]any{"type": "tool_result", "tool_use_id": msg.Content[2].ID, "content": "package lexer"}}})
	msgs = append(msgs, assistant, result)
	doc["messages"], _ = json.Marshal(msgs)
	next, _ := json.Marshal(doc)
	reply := post(next)
	if reply.StopReason != "end_turn" || len(reply.Content) != 1 || reply.Content[0].Text != "Tool said: package lexer" {
		t.Errorf("second turn: %s", reply.RawJSON())
	}
	if recs := s.recs.wait(t, 2); recs[1].Outcome != records.OutcomeOK || recs[1].CostPicoUSD != wantCostPicoUSD {
		t.Errorf("record %+v", recs[1])
	}
}

// contentOf returns the content of a message as JSON.
func contentOf(t *testing.T, m anthropic.Message) []byte {
	t.Helper()
	var v struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal([]byte(m.RawJSON()), &v); err != nil {
		t.Fatal(err)
	}
	return v.Content
}

// accumulateSSE decodes an Anthropic SSE body with the SDK's event type and
// accumulates it.
func accumulateSSE(t *testing.T, body []byte) anthropic.Message {
	t.Helper()
	var msg anthropic.Message
	for _, ev := range bytes.Split(body, []byte("\n\n")) {
		_, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		if !ok {
			continue
		}
		var e anthropic.MessageStreamEventUnion
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("event %s: %v", ev, err)
		}
		if e.Type == "error" {
			t.Fatalf("error event %s", data)
		}
		if err := msg.Accumulate(e); err != nil {
			t.Fatal(err)
		}
	}
	return msg
}

// The fake OpenAI's errors reach the client in Anthropic's shape and
// status, streaming or not; an error mid-stream is an Anthropic error event
// the SDK reports.
func TestOpenAIErrors(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	for _, c := range []struct {
		model, typ string
		status     int
	}{
		{"claude-x-ratelimited", "rate_limit_error", 429},
		{"claude-x-unavailable", "overloaded_error", 529},
	} {
		for _, stream := range []string{"false", "true"} {
			resp, body := (&bedrockStack{harness: s.harness}).post(t, "/v1/messages", `{"model":"`+c.model+`","max_tokens":10,"stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != c.status || e.Type != "error" || e.Error.Type != c.typ || e.Error.Message == "" {
				t.Errorf("%s stream %s: status %d body %s", c.model, stream, resp.StatusCode, body)
			}
			if c.status == 429 && resp.Header.Get("retry-after") != "2" {
				t.Errorf("retry-after %q", resp.Header.Get("retry-after"))
			}
		}
	}
	st := s.client.Messages.NewStreaming(context.Background(), hello("claude-x-miderror"))
	for st.Next() {
	}
	if err := st.Err(); err == nil || !strings.Contains(err.Error(), "The server had an error") {
		t.Errorf("SDK error %v", err)
	}
}

// A 529 from Anthropic falls back to the OpenAI-compatible provider,
// streaming and not: the second attempt carries the bearer key and the
// translated body (and no x-api-key), the client gets the translated
// answer, and the record prices it under openai.
func TestFallbackAnthropicToOpenAI(t *testing.T) {
	for _, stream := range []bool{false, true} {
		s := newOpenAIChain(t, envoytest.FakeOpenAIConfig{}, "claude-sonnet-4-5-overloaded")
		msg, hdr := s.send(t, hello("claude-sonnet-4-5"), stream)
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake OpenAI." || hdr.Get("x-tollgate-provider") != "anthropic" ||
			hdr.Get("x-tollgate-attempts") != "2" {
			t.Errorf("stream %v: served by %q on attempt %q: %s", stream, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"), msg.RawJSON())
		}
		rec := s.recs.wait(t, 1)[0]
		if got := attemptsOf(rec.Attempts); got != "demo:"+http.StatusText(529)+";anthropic:OK;" {
			t.Errorf("attempts %s", got)
		}
		checkUsage(t, msg, rec)
		reqs := s.openai.Requests()
		if len(reqs) != 1 || reqs[0].Header.Get("x-api-key") != "" || !bytes.HasPrefix(reqs[0].Body, []byte(`{"model":"gpt-4o","messages":[`)) {
			t.Errorf("stream %v: the fake OpenAI got %d requests: %+v", stream, len(reqs), reqs)
		}
	}
}

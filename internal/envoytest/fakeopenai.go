package envoytest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// FakeOpenAIConfig configures a FakeOpenAI.
type FakeOpenAIConfig struct {
	// APIKey is the key every request must carry as Authorization: Bearer
	// (required).
	APIKey string
	// BasePath is the path the API is served under. Default "/v1", which
	// serves POST /v1/chat/completions.
	BasePath string
	// MaxTokensField is the field max_tokens must arrive as. Default
	// max_completion_tokens.
	MaxTokensField string
	// NoStreamOptions makes the fake an API that refuses stream_options
	// (then it sends no usage in streams).
	NoStreamOptions bool
	// SplitSeed, when not zero, writes every chunk of a stream in pieces cut
	// at random offsets drawn from this seed, each flushed on its own.
	SplitSeed uint64
}

// FakeOpenAI is a fake OpenAI Chat Completions API that asserts what it
// received: the bearer key; no Anthropic credential (x-api-key), gateway
// header, cookie or Anthropic-only body field; a body in Chat Completions'
// shape (roles, tool messages right after the assistant message whose tool
// calls they answer and naming one of them, tool names within 64 characters
// of [a-zA-Z0-9_-], the configured max-tokens field); and, for a stream,
// stream_options.include_usage true (or no stream_options with
// NoStreamOptions). Violations are recorded and answered with a 400 in
// OpenAI's error shape.
//
// POST {BasePath}/chat/completions answers, with the request's model less
// the suffix that chose the behaviour ("gpt-4o-tools" answers as gpt-4o):
//
//   - by default, text ("Hello from the fake OpenAI."), as a chat.completion
//     or a stream of chunks whose usage comes in a last chunk of its own
//     (choices: []) before data: [DONE];
//   - models containing "-tools": when the last message is a tool result,
//     text quoting it ("Tool said: ..."); otherwise a text and two calls of
//     the request's first tool (arguments {"city":"Paris","days":3} and
//     {"city":"Oslo"}), streamed as fragments keyed by index, the last chunk
//     carrying both the finish_reason and the usage;
//   - models ending in "-miderror": a stream that sends text, then an error
//     chunk ({"error":{...,"type":"server_error"}}), and ends;
//   - models ending in "-linger": the default stream, whose body then stays
//     open after data: [DONE] until the client goes away (at most 30 s), as
//     a client that closes at data: [DONE] may see before the body's end;
//   - models ending in "-ratelimited": a 429 with retry-after: 2,
//     "-unavailable": a 503, both in OpenAI's error shape.
//
// GET {BasePath}/models and {BasePath}/models/gpt-4.1 answer a list of two
// models and the first, in OpenAI's shapes.
//
// Every answer names the account (openai-organization: fake-org), as
// OpenAI's do. The usage is always prompt_tokens 1200 of which cached_tokens 1024,
// completion_tokens 25 of which reasoning_tokens 10.
type FakeOpenAI struct {
	fakeServer
	cfg FakeOpenAIConfig
}

// The usage every answer of the fake reports.
const (
	FakeOpenAIPromptTokens     = 1200
	FakeOpenAICachedTokens     = 1024
	FakeOpenAICompletionTokens = 25
	FakeOpenAIReasoningTokens  = 10
)

// NewFakeOpenAI returns a fake OpenAI; call Start.
func NewFakeOpenAI(cfg FakeOpenAIConfig) *FakeOpenAI {
	if cfg.BasePath == "" {
		cfg.BasePath = "/v1"
	}
	if cfg.MaxTokensField == "" {
		cfg.MaxTokensField = "max_completion_tokens"
	}
	return &FakeOpenAI{cfg: cfg}
}

// Start serves on addr ("127.0.0.1:0" typically) until Close.
func (f *FakeOpenAI) Start(addr string) error {
	return f.listen("fake openai", addr, http.HandlerFunc(f.handle))
}

// openAIErrorBody answers in OpenAI's error shape.
func openAIErrorBody(w http.ResponseWriter, status int, typ, code, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	w.Header().Set("content-type", "application/json")
	w.Header().Set("x-request-id", "req_fake_openai")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (f *FakeOpenAI) handle(w http.ResponseWriter, r *http.Request) {
	if !f.active.enter() {
		http.Error(w, "fake openai: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer f.active.exit()
	body, err := readAll(r)
	f.record(r, body)
	w.Header().Set("openai-organization", "fake-org")
	if err != nil {
		openAIErrorBody(w, http.StatusBadRequest, "invalid_request_error", "", "reading body: "+err.Error())
		return
	}
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, strings.TrimSuffix(f.cfg.BasePath, "/")+"/models") {
		f.models(w, r, strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(f.cfg.BasePath, "/")+"/models"))
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != strings.TrimSuffix(f.cfg.BasePath, "/")+"/chat/completions" {
		openAIErrorBody(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "Unknown request URL: "+r.Method+" "+r.URL.Path)
		return
	}
	if got := r.Header.Get("authorization"); got != "Bearer "+f.cfg.APIKey {
		f.violate("authorization is not the provider's bearer key")
		openAIErrorBody(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: "+redact(strings.TrimPrefix(got, "Bearer ")))
		return
	}
	var req chatRequestDoc
	v := f.check(r, body, &req)
	if len(v) > 0 {
		f.violate(v...)
		openAIErrorBody(w, http.StatusBadRequest, "invalid_request_error", "", "fake openai: "+strings.Join(v, "; "))
		return
	}
	switch {
	case strings.HasSuffix(req.Model, "-ratelimited"):
		w.Header().Set("retry-after", "2")
		openAIErrorBody(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached (fake).")
		return
	case strings.HasSuffix(req.Model, "-unavailable"):
		openAIErrorBody(w, http.StatusServiceUnavailable, "server_error", "", "The engine is currently overloaded (fake).")
		return
	}
	a := f.answer(&req)
	req.Model = strings.Replace(req.Model, "-tools", "", 1)
	if !req.Stream {
		f.writeJSON(w, &req, a)
		return
	}
	f.writeStream(w, r, &req, a)
}

// chatRequestDoc is what the fake reads of a request.
type chatRequestDoc struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

var openAIToolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// check returns the violations of the Chat Completions contract in r.
func (f *FakeOpenAI) check(r *http.Request, body []byte, req *chatRequestDoc) []string {
	var v []string
	for k := range r.Header {
		if lk := strings.ToLower(k); lk == "x-api-key" || (lk != "authorization" && alwaysForbidden(lk)) {
			v = append(v, "forbidden header "+lk+" reached the provider")
		}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return append(v, "body is not a JSON object: "+err.Error())
	}
	if err := json.Unmarshal(body, req); err != nil {
		return append(v, "body is not a Chat Completions request: "+err.Error())
	}
	for _, k := range []string{"system", "stop_sequences", "top_k", "thinking", "metadata", "anthropic_version",
		"context_management", "output_config", "service_tier", "container"} {
		if _, ok := raw[k]; ok {
			v = append(v, "the body has "+k+", which Chat Completions does not take")
		}
	}
	other := "max_tokens"
	if f.cfg.MaxTokensField == "max_tokens" {
		other = "max_completion_tokens"
	}
	if _, ok := raw[other]; ok {
		v = append(v, "the body has "+other+"; this API takes "+f.cfg.MaxTokensField)
	}
	if req.Model == "" || len(req.Messages) == 0 {
		v = append(v, "model and messages are required")
	}
	switch {
	case req.Stream && f.cfg.NoStreamOptions && req.StreamOptions != nil:
		v = append(v, "stream_options sent to an API that refuses them")
	case req.Stream && !f.cfg.NoStreamOptions && (req.StreamOptions == nil || !req.StreamOptions.IncludeUsage):
		v = append(v, "a stream without stream_options.include_usage: true gets no usage")
	case !req.Stream && req.StreamOptions != nil:
		v = append(v, "stream_options without stream")
	}
	for _, t := range req.Tools {
		if t.Type != "function" || !openAIToolName.MatchString(t.Function.Name) {
			v = append(v, fmt.Sprintf("tool %q: type %q, or a name OpenAI refuses", t.Function.Name, t.Type))
		}
	}
	// Tool messages follow the assistant message whose calls they answer.
	var calls map[string]bool
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user":
			calls = nil
		case "assistant":
			calls = map[string]bool{}
			for _, c := range m.ToolCalls {
				calls[c.ID] = true
				if !openAIToolName.MatchString(c.Function.Name) || !json.Valid([]byte(c.Function.Arguments)) {
					v = append(v, fmt.Sprintf("messages[%d]: tool call %s has a bad name or arguments", i, c.ID))
				}
			}
		case "tool":
			if !calls[m.ToolCallID] {
				v = append(v, fmt.Sprintf("messages[%d]: tool message for %q follows no assistant call of that id", i, m.ToolCallID))
			}
		default:
			v = append(v, fmt.Sprintf("messages[%d] has role %q", i, m.Role))
		}
	}
	return v
}

// fakeAnswer is what the fake says: text, then tool calls.
type fakeAnswer struct {
	text   string
	calls  [][2]string // name, arguments
	finish string
}

func (f *FakeOpenAI) answer(req *chatRequestDoc) fakeAnswer {
	if !strings.Contains(req.Model, "-tools") {
		return fakeAnswer{text: "Hello from the fake OpenAI.", finish: "stop"}
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role == "tool" {
		var s string
		_ = json.Unmarshal(last.Content, &s)
		return fakeAnswer{text: "Tool said: " + s, finish: "stop"}
	}
	name := "get_weather"
	if len(req.Tools) > 0 {
		name = req.Tools[0].Function.Name
	}
	return fakeAnswer{text: "Let me check.", calls: [][2]string{{name, `{"city":"Paris","days":3}`}, {name, `{"city":"Oslo"}`}}, finish: "tool_calls"}
}

const fakeOpenAIUsage = `{"prompt_tokens":1200,"completion_tokens":25,"total_tokens":1225,` +
	`"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},` +
	`"completion_tokens_details":{"reasoning_tokens":10,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`

func (f *FakeOpenAI) writeJSON(w http.ResponseWriter, req *chatRequestDoc, a fakeAnswer) {
	type call struct {
		ID       string            `json:"id"`
		Type     string            `json:"type"`
		Function map[string]string `json:"function"`
	}
	msg := map[string]any{"role": "assistant", "content": a.text, "refusal": nil}
	if len(a.calls) > 0 {
		var cs []call
		for i, c := range a.calls {
			cs = append(cs, call{ID: fmt.Sprintf("call_fake_%d", i), Type: "function", Function: map[string]string{"name": c[0], "arguments": c[1]}})
		}
		msg["tool_calls"] = cs
	}
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": a.finish}},
		"usage":   json.RawMessage(fakeOpenAIUsage)})
	w.Header().Set("content-type", "application/json")
	w.Header().Set("x-request-id", "req_fake_openai")
	_, _ = w.Write(b)
}

func (f *FakeOpenAI) writeStream(w http.ResponseWriter, r *http.Request, req *chatRequestDoc, a fakeAnswer) {
	w.Header().Set("content-type", "text/event-stream; charset=utf-8")
	w.Header().Set("x-request-id", "req_fake_openai")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var rng *rand.Rand
	if f.cfg.SplitSeed != 0 {
		rng = rand.New(rand.NewPCG(f.cfg.SplitSeed, 0))
	}
	write := func(b []byte) bool {
		for len(b) > 0 {
			n := len(b)
			if rng != nil {
				n = 1 + rng.IntN(len(b))
			}
			if _, err := w.Write(b[:n]); err != nil || rc.Flush() != nil {
				return false
			}
			b = b[n:]
		}
		return true
	}
	model, _ := json.Marshal(req.Model)
	chunk := func(choice string, usage string) []byte {
		c := `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":` + string(model) + `,"choices":[` + choice + `]`
		if usage != "" {
			c += `,"usage":` + usage
		} else if !f.cfg.NoStreamOptions {
			c += `,"usage":null`
		}
		return []byte(c + "}\n\n")
	}
	delta := func(d string, finish string) string {
		fr := "null"
		if finish != "" {
			fr = `"` + finish + `"`
		}
		return `{"index":0,"delta":` + d + `,"logprobs":null,"finish_reason":` + fr + `}`
	}
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	events := [][]byte{chunk(delta(`{"role":"assistant","content":"","refusal":null}`, ""), "")}
	if strings.HasSuffix(req.Model, "-miderror") {
		events = append(events, chunk(delta(`{"content":"Par"}`, ""), ""),
			[]byte(`data: {"error":{"message":"The server had an error while processing your request (fake).","type":"server_error","param":null,"code":null}}`+"\n\n"))
		for _, e := range events {
			if !write(e) {
				return
			}
		}
		return
	}
	words := strings.SplitAfter(a.text, " ")
	for _, wd := range words {
		events = append(events, chunk(delta(`{"content":`+str(wd)+`}`, ""), ""))
	}
	for i, c := range a.calls {
		args := c[1]
		cut1, cut2 := len(args)/3, 2*len(args)/3
		events = append(events,
			chunk(delta(fmt.Sprintf(`{"tool_calls":[{"index":%d,"id":"call_fake_%d","type":"function","function":{"name":%s,"arguments":""}}]}`, i, i, str(c[0])), ""), ""),
			chunk(delta(fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, i, str(args[:cut1])), ""), ""),
			chunk(delta(fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, i, str(args[cut1:cut2])), ""), ""),
			chunk(delta(fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, i, str(args[cut2:])), ""), ""))
	}
	switch {
	case f.cfg.NoStreamOptions:
		events = append(events, chunk(delta(`{}`, a.finish), ""))
	case len(a.calls) > 0: // the last chunk carries both the choice and the usage
		events = append(events, chunk(delta(`{}`, a.finish), fakeOpenAIUsage))
	default:
		events = append(events, chunk(delta(`{}`, a.finish), ""), []byte(`data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":`+string(model)+`,"choices":[],"usage":`+fakeOpenAIUsage+"}\n\n"))
	}
	events = append(events, []byte("data: [DONE]\n\n"))
	for _, e := range events {
		if !write(e) || r.Context().Err() != nil {
			return
		}
	}
	if strings.HasSuffix(req.Model, "-linger") {
		// The body stays open after data: [DONE] until the client goes away.
		t := time.NewTimer(lingerFor)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
	}
}

// lingerFor bounds how long a "-linger" stream stays open after data: [DONE].
const lingerFor = 30 * time.Second

// fakeOpenAIModels is GET {BasePath}/models's answer; GET
// {BasePath}/models/gpt-4.1 answers its first model.
const fakeOpenAIModels = `{"object":"list","data":[{"id":"gpt-4.1","object":"model","created":1744316542,"owned_by":"system"},` +
	`{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}`

// models answers GET {BasePath}/models (rest "") and {BasePath}/models/{id}
// (rest "/{id}") with the provider's bearer key.
func (f *FakeOpenAI) models(w http.ResponseWriter, r *http.Request, rest string) {
	if got := r.Header.Get("authorization"); got != "Bearer "+f.cfg.APIKey {
		f.violate("authorization is not the provider's bearer key")
		openAIErrorBody(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided")
		return
	}
	w.Header().Set("content-type", "application/json")
	switch rest {
	case "":
		_, _ = w.Write([]byte(fakeOpenAIModels))
	case "/gpt-4.1":
		_, _ = w.Write([]byte(`{"id":"gpt-4.1","object":"model","created":1744316542,"owned_by":"system"}`))
	default:
		openAIErrorBody(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "The model does not exist (fake).")
	}
}

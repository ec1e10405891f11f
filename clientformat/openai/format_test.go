package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

func TestClassify(t *testing.T) {
	f := Format{}
	if ep, ok, err := f.Classify("POST", "/v1/chat/completions?x=1"); !ok || err != nil || !ep.Metered || !ep.Body || ep.Name != "messages" {
		t.Errorf("chat: %+v %v %v", ep, ok, err)
	}
	for _, mp := range [][2]string{{"GET", "/v1/chat/completions"}, {"POST", "/v1/messages"}, {"GET", "/v1/models"}} {
		if _, ok, _ := f.Classify(mp[0], mp[1]); ok {
			t.Errorf("%s %s classified", mp[0], mp[1])
		}
	}
}

// GET /v1/models and /v1/models/{id} are an OpenAI client's when its
// credential is a bearer token and it sends neither x-api-key nor
// anthropic-version; anything else is left to the other formats.
func TestClassifyHeaders(t *testing.T) {
	hdr := func(kv ...string) func(string) string {
		return func(name string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == name {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	bearer := hdr("authorization", "Bearer tg-key")
	for _, tt := range []struct {
		method, path string
		header       func(string) string
		ok, refused  bool
	}{
		{"GET", "/v1/models", bearer, true, false},
		{"GET", "/v1/models?limit=5", hdr("authorization", "bearer tg-key"), true, false},
		{"GET", "/v1/models/gpt-4.1", bearer, true, false},
		{"GET", "/v1/models/..%2ffiles", bearer, true, true},
		{"GET", "/v1/models/a/b", bearer, true, true},
		{"GET", "/v1/models", hdr("authorization", "Bearer tg-key", "anthropic-version", "2023-06-01"), false, false},
		{"GET", "/v1/models", hdr("authorization", "Bearer tg-key", "x-api-key", "k"), false, false},
		{"GET", "/v1/models", hdr("x-api-key", "tg-key"), false, false},
		{"GET", "/v1/models", hdr("authorization", "Basic abc"), false, false},
		{"GET", "/v1/models", hdr(), false, false},
		{"GET", "/v1/models", nil, false, false},
		{"POST", "/v1/models", bearer, false, false},
		{"GET", "/v1/modelsx", bearer, false, false},
	} {
		ep, ok, err := Format{}.ClassifyHeaders(tt.method, tt.path, tt.header)
		if ok != tt.ok || (err != nil) != tt.refused || (ok && !tt.refused && (ep.Name != "models" || ep.Metered || ep.Body)) {
			t.Errorf("%s %s: %+v %v %v", tt.method, tt.path, ep, ok, err)
		}
	}
}

// The edits are byte-minimal: model and limits in place, and a stream's
// stream_options made to ask for usage, whatever the client sent.
func TestRequestBody(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"model":"a","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"x"}]}`,
			`{"stream_options":{"include_usage":true},"model":"b","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"x"}]}`},
		{`{"model":"a","stream":true,"stream_options":{"include_usage":false},"max_completion_tokens":100,"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"b","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":50,"messages":[{"role":"user","content":"x"}]}`},
		{`{"model":"a","stream":true,"stream_options":{},"messages":[{"role":"user","content":"x"}]}`, `{"model":"b","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`},
		{`{"model":"a","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}`, `{"model":"b","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[{"role":"user","content":"x"}]}`},
		{`{"model":"a","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}`, `{"model":"b","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`},
		{`{"model":"a", "stream":false, "max_completion_tokens":100,"messages":[{"role":"user","content":"x"}]}`, `{"model":"b", "stream":false, "max_completion_tokens":50,"messages":[{"role":"user","content":"x"}]}`},
	} {
		r, err := Format{}.ReadRequest(clientformat.Endpoint{}, "", []byte(tc.in), false)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := r.MaxTokens(); ok && n != 100 {
			t.Errorf("%s: max tokens %d", tc.in, n)
		}
		r.SetModel("b")
		r.SetMaxTokens(50)
		got, edited := r.Body()
		if string(got) != tc.want || !edited || !json.Valid(got) {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// Nothing to change: the body itself.
	in := `{"model":"a","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`
	r, _ := Format{}.ReadRequest(clientformat.Endpoint{}, "", []byte(in), false)
	if got, edited := r.Body(); edited || string(got) != in {
		t.Errorf("unchanged body: %s %v", got, edited)
	}
	if _, err := (Format{}).ReadRequest(clientformat.Endpoint{}, "", []byte(`{"model":"a","max_completion_tokens":"x","messages":[{"role":"user","content":"x"}]}`), false); err == nil {
		t.Error("a string max_completion_tokens was read")
	}
}

func TestMedia(t *testing.T) {
	body := `{"model":"a","messages":[{"role":"user","content":[{"type":"text","text":"hi"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAABBBB"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],` +
		`"tools":[{"type":"function","function":{"name":"f"}}]}`
	r, err := Format{}.ReadRequest(clientformat.Endpoint{}, "", []byte(body), true)
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Media(); m.Images != 2 || m.Base64Bytes != 8 || m.Tools != 1 {
		t.Errorf("media %+v", m)
	}
}

const usageJSON = `{"prompt_tokens":1200,"completion_tokens":25,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":10}}`

var wantUsage = pricing.Usage{InputTokens: 176, CacheReadTokens: 1024, OutputTokens: 25, ReasoningTokens: 10}

func TestParseResponse(t *testing.T) {
	r := Format{}.ParseResponse(200, []byte(`{"id":"x","model":"gpt-4o","choices":[],"usage":`+usageJSON+`}`))
	if !r.Metered || r.Usage != wantUsage || r.Model != "gpt-4o" {
		t.Errorf("%+v", r)
	}
	r = Format{}.ParseResponse(429, []byte(`{"error":{"message":"m","type":"requests","param":null,"code":"rate_limit_exceeded"}}`))
	if r.ErrorType != "requests" || r.Metered {
		t.Errorf("%+v", r)
	}
}

// A stream fed in pieces of every size gives the usage of its last chunk;
// one cut before data: [DONE] gets an error chunk and an estimate.
func TestStreamMeter(t *testing.T) {
	stream := "data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello there\"}}]}\n\n" +
		"data: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":" + usageJSON + "}\n\n" +
		"data: [DONE]\n\n"
	for step := 1; step <= len(stream); step++ {
		m := Format{}.NewStreamMeter("text/event-stream; charset=utf-8")
		for i := 0; i < len(stream); i += step {
			m.Write([]byte(stream[i:min(i+step, len(stream))]))
		}
		u := m.Usage()
		if u.Usage != wantUsage || !u.Complete || !u.Metered || u.Estimated || u.Model != "gpt-4o" || m.Cut() != nil {
			t.Fatalf("step %d: %+v", step, u)
		}
	}
	m := Format{}.NewStreamMeter("text/event-stream")
	m.Write([]byte(stream[:strings.Index(stream, "\n\n")+12]))
	u := m.Usage()
	if u.Complete || !u.Estimated || u.Usage.OutputTokens != 3 {
		t.Errorf("cut: %+v", u)
	}
	cut := string(m.Cut())
	if cut[:2] != "\n\n" || !json.Valid([]byte(cut[len("\n\ndata: "):len(cut)-2])) {
		t.Errorf("cut %q", cut)
	}
	if (Format{}).NewStreamMeter("application/json") != nil {
		t.Error("a JSON body got a stream meter")
	}
}

func TestRenderError(t *testing.T) {
	r := Format{}.RenderError(clientformat.Error{Status: 429, Code: clientformat.CodeRateLimit, Message: "budget spent"})
	want := `{"error":{"message":"budget spent","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
	if r.Status != 429 || string(r.Body) != want || r.ContentType != "application/json" {
		t.Errorf("%d %s", r.Status, r.Body)
	}
}

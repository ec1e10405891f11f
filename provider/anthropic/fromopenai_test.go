package anthropic

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/tollgate-dev/tollgate/translate"
)

func openAITranslator(t *testing.T) *fromOpenAI {
	t.Helper()
	tr, ok := Type{}.Translator(translate.ClientOpenAI)
	if !ok {
		t.Fatal("the openai client format is not served")
	}
	return tr.(translate.AttemptTranslator).ForAttempt(newSettings()).(*fromOpenAI)
}

// A Chat Completions request becomes the Messages request with the same
// meaning: system and developer messages in the top-level system, tool
// calls as tool_use, consecutive tool messages as tool_result blocks of one
// user turn, images, tools and tool_choice, stop, user, the default
// max_tokens, and no sampling parameter the client did not send.
func TestFromOpenAIRequest(t *testing.T) {
	in := `{"model":"gpt","messages":[
{"role":"system","content":"Be brief."},
{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
 {"id":"c2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
{"role":"tool","tool_call_id":"c1","content":"sunny"},
{"role":"tool","tool_call_id":"c2","content":"rain"},
{"role":"developer","content":"Answer in French."}],
"tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object"}}}],
"tool_choice":"required","parallel_tool_calls":false,"stop":"END","user":"u1","stream":true,"stream_options":{"include_usage":true}}`
	want := `{"max_tokens":4096,"messages":[{"role":"user","content":[{"text":"Weather?","type":"text"},{"source":{"data":"AAAA","media_type":"image/png","type":"base64"},"type":"image"}]},` +
		`{"role":"assistant","content":[{"id":"c1","input":{"city":"Paris"},"name":"get_weather","type":"tool_use"},{"id":"c2","input":{"city":"Oslo"},"name":"get_weather","type":"tool_use"}]},` +
		`{"role":"user","content":[{"content":"sunny","tool_use_id":"c1","type":"tool_result"},{"content":"rain","tool_use_id":"c2","type":"tool_result"}]}],` +
		`"metadata":{"user_id":"u1"},"model":"claude-x","stop_sequences":["END"],"stream":true,"system":"Be brief.\n\nAnswer in French.",` +
		`"tool_choice":{"disable_parallel_tool_use":true,"type":"any"},"tools":[{"description":"d","input_schema":{"type":"object"},"name":"get_weather"}]}`
	out, path, err := openAITranslator(t).TranslateRequest("/v1/chat/completions", nil, []byte(in), func(string) string { return "claude-x" })
	if err != nil || path != "/v1/messages" || string(out) != want {
		t.Fatalf("path %q err %v\n got %s\nwant %s", path, err, out, want)
	}
	out, _, err = openAITranslator(t).TranslateRequest("/v1/chat/completions", nil,
		[]byte(`{"model":"m","max_completion_tokens":10,"temperature":0.2,"messages":[{"role":"user","content":"hi"}]}`), func(s string) string { return s })
	if err != nil || string(out) != `{"max_tokens":10,"messages":[{"role":"user","content":[{"text":"hi","type":"text"}]}],"model":"m","temperature":0.2}` {
		t.Errorf("%s %v", out, err)
	}
	if _, _, err := openAITranslator(t).TranslateRequest("/v1/models", nil, []byte(`{}`), func(s string) string { return s }); err == nil {
		t.Error("another path was translated")
	}
}

// An Anthropic stream with text and two tool calls, split at random seeded
// offsets, becomes a chunk stream that openai-go accumulates into the right
// completion, with the usage chunk and data: [DONE] last.
func TestToOpenAIStream(t *testing.T) {
	events := []string{
		`{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{}}}`,
		`{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Oslo\"}"}}`,
		`{"type":"content_block_stop","index":2}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}`,
		`{"type":"message_stop"}`,
	}
	var sse strings.Builder
	for _, e := range events {
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(e), &typ)
		sse.WriteString("event: " + typ.Type + "\ndata: " + e + "\n\n")
	}
	in := []byte(sse.String())
	for seed := uint64(0); seed < 20; seed++ {
		tr := openAITranslator(t)
		tr.model = "gpt"
		hdr := map[string]string{"content-type": "text/event-stream", "date": "Fri, 04 Dec 2026 04:00:00 GMT"}
		body := tr.TranslateResponse("/v1/chat/completions", 200, func(k string) string { return hdr[k] },
			func(string, string) {}, func(string) {}, func(string, string) {})
		var out []byte
		rng := rand.New(rand.NewPCG(seed, 1))
		for rest := in; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if seed == 0 {
				n = len(rest)
			}
			out = append(out, body(rest[:n], n == len(rest))...)
			rest = rest[n:]
		}
		if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
			t.Fatalf("seed %d: no [DONE]:\n%s", seed, out)
		}
		var acc openai.ChatCompletionAccumulator
		for _, line := range strings.Split(string(out), "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var c openai.ChatCompletionChunk
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatal(err)
			}
			acc.AddChunk(c)
		}
		cc := acc.ChatCompletion
		if len(cc.Choices) != 1 {
			t.Fatalf("seed %d: %s", seed, out)
		}
		m := cc.Choices[0].Message
		if m.Content != "Let me check." || cc.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 2 ||
			m.ToolCalls[0].ID != "toolu_1" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` || m.ToolCalls[1].Function.Arguments != `{"city":"Oslo"}` {
			t.Fatalf("seed %d: %+v", seed, m)
		}
		if u := cc.Usage; u.PromptTokens != 115 || u.PromptTokensDetails.CachedTokens != 100 || u.CompletionTokens != 42 || cc.Created != 1796356800 || cc.Model != "claude-x" {
			t.Errorf("seed %d: usage %+v created %d model %q", seed, u, cc.Created, cc.Model)
		}
	}
}

// A Message with a tool call becomes a chat.completion; an error, OpenAI's
// error shape with 529 as 503.
func TestToOpenAIJSONAndErrors(t *testing.T) {
	tr := openAITranslator(t)
	var status string
	hdr := map[string]string{"content-type": "application/json"}
	body := tr.TranslateResponse("", 200, func(k string) string { return hdr[k] }, func(k, v string) {}, func(string) {}, nil)
	out := body([]byte(`{"id":"msg_1","model":"claude-x","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}`), true)
	var cc openai.ChatCompletion
	if err := json.Unmarshal(out, &cc); err != nil || len(cc.Choices) != 1 || cc.Choices[0].FinishReason != "tool_calls" ||
		cc.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"a":1}` || cc.Usage.PromptTokens != 3 || cc.Usage.CompletionTokens != 4 {
		t.Errorf("%s %v", out, err)
	}
	body = tr.TranslateResponse("", 529, func(k string) string { return hdr[k] }, func(k, v string) {
		if k == ":status" {
			status = v
		}
	}, func(string) {}, nil)
	out = body([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`), true)
	if status != "503" || string(out) != `{"error":{"code":"overloaded_error","message":"Overloaded","param":null,"type":"server_error"}}` {
		t.Errorf("%s %s", status, out)
	}
}

// The translation for OpenAI clients refuses, before anything is sent, n
// above 1: the Messages API answers one choice.
func TestFromOpenAICheckRequest(t *testing.T) {
	tr, _ := Type{}.Translator(translate.ClientOpenAI)
	rc, ok := tr.(translate.RequestChecker)
	if !ok {
		t.Fatal("the translation for OpenAI clients checks no request")
	}
	if err := rc.CheckRequest("/v1/chat/completions", []byte(`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`)); err == nil {
		t.Error("n: 2 was not refused")
	}
	if err := rc.CheckRequest("/v1/chat/completions", []byte(`{"model":"m","n":1,"messages":[{"role":"user","content":"hi"}]}`)); err != nil {
		t.Error(err)
	}
}

package envoytest

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
)

// The usage of the fake Anthropic's tool answers ("-tools" models): input,
// cache reads, 5-minute cache writes and output.
const (
	FakeAnthropicToolsInput      = 120
	FakeAnthropicToolsCacheRead  = 1000
	FakeAnthropicToolsCacheWrite = 200
	FakeAnthropicToolsOutput     = 40
)

// toolsRequest is what the fake reads of a request for a "-tools" model.
type toolsRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// toolResult returns the content of the last tool_result block of the last
// message, and whether it has one.
func (r *toolsRequest) toolResult() (string, bool) {
	if len(r.Messages) == 0 {
		return "", false
	}
	var blocks []struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(r.Messages[len(r.Messages)-1].Content, &blocks) != nil {
		return "", false
	}
	for i := len(blocks) - 1; i >= 0; i-- {
		if blocks[i].Type != "tool_result" {
			continue
		}
		var s string
		if json.Unmarshal(blocks[i].Content, &s) == nil {
			return s, true
		}
		var parts []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(blocks[i].Content, &parts)
		var texts []string
		for _, p := range parts {
			texts = append(texts, p.Text)
		}
		return strings.Join(texts, "\n"), true
	}
	return "", false
}

// toolsAnswer answers a request for a model containing "-tools", as the
// model less "-tools": when the last message ends with a tool_result, the
// text "Tool said: " and its content; otherwise the text "Let me check."
// and two calls of the request's first tool, with input
// {"city":"Paris","days":3} and {"city":"Oslo"} (streamed as
// input_json_delta fragments). The usage is the FakeAnthropicTools
// constants. A stream is written in pieces cut at random offsets when the
// fake's SplitSeed is set.
func (f *FakeAnthropic) toolsAnswer(w http.ResponseWriter, body []byte) {
	var req toolsRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Tools) == 0 {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "fake provider: a -tools model needs tools")
		return
	}
	model := strings.Replace(req.Model, "-tools", "", 1)
	type block map[string]any
	var content []block
	stop := "tool_use"
	if res, ok := req.toolResult(); ok {
		content, stop = []block{{"type": "text", "text": "Tool said: " + res}}, "end_turn"
	} else {
		content = []block{{"type": "text", "text": "Let me check."},
			{"type": "tool_use", "id": "toolu_fake_1", "name": req.Tools[0].Name, "input": block{"city": "Paris", "days": 3}},
			{"type": "tool_use", "id": "toolu_fake_2", "name": req.Tools[0].Name, "input": block{"city": "Oslo"}}}
	}
	usage := block{"input_tokens": FakeAnthropicToolsInput, "cache_read_input_tokens": FakeAnthropicToolsCacheRead,
		"cache_creation_input_tokens": FakeAnthropicToolsCacheWrite,
		"cache_creation":              block{"ephemeral_5m_input_tokens": FakeAnthropicToolsCacheWrite, "ephemeral_1h_input_tokens": 0},
		"output_tokens":               FakeAnthropicToolsOutput}
	if !req.Stream {
		b, _ := json.Marshal(block{"id": "msg_fake_tools", "type": "message", "role": "assistant", "model": model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": usage})
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write(b)
		return
	}
	var events []string
	add := func(typ string, v block) {
		v["type"] = typ
		b, _ := json.Marshal(v)
		events = append(events, "event: "+typ+"\ndata: "+string(b)+"\n\n")
	}
	start := block{"input_tokens": FakeAnthropicToolsInput, "cache_read_input_tokens": FakeAnthropicToolsCacheRead,
		"cache_creation_input_tokens": FakeAnthropicToolsCacheWrite, "output_tokens": 1}
	add("message_start", block{"message": block{"id": "msg_fake_tools", "type": "message", "role": "assistant", "model": model,
		"content": []block{}, "stop_reason": nil, "stop_sequence": nil, "usage": start}})
	events = append(events, "event: ping\ndata: {\"type\": \"ping\"}\n\n")
	for i, c := range content {
		if c["type"] == "text" {
			add("content_block_start", block{"index": i, "content_block": block{"type": "text", "text": ""}})
			text := c["text"].(string)
			half := len(text) / 2
			for _, part := range []string{text[:half], text[half:]} {
				add("content_block_delta", block{"index": i, "delta": block{"type": "text_delta", "text": part}})
			}
		} else {
			add("content_block_start", block{"index": i, "content_block": block{"type": "tool_use", "id": c["id"], "name": c["name"], "input": block{}}})
			in, _ := json.Marshal(c["input"])
			third := len(in) / 3
			for _, frag := range []string{"", string(in[:third]), string(in[third : 2*third]), string(in[2*third:])} {
				add("content_block_delta", block{"index": i, "delta": block{"type": "input_json_delta", "partial_json": frag}})
			}
		}
		add("content_block_stop", block{"index": i})
	}
	add("message_delta", block{"delta": block{"stop_reason": stop, "stop_sequence": nil}, "usage": block{"output_tokens": FakeAnthropicToolsOutput}})
	add("message_stop", block{})
	w.Header().Set("content-type", "text/event-stream")
	w.Header().Set("cache-control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var rng *rand.Rand
	if f.cfg.SplitSeed != 0 {
		rng = rand.New(rand.NewPCG(f.cfg.SplitSeed, 0))
	}
	for _, ev := range events {
		for b := []byte(ev); len(b) > 0; {
			n := len(b)
			if rng != nil {
				n = 1 + rng.IntN(len(b))
			}
			if _, err := w.Write(b[:n]); err != nil || rc.Flush() != nil {
				return
			}
			b = b[n:]
		}
	}
}

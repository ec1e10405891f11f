package openaichat

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// messagesRequest is what a test reads of a translated Messages request.
type messagesRequest struct {
	System   string `json:"system"`
	Messages []struct {
		Role    string `json:"role"`
		Content []struct {
			Type      string          `json:"type"`
			Text      string          `json:"text"`
			ID        string          `json:"id"`
			Name      string          `json:"name"`
			Input     json.RawMessage `json:"input"`
			ToolUseID string          `json:"tool_use_id"`
			Content   string          `json:"content"`
		} `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// checkAlternates checks what the Messages API requires of a conversation:
// it starts with a user turn, roles alternate, and each tool_result answers
// a tool_use of the assistant turn before it, before any text of its turn.
func checkAlternates(t *testing.T, r messagesRequest) {
	t.Helper()
	for i, m := range r.Messages {
		if want := []string{"user", "assistant"}[i%2]; m.Role != want {
			t.Fatalf("messages[%d] is %s; want %s", i, m.Role, want)
		}
		text := false
		for _, b := range m.Content {
			switch b.Type {
			case "text":
				text = true
			case "tool_result":
				if text {
					t.Errorf("messages[%d]: a tool_result after text", i)
				}
				found := false
				for _, u := range r.Messages[i-1].Content {
					found = found || (u.Type == "tool_use" && u.ID == b.ToolUseID)
				}
				if !found {
					t.Errorf("messages[%d]: tool_result for %s answers no tool_use of the turn before", i, b.ToolUseID)
				}
			}
		}
	}
}

// The Claude Code-shaped conversation, as an OpenAI client sends it (the
// Claude Code body of the e2e tests in Chat Completions form: the golden of
// the forward translation), translates to a valid Messages request, and its
// tool loop round-trips through openai-go: the provider's tool_use streams
// out as tool_calls the SDK accumulates, and the assistant message and tool
// result the SDK then sends come back as the same tool_use (id, name,
// parsed input) and a tool_result answering it.
func TestClaudeCodeToolLoop(t *testing.T) {
	body, err := os.ReadFile("../../openai/testdata/request/claude-code.openai.json.golden")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := Request(body, identity)
	if err != nil {
		t.Fatal(err)
	}
	var first messagesRequest
	if err := json.Unmarshal(out, &first); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.System, "x-anthropic-billing-header") || len(first.Tools) != 2 || len(first.Messages) != 3 {
		t.Fatalf("first request: system %.40q, %d tools, %d messages", first.System, len(first.Tools), len(first.Messages))
	}
	checkAlternates(t, first)

	// The provider answers with text and a call of the conversation's first
	// tool, streamed in fragments.
	tool := first.Tools[0].Name
	sse := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":3000,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Reading it.\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"" + tool + "\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"file_path\\\":\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"/repo/parser.go\\\"}\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":30}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	chunks, _, _ := respond(t, "text/event-stream", 200, []byte(sse), 7)
	var acc openai.ChatCompletionAccumulator
	for _, line := range strings.Split(string(chunks), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c openai.ChatCompletionChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatal(err)
		}
		if !acc.AddChunk(c) {
			t.Fatalf("the SDK refused chunk %s", data)
		}
	}
	if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "tool_calls" || len(acc.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("accumulated %+v", acc.ChatCompletion)
	}
	call := acc.Choices[0].Message.ToolCalls[0]
	if call.ID != "toolu_01A" || call.Function.Name != tool || call.Function.Arguments != `{"file_path": "/repo/parser.go"}` {
		t.Fatalf("tool call %+v", call)
	}

	// The client sends the assistant message and the tool's result back.
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(doc["messages"], &msgs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []openai.ChatCompletionMessageParamUnion{acc.Choices[0].Message.ToParam(), openai.ToolMessage("package parser", call.ID)} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	doc["messages"], _ = json.Marshal(msgs)
	next, _ := json.Marshal(doc)
	out, _, err = Request(next, identity)
	if err != nil {
		t.Fatal(err)
	}
	var second messagesRequest
	if err := json.Unmarshal(out, &second); err != nil {
		t.Fatal(err)
	}
	checkAlternates(t, second)
	n := len(second.Messages)
	if n != len(first.Messages)+2 {
		t.Fatalf("%d messages; want %d", n, len(first.Messages)+2)
	}
	a, u := second.Messages[n-2], second.Messages[n-1]
	if a.Role != "assistant" || len(a.Content) != 2 || a.Content[0].Text != "Reading it." || a.Content[1].Type != "tool_use" ||
		a.Content[1].ID != "toolu_01A" || a.Content[1].Name != tool || string(a.Content[1].Input) != `{"file_path":"/repo/parser.go"}` {
		t.Errorf("assistant turn %+v", a)
	}
	if u.Role != "user" || len(u.Content) != 1 || u.Content[0].Type != "tool_result" || u.Content[0].ToolUseID != "toolu_01A" ||
		u.Content[0].Content != "package parser" {
		t.Errorf("tool result turn %+v", u)
	}
}

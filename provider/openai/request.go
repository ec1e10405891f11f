package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The request's side of the translation (WIRE-FORMATS section 6, the
// mapping table), Anthropic Messages in, Chat Completions out. The
// Anthropic body is decoded into the few fields that have an equivalent;
// the others (top_k, thinking, output_config, context_management,
// service_tier, cache_control, container, ...) have none and are left out.
// Sampling parameters go only where the client sent them.

// anthRequest is the part of a Messages request that is translated.
type anthRequest struct {
	Model         *string         `json:"model"`
	MaxTokens     json.RawMessage `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []anthMessage   `json:"messages"`
	Tools         []anthTool      `json:"tools"`
	ToolChoice    *anthToolChoice `json:"tool_choice"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
	Temperature   json.RawMessage `json:"temperature"`
	TopP          json.RawMessage `json:"top_p"`
	Metadata      *struct {
		UserID *string `json:"user_id"`
	} `json:"metadata"`
}

type anthMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// anthBlock is one content block of any type; each type uses some fields.
type anthBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	Source    *anthSource     `json:"source"`
	Title     string          `json:"title"`
}

type anthSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

type anthTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// chatRequest is a Chat Completions request, in the order its fields are
// written.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          any             `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens,omitempty"`
	MaxTokens           json.RawMessage `json:"max_tokens,omitempty"`
	Temperature         json.RawMessage `json:"temperature,omitempty"`
	TopP                json.RawMessage `json:"top_p,omitempty"`
	User                string          `json:"user,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatMessage is one message; Content is a string, a []chatPart or nil
// (left out: an assistant message with only tool calls).
type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content,omitempty"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string        `json:"type"`
	Text     *string       `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
	File     *chatFile     `json:"file,omitempty"`
}

type chatImageURL struct {
	URL string `json:"url"`
}

type chatFile struct {
	FileData string `json:"file_data"`
	Filename string `json:"filename,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string      `json:"type"`
	Function chatToolDef `json:"function"`
}

type chatToolDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type namedChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// quirks are the settings the request's translation follows.
type quirks struct {
	maxTokensField  string
	streamOptions   bool
	maxOutputTokens int64
}

// translateRequest returns the Chat Completions body for an Anthropic
// Messages body, its model mapped by mapModel and its tool names shortened
// by names; and the model it names.
func translateRequest(body []byte, mapModel func(string) string, q quirks, names *toolNames) ([]byte, string, error) {
	var in anthRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, "", fmt.Errorf("the body is not a Messages request: %w", err)
	}
	if in.Model == nil || mapModel(*in.Model) == "" {
		return nil, "", errors.New("the request names no model")
	}
	out := chatRequest{Model: mapModel(*in.Model), Stream: in.Stream, Stop: in.StopSequences,
		Temperature: nonNull(in.Temperature), TopP: nonNull(in.TopP)}
	if mt := nonNull(in.MaxTokens); mt != nil {
		if n, err := strconv.ParseInt(string(mt), 10, 64); err == nil && q.maxOutputTokens > 0 && n > q.maxOutputTokens {
			mt = strconv.AppendInt(nil, q.maxOutputTokens, 10)
		}
		if q.maxTokensField == MaxTokens {
			out.MaxTokens = mt
		} else {
			out.MaxCompletionTokens = mt
		}
	}
	if in.Metadata != nil && in.Metadata.UserID != nil {
		out.User = *in.Metadata.UserID
	}
	if in.Stream && q.streamOptions {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if sys := nonNull(in.System); sys != nil {
		text, err := systemText(sys)
		if err != nil {
			return nil, "", fmt.Errorf("system: %w", err)
		}
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: text})
	}
	msgs, err := translateMessages(in.Messages, names)
	if err != nil {
		return nil, "", err
	}
	out.Messages = append(out.Messages, msgs...)
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			continue // a server tool (web_search_..., bash_..., ...): Anthropic runs them, no OpenAI API does
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatToolDef{Name: names.shorten(t.Name),
			Description: t.Description, Parameters: nonNull(t.InputSchema)}})
	}
	if tc := in.ToolChoice; tc != nil && (len(out.Tools) > 0 || tc.Type == "none") {
		switch tc.Type {
		case "auto":
			out.ToolChoice = "auto"
		case "any":
			out.ToolChoice = "required"
		case "none":
			out.ToolChoice = "none"
		case "tool":
			var c namedChoice
			c.Type, c.Function.Name = "function", names.shorten(tc.Name)
			out.ToolChoice = c
		default:
			return nil, "", fmt.Errorf("tool_choice type %q has no Chat Completions equivalent", tc.Type)
		}
		if tc.DisableParallelToolUse && len(out.Tools) > 0 {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	var buf bytes.Buffer
	buf.Grow(len(body))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // prompts are full of < and >; \u003c is six bytes
	if err := enc.Encode(out); err != nil {
		return nil, "", fmt.Errorf("encoding the Chat Completions request: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), out.Model, nil
}

// nonNull returns raw, or nil when it is absent or JSON null.
func nonNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// systemText returns the text of a system prompt or a role:"system" entry's
// content: a string, or text blocks joined with blank lines (their
// cache_control has no equivalent).
func systemText(raw json.RawMessage) (string, error) {
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var blocks []anthBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", err
	}
	texts := make([]string, 0, len(blocks))
	for _, b := range blocks {
		if b.Type != "text" {
			return "", fmt.Errorf("a %q block where only text blocks may be", b.Type)
		}
		texts = append(texts, b.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// translateMessages translates the messages. Each run of messages between
// two assistant messages (user turns and role:"system" entries) becomes:
// first one tool message per tool_result, in order, since OpenAI wants them
// right after the assistant message whose tool calls they answer; then the
// run's messages in order with the rest of their content (an image a tool
// returned goes into its user message, as tool messages take only text).
func translateMessages(msgs []anthMessage, names *toolNames) ([]chatMessage, error) {
	out := make([]chatMessage, 0, len(msgs)+4)
	var rest []chatMessage
	flush := func() {
		out = append(out, rest...)
		rest = rest[:0]
	}
	for i, m := range msgs {
		content := nonNull(m.Content)
		if content == nil {
			return nil, fmt.Errorf("messages[%d] has no content", i)
		}
		switch m.Role {
		case "assistant":
			flush()
			am, ok, err := assistantMessage(content, names)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			if ok {
				out = append(out, am)
			}
		case "system":
			text, err := systemText(content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			rest = append(rest, chatMessage{Role: "system", Content: text})
		case "user":
			tools, um, err := userMessage(content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			out = append(out, tools...)
			if um.Content != nil {
				rest = append(rest, um)
			}
		default:
			return nil, fmt.Errorf("messages[%d] has role %q", i, m.Role)
		}
	}
	flush()
	return out, nil
}

// blocksOf returns a message content's blocks; a string is one text block.
func blocksOf(content json.RawMessage) ([]anthBlock, error) {
	if content[0] == '"' {
		var s string
		if err := json.Unmarshal(content, &s); err != nil {
			return nil, err
		}
		return []anthBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []anthBlock
	if err := json.Unmarshal(content, &blocks); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return blocks, nil
}

// assistantMessage translates an assistant turn: its text, and its tool_use
// blocks as tool calls. Thinking blocks are dropped: Chat Completions takes
// no thinking, and a signature cannot travel. ok is false when nothing is
// left.
func assistantMessage(content json.RawMessage, names *toolNames) (chatMessage, bool, error) {
	m := chatMessage{Role: "assistant"}
	if content[0] == '"' {
		var s string
		err := json.Unmarshal(content, &s)
		m.Content = s
		return m, true, err
	}
	blocks, err := blocksOf(content)
	if err != nil {
		return m, false, err
	}
	var texts []string
	for _, b := range blocks {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			args := "{}"
			if in := nonNull(b.Input); in != nil {
				var c bytes.Buffer
				if err := json.Compact(&c, in); err != nil {
					return m, false, fmt.Errorf("tool_use %s: input: %w", b.ID, err)
				}
				args = c.String()
			}
			m.ToolCalls = append(m.ToolCalls, chatToolCall{ID: b.ID, Type: "function",
				Function: chatFunction{Name: names.shorten(b.Name), Arguments: args}})
		case "thinking", "redacted_thinking":
		default:
			return m, false, fmt.Errorf("an assistant %q block has no Chat Completions equivalent", b.Type)
		}
	}
	if len(texts) > 0 {
		m.Content = strings.Join(texts, "\n\n")
	}
	return m, m.Content != nil || len(m.ToolCalls) > 0, nil
}

// userMessage translates a user turn: one tool message per tool_result,
// and the rest, a user message whose Content is nil when nothing is left.
// Text-only content is a string (its blocks joined with blank lines), which
// every compatible API takes; with an image or a document it is a list of
// parts.
func userMessage(content json.RawMessage) ([]chatMessage, chatMessage, error) {
	um := chatMessage{Role: "user"}
	if content[0] == '"' {
		var s string
		err := json.Unmarshal(content, &s)
		um.Content = s
		return nil, um, err
	}
	blocks, err := blocksOf(content)
	if err != nil {
		return nil, um, err
	}
	var tools []chatMessage
	var parts []chatPart
	for _, b := range blocks {
		switch b.Type {
		case "tool_result":
			text, extra, err := toolResult(b)
			if err != nil {
				return nil, um, err
			}
			tools = append(tools, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: text})
			parts = append(parts, extra...)
		default:
			p, err := userPart(b)
			if err != nil {
				return nil, um, err
			}
			parts = append(parts, p)
		}
	}
	um.Content = partsContent(parts)
	return tools, um, nil
}

// partsContent returns the content for parts: nil for none, a string when
// all are text, else the parts.
func partsContent(parts []chatPart) any {
	if len(parts) == 0 {
		return nil
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type != "text" {
			return parts
		}
		texts = append(texts, *p.Text)
	}
	return strings.Join(texts, "\n\n")
}

// userPart translates one block of a user turn.
func userPart(b anthBlock) (chatPart, error) {
	switch b.Type {
	case "text":
		t := b.Text
		return chatPart{Type: "text", Text: &t}, nil
	case "image":
		if b.Source == nil {
			return chatPart{}, errors.New("an image without a source")
		}
		switch b.Source.Type {
		case "base64":
			return chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}}, nil
		case "url":
			return chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: b.Source.URL}}, nil
		}
		return chatPart{}, fmt.Errorf("an image source of type %q has no Chat Completions equivalent", b.Source.Type)
	case "document":
		if b.Source == nil {
			return chatPart{}, errors.New("a document without a source")
		}
		switch b.Source.Type {
		case "base64":
			name := b.Title
			if name == "" {
				name = "document.pdf"
			}
			return chatPart{Type: "file", File: &chatFile{FileData: "data:" + b.Source.MediaType + ";base64," + b.Source.Data, Filename: name}}, nil
		case "text":
			t := b.Source.Data
			return chatPart{Type: "text", Text: &t}, nil
		}
		return chatPart{}, fmt.Errorf("a document source of type %q has no Chat Completions equivalent", b.Source.Type)
	}
	return chatPart{}, fmt.Errorf("a user %q block has no Chat Completions equivalent", b.Type)
}

// toolResult returns a tool_result's text (a string, or its text blocks
// joined with blank lines) and the parts that a tool message cannot hold
// (images), which go into the user message after it.
func toolResult(b anthBlock) (string, []chatPart, error) {
	c := nonNull(b.Content)
	if c == nil {
		return "", nil, nil
	}
	if c[0] == '"' {
		var s string
		err := json.Unmarshal(c, &s)
		return s, nil, err
	}
	var blocks []anthBlock
	if err := json.Unmarshal(c, &blocks); err != nil {
		return "", nil, fmt.Errorf("tool_result %s: content: %w", b.ToolUseID, err)
	}
	var texts []string
	var extra []chatPart
	for _, inner := range blocks {
		if inner.Type == "text" {
			texts = append(texts, inner.Text)
			continue
		}
		p, err := userPart(inner)
		if err != nil {
			return "", nil, fmt.Errorf("tool_result %s: %w", b.ToolUseID, err)
		}
		extra = append(extra, p)
	}
	return strings.Join(texts, "\n\n"), extra, nil
}

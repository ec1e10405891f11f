package openaichat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// DefaultMaxTokens is the max_tokens an OpenAI client's request is sent with
// when it sets no output limit: the Messages API requires one, and Chat
// Completions has none by default.
const DefaultMaxTokens = 4096

// PathChat is the one client path an OpenAI client is served at by a
// provider of the Messages API, query excluded; PathMessages is the
// Messages API's, where the translated request goes.
const (
	PathChat     = "/v1/chat/completions"
	PathMessages = "/v1/messages"
)

// The Chat Completions request, as far as it has a Messages equivalent.
type chatRequest struct {
	Model               string            `json:"model"`
	Messages            []chatMessage     `json:"messages"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	MaxTokens           *int64            `json:"max_tokens"`
	Stream              bool              `json:"stream"`
	Stop                json.RawMessage   `json:"stop"`
	Temperature         json.RawMessage   `json:"temperature"`
	TopP                json.RawMessage   `json:"top_p"`
	User                string            `json:"user"`
	Tools               []chatTool        `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls   *bool             `json:"parallel_tool_calls"`
	Metadata            map[string]string `json:"metadata"`
	N                   json.RawMessage   `json:"n"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // a string, a list of parts, or null: decoded in the one pass
	ToolCalls  []chatToolCall `json:"tool_calls"`
	ToolCallID string         `json:"tool_call_id"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// block is an Anthropic content block of the translated request.
type block map[string]any

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// Request returns the Messages request for a Chat Completions body, and the
// model the client named: system and developer messages joined (blank lines
// between) into the top-level system; user content (text and images: a
// data: URL as base64, another URL as a url source); assistant text and
// tool_calls as tool_use blocks (arguments parsed as the input); tool
// messages as tool_result blocks, consecutive ones in one user turn; function
// tools and tool_choice; stop as stop_sequences; max_completion_tokens or
// max_tokens as max_tokens (DefaultMaxTokens when the client set neither);
// user as metadata.user_id; stream; temperature and top_p only when sent.
// The model id is mapModel's of the client's. An error means the request
// has no Messages equivalent, or is not a Chat Completions request.
func Request(body []byte, mapModel func(string) string) (out []byte, model string, err error) {
	var r chatRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", fmt.Errorf("the Chat Completions request does not decode: %w", err)
	}
	msg, err := request(&r, mapModel)
	if err != nil {
		return nil, r.Model, err
	}
	b, err := json.Marshal(msg)
	return b, r.Model, err
}

// oneChoice refuses an n other than absent, null or 1.
func oneChoice(n json.RawMessage) error {
	if len(n) == 0 || string(n) == "null" || string(n) == "1" {
		return nil
	}
	return &clientformat.FieldError{Param: "n", Message: fmt.Sprintf("%.40s choices asked for, but this provider answers one choice per request "+
		"(it is served through a translation from the Messages API); omit n or send n: 1", n)}
}

func request(r *chatRequest, mapModel func(string) string) (map[string]any, error) {
	if err := oneChoice(r.N); err != nil {
		return nil, err
	}
	out := map[string]any{"model": mapModel(r.Model)}
	maxTokens := int64(DefaultMaxTokens)
	switch {
	case r.MaxCompletionTokens != nil:
		maxTokens = *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		maxTokens = *r.MaxTokens
	}
	out["max_tokens"] = maxTokens
	var system []string
	var msgs []message
	add := func(role string, bs ...block) {
		if len(bs) == 0 {
			return
		}
		if n := len(msgs); n > 0 && msgs[n-1].Role == role {
			msgs[n-1].Content = append(msgs[n-1].Content, bs...)
			return
		}
		msgs = append(msgs, message{Role: role, Content: bs})
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer":
			text, err := textOf(m.Content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			system = append(system, text)
		case "user":
			bs, err := userBlocks(m.Content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			add("user", bs...)
		case "assistant":
			var bs []block
			if m.Content != nil {
				text, err := textOf(m.Content)
				if err != nil {
					return nil, fmt.Errorf("messages[%d]: %w", i, err)
				}
				if text != "" {
					bs = append(bs, block{"type": "text", "text": text})
				}
			}
			for _, c := range m.ToolCalls {
				input := json.RawMessage(c.Function.Arguments)
				if strings.TrimSpace(c.Function.Arguments) == "" {
					input = json.RawMessage(`{}`)
				} else if !json.Valid(input) {
					return nil, fmt.Errorf("messages[%d]: tool call %s: arguments are not JSON", i, c.ID)
				}
				bs = append(bs, block{"type": "tool_use", "id": c.ID, "name": c.Function.Name, "input": input})
			}
			add("assistant", bs...)
		case "tool":
			text, err := textOf(m.Content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d]: %w", i, err)
			}
			add("user", block{"type": "tool_result", "tool_use_id": m.ToolCallID, "content": text})
		default:
			return nil, &clientformat.FieldError{Param: fmt.Sprintf("messages[%d].role", i),
				Message: fmt.Sprintf("role %q has no Messages API equivalent", m.Role)}
		}
	}
	if len(system) > 0 {
		out["system"] = strings.Join(system, "\n\n")
	}
	out["messages"] = msgs
	if r.Stream {
		out["stream"] = true
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var one string
		var many []string
		switch {
		case json.Unmarshal(r.Stop, &one) == nil:
			out["stop_sequences"] = []string{one}
		case json.Unmarshal(r.Stop, &many) == nil:
			out["stop_sequences"] = many
		default:
			return nil, errors.New("stop must be a string or a list of strings")
		}
	}
	if len(r.Temperature) > 0 && string(r.Temperature) != "null" {
		out["temperature"] = r.Temperature
	}
	if len(r.TopP) > 0 && string(r.TopP) != "null" {
		out["top_p"] = r.TopP
	}
	if r.User != "" {
		out["metadata"] = map[string]string{"user_id": r.User}
	}
	if len(r.Tools) > 0 {
		var tools []block
		for _, tl := range r.Tools {
			if tl.Type != "function" {
				return nil, fmt.Errorf("tool type %q has no Messages API equivalent", tl.Type)
			}
			schema := tl.Function.Parameters
			if len(schema) == 0 || string(schema) == "null" {
				schema = json.RawMessage(`{"type":"object"}`)
			}
			b := block{"name": tl.Function.Name, "input_schema": schema}
			if tl.Function.Description != "" {
				b["description"] = tl.Function.Description
			}
			tools = append(tools, b)
		}
		out["tools"] = tools
	}
	tc, err := toolChoice(r.ToolChoice, r.ParallelToolCalls)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		out["tool_choice"] = tc
	}
	return out, nil
}

// toolChoice maps tool_choice and parallel_tool_calls: "auto", "required",
// "none" and {"type":"function","function":{"name":...}} are auto, any, none
// and tool; parallel_tool_calls false is disable_parallel_tool_use.
func toolChoice(raw json.RawMessage, parallel *bool) (block, error) {
	var tc block
	var s string
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case json.Unmarshal(raw, &s) == nil:
		switch s {
		case "auto":
			tc = block{"type": "auto"}
		case "required":
			tc = block{"type": "any"}
		case "none":
			tc = block{"type": "none"}
		default:
			return nil, fmt.Errorf("tool_choice %q has no Messages API equivalent", s)
		}
	case json.Unmarshal(raw, &named) == nil && named.Function.Name != "":
		tc = block{"type": "tool", "name": named.Function.Name}
	default:
		return nil, errors.New("tool_choice has no Messages API equivalent")
	}
	if parallel != nil && !*parallel {
		if tc == nil {
			tc = block{"type": "auto"}
		}
		if tc["type"] != "none" {
			tc["disable_parallel_tool_use"] = true
		}
	}
	return tc, nil
}

// partsOf returns a content decoded as any (a string, a list of parts, or
// null) as its text, when a string (null is ""), or its parts.
func partsOf(c any) (text string, parts []chatPart, err error) {
	switch v := c.(type) {
	case nil:
		return "", nil, nil
	case string:
		return v, nil, nil
	case []any:
		parts = make([]chatPart, 0, len(v))
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return "", nil, errors.New("content parts must be objects")
			}
			var p chatPart
			p.Type, _ = m["type"].(string)
			p.Text, _ = m["text"].(string)
			if iu, ok := m["image_url"].(map[string]any); ok {
				p.ImageURL = &struct {
					URL string `json:"url"`
				}{}
				p.ImageURL.URL, _ = iu["url"].(string)
			}
			parts = append(parts, p)
		}
		return "", parts, nil
	}
	return "", nil, errors.New("content must be a string or a list of parts")
}

// textOf returns the text of a content that is a string or a list of text
// parts (joined by blank lines).
func textOf(c any) (string, error) {
	s, parts, err := partsOf(c)
	if err != nil || parts == nil {
		return s, err
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("a %s part has no Messages API equivalent here", p.Type)
		}
		texts = append(texts, p.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// userBlocks returns the blocks of a user message: text, and images (a
// data: URL as base64, any other URL as a url source).
func userBlocks(c any) ([]block, error) {
	s, parts, err := partsOf(c)
	if err != nil {
		return nil, err
	}
	if parts == nil {
		return []block{{"type": "text", "text": s}}, nil
	}
	var bs []block
	for _, p := range parts {
		switch {
		case p.Type == "text":
			bs = append(bs, block{"type": "text", "text": p.Text})
		case p.Type == "image_url" && p.ImageURL != nil:
			u := p.ImageURL.URL
			if rest, ok := strings.CutPrefix(u, "data:"); ok {
				mt, data, ok := strings.Cut(rest, ";base64,")
				if !ok {
					return nil, errors.New("an image data URL must be base64")
				}
				bs = append(bs, block{"type": "image", "source": block{"type": "base64", "media_type": mt, "data": data}})
				continue
			}
			bs = append(bs, block{"type": "image", "source": block{"type": "url", "url": u}})
		default:
			return nil, fmt.Errorf("a %s part has no Messages API equivalent", p.Type)
		}
	}
	return bs, nil
}

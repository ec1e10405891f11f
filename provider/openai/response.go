package openai

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The response's side of the translation, Chat Completions in, Anthropic
// Messages out: an error keeps its meaning in Anthropic's error shape and
// status; a chat.completion becomes a Message; a chunk stream becomes
// Anthropic SSE (stream.go). Usage is normalised on the way: OpenAI's
// prompt_tokens includes prompt_tokens_details.cached_tokens, Anthropic's
// input_tokens does not, so input_tokens = prompt_tokens - cached_tokens and
// cache_read_input_tokens = cached_tokens; completion_tokens includes the
// reasoning tokens, which go to output_tokens_details.thinking_tokens (what
// Tollgate's meter records as reasoning tokens). Reasoning text
// (reasoning_content) is not surfaced as thinking: a thinking block needs a
// signature that cannot be had, and a later turn sent to Anthropic would be
// refused for it; so it is recorded in usage only.

// IdlePings tells the adapter (extproc.IdlePings) to ping the client while
// the provider is silent: an OpenAI-compatible stream carries no Anthropic
// ping, and a long pause would otherwise trip clients' idle watchdogs.
func (*fromAnthropic) IdlePings() bool { return true }

// TranslateResponse implements [translate.ResponseTranslator]. An error
// (status 300 and up) gets the Anthropic status and error type its status
// and body map to (errorFor) in Anthropic's shape; an event stream becomes
// Anthropic SSE chunk by chunk; a JSON chat.completion (or an answer without
// a content type) becomes a Message; the answer to GET /v1/models or
// /v1/models/{id}, OpenAI's list or model, the Anthropic API's
// (anthropicModels). Anything else passes as it is. The openai-organization and
// openai-project headers are removed.
func (t *fromAnthropic) TranslateResponse(clientPath string, status int, header func(string) string,
	set func(name, value string), remove func(name string), warn func(kind, msg string)) func([]byte, bool) []byte {
	ct := header("content-type")
	// They name the gateway's OpenAI account, which is none of the client's
	// business.
	remove("openai-organization")
	remove("openai-project")
	switch {
	case status >= 300:
		st, _ := statusFor(status)
		set(":status", strconv.Itoa(st))
		set("content-type", "application/json")
		remove("content-length")
		return whole(func(body []byte) []byte { return errorJSON(errorOf(body, status)) })
	case isModelsPath(clientPath):
		if !strings.HasPrefix(ct, "application/json") {
			return nil
		}
		remove("content-length")
		rest, _ := modelsRest(clientPath)
		list := rest == "" || rest[0] == '?' // else /{id}
		return whole(func(body []byte) []byte { return anthropicModels(body, list) })
	case strings.HasPrefix(ct, "text/event-stream"):
		remove("content-length")
		set("content-type", "text/event-stream")
		set("cache-control", "no-cache")
		s := newStream(&t.names, t.model, warn)
		return s.chunk
	case strings.HasPrefix(ct, "application/json"), ct == "":
		remove("content-length")
		return whole(func(body []byte) []byte { return t.message(body, warn) })
	}
	return nil
}

// whole collects a body and returns fn of it at its end.
func whole(fn func(body []byte) []byte) func([]byte, bool) []byte {
	var buf []byte
	return func(chunk []byte, end bool) []byte {
		buf = append(buf, chunk...)
		if !end {
			return nil
		}
		return fn(buf)
	}
}

// statusFor maps a provider's HTTP error status to the status and error type
// an Anthropic client gets. The provider's own credentials failing is the
// gateway's problem, not the client's key: 401 becomes 403
// permission_error, as for Bedrock. The table is in the README.
func statusFor(status int) (int, string) {
	switch status {
	case 400, 422:
		return 400, "invalid_request_error"
	case 401, 403:
		return 403, "permission_error"
	case 402:
		return 402, "billing_error"
	case 404:
		return 404, "not_found_error"
	case 408, 504:
		return 504, "timeout_error"
	case 409:
		return 409, "conflict_error"
	case 413:
		return 413, "request_too_large"
	case 429:
		return 429, "rate_limit_error"
	case 502, 503, 529:
		return 529, "overloaded_error"
	}
	if status >= 300 && status < 500 {
		return 400, "invalid_request_error"
	}
	return 500, "api_error"
}

// typeFor maps an OpenAI error's type or code (an error in a stream, which
// has no status) to an Anthropic error type; "" when it names none.
func typeFor(s string) string {
	switch s {
	case "invalid_request_error", "context_length_exceeded", "invalid_prompt", "bad_request":
		return "invalid_request_error"
	case "authentication_error", "invalid_api_key", "permission_error", "permission_denied":
		return "permission_error"
	case "rate_limit_exceeded", "rate_limit_error", "insufficient_quota", "tokens", "requests":
		return "rate_limit_error"
	case "server_error", "internal_error", "internal_server_error", "api_error":
		return "api_error"
	case "overloaded", "overloaded_error", "service_unavailable", "engine_overloaded":
		return "overloaded_error"
	case "timeout", "timeout_error":
		return "timeout_error"
	case "not_found_error", "model_not_found":
		return "not_found_error"
	}
	return ""
}

// openAIError is the error object of OpenAI's error shape,
// {"error":{"message","type","param","code"}}; code may be a string or,
// from some compatible APIs, a number (an HTTP status).
type openAIError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// errorOf returns the Anthropic error type and message of an error body
// answered with status: OpenAI's shape, {"error":"message"}, {"message"}
// (vLLM's {"object":"error",...}), or else the body itself.
func errorOf(body []byte, status int) (string, string) {
	_, typ := statusFor(status)
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  string          `json:"detail"`
	}
	if json.Unmarshal(body, &v) != nil {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		if msg == "" {
			msg = "the provider answered " + strconv.Itoa(status) + " with no message"
		}
		return typ, msg
	}
	if e := nonNull(v.Error); e != nil {
		if e[0] == '"' {
			var s string
			_ = json.Unmarshal(e, &s)
			return typ, s
		}
		var oe openAIError
		if json.Unmarshal(e, &oe) == nil {
			return typ, oe.Message
		}
	}
	if v.Message != "" {
		return typ, v.Message
	}
	if v.Detail != "" {
		return typ, v.Detail
	}
	return typ, strings.TrimSpace(string(body))
}

// streamErrorType returns the Anthropic error type of an error a stream
// carries, which comes without a status.
func streamErrorType(e openAIError) string {
	if t := typeFor(e.Type); t != "" {
		return t
	}
	if c := nonNull(e.Code); c != nil {
		if c[0] == '"' {
			var s string
			_ = json.Unmarshal(c, &s)
			if t := typeFor(s); t != "" {
				return t
			}
		} else if n, err := strconv.Atoi(string(c)); err == nil {
			_, t := statusFor(n)
			return t
		}
	}
	return "api_error"
}

// errorJSON renders an Anthropic error body.
func errorJSON(typ, msg string) []byte {
	b := make([]byte, 0, 64+len(msg))
	b = append(b, `{"type":"error","error":{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return append(b, "}}"...)
}

// stopReason maps a finish_reason to a stop_reason; tools says whether the
// answer called tools, which makes it tool_use whatever the provider said
// (some compatible APIs finish a tool call with "stop").
func stopReason(finish string, tools bool) string {
	switch {
	case tools && (finish == "stop" || finish == "tool_calls" || finish == "function_call" || finish == ""):
		return "tool_use"
	case finish == "length":
		return "max_tokens"
	case finish == "tool_calls", finish == "function_call":
		return "tool_use"
	case finish == "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// chatUsage is a Chat Completions usage object.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// appendUsage appends the Anthropic usage object for u (the normalisation
// described at the top of this file).
func appendUsage(b []byte, u *chatUsage) []byte {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(max(u.PromptTokensDetails.CachedTokens, 0), max(u.PromptTokens, 0))
	}
	if u.CompletionTokensDetails != nil {
		reasoning = u.CompletionTokensDetails.ReasoningTokens
	}
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, max(u.PromptTokens-cached, 0), 10)
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, cached, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, max(u.CompletionTokens, 0), 10)
	if reasoning > 0 {
		b = append(b, `,"output_tokens_details":{"thinking_tokens":`...)
		b = strconv.AppendInt(b, reasoning, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// chatToolCallOut is a tool call of an answer, whole or a stream fragment.
type chatToolCallOut struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// chatCompletion is a Chat Completions answer.
type chatCompletion struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string           `json:"content"`
			Refusal   *string           `json:"refusal"`
			ToolCalls []chatToolCallOut `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// message translates a chat.completion into an Anthropic Message: the
// first choice's text (or refusal) as a text block, its tool calls as
// tool_use blocks (tool names restored, arguments parsed: arguments that are
// not a JSON object become {} and are reported through warn), the finish
// reason mapped, and the usage normalised. An error body, or one that is no
// chat.completion, becomes an Anthropic error.
func (t *fromAnthropic) message(body []byte, warn func(kind, msg string)) []byte {
	var c chatCompletion
	if err := json.Unmarshal(body, &c); err != nil {
		return errorJSON("api_error", "the provider's answer is not a chat.completion: "+err.Error())
	}
	if nonNull(c.Error) != nil || len(c.Choices) == 0 {
		typ, msg := errorOf(body, 500)
		if msg == "" || nonNull(c.Error) == nil {
			msg = "the provider's answer has no choices"
		}
		return errorJSON(typ, msg)
	}
	ch := c.Choices[0]
	b := make([]byte, 0, 256+len(body))
	b = append(b, `{"id":`...)
	b = appendString(b, idOr(c.ID))
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendString(b, modelOr(c.Model, t.model))
	b = append(b, `,"content":[`...)
	n := 0
	text := ""
	if ch.Message.Content != nil {
		text = *ch.Message.Content
	}
	if text == "" && ch.Message.Refusal != nil {
		text = *ch.Message.Refusal
	}
	if text != "" {
		b = append(b, `{"type":"text","text":`...)
		b = appendString(b, text)
		b = append(b, '}')
		n++
	}
	for i, tc := range ch.Message.ToolCalls {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"type":"tool_use","id":`...)
		b = appendString(b, toolID(tc.ID, c.ID, i))
		b = append(b, `,"name":`...)
		b = appendString(b, t.names.restore(tc.Function.Name))
		b = append(b, `,"input":`...)
		b = appendInput(b, tc.Function.Arguments, warn)
		b = append(b, '}')
	}
	b = append(b, `],"stop_reason":`...)
	b = appendString(b, stopReason(ch.FinishReason, len(ch.Message.ToolCalls) > 0))
	b = append(b, `,"stop_sequence":null,"usage":`...)
	u := c.Usage
	if u == nil {
		u = &chatUsage{}
	}
	b = appendUsage(b, u)
	return append(b, '}')
}

// appendInput appends a tool call's arguments as a tool_use input: the JSON
// object they hold, compacted; "" is {}; anything else is {} and reported.
func appendInput(b []byte, args string, warn func(kind, msg string)) []byte {
	a := strings.TrimSpace(args)
	if a == "" {
		return append(b, "{}"...)
	}
	var c bytes.Buffer
	if a[0] != '{' || json.Compact(&c, []byte(a)) != nil {
		if warn != nil {
			warn("tool_arguments", "a tool call's arguments are not a JSON object; sent as {}")
		}
		return append(b, "{}"...)
	}
	return append(b, c.Bytes()...)
}

func idOr(id string) string {
	if id == "" {
		return "msg_openai"
	}
	return id
}

func modelOr(model, sent string) string {
	if model == "" {
		return sent
	}
	return model
}

// toolID returns a tool call's id, or one made from the answer's id and the
// call's position for a provider that gives none.
func toolID(id, answer string, i int) string {
	if id != "" {
		return id
	}
	return "toolu_" + strings.TrimPrefix(idOr(answer), "chatcmpl-") + "_" + strconv.Itoa(i)
}

// appendString appends s as a JSON string. Only what JSON requires is
// escaped (", \ and control characters); invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != 0xFFFD || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

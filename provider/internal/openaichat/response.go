package openaichat

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// Response returns the translation of a Messages API answer for an OpenAI
// client's request to clientPath, as a translate.ResponseTranslator's
// TranslateResponse does: an error (status 400 and up) in OpenAI's shape,
// with the same status but 529 as 503; an event stream as
// chat.completion.chunk events ending with data: [DONE]; a Message as a
// chat.completion; for GET /v1/models and /v1/models/{id}, the Anthropic
// models list or model as OpenAI's (see modelsBody). created is the
// provider's date header, in Unix seconds; model is the client's, for an
// answer that names none. It returns nil when the body passes as it is
// (neither JSON nor an event stream).
func Response(clientPath, model string, status int, header func(string) string, set func(name, value string), remove func(name string)) func([]byte, bool) []byte {
	var created int64
	if d, err := http.ParseTime(header("date")); err == nil {
		created = d.Unix()
	}
	ct := header("content-type")
	switch {
	case status >= 400:
		if status == 529 {
			set(":status", "503")
		}
		set("content-type", "application/json")
		remove("content-length")
		return wholeBody(openAIError)
	case isModels(clientPath):
		if !strings.HasPrefix(ct, "application/json") {
			return nil
		}
		remove("content-length")
		list := strings.TrimSuffix(pathOnly(clientPath), "/") == modelsPath
		return wholeBody(func(b []byte) []byte { return modelsBody(b, list) })
	case strings.HasPrefix(ct, "text/event-stream"):
		remove("content-length")
		c := &chunker{created: created, model: model}
		return c.write
	case strings.HasPrefix(ct, "application/json"):
		remove("content-length")
		return wholeBody(func(b []byte) []byte { return completion(b, created, model) })
	}
	return nil
}

// wholeBody collects a body and returns fn of it at its end.
func wholeBody(fn func(body []byte) []byte) func([]byte, bool) []byte {
	var buf []byte
	return func(chunk []byte, end bool) []byte {
		buf = append(buf, chunk...)
		if !end {
			return nil
		}
		return fn(buf)
	}
}

// openAIErrorType maps an Anthropic error type to OpenAI's.
func openAIErrorType(t string) string {
	switch t {
	case "invalid_request_error", "not_found_error", "request_too_large":
		return "invalid_request_error"
	case "authentication_error", "permission_error":
		return "invalid_request_error"
	case "rate_limit_error":
		return "requests"
	}
	return "server_error"
}

type anthropicError struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// openAIError renders an Anthropic error body in OpenAI's shape, with the
// Anthropic type as its code.
func openAIError(body []byte) []byte {
	var e anthropicError
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		e.Error.Type, e.Error.Message = "api_error", "the provider answered with an error: "+string(body)
	}
	return errorJSON(e.Error.Type, e.Error.Message)
}

func errorJSON(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": openAIErrorType(typ), "param": nil, "code": typ}})
	return b
}

// anthropicUsage is the Messages API's usage object.
type anthropicUsage struct {
	InputTokens   int64 `json:"input_tokens"`
	CacheCreation int64 `json:"cache_creation_input_tokens"`
	CacheRead     int64 `json:"cache_read_input_tokens"`
	OutputTokens  int64 `json:"output_tokens"`
	Split         *struct {
		FiveMin int64 `json:"ephemeral_5m_input_tokens"`
		OneHour int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// merge takes the counts a message_delta reports over message_start's.
func (u *anthropicUsage) merge(d anthropicUsage) {
	if d.InputTokens > 0 {
		u.InputTokens = d.InputTokens
	}
	if d.CacheCreation > 0 {
		u.CacheCreation = d.CacheCreation
	}
	if d.CacheRead > 0 {
		u.CacheRead = d.CacheRead
	}
	if d.Split != nil {
		u.Split = d.Split
	}
	u.OutputTokens = d.OutputTokens
}

// openAIUsage is u in OpenAI's terms: prompt_tokens counts every input
// token, cached_tokens those read from the cache. The tokens written to the
// cache, which OpenAI has no field for, are added as
// cache_creation_input_tokens and cache_creation (Anthropic's names), so
// that the gateway prices them at their rate.
func openAIUsage(u anthropicUsage) map[string]any {
	prompt := u.InputTokens + u.CacheCreation + u.CacheRead
	m := map[string]any{"prompt_tokens": prompt, "completion_tokens": u.OutputTokens, "total_tokens": prompt + u.OutputTokens,
		"prompt_tokens_details": map[string]any{"cached_tokens": u.CacheRead}}
	if u.CacheCreation > 0 {
		m["cache_creation_input_tokens"] = u.CacheCreation
		if u.Split != nil {
			m["cache_creation"] = u.Split
		}
	}
	return m
}

// finishReason maps a stop_reason.
func finishReason(s string) string {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// completion returns the chat.completion for a Message.
func completion(body []byte, created int64, sent string) []byte {
	var m struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Content []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		StopReason string         `json:"stop_reason"`
		Usage      anthropicUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return errorJSON("api_error", "the provider's answer does not decode: "+err.Error())
	}
	var text strings.Builder
	var calls []map[string]any
	for _, c := range m.Content {
		switch c.Type {
		case "text":
			text.WriteString(c.Text)
		case "tool_use":
			args := string(c.Input)
			if args == "" {
				args = "{}"
			}
			calls = append(calls, map[string]any{"id": c.ID, "type": "function", "function": map[string]string{"name": c.Name, "arguments": args}})
		}
	}
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
	if text.Len() > 0 || len(calls) == 0 {
		msg["content"] = text.String()
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	model := m.Model
	if model == "" {
		model = sent
	}
	out, _ := json.Marshal(map[string]any{"id": "chatcmpl-" + m.ID, "object": "chat.completion", "created": created, "model": model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finishReason(m.StopReason)}},
		"usage":   openAIUsage(m.Usage)})
	return out
}

// chunker turns an Anthropic event stream into chat.completion.chunk
// events, line by line as chunks arrive: the role first, text as content
// deltas, tool_use blocks as tool_calls with their index in the answer and
// their input as argument fragments ("{}" for a tool called without input),
// the finish_reason, then a usage chunk and data: [DONE]. Thinking is not
// relayed; a ping becomes an SSE comment (": ping"). An error event becomes
// an OpenAI error chunk.
//
// A content_block_delta, nearly every event of a stream, is read by
// package reqbody's validating scanner without decoding: its text or
// partial_json goes into the chunk as it is, escapes and all (a JSON
// string's escaped content is valid in another JSON string). The few other
// events are decoded with encoding/json.
type chunker struct {
	created int64
	model   string
	id      string
	// head is every chunk's start up to its choices, for the current id
	// and model: data: {"id":...,"object":...,"created":...,"model":...,
	head  []byte
	line  []byte
	usage anthropicUsage
	// tools maps a content block's index to its tool call's index; args
	// marks the tool calls whose arguments had a fragment.
	tools  map[int]int
	args   map[int]bool
	finish string
	out    []byte
}

// write translates one chunk of the stream.
func (c *chunker) write(b []byte, end bool) []byte {
	c.out = c.out[:0]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.line = append(c.line, b...)
			break
		}
		line := b[:i]
		if len(c.line) > 0 { // the rest of a line an earlier chunk began
			c.line = append(c.line, line...)
			line = c.line
		}
		c.handle(bytes.TrimSuffix(line, []byte("\r")))
		c.line = c.line[:0]
		b = b[i+1:]
	}
	if end && len(c.line) > 0 {
		c.handle(c.line)
		c.line = c.line[:0]
	}
	if len(c.out) == 0 {
		return nil
	}
	return append([]byte(nil), c.out...)
}

// setHead makes the start of every chunk for the current id and model.
func (c *chunker) setHead() {
	id, _ := json.Marshal("chatcmpl-" + c.id) // strings always marshal
	model, _ := json.Marshal(c.model)
	c.head = append(c.head[:0], `data: {"id":`...)
	c.head = append(c.head, id...)
	c.head = append(c.head, `,"object":"chat.completion.chunk","created":`...)
	c.head = strconv.AppendInt(c.head, c.created, 10)
	c.head = append(c.head, `,"model":`...)
	c.head = append(c.head, model...)
	c.head = append(c.head, `,"choices":`...)
}

// emitChoice appends a chunk whose one choice has delta (a JSON object) and
// finish_reason finish (null when empty).
func (c *chunker) emitChoice(delta []byte, finish string) { c.emitDelta(delta, nil, nil, finish) }

// emitDelta is emitChoice of the delta made of a, b and z, one after the
// other, so that a delta built around a raw value needs no buffer of its own.
func (c *chunker) emitDelta(a, b, z []byte, finish string) {
	if c.head == nil {
		c.setHead()
	}
	c.out = append(c.out, c.head...)
	c.out = append(c.out, `[{"index":0,"delta":`...)
	c.out = append(c.out, a...)
	c.out = append(c.out, b...)
	c.out = append(c.out, z...)
	c.out = append(c.out, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		c.out = append(c.out, "null"...)
	} else {
		c.out = strconv.AppendQuote(c.out, finish) // one of a few ASCII words
	}
	c.out = append(c.out, "}]}\n\n"...)
}

// emitUsage appends the usage chunk: no choice, and usage.
func (c *chunker) emitUsage(usage []byte) {
	if c.head == nil {
		c.setHead()
	}
	c.out = append(c.out, c.head...)
	c.out = append(c.out, `[],"usage":`...)
	c.out = append(c.out, usage...)
	c.out = append(c.out, "}\n\n"...)
}

// emitArguments appends a chunk with an arguments fragment of tool call k:
// quoted, a JSON string as it appears in JSON, quotes included.
func (c *chunker) emitArguments(k int, quoted []byte) {
	var pre [64]byte
	a := append(pre[:0], `{"tool_calls":[{"index":`...)
	a = strconv.AppendInt(a, int64(k), 10)
	a = append(a, `,"function":{"arguments":`...)
	c.emitDelta(a, quoted, closeArguments, "")
}

// The parts of the deltas emitDelta builds around a raw string.
var (
	openContent    = []byte(`{"content":`)
	closeContent   = []byte(`}`)
	closeArguments = []byte(`}}]}`)
)

// validString reports whether quoted, a string as the scanner delimits it
// (quotes included), is a valid JSON string: no control character, and
// only JSON's escapes. The scanner finds a string's end without checking
// its content, and a string copied as it is must be valid where it lands.
func validString(quoted []byte) bool {
	if len(quoted) < 2 {
		return false
	}
	b := quoted[1 : len(quoted)-1]
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c < 0x20:
			return false
		case c == '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+5 > len(b) {
					return false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return true
}

// The starts of the events read without decoding them.
var (
	contentBlockDelta = []byte(`{"type":"content_block_delta"`)
	contentBlockStop  = []byte(`{"type":"content_block_stop"`)
	ping              = []byte(`{"type":"ping"}`)
	pingSpaced        = []byte(`{"type": "ping"}`) // as the Anthropic API writes it
)

// stop translates a content_block_stop in its usual form without decoding
// it, and reports whether it did: a tool call whose input streamed no
// fragment gets arguments "{}", as in a chat.completion, so that clients
// can parse them.
func (c *chunker) stop(data []byte) bool {
	if !bytes.HasPrefix(data, contentBlockStop) {
		return false
	}
	index := -1
	err := reqbody.EachMember(data, reqbody.Span{Start: 0, End: len(data)}, func(key []byte, v reqbody.Span) error {
		if string(key) == "index" {
			n, err := strconv.Atoi(string(data[v.Start:v.End]))
			if err != nil {
				return err
			}
			index = n
		}
		return nil
	})
	if err != nil || index < 0 {
		return false
	}
	if k, ok := c.tools[index]; ok && !c.args[k] {
		c.args[k] = true
		c.emitArguments(k, []byte(`"{}"`))
	}
	return true
}

// delta translates a content_block_delta in its usual form (type first)
// without decoding it, and reports whether it did: false leaves the event
// to the general path.
func (c *chunker) delta(data []byte) bool {
	if !bytes.HasPrefix(data, contentBlockDelta) {
		return false
	}
	index := -1
	var typ, text, partial reqbody.Span
	err := reqbody.EachMember(data, reqbody.Span{Start: 0, End: len(data)}, func(key []byte, v reqbody.Span) error {
		switch string(key) {
		case "index":
			n, err := strconv.Atoi(string(data[v.Start:v.End]))
			if err != nil {
				return err
			}
			index = n
		case "delta":
			return reqbody.EachMember(data, v, func(key []byte, v reqbody.Span) error {
				switch string(key) {
				case "type":
					typ = v
				case "text":
					text = v
				case "partial_json":
					partial = v
				}
				return nil
			})
		}
		return nil
	})
	if err != nil || index < 0 || !typ.Present() {
		return false
	}
	isString := func(s reqbody.Span) bool {
		return s.Present() && data[s.Start] == '"' && validString(data[s.Start:s.End])
	}
	switch t := data[typ.Start:typ.End]; {
	case string(t) == `"text_delta"` && isString(text):
		c.emitDelta(openContent, data[text.Start:text.End], closeContent, "")
	case string(t) == `"input_json_delta"` && isString(partial):
		if k, ok := c.tools[index]; ok && partial.End-partial.Start > 2 {
			c.args[k] = true
			c.emitArguments(k, data[partial.Start:partial.End])
		}
	case string(t) == `"text_delta"`, string(t) == `"input_json_delta"`, bytes.IndexByte(t, '\\') >= 0:
		return false // unusual: the general path decides
	}
	return true // thinking, signatures and others are not relayed
}

// handle translates one line of the stream: a data line's event, read
// without decoding when it is a ping, a content_block_delta or a
// content_block_stop in their usual form, decoded otherwise.
func (c *chunker) handle(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, ping) || bytes.Equal(data, pingSpaced) {
		// A ping keeps the connection busy, as it does for Anthropic
		// clients; Chat Completions has no such event, so it goes as an
		// SSE comment, which every SSE client skips.
		c.out = append(c.out, ": ping\n\n"...)
		return
	}
	if c.delta(data) || c.stop(data) {
		return
	}
	var ev struct {
		Type    string `json:"type"`
		Index   int    `json:"index"`
		Message *struct {
			ID    string         `json:"id"`
			Model string         `json:"model"`
			Usage anthropicUsage `json:"usage"`
		} `json:"message"`
		ContentBlock *struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"content_block"`
		Delta *struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			PartialJSON string `json:"partial_json"`
			StopReason  string `json:"stop_reason"`
		} `json:"delta"`
		Usage *anthropicUsage `json:"usage"`
		Error *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	switch ev.Type {
	case "message_start":
		if m := ev.Message; m != nil {
			c.id, c.usage = m.ID, m.Usage
			if m.Model != "" {
				c.model = m.Model
			}
		}
		c.setHead()
		c.emitChoice([]byte(`{"role":"assistant","content":""}`), "")
	case "content_block_start":
		if b := ev.ContentBlock; b != nil && b.Type == "tool_use" {
			if c.tools == nil {
				c.tools, c.args = map[int]int{}, map[int]bool{}
			}
			k := len(c.tools)
			c.tools[ev.Index] = k
			d, _ := json.Marshal(map[string]any{"tool_calls": []any{map[string]any{"index": k, "id": b.ID, "type": "function",
				"function": map[string]string{"name": b.Name, "arguments": ""}}}})
			c.emitChoice(d, "")
		}
	case "content_block_delta":
		d := ev.Delta
		if d == nil {
			return
		}
		switch d.Type {
		case "text_delta":
			b, _ := json.Marshal(map[string]string{"content": d.Text})
			c.emitChoice(b, "")
		case "input_json_delta":
			if k, ok := c.tools[ev.Index]; ok && d.PartialJSON != "" {
				c.args[k] = true
				q, _ := json.Marshal(d.PartialJSON)
				c.emitArguments(k, q)
			}
		}
	case "content_block_stop": // as stop does
		if k, ok := c.tools[ev.Index]; ok && !c.args[k] {
			c.args[k] = true
			c.emitArguments(k, []byte(`"{}"`))
		}
	case "message_delta":
		if ev.Delta != nil {
			c.finish = finishReason(ev.Delta.StopReason)
		}
		if ev.Usage != nil {
			c.usage.merge(*ev.Usage)
		}
		c.emitChoice([]byte(`{}`), c.finish)
	case "ping": // in another form than the usual one
		c.out = append(c.out, ": ping\n\n"...)
	case "message_stop":
		u, _ := json.Marshal(openAIUsage(c.usage))
		c.emitUsage(u)
		c.out = append(c.out, "data: [DONE]\n\n"...)
	case "error":
		typ, msg := "api_error", "the provider's stream failed"
		if ev.Error != nil {
			typ, msg = ev.Error.Type, ev.Error.Message
		}
		c.out = append(c.out, "data: "...)
		c.out = append(c.out, errorJSON(typ, msg)...)
		c.out = append(c.out, "\n\n"...)
	}
}

// modelsPath is the models endpoint's path, which the Anthropic and OpenAI
// APIs share.
const modelsPath = "/v1/models"

// pathOnly returns p without its query.
func pathOnly(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return p
}

// isModels reports whether clientPath (query included) is GET /v1/models or
// /v1/models/{id}.
func isModels(clientPath string) bool {
	p := pathOnly(clientPath)
	return p == modelsPath || strings.HasPrefix(p, modelsPath+"/")
}

// anthropicModel is a model of the Anthropic models API.
type anthropicModel struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
}

// openAIModel returns m as OpenAI's model object: its id, "object":"model",
// created (created_at in Unix seconds, 0 when it has none) and owned_by
// "anthropic".
func openAIModel(m anthropicModel) map[string]any {
	var created int64
	if t, err := time.Parse(time.RFC3339, m.CreatedAt); err == nil {
		created = t.Unix()
	}
	return map[string]any{"id": m.ID, "object": "model", "created": created, "owned_by": "anthropic"}
}

// modelsBody returns the Anthropic models answer body as OpenAI's: a list
// ({"data":[...],"has_more",...}) as {"object":"list","data":[model...]},
// or one model as a model object. The list is the provider's page (the
// Anthropic API's default page is 20 models; a client may ask for more
// with ?limit=, which reaches the provider). A body that does not decode
// becomes an api_error.
func modelsBody(body []byte, list bool) []byte {
	if !list {
		var m anthropicModel
		if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
			return errorJSON("api_error", "the provider's model answer does not decode")
		}
		out, _ := json.Marshal(openAIModel(m))
		return out
	}
	var l struct {
		Data []anthropicModel `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return errorJSON("api_error", "the provider's models answer does not decode: "+err.Error())
	}
	data := make([]any, 0, len(l.Data))
	for _, m := range l.Data {
		data = append(data, openAIModel(m))
	}
	out, _ := json.Marshal(map[string]any{"object": "list", "data": data})
	return out
}

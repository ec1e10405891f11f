package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// The request's side of the translation (WIRE-FORMATS section 6, the
// mapping table), Anthropic Messages in, Chat Completions out. Only the
// fields that have an equivalent are read; the others (top_k, thinking,
// output_config, context_management, service_tier, cache_control,
// container, ...) have none and are left out. Sampling parameters go only
// where the client sent them.
//
// The body is read by the validating scanner of chunkscan.go, not decoded:
// strings (the prompts, the tool results, the images' base64) go into the
// new body as they are, escapes and all, since a JSON string's escaped
// content is valid inside another JSON string. Joined texts are joined with
// an escaped blank line.

// quirks are the settings the request's translation follows.
type quirks struct {
	maxTokensField  string
	streamOptions   bool
	maxOutputTokens int64
}

// blankLine joins texts, escaped as in a JSON string.
const blankLine = `\n\n`

// reqFields are the top-level members a translation reads, as raw values
// (nil when absent or null).
type reqFields struct {
	model, maxTokens, system, messages, tools, toolChoice, stop, stream, temperature, topP, metadata []byte
}

// raw returns the value v of b, or nil for null.
func raw(b []byte, v span) []byte {
	r := b[v.start:v.end]
	if string(r) == "null" {
		return nil
	}
	return r
}

// translateRequest returns the Chat Completions body for an Anthropic
// Messages body, its model mapped by mapModel and its tool names shortened
// by names; and the model it names.
func translateRequest(body []byte, mapModel func(string) string, q quirks, names *toolNames) ([]byte, string, error) {
	var f reqFields
	end, err := members(body, skipSpace(body, 0), func(key []byte, v span) error { // checks the whole body
		var p *[]byte
		switch string(key) {
		case "model":
			p = &f.model
		case "max_tokens":
			p = &f.maxTokens
		case "system":
			p = &f.system
		case "messages":
			p = &f.messages
		case "tools":
			p = &f.tools
		case "tool_choice":
			p = &f.toolChoice
		case "stop_sequences":
			p = &f.stop
		case "stream":
			p = &f.stream
		case "temperature":
			p = &f.temperature
		case "top_p":
			p = &f.topP
		case "metadata":
			p = &f.metadata
		default:
			return nil
		}
		*p = raw(body, v)
		return nil
	})
	if err == nil && skipSpace(body, end) != len(body) {
		err = errSyntax
	}
	if err != nil {
		return nil, "", fmt.Errorf("the body is not a Messages request: %w", err)
	}
	model := ""
	if len(f.model) > 0 && f.model[0] == '"' {
		model = mapModel(unescape(f.model[1 : len(f.model)-1]))
	}
	if model == "" {
		return nil, "", errors.New("the request names no model")
	}
	w := make([]byte, 0, len(body)+len(body)/8+256)
	w = append(w, `{"model":`...)
	w = appendString(w, model)
	w = append(w, `,"messages":[`...)
	mw := msgWriter{w: w, names: names}
	if f.system != nil {
		text, err := joinedText(f.system, "system")
		if err != nil {
			return nil, "", fmt.Errorf("system: %w", err)
		}
		mw.put(systemMessage(nil, text))
	}
	if err := mw.messages(f.messages); err != nil {
		return nil, "", err
	}
	w = append(mw.w, ']')
	nTools := 0
	if f.tools != nil {
		w, nTools, err = appendTools(w, f.tools, names)
		if err != nil {
			return nil, "", err
		}
	}
	if f.toolChoice != nil {
		if w, err = appendToolChoice(w, f.toolChoice, nTools, names); err != nil {
			return nil, "", err
		}
	}
	if f.stop != nil {
		if w, err = appendStrings(w, `,"stop":`, f.stop); err != nil {
			return nil, "", fmt.Errorf("stop_sequences: %w", err)
		}
	}
	if mt := f.maxTokens; mt != nil {
		if !reqbody.ValidNumber(mt) {
			return nil, "", errors.New("max_tokens is not a number")
		}
		if n, err := strconv.ParseInt(string(mt), 10, 64); err == nil && q.maxOutputTokens > 0 && n > q.maxOutputTokens {
			mt = strconv.AppendInt(nil, q.maxOutputTokens, 10)
		}
		w = append(w, `,"`...)
		w = append(w, q.maxTokensField...)
		w = append(w, `":`...)
		w = append(w, mt...)
	}
	for _, p := range []struct {
		name string
		v    []byte
	}{{"temperature", f.temperature}, {"top_p", f.topP}} {
		if p.v == nil {
			continue
		}
		if !reqbody.ValidNumber(p.v) {
			return nil, "", fmt.Errorf("%s is not a number", p.name)
		}
		w = append(w, `,"`+p.name+`":`...)
		w = append(w, p.v...)
	}
	if user := userID(f.metadata); len(user) > 2 {
		w = append(w, `,"user":`...)
		w = append(w, user...)
	}
	if string(f.stream) == "true" {
		w = append(w, `,"stream":true`...)
		if q.streamOptions {
			w = append(w, `,"stream_options":{"include_usage":true}`...)
		}
	}
	return append(w, '}'), model, nil
}

// fastMembers and fastElements read the parts of a body that the
// top-level members call of translateRequest has checked.
func fastMembers(b []byte, i int, fn func(key []byte, v span) error) (int, error) {
	return scanner{fast: true}.members(b, i, fn)
}

func fastElements(b []byte, i int, fn func(v span) error) (int, error) {
	return scanner{fast: true}.elements(b, i, fn)
}

// userID returns metadata.user_id, a raw string, or nil.
func userID(metadata []byte) []byte {
	if len(metadata) == 0 || metadata[0] != '{' {
		return nil
	}
	var id []byte
	_, _ = fastMembers(metadata, 0, func(key []byte, v span) error {
		if string(key) == "user_id" && metadata[v.start] == '"' {
			id = metadata[v.start:v.end]
		}
		return nil
	})
	return id
}

// appendStrings appends name and the array of strings arr, each as it is;
// nothing for an empty array.
func appendStrings(w []byte, name string, arr []byte) ([]byte, error) {
	if arr[0] != '[' {
		return w, errors.New("not an array of strings")
	}
	start := len(w)
	w = append(w, name...)
	w = append(w, '[')
	n := 0
	_, err := fastElements(arr, 0, func(v span) error {
		if arr[v.start] != '"' {
			return errors.New("not an array of strings")
		}
		if n > 0 {
			w = append(w, ',')
		}
		n++
		w = append(w, arr[v.start:v.end]...)
		return nil
	})
	if n == 0 {
		return w[:start], err
	}
	return append(w, ']'), err
}

// block is one content block, its members as raw values (nil when absent
// or null); typ is its type's escaped content.
type block struct {
	typ, text, id, name, input, toolUseID, content, source, title []byte
}

func readBlock(b []byte, v span) (block, error) {
	var k block
	if b[v.start] != '{' {
		return k, errors.New("a content block that is not an object")
	}
	_, err := fastMembers(b, v.start, func(key []byte, v span) error {
		r := raw(b, v)
		switch string(key) {
		case "type":
			k.typ = strOf(b, v)
		case "text":
			k.text = r
		case "id":
			k.id = r
		case "name":
			k.name = r
		case "input":
			k.input = r
		case "tool_use_id":
			k.toolUseID = r
		case "content":
			k.content = r
		case "source":
			k.source = r
		case "title":
			k.title = r
		}
		return nil
	})
	return k, err
}

// eachBlock calls fn with each block of content, an array.
func eachBlock(content []byte, fn func(k block) error) error {
	_, err := fastElements(content, 0, func(v span) error {
		k, err := readBlock(content, v)
		if err != nil {
			return err
		}
		return fn(k)
	})
	return err
}

// str returns a raw string value's escaped content, or an error naming
// what it is.
func str(v []byte, what string) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' {
		return nil, fmt.Errorf("%s is not a string", what)
	}
	return v[1 : len(v)-1], nil
}

// joinedText returns the escaped text of a system prompt or a
// role:"system" entry's content: a string, or text blocks joined with blank
// lines (their cache_control has no equivalent).
func joinedText(content []byte, what string) ([]byte, error) {
	if content[0] == '"' {
		return content[1 : len(content)-1], nil
	}
	if content[0] != '[' {
		return nil, fmt.Errorf("%s is neither a string nor a list of blocks", what)
	}
	var out []byte
	n := 0
	err := eachBlock(content, func(k block) error {
		if string(k.typ) != "text" {
			return fmt.Errorf("a %q block where only text blocks may be", unescape(k.typ))
		}
		t, err := str(k.text, "a text block's text")
		if err != nil {
			return err
		}
		if n > 0 {
			out = append(out, blankLine...)
		}
		n++
		out = append(out, t...)
		return nil
	})
	if out == nil {
		out = []byte{}
	}
	return out, err
}

// systemMessage appends a system message with the escaped text.
func systemMessage(b, text []byte) []byte {
	b = append(b, `{"role":"system","content":"`...)
	b = append(b, text...)
	return append(b, `"}`...)
}

// msgWriter writes the messages array. Each run of messages between two
// assistant messages (user turns and role:"system" entries) becomes: first
// one tool message per tool_result, in order, since OpenAI wants them right
// after the assistant message whose tool calls they answer; then the run's
// messages in order with the rest of their content (an image a tool
// returned goes into its user message, as tool messages take only text).
// Tool messages go straight to w; the rest wait in rest until the run ends.
type msgWriter struct {
	w       []byte
	n       int // messages written
	rest    []byte
	spans   []span // of rest's messages
	names   *toolNames
	parts   []part // reused
	scratch []byte // reused
}

// put writes one message.
func (m *msgWriter) put(msg []byte) {
	if m.n > 0 {
		m.w = append(m.w, ',')
	}
	m.n++
	m.w = append(m.w, msg...)
}

// later keeps a message for the end of the run; build appends it.
func (m *msgWriter) later(build func(b []byte) []byte) {
	start := len(m.rest)
	m.rest = build(m.rest)
	m.spans = append(m.spans, span{start, len(m.rest)})
}

// flush writes the run's kept messages.
func (m *msgWriter) flush() {
	for _, s := range m.spans {
		m.put(m.rest[s.start:s.end])
	}
	m.rest, m.spans = m.rest[:0], m.spans[:0]
}

func (m *msgWriter) messages(msgs []byte) error {
	if msgs == nil {
		return nil
	}
	if msgs[0] != '[' {
		return errors.New("messages is not a list")
	}
	i := 0
	_, err := fastElements(msgs, 0, func(v span) error {
		defer func() { i++ }()
		if msgs[v.start] != '{' {
			return fmt.Errorf("messages[%d] is not an object", i)
		}
		var role, content []byte
		_, _ = fastMembers(msgs, v.start, func(key []byte, v span) error {
			switch string(key) {
			case "role":
				role = strOf(msgs, v)
			case "content":
				content = raw(msgs, v)
			}
			return nil
		})
		if content == nil {
			return fmt.Errorf("messages[%d] has no content", i)
		}
		var err error
		switch string(role) {
		case "assistant":
			m.flush()
			err = m.assistant(content)
		case "system":
			var text []byte
			if text, err = joinedText(content, "content"); err == nil {
				m.later(func(b []byte) []byte { return systemMessage(b, text) })
			}
		case "user":
			err = m.user(content)
		default:
			return fmt.Errorf("messages[%d] has role %q", i, unescape(role))
		}
		if err != nil {
			return fmt.Errorf("messages[%d]: %w", i, err)
		}
		return nil
	})
	m.flush()
	return err
}

// assistant writes an assistant turn: its text, and its tool_use blocks as
// tool calls. Thinking blocks are dropped: Chat Completions takes no
// thinking, and a signature cannot travel. A turn with nothing left is left
// out.
func (m *msgWriter) assistant(content []byte) error {
	if content[0] == '"' {
		m.put(append(append(append([]byte(nil), `{"role":"assistant","content":`...), content...), '}'))
		return nil
	}
	if content[0] != '[' {
		return errors.New("content is neither a string nor a list of blocks")
	}
	var text, calls []byte
	nText, nCalls := 0, 0
	err := eachBlock(content, func(k block) error {
		switch string(k.typ) {
		case "text":
			t, err := str(k.text, "a text block's text")
			if err != nil {
				return err
			}
			if nText > 0 {
				text = append(text, blankLine...)
			}
			nText++
			text = append(text, t...)
		case "tool_use":
			name, err := str(k.name, "a tool_use block's name")
			if err != nil {
				return err
			}
			if nCalls > 0 {
				calls = append(calls, ',')
			}
			nCalls++
			calls = append(calls, `{"id":`...)
			calls = appendRawOrEmpty(calls, k.id)
			calls = append(calls, `,"type":"function","function":{"name":`...)
			calls = appendString(calls, m.names.shorten(unescape(name)))
			calls = append(calls, `,"arguments":`...)
			args := []byte("{}")
			if k.input != nil {
				args = appendCompact(m.scratch[:0], k.input)
				m.scratch = args
			}
			calls = appendString(calls, string(args))
			calls = append(calls, "}}"...)
		case "thinking", "redacted_thinking":
		default:
			return fmt.Errorf("an assistant %q block has no Chat Completions equivalent", unescape(k.typ))
		}
		return nil
	})
	if err != nil || nText == 0 && nCalls == 0 {
		return err
	}
	msg := append(make([]byte, 0, len(text)+len(calls)+64), `{"role":"assistant"`...)
	if nText > 0 {
		msg = append(msg, `,"content":"`...)
		msg = append(msg, text...)
		msg = append(msg, '"')
	}
	if nCalls > 0 {
		msg = append(msg, `,"tool_calls":[`...)
		msg = append(msg, calls...)
		msg = append(msg, ']')
	}
	m.put(append(msg, '}'))
	return nil
}

// appendRawOrEmpty appends a raw string value, or "" for none.
func appendRawOrEmpty(b, v []byte) []byte {
	if len(v) > 0 && v[0] == '"' {
		return append(b, v...)
	}
	return append(b, `""`...)
}

// part is one part of a user message: text (a), an image by base64 (media
// type a, data b) or URL (a), or a file (media type a, data b, name c).
type part struct {
	kind    int
	a, b, c []byte
}

const (
	partText = iota
	partImageData
	partImageURL
	partFile
)

// user writes a user turn: one tool message per tool_result, now, and the
// rest, a user message, at the end of the run. Text-only content is a
// string (its blocks joined with blank lines), which every compatible API
// takes; with an image or a document it is a list of parts.
func (m *msgWriter) user(content []byte) error {
	if content[0] == '"' {
		m.later(func(b []byte) []byte {
			b = append(b, `{"role":"user","content":`...)
			b = append(b, content...)
			return append(b, '}')
		})
		return nil
	}
	if content[0] != '[' {
		return errors.New("content is neither a string nor a list of blocks")
	}
	m.parts = m.parts[:0]
	err := eachBlock(content, func(k block) error {
		if string(k.typ) != "tool_result" {
			p, err := userPart(k)
			m.parts = append(m.parts, p)
			return err
		}
		return m.toolResult(k)
	})
	if err != nil || len(m.parts) == 0 {
		return err
	}
	parts := m.parts
	m.later(func(b []byte) []byte {
		b = append(b, `{"role":"user","content":`...)
		return append(appendParts(b, parts), '}')
	})
	return nil
}

// appendParts appends a user message's content: a string when every part
// is text, else the list of parts.
func appendParts(b []byte, parts []part) []byte {
	allText := true
	for _, p := range parts {
		allText = allText && p.kind == partText
	}
	if allText {
		b = append(b, '"')
		for i, p := range parts {
			if i > 0 {
				b = append(b, blankLine...)
			}
			b = append(b, p.a...)
		}
		return append(b, '"')
	}
	b = append(b, '[')
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		switch p.kind {
		case partText:
			b = append(b, `{"type":"text","text":"`...)
			b = append(b, p.a...)
			b = append(b, `"}`...)
		case partImageData, partImageURL:
			b = append(b, `{"type":"image_url","image_url":{"url":"`...)
			if p.kind == partImageData {
				b = appendDataURL(b, p.a, p.b)
			} else {
				b = append(b, p.a...)
			}
			b = append(b, `"}}`...)
		case partFile:
			b = append(b, `{"type":"file","file":{"file_data":"`...)
			b = appendDataURL(b, p.a, p.b)
			b = append(b, `","filename":"`...)
			if p.c != nil {
				b = append(b, p.c...)
			} else {
				b = append(b, "document.pdf"...)
			}
			b = append(b, `"}}`...)
		}
	}
	return append(b, ']')
}

func appendDataURL(b, mediaType, data []byte) []byte {
	b = append(b, "data:"...)
	b = append(b, mediaType...)
	b = append(b, ";base64,"...)
	return append(b, data...)
}

// toolResult writes a tool_result as a tool message: its text (a string,
// or its text blocks joined with blank lines); the parts a tool message
// cannot hold (images) go into the user message after it.
func (m *msgWriter) toolResult(k block) error {
	id := unescape(bytes.Trim(k.toolUseID, `"`))
	var text []byte
	switch c := k.content; {
	case c == nil:
	case c[0] == '"':
		text = c[1 : len(c)-1]
	case c[0] == '[':
		n := 0
		err := eachBlock(c, func(inner block) error {
			if string(inner.typ) == "text" {
				t, err := str(inner.text, "a text block's text")
				if err != nil {
					return err
				}
				if n > 0 {
					text = append(text, blankLine...)
				}
				n++
				text = append(text, t...)
				return nil
			}
			p, err := userPart(inner)
			m.parts = append(m.parts, p)
			return err
		})
		if err != nil {
			return fmt.Errorf("tool_result %s: %w", id, err)
		}
	default:
		return fmt.Errorf("tool_result %s: content is neither a string nor a list of blocks", id)
	}
	msg := append(make([]byte, 0, len(text)+64), `{"role":"tool","content":"`...)
	msg = append(msg, text...)
	msg = append(msg, `","tool_call_id":`...)
	msg = appendRawOrEmpty(msg, k.toolUseID)
	m.put(append(msg, '}'))
	return nil
}

// userPart reads one block of a user turn.
func userPart(k block) (part, error) {
	switch string(k.typ) {
	case "text":
		t, err := str(k.text, "a text block's text")
		return part{kind: partText, a: t}, err
	case "image", "document":
		what := string(k.typ)
		if len(k.source) == 0 || k.source[0] != '{' {
			return part{}, fmt.Errorf("a %s without a source", what)
		}
		var typ, mediaType, data, url []byte
		_, _ = fastMembers(k.source, 0, func(key []byte, v span) error {
			switch string(key) {
			case "type":
				typ = strOf(k.source, v)
			case "media_type":
				mediaType = strOf(k.source, v)
			case "data":
				data = strOf(k.source, v)
			case "url":
				url = strOf(k.source, v)
			}
			return nil
		})
		switch {
		case what == "image" && string(typ) == "base64":
			return part{kind: partImageData, a: mediaType, b: data}, nil
		case what == "image" && string(typ) == "url":
			return part{kind: partImageURL, a: url}, nil
		case what == "document" && string(typ) == "base64":
			var title []byte
			if len(k.title) > 2 && k.title[0] == '"' {
				title = k.title[1 : len(k.title)-1]
			}
			return part{kind: partFile, a: mediaType, b: data, c: title}, nil
		case what == "document" && string(typ) == "text":
			return part{kind: partText, a: data}, nil
		}
		article := "a"
		if what == "image" {
			article = "an"
		}
		return part{}, fmt.Errorf("%s %s source of type %q has no Chat Completions equivalent", article, what, unescape(typ))
	}
	return part{}, fmt.Errorf("a user %q block has no Chat Completions equivalent", unescape(k.typ))
}

// appendTools appends the function tools of tools; server tools (typed,
// such as web_search_...: Anthropic runs them, no OpenAI API does) are left
// out. It returns how many it appended.
func appendTools(w, tools []byte, names *toolNames) ([]byte, int, error) {
	if tools[0] != '[' {
		return w, 0, errors.New("tools is not a list")
	}
	start := len(w)
	w = append(w, `,"tools":[`...)
	n := 0
	_, err := fastElements(tools, 0, func(v span) error {
		if tools[v.start] != '{' {
			return errors.New("a tool is not an object")
		}
		var typ, name, desc, schema []byte
		_, _ = fastMembers(tools, v.start, func(key []byte, v span) error {
			switch string(key) {
			case "type":
				typ = strOf(tools, v)
			case "name":
				name = strOf(tools, v)
			case "description":
				desc = strOf(tools, v)
			case "input_schema":
				schema = raw(tools, v)
			}
			return nil
		})
		if len(typ) > 0 && string(typ) != "custom" {
			return nil
		}
		if n > 0 {
			w = append(w, ',')
		}
		n++
		w = append(w, `{"type":"function","function":{"name":`...)
		w = appendString(w, names.shorten(unescape(name)))
		if len(desc) > 0 {
			w = append(w, `,"description":"`...)
			w = append(w, desc...)
			w = append(w, '"')
		}
		if schema != nil {
			w = append(w, `,"parameters":`...)
			w = appendCompact(w, schema)
		}
		w = append(w, "}}"...)
		return nil
	})
	if n == 0 {
		w = w[:start]
	} else {
		w = append(w, ']')
	}
	return w, n, err
}

// appendToolChoice appends tool_choice (and parallel_tool_calls) for the
// Anthropic tool_choice tc, when there are tools (or it is none).
func appendToolChoice(w, tc []byte, nTools int, names *toolNames) ([]byte, error) {
	if tc[0] != '{' {
		return w, errors.New("tool_choice is not an object")
	}
	var typ, name []byte
	noParallel := false
	_, _ = fastMembers(tc, 0, func(key []byte, v span) error {
		switch string(key) {
		case "type":
			typ = strOf(tc, v)
		case "name":
			name = strOf(tc, v)
		case "disable_parallel_tool_use":
			noParallel = string(tc[v.start:v.end]) == "true"
		}
		return nil
	})
	if nTools == 0 && string(typ) != "none" {
		return w, nil
	}
	switch string(typ) {
	case "auto":
		w = append(w, `,"tool_choice":"auto"`...)
	case "any":
		w = append(w, `,"tool_choice":"required"`...)
	case "none":
		w = append(w, `,"tool_choice":"none"`...)
	case "tool":
		w = append(w, `,"tool_choice":{"type":"function","function":{"name":`...)
		w = appendString(w, names.shorten(unescape(name)))
		w = append(w, "}}"...)
	default:
		return w, fmt.Errorf("tool_choice type %q has no Chat Completions equivalent", unescape(typ))
	}
	if noParallel && nTools > 0 {
		w = append(w, `,"parallel_tool_calls":false`...)
	}
	return w, nil
}

// appendCompact appends the JSON value v, which a checking scanner has been
// over, without the whitespace outside its strings.
func appendCompact(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '\n', '\r':
		case '"':
			end, err := fastString(v, i)
			if err != nil { // not after a check: keep the rest as it is
				return append(dst, v[i:]...)
			}
			dst = append(dst, v[i:end]...)
			i = end - 1
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// nonNull returns raw, or nil when it is absent or JSON null.
func nonNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

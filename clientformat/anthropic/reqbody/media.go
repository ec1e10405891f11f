package reqbody

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Media is what a request body holds that costs input tokens out of
// proportion to its bytes: image and document blocks (an image sent by URL or
// file id has no bytes in the body; a blank 1000x1000 PNG is a few KB of
// base64 for about 1,300 tokens), and tools whose definitions Anthropic
// supplies itself.
type Media struct {
	// Images and Documents count the image and document content blocks of
	// the messages, those inside tool results included.
	Images, Documents int
	// Base64Bytes is the size of the base64 data of the image blocks: bytes
	// that are billed by the image's pixels, not as text.
	Base64Bytes int
	// Tools counts the entries of tools; TypedTools those whose type is not
	// "custom" (Anthropic-defined tools such as bash_20250124, and server
	// tools), whose definitions are not in the body.
	Tools, TypedTools int
}

// ScanMedia reads the media of body, whose top-level fields f come from
// Scan(body). It walks only the content blocks of messages (and the content
// of tool_result blocks) and the top level of tools, skipping everything else
// at Scan's speed (strings are skipped with bytes.IndexByte). Keys and type
// values with escapes are decoded, so "\u0069mage" is an image too. The walk
// checks more structure than Scan (colons inside objects); where it finds
// malformed JSON that Scan let through, it stops counting: the provider
// refuses such a body unbilled. ScanWithMedia does the same in Scan's single
// pass.
func ScanMedia(body []byte, f Fields) Media {
	var m Media
	if f.Messages.Present() {
		_, _ = m.messages(body, f.Messages.Start)
	}
	if f.Tools.Present() {
		_, _ = m.tools(body, f.Tools.Start)
	}
	return m
}

// ScanWithMedia is Scan and ScanMedia in one pass over the body.
func ScanWithMedia(body []byte) (Fields, Media, error) {
	var m Media
	f, err := scan(body, &m, nil)
	return f, m, err
}

// messages walks the messages value at b[i] and returns the offset past it.
func (m *Media) messages(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return skipValue(b, i)
	}
	return elements(b, i, func(key []byte, val Span) error {
		if string(key) == "content" && b[val.Start] == '[' {
			_, err := m.blocks(b, val.Start, true)
			return err
		}
		return nil
	}, nil)
}

// tools walks the tools value at b[i] and returns the offset past it.
func (m *Media) tools(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return skipValue(b, i)
	}
	return elements(b, i, func(key []byte, val Span) error {
		if string(key) == "type" && !stringIs(b, val, "custom") {
			m.TypedTools++
		}
		return nil
	}, func() error {
		m.Tools++
		return nil
	})
}

// blocks counts the media among the content blocks of the array s. nested
// allows one more level: the content of a tool_result block.
func (m *Media) blocks(body []byte, start int, nested bool) (int, error) {
	var typ, source, content Span
	return elements(body, start, func(key []byte, val Span) error {
		switch string(key) {
		case "type":
			typ = val
		case "source":
			source = val
		case "content":
			content = val
		}
		return nil
	}, func() error {
		defer func() { typ, source, content = Span{}, Span{}, Span{} }()
		switch {
		case !typ.Present():
		case stringIs(body, typ, "image"):
			m.Images++
			if source.Present() {
				var srcType, data Span
				err := objectMembers(body, source, func(key []byte, val Span) error {
					switch string(key) {
					case "type":
						srcType = val
					case "data":
						data = val
					}
					return nil
				})
				if err != nil {
					return err
				}
				if srcType.Present() && stringIs(body, srcType, "base64") && data.Present() && body[data.Start] == '"' {
					m.Base64Bytes += data.End - data.Start
				}
			}
		case stringIs(body, typ, "document"):
			m.Documents++
		default:
			if nested && content.Present() && body[content.Start] == '[' {
				_, err := m.blocks(body, content.Start, false)
				return err
			}
		}
		return nil
	})
}

// elements walks the array that starts at b[start] == '[' and returns the
// offset just past it. Each element that is an object is walked once, by
// members: fn gets its members, then done is called. Other elements are
// skipped.
func elements(b []byte, start int, fn func(key []byte, val Span) error, done func() error) (int, error) {
	i := skipSpace(b, start+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for i < len(b) {
		var end int
		var err error
		obj := b[i] == '{'
		if obj {
			end, err = members(b, i, fn)
		} else {
			end, err = skipValue(b, i)
		}
		if err != nil {
			return 0, err
		}
		if obj && done != nil {
			if err := done(); err != nil {
				return 0, err
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			break
		}
		switch b[i] {
		case ']':
			return i + 1, nil
		case ',':
			i = skipSpace(b, i+1)
		default:
			return 0, &SyntaxError{Offset: i, Msg: "expected ',' or ']'"}
		}
	}
	return 0, &SyntaxError{Offset: start, Msg: "unterminated array"}
}

// members calls fn with each key (unescaped) and value of the object that
// starts at b[start] == '{', and returns the offset just past it.
func members(b []byte, start int, fn func(key []byte, val Span) error) (int, error) {
	i := skipSpace(b, start+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for i < len(b) && b[i] == '"' {
		end, escaped, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : end-1]
		if escaped {
			key = unescapeKey(b[i:end])
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, &SyntaxError{Offset: i, Msg: "expected ':' after key"}
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return 0, err
		}
		if err := fn(key, Span{i, vend}); err != nil {
			return 0, err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '}':
			return i + 1, nil
		case ',':
			i = skipSpace(b, i+1)
		default:
			return 0, &SyntaxError{Offset: i, Msg: "expected ',' or '}'"}
		}
	}
	return 0, &SyntaxError{Offset: start, Msg: "unterminated object"}
}

// objectMembers is members of the value at s, if it is an object.
func objectMembers(b []byte, s Span, fn func(key []byte, val Span) error) error {
	if b[s.Start] != '{' {
		return nil
	}
	_, err := members(b, s.Start, fn)
	return err
}

// stringIs reports whether the value at s is the JSON string want, decoding
// it only when it has escapes.
func stringIs(b []byte, s Span, want string) bool {
	v := b[s.Start:s.End]
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	if string(v[1:len(v)-1]) == want {
		return true
	}
	if len(v) > 2+6*len(want) || bytes.IndexByte(v, '\\') < 0 {
		return false
	}
	d, err := decodeString(v)
	return err == nil && d == want
}

// ThinkingBudget returns the budget_tokens of an enabled thinking object
// ({"type":"enabled","budget_tokens":N}) and the span of its value; ok is
// false when thinking is absent, disabled, adaptive, or has no integer budget.
func ThinkingBudget(body []byte, f Fields) (n int64, at Span, ok bool) {
	if !f.Thinking.Present() {
		return 0, Span{}, false
	}
	var typ Span
	_ = objectMembers(body, f.Thinking, func(key []byte, val Span) error {
		switch string(key) {
		case "type":
			typ = val
		case "budget_tokens":
			v, err := strconv.ParseInt(string(body[val.Start:val.End]), 10, 64)
			if err == nil {
				n, at = v, val
			}
		}
		return nil
	})
	if !typ.Present() || !stringIs(body, typ, "enabled") || !at.Present() {
		return 0, Span{}, false
	}
	return n, at, true
}

// Edit replaces body[Start:End] by Value.
type Edit struct {
	Span
	Value []byte
}

// ModelEdit replaces the model of a body scanned into f (HasModel set).
func ModelEdit(f Fields, model string) Edit {
	quoted, _ := json.Marshal(model) // a string always marshals
	return Edit{Span{f.ModelStart, f.ModelEnd}, quoted}
}

// IntEdit replaces the number at s by n.
func IntEdit(s Span, n int64) Edit {
	return Edit{s, strconv.AppendInt(nil, n, 10)}
}

// Apply returns a copy of body with the edits made. Edits must not overlap;
// they may come in any order.
func Apply(body []byte, edits ...Edit) []byte {
	for i := 1; i < len(edits); i++ { // a few edits: insertion sort
		for j := i; j > 0 && edits[j].Start < edits[j-1].Start; j-- {
			edits[j], edits[j-1] = edits[j-1], edits[j]
		}
	}
	n := len(body)
	for _, e := range edits {
		n += len(e.Value) - (e.End - e.Start)
	}
	out := make([]byte, 0, n)
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.Start]...)
		out = append(out, e.Value...)
		at = e.End
	}
	return append(out, body[at:]...)
}

// RemoveMembers returns the edits that remove the members of ms (from
// Members) that remove reports true for, each with the comma that joined it
// to its neighbours, so that the object stays valid JSON. Runs of adjacent
// removed members become one edit, so the edits never overlap each other;
// an insertion at the key of the first member (InsertAt) may be added to them
// when it comes first in Apply's list.
func RemoveMembers(ms []Member, remove func(m Member) bool) []Edit {
	var edits []Edit
	for a := 0; a < len(ms); a++ {
		if !remove(ms[a]) {
			continue
		}
		b := a
		for b+1 < len(ms) && remove(ms[b+1]) {
			b++
		}
		switch {
		case b+1 < len(ms): // up to the next kept member's key
			edits = append(edits, Edit{Span: Span{ms[a].KeySpan.Start, ms[b+1].KeySpan.Start}})
		case a > 0: // a run at the end: from the end of the last kept value
			edits = append(edits, Edit{Span: Span{ms[a-1].Value.End, ms[b].Value.End}})
		default: // every member
			edits = append(edits, Edit{Span: Span{ms[a].KeySpan.Start, ms[b].Value.End}})
		}
		a = b
	}
	return edits
}

// InsertAt returns the edit that inserts value at offset i.
func InsertAt(i int, value []byte) Edit { return Edit{Span{i, i}, value} }

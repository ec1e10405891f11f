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
// at Scan's speed; messages that cannot name an image or a document (neither
// word appears, and no \u00XX escape could spell one) are not walked at all.
func ScanMedia(body []byte, f Fields) (Media, error) {
	var m Media
	if f.Messages.Present() {
		msgs := body[f.Messages.Start:f.Messages.End]
		if mayNameMedia(msgs) {
			err := elements(body, f.Messages, func(msg Span) error {
				return members(body, msg, func(key []byte, val Span) error {
					if string(key) == "content" && body[val.Start] == '[' {
						return m.blocks(body, val, true)
					}
					return nil
				})
			})
			if err != nil {
				return m, err
			}
		}
	}
	if f.Tools.Present() && body[f.Tools.Start] == '[' {
		err := elements(body, f.Tools, func(tool Span) error {
			m.Tools++
			return members(body, tool, func(key []byte, val Span) error {
				if string(key) == "type" {
					if s, ok := stringValue(body, val); !ok || s != "custom" {
						m.TypedTools++
					}
				}
				return nil
			})
		})
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

// mayNameMedia reports whether b may hold a string that decodes to "image"
// or "document": it has one of the words, or an escape that could spell a
// letter of one.
func mayNameMedia(b []byte) bool {
	return bytes.Contains(b, []byte("image")) || bytes.Contains(b, []byte("document")) ||
		bytes.Contains(b, []byte(`\u00`))
}

// blocks counts the media among the content blocks of the array s. nested
// allows one more level: the content of a tool_result block.
func (m *Media) blocks(body []byte, s Span, nested bool) error {
	return elements(body, s, func(block Span) error {
		var typ string
		var source, content Span
		err := members(body, block, func(key []byte, val Span) error {
			switch string(key) {
			case "type":
				typ, _ = stringValue(body, val)
			case "source":
				source = val
			case "content":
				content = val
			}
			return nil
		})
		if err != nil {
			return err
		}
		switch typ {
		case "image":
			m.Images++
			if source.Present() && body[source.Start] == '{' {
				var srcType string
				var data Span
				err := members(body, source, func(key []byte, val Span) error {
					switch string(key) {
					case "type":
						srcType, _ = stringValue(body, val)
					case "data":
						data = val
					}
					return nil
				})
				if err != nil {
					return err
				}
				if srcType == "base64" && data.Present() && body[data.Start] == '"' {
					m.Base64Bytes += data.End - data.Start
				}
			}
		case "document":
			m.Documents++
		default:
			if nested && content.Present() && body[content.Start] == '[' {
				return m.blocks(body, content, false)
			}
		}
		return nil
	})
}

// elements calls fn with each element of the array at s. A value that is not
// an array has no elements.
func elements(b []byte, s Span, fn func(Span) error) error {
	if b[s.Start] != '[' {
		return nil
	}
	i := skipSpace(b, s.Start+1)
	if i < s.End && b[i] == ']' {
		return nil
	}
	for i < s.End {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(Span{i, end}); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= s.End || b[i] == ']' {
			return nil
		}
		i = skipSpace(b, i+1) // the comma; Scan checked the structure
	}
	return nil
}

// members calls fn with each key (unescaped) and value of the object at s.
// A value that is not an object has no members.
func members(b []byte, s Span, fn func(key []byte, val Span) error) error {
	if b[s.Start] != '{' {
		return nil
	}
	i := skipSpace(b, s.Start+1)
	for i < s.End && b[i] == '"' {
		end, escaped, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		if escaped {
			key = unescapeKey(b[i:end])
		}
		i = skipSpace(b, end)
		if i >= s.End || b[i] != ':' {
			return &SyntaxError{Offset: i, Msg: "expected ':' after key"}
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, Span{i, vend}); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i >= s.End || b[i] != ',' {
			return nil
		}
		i = skipSpace(b, i+1)
	}
	return nil
}

// stringValue decodes the string at s; ok is false when s is not a string.
func stringValue(b []byte, s Span) (string, bool) {
	if b[s.Start] != '"' {
		return "", false
	}
	v, err := decodeString(b[s.Start:s.End])
	return v, err == nil
}

// ThinkingBudget returns the budget_tokens of an enabled thinking object
// ({"type":"enabled","budget_tokens":N}) and the span of its value; ok is
// false when thinking is absent, disabled, adaptive, or has no integer budget.
func ThinkingBudget(body []byte, f Fields) (n int64, at Span, ok bool) {
	if !f.Thinking.Present() {
		return 0, Span{}, false
	}
	var typ string
	_ = members(body, f.Thinking, func(key []byte, val Span) error {
		switch string(key) {
		case "type":
			typ, _ = stringValue(body, val)
		case "budget_tokens":
			v, err := strconv.ParseInt(string(body[val.Start:val.End]), 10, 64)
			if err == nil {
				n, at = v, val
			}
		}
		return nil
	})
	if typ != "enabled" || !at.Present() {
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

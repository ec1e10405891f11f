// Package reqbody reads the few top-level fields of a JSON request body that the
// gateway acts on (model, stream, max_tokens) without decoding the body, and edits
// the model in place. Everything else in the body is left byte for byte as it was:
// Claude Code sends fields no public schema lists, and a gateway that round-trips
// the body through a struct drops them.
//
// The scanner walks only the top-level object. String contents are skipped with
// bytes.IndexByte, so a 100 KB body of mostly text is read at memory speed with no
// allocation. It checks structure (quotes, brackets, commas, colons) but not the
// grammar of numbers and literals inside values it skips; the provider validates
// those. Malformed structure is an error, never a panic.
package reqbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Fields are the top-level request fields the gateway reads.
type Fields struct {
	// Model is the decoded value of "model", empty if absent.
	Model string
	// ModelStart and ModelEnd delimit the model value in the body, quotes included,
	// so that ReplaceModel can edit it in place. Both are 0 if absent.
	ModelStart, ModelEnd int
	// HasModel reports whether "model" was present as a string.
	HasModel bool
	// Stream is the value of "stream" (false if absent).
	Stream bool
	// MaxTokens is the value of "max_tokens"; HasMaxTokens reports its presence.
	MaxTokens    int64
	HasMaxTokens bool
	// MaxTokensStart and MaxTokensEnd delimit the max_tokens value, for an
	// IntEdit; both 0 if absent.
	MaxTokensStart, MaxTokensEnd int
	// Thinking, Messages and Tools delimit the values of "thinking",
	// "messages" and "tools" in the body (zero spans when absent), for
	// ThinkingBudget and ScanMedia.
	Thinking, Messages, Tools Span
}

// Span is a value's place in a body: body[Start:End].
type Span struct{ Start, End int }

// Present reports whether the span holds a value.
func (s Span) Present() bool { return s.End > s.Start }

// SyntaxError reports malformed JSON at a byte offset.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Msg)
}

// FieldError reports a top-level field of the wrong type.
type FieldError struct {
	Field string // the field's key
	Msg   string // what is wrong with it
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrNotObject is returned when the body is not a JSON object.
var ErrNotObject = errors.New("request body must be a JSON object")

// Scan reads the top-level fields of body. It returns a *SyntaxError for malformed
// structure, ErrNotObject for a body that is not an object, and a descriptive error
// when model, stream or max_tokens has the wrong type.
func Scan(body []byte) (Fields, error) { return scan(body, nil, nil) }

// Member is one member of a body's top-level object.
type Member struct {
	// Key is the decoded key.
	Key string
	// KeySpan delimits the key, quotes included, and Value the value.
	KeySpan, Value Span
}

// Members returns the members of body's top-level object in document order,
// with the fields Scan reads, for a translation that removes or adds
// top-level members (MemberRemoval, Insert). Errors are Scan's.
func Members(body []byte) (Fields, []Member, error) {
	var ms []Member
	f, err := scan(body, nil, func(key []byte, k, v Span) {
		ms = append(ms, Member{Key: string(key), KeySpan: k, Value: v})
	})
	return f, ms, err
}

// scan is Scan; with m, it also walks messages and tools for ScanMedia; with
// member, it reports each top-level member.
func scan(body []byte, m *Media, member func(key []byte, k, v Span)) (Fields, error) {
	var f Fields
	i := skipSpace(body, 0)
	if i >= len(body) {
		return f, &SyntaxError{Offset: i, Msg: "empty body"}
	}
	if body[i] != '{' {
		return f, ErrNotObject
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return f, checkTrailing(body, i+1)
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return f, &SyntaxError{Offset: i, Msg: "expected a string key"}
		}
		keyStart := i
		end, escaped, err := skipString(body, i)
		if err != nil {
			return f, err
		}
		key := body[keyStart+1 : end-1]
		if escaped {
			key = unescapeKey(body[keyStart:end])
		}
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return f, &SyntaxError{Offset: i, Msg: "expected ':' after key"}
		}
		i = skipSpace(body, i+1)
		valStart := i
		var valEnd int
		switch {
		case m != nil && string(key) == "messages":
			valEnd, err = m.messages(body, i)
		case m != nil && string(key) == "tools":
			valEnd, err = m.tools(body, i)
		}
		if m == nil || err != nil || valEnd == 0 {
			// Scan's own check decides what is malformed (see ScanMedia).
			valEnd, err = skipValue(body, i)
		}
		if err != nil {
			return f, err
		}
		if err := f.take(key, body[valStart:valEnd], valStart); err != nil {
			return f, err
		}
		if member != nil {
			member(key, Span{keyStart, end}, Span{valStart, valEnd})
		}
		i = skipSpace(body, valEnd)
		if i >= len(body) {
			return f, &SyntaxError{Offset: i, Msg: "unterminated object"}
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return f, checkTrailing(body, i+1)
		default:
			return f, &SyntaxError{Offset: i, Msg: "expected ',' or '}'"}
		}
	}
}

func (f *Fields) take(key, val []byte, offset int) error {
	switch string(key) {
	case "model":
		if len(val) == 0 || val[0] != '"' {
			return &FieldError{Field: "model", Msg: "must be a string"}
		}
		s, err := decodeString(val)
		if err != nil {
			return &SyntaxError{Offset: offset, Msg: "bad string in model"}
		}
		f.Model, f.HasModel = s, true
		f.ModelStart, f.ModelEnd = offset, offset+len(val)
	case "stream":
		switch string(val) {
		case "true":
			f.Stream = true
		case "false", "null":
			f.Stream = false
		default:
			return &FieldError{Field: "stream", Msg: "must be a boolean"}
		}
	case "max_tokens":
		n, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return &FieldError{Field: "max_tokens", Msg: "must be an integer"}
		}
		f.MaxTokens, f.HasMaxTokens = n, true
		f.MaxTokensStart, f.MaxTokensEnd = offset, offset+len(val)
	case "thinking":
		f.Thinking = Span{offset, offset + len(val)}
	case "messages":
		f.Messages = Span{offset, offset + len(val)}
	case "tools":
		f.Tools = Span{offset, offset + len(val)}
	}
	return nil
}

// ReplaceModel returns a copy of body with the model value replaced by model.
// f must come from Scan(body) with HasModel set.
func ReplaceModel(body []byte, f Fields, model string) []byte {
	return Apply(body, ModelEdit(f, model))
}

func checkTrailing(body []byte, i int) error {
	if i = skipSpace(body, i); i != len(body) {
		return &SyntaxError{Offset: i, Msg: "data after the top-level object"}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString expects b[i] == '"' and returns the offset just past the closing
// quote, and whether the string contains a backslash escape.
func skipString(b []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false, &SyntaxError{Offset: i, Msg: "unterminated string"}
		}
		q := j + k
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if !escaped && bytes.IndexByte(b[j:q], '\\') >= 0 {
			escaped = true
		}
		if n%2 == 0 {
			return q + 1, escaped, nil
		}
		j = q + 1
	}
}

// skipValue returns the offset just past the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, &SyntaxError{Offset: i, Msg: "expected a value"}
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := skipString(b, i)
		return end, err
	case '{', '[':
		return skipContainer(b, i)
	case '}', ']', ',', ':':
		return 0, &SyntaxError{Offset: i, Msg: fmt.Sprintf("unexpected %q", c)}
	default:
		// A number or literal: runs to the next delimiter.
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j, nil
			case '"', '{', '[', ':':
				return 0, &SyntaxError{Offset: j, Msg: "malformed value"}
			}
			j++
		}
		return j, nil
	}
}

// skipContainer skips a nested object or array, checking that brackets balance
// and strings terminate.
func skipContainer(b []byte, i int) (int, error) {
	stack := make([]byte, 0, 32)
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			end, _, err := skipString(b, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{':
			stack = append(stack, '}')
		case '[':
			stack = append(stack, ']')
		case '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, &SyntaxError{Offset: j, Msg: fmt.Sprintf("unexpected %q", c)}
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, &SyntaxError{Offset: i, Msg: "unterminated object or array"}
}

func decodeString(quoted []byte) (string, error) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err
}

func unescapeKey(quoted []byte) []byte {
	s, err := decodeString(quoted)
	if err != nil {
		return nil
	}
	return []byte(s)
}

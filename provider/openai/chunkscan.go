package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// A stream chunk is read by a small validating JSON scanner rather than
// encoding/json: a chunk is small and shaped alike, and the strings it
// carries (text deltas, arguments fragments) go into the Anthropic events
// as they are, escapes and all, since a JSON string's escaped content is
// valid inside another JSON string. So a chunk costs no allocation but the
// output's; only the rare usage and error objects are decoded with
// encoding/json.

// errSyntax is a chunk that is not valid JSON.
var errSyntax = errors.New("invalid JSON")

// chunkDoc is what a chunk says, as slices of the chunk: a string is its
// escaped content, between the quotes; nil is absent or null.
type chunkDoc struct {
	id, model []byte
	// choice is set when the chunk has a choice with index 0, whose delta
	// follows.
	choice           bool
	content, refusal []byte
	finish           []byte
	tools            []toolFrag
	usage, err       []byte // the raw objects
}

// toolFrag is one tool_calls fragment.
type toolFrag struct {
	index    int
	hasIndex bool
	id, name []byte
	args     []byte
}

// reset empties d, keeping its tools' storage.
func (d *chunkDoc) reset() {
	*d = chunkDoc{tools: d.tools[:0]}
}

// parseChunk reads a chat.completion.chunk (or an error) into d.
func parseChunk(b []byte, d *chunkDoc) error {
	d.reset()
	i, err := members(b, skipSpace(b, 0), func(key []byte, v span) error {
		switch string(key) {
		case "id":
			d.id = strOf(b, v)
		case "model":
			d.model = strOf(b, v)
		case "usage":
			if b[v.start] == '{' {
				d.usage = b[v.start:v.end]
			}
		case "error":
			if b[v.start] != 'n' {
				d.err = b[v.start:v.end]
			}
		case "choices":
			if b[v.start] != '[' {
				return nil
			}
			_, err := elements(b, v.start, func(e span) error { return d.choiceOf(b, e) })
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if skipSpace(b, i) != len(b) {
		return errSyntax
	}
	return nil
}

// choiceOf reads one choice; only index 0 is kept.
func (d *chunkDoc) choiceOf(b []byte, e span) error {
	if b[e.start] != '{' {
		return nil
	}
	var c chunkDoc // the choice's fields, kept if its index is 0
	c.tools = d.tools
	index := 0
	_, err := members(b, e.start, func(key []byte, v span) error {
		switch string(key) {
		case "index":
			n, err := strconv.Atoi(string(b[v.start:v.end]))
			if err == nil {
				index = n
			}
		case "finish_reason":
			c.finish = strOf(b, v)
		case "delta", "message":
			if b[v.start] != '{' {
				return nil
			}
			_, err := members(b, v.start, func(key []byte, v span) error {
				switch string(key) {
				case "content":
					c.content = strOf(b, v)
				case "refusal":
					c.refusal = strOf(b, v)
				case "tool_calls":
					if b[v.start] != '[' {
						return nil
					}
					_, err := elements(b, v.start, func(e span) error {
						if b[e.start] != '{' {
							return nil
						}
						var t toolFrag
						_, err := members(b, e.start, func(key []byte, v span) error {
							switch string(key) {
							case "index":
								n, err := strconv.Atoi(string(b[v.start:v.end]))
								t.index, t.hasIndex = n, err == nil
							case "id":
								t.id = strOf(b, v)
							case "function":
								if b[v.start] != '{' {
									return nil
								}
								_, err := members(b, v.start, func(key []byte, v span) error {
									switch string(key) {
									case "name":
										t.name = strOf(b, v)
									case "arguments":
										t.args = strOf(b, v)
									}
									return nil
								})
								return err
							}
							return nil
						})
						c.tools = append(c.tools, t)
						return err
					})
					return err
				}
				return nil
			})
			return err
		}
		return nil
	})
	if err != nil || index != 0 {
		return err
	}
	d.choice, d.content, d.refusal, d.finish, d.tools = true, c.content, c.refusal, c.finish, c.tools
	return nil
}

// span is a value's bytes, [start, end).
type span struct{ start, end int }

// strOf returns a string value's escaped content, or nil for anything else.
func strOf(b []byte, v span) []byte {
	if b[v.start] != '"' {
		return nil
	}
	return b[v.start+1 : v.end-1]
}

// unescape returns a string's value from its escaped content.
func unescape(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) != nil {
		return string(raw)
	}
	return s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanner reads JSON. The zero value checks everything it skips; a fast
// one only finds where values end, for values a checking scanner has
// already been over.
type scanner struct{ fast bool }

// members calls fn with each member of the object at b[i], checking it.
func members(b []byte, i int, fn func(key []byte, v span) error) (int, error) {
	return scanner{}.members(b, i, fn)
}

// elements calls fn with each element of the array at b[i], checking it.
func elements(b []byte, i int, fn func(v span) error) (int, error) {
	return scanner{}.elements(b, i, fn)
}

// members calls fn with each member of the object at b[i] (its key's
// escaped content and its value) and returns the index after the object.
func (sc scanner) members(b []byte, i int, fn func(key []byte, v span) error) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSyntax
		}
		end, err := sc.skipString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		vend, err := sc.skipValue(b, i)
		if err != nil {
			return 0, err
		}
		if err := fn(key, span{i, vend}); err != nil {
			return 0, err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// elements calls fn with each element of the array at b[i] and returns the
// index after the array.
func (sc scanner) elements(b []byte, i int, fn func(v span) error) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return 0, errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := sc.skipValue(b, i)
		if err != nil {
			return 0, err
		}
		if err := fn(span{i, end}); err != nil {
			return 0, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// skipValue returns the index after the value at b[i], checking it unless
// the scanner is fast.
func (sc scanner) skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return sc.skipString(b, i)
	case (c == '{' || c == '[') && sc.fast:
		return skipContainer(b, i)
	case c == '{':
		return sc.members(b, i, func([]byte, span) error { return nil })
	case c == '[':
		return sc.elements(b, i, func(span) error { return nil })
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, nil
	}
	return 0, errSyntax
}

func literal(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// skipString returns the index after the string at b[i], checking unless
// the scanner is fast that its content may be copied into another JSON
// string: no raw control characters, and only JSON's escapes.
func (sc scanner) skipString(b []byte, i int) (int, error) {
	if sc.fast {
		return fastString(b, i)
	}
	for j := i + 1; j < len(b); j++ {
		// The plain bytes first, in a tight loop.
		for j < len(b) && b[j] >= 0x20 && b[j] != '"' && b[j] != '\\' {
			j++
		}
		if j == len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, errSyntax
		case c == '\\':
			if j+1 >= len(b) {
				return 0, errSyntax
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return 0, errSyntax
				}
				j += 5
			default:
				return 0, errSyntax
			}
		}
	}
	return 0, errSyntax
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// fastString returns the index after the string at b[i], which a checking
// scanner has been over: its closing quote is the first one not escaped.
func fastString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errSyntax
		}
		j += k
		n := 0 // backslashes before the quote
		for n < j-i-1 && b[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1, nil
		}
		j++
	}
}

// skipContainer returns the index after the object or array at b[i],
// which a checking scanner has been over.
func skipContainer(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, err := fastString(b, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, errSyntax
}

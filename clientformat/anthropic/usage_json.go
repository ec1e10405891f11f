package anthropic

import (
	"bytes"
	"encoding/json"
	"math"
)

// This file decodes the few members of Anthropic response JSON that metering
// reads, with a scanner that walks the document once, skips every other value
// without decoding it, and allocates nothing for documents whose keys and
// strings carry no escapes. It checks the JSON grammar of everything it walks
// except two leniencies: control characters inside strings, and invalid UTF-8,
// are accepted.

// maxJSONDepth bounds the nesting of skipped values, so that a hostile event
// cannot exhaust the stack.
const maxJSONDepth = 512

// strVal is a JSON string as found in the document.
type strVal struct {
	raw    []byte // between the quotes, escapes not decoded
	quoted []byte // with the quotes
	esc    bool   // raw contains a backslash escape
	set    bool   // a string was present (not absent or null)
}

// String returns the decoded string.
func (v strVal) String() string {
	if !v.esc {
		return string(v.raw)
	}
	var s string
	if err := json.Unmarshal(v.quoted, &s); err != nil {
		// The scanner validated the escapes; this cannot happen.
		return string(v.raw)
	}
	return s
}

// is reports whether the decoded string equals lit.
func (v strVal) is(lit string) bool {
	if !v.esc {
		return string(v.raw) == lit
	}
	return v.String() == lit
}

// update returns cur when v decodes to it, and the decoded v otherwise, so
// that an unchanged value is not allocated again.
func (v strVal) update(cur string) string {
	if !v.esc && string(v.raw) == cur {
		return cur
	}
	return v.String()
}

// scanner walks a JSON document. Every method that reads a value first skips
// whitespace and returns false on malformed input, leaving i near the error.
type scanner struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// eat consumes c after whitespace.
func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// literal consumes lit after whitespace.
func (s *scanner) literal(lit string) bool {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// null consumes a null, reporting whether there was one.
func (s *scanner) null() bool { return s.literal("null") }

// end reports whether only whitespace remains.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// str reads a string.
func (s *scanner) str() (v strVal, ok bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return v, false
	}
	start := s.i
	s.i++
	// quote is the next unescaped-looking '"'; it is searched for again only
	// when an escape consumes it, so that a string is scanned in linear time
	// however many escapes it holds.
	quote := -1
	for {
		if quote < s.i {
			q := bytes.IndexByte(s.b[s.i:], '"')
			if q < 0 {
				s.i = len(s.b)
				return v, false
			}
			quote = s.i + q
		}
		bs := bytes.IndexByte(s.b[s.i:quote], '\\')
		if bs < 0 {
			s.i = quote + 1
			v.raw, v.quoted, v.set = s.b[start+1:quote], s.b[start:s.i], true
			return v, true
		}
		v.esc = true
		s.i += bs
		if !s.escape() {
			return v, false
		}
	}
}

// escape consumes one backslash escape at i.
func (s *scanner) escape() bool {
	if s.i+1 >= len(s.b) {
		return false
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return true
	case 'u':
		if s.i+6 > len(s.b) {
			return false
		}
		for _, c := range s.b[s.i+2 : s.i+6] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		s.i += 6
		return true
	}
	return false
}

// optString reads a string into v, or a null that leaves v unchanged.
func (s *scanner) optString(v *strVal) bool {
	if s.null() {
		return true
	}
	sv, ok := s.str()
	if ok {
		*v = sv
	}
	return ok
}

// count reads a token count into u's field f: a non-negative integer that
// fits in an int64, or a null that leaves the field absent.
func (s *scanner) count(u *usageFields, f int) bool {
	if s.null() {
		return true
	}
	start := s.i
	var v int64
	for ; s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9'; s.i++ {
		d := int64(s.b[s.i] - '0')
		if v > (math.MaxInt64-d)/10 {
			return false
		}
		v = v*10 + d
	}
	n := s.i - start
	if n == 0 || n > 1 && s.b[start] == '0' {
		return false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	u.put(f, v)
	return true
}

// key reads an object key. The result aliases the document unless the key has
// escapes.
func (s *scanner) key() ([]byte, bool) {
	v, ok := s.str()
	if !ok || !v.esc {
		return v.raw, ok
	}
	return []byte(v.String()), true
}

// object reads an object, calling member for each key with the scanner at the
// member's value, which member must consume.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		k, ok := s.key()
		if !ok || !s.eat(':') || !member(k) {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// optObject reads an object as object does, or a null, reporting which.
func (s *scanner) optObject(member func(key []byte) bool) (present, ok bool) {
	if s.null() {
		return false, true
	}
	return true, s.object(member)
}

// skip consumes any value.
func (s *scanner) skip() bool { return s.skipDepth(0) }

func (s *scanner) skipDepth(depth int) bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{', c == '[':
		if depth >= maxJSONDepth {
			return false
		}
		s.i++
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		if s.eat(closing) {
			return true
		}
		for {
			if c == '{' {
				if _, ok := s.str(); !ok || !s.eat(':') {
					return false
				}
			}
			if !s.skipDepth(depth + 1) {
				return false
			}
			if s.eat(',') {
				continue
			}
			return s.eat(closing)
		}
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

// number consumes a number per the JSON grammar.
func (s *scanner) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if !s.digits() {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// usage reads a usage object (or null) into u.
func (s *scanner) usage(u *usageFields) (present, ok bool) {
	return s.optObject(func(k []byte) bool {
		switch string(k) {
		case "input_tokens":
			return s.count(u, fInput)
		case "cache_creation_input_tokens":
			return s.count(u, fCacheWrite)
		case "cache_read_input_tokens":
			return s.count(u, fCacheRead)
		case "output_tokens":
			return s.count(u, fOutput)
		case "cache_creation":
			present, ok := s.optObject(func(k []byte) bool {
				switch string(k) {
				case "ephemeral_5m_input_tokens":
					return s.count(u, fWrite5m)
				case "ephemeral_1h_input_tokens":
					return s.count(u, fWrite1h)
				}
				return s.skip()
			})
			if present {
				u.set |= splitBit
			}
			return ok
		case "server_tool_use":
			_, ok := s.optObject(func(k []byte) bool {
				switch string(k) {
				case "web_search_requests":
					return s.count(u, fWebSearch)
				case "web_fetch_requests":
					return s.count(u, fWebFetch)
				}
				return s.skip()
			})
			return ok
		case "output_tokens_details":
			_, ok := s.optObject(func(k []byte) bool {
				switch string(k) {
				case "thinking_tokens", "reasoning_tokens":
					return s.count(u, fThinking)
				}
				return s.skip()
			})
			return ok
		}
		return s.skip()
	})
}

// startDoc is what a message_start event carries.
type startDoc struct {
	model strVal
	usage usageFields
}

func decodeStart(b []byte, d *startDoc) bool {
	s := scanner{b: b}
	return s.object(func(k []byte) bool {
		if string(k) != "message" {
			return s.skip()
		}
		_, ok := s.optObject(func(k []byte) bool {
			switch string(k) {
			case "model":
				return s.optString(&d.model)
			case "usage":
				_, ok := s.usage(&d.usage)
				return ok
			}
			return s.skip()
		})
		return ok
	}) && s.end()
}

// deltaDoc is what a message_delta event carries.
type deltaDoc struct {
	stopReason strVal
	usage      usageFields
}

func decodeDelta(b []byte, d *deltaDoc) bool {
	s := scanner{b: b}
	return s.object(func(k []byte) bool {
		switch string(k) {
		case "delta":
			_, ok := s.optObject(func(k []byte) bool {
				if string(k) == "stop_reason" {
					return s.optString(&d.stopReason)
				}
				return s.skip()
			})
			return ok
		case "usage":
			_, ok := s.usage(&d.usage)
			return ok
		}
		return s.skip()
	}) && s.end()
}

// errorDoc is what an error event or error body carries.
type errorDoc struct {
	typ, message strVal
}

func (s *scanner) errorObject(d *errorDoc) bool {
	_, ok := s.optObject(func(k []byte) bool {
		switch string(k) {
		case "type":
			return s.optString(&d.typ)
		case "message":
			return s.optString(&d.message)
		}
		return s.skip()
	})
	return ok
}

func decodeError(b []byte, d *errorDoc) bool {
	s := scanner{b: b}
	return s.object(func(k []byte) bool {
		if string(k) == "error" {
			return s.errorObject(d)
		}
		return s.skip()
	}) && s.end()
}

// decodeType reads the top-level "type" of an event.
func decodeType(b []byte) (typ strVal, ok bool) {
	s := scanner{b: b}
	ok = s.object(func(k []byte) bool {
		if string(k) == "type" {
			return s.optString(&typ)
		}
		return s.skip()
	}) && s.end()
	return typ, ok
}

// messageDoc is what a non-streaming response carries.
type messageDoc struct {
	typ, model          strVal
	usage               usageFields
	hasUsage            bool
	errType, errMessage strVal
}

// decodeMessage reads a non-streaming response, returning the offset of an
// error when it is malformed.
func decodeMessage(b []byte, d *messageDoc) (offset int, ok bool) {
	s := scanner{b: b}
	ok = s.object(func(k []byte) bool {
		switch string(k) {
		case "type":
			return s.optString(&d.typ)
		case "model":
			return s.optString(&d.model)
		case "usage":
			present, ok := s.usage(&d.usage)
			d.hasUsage = d.hasUsage || present
			return ok
		case "error":
			var e errorDoc
			if !s.errorObject(&e) {
				return false
			}
			d.errType, d.errMessage = e.typ, e.message
			return true
		}
		return s.skip()
	}) && s.end()
	return s.i, ok
}

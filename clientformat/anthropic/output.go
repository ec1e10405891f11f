package anthropic

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// CharsPerToken is the divisor of the output estimate EstimateOutputTokens
// makes for a stream that ended without reporting its output tokens.
//
// Anthropic gives about 3.5 English characters per token for Claude, and
// code and non-Latin scripts take more tokens per character, so four
// characters per token, counted in Unicode characters rather than UTF-8
// bytes, stays below the true count for ordinary output: it is a floor
// estimate. It is not a guarantee: a long run of one repeated character can
// be a single token.
const CharsPerToken = 4

// EstimateOutputTokens is the floor estimate of the output tokens of chars
// characters of relayed output: ceil(chars / CharsPerToken).
func EstimateOutputTokens(chars int64) int64 {
	if chars <= 0 {
		return 0
	}
	return (chars + CharsPerToken - 1) / CharsPerToken
}

// deltaCounter counts the characters of billed output in the data of one
// content_block_delta event, fed in pieces as they arrive: the decoded
// string values of "text" (text_delta), "thinking" (thinking_delta) and
// "partial_json" (input_json_delta) inside the event's top-level "delta"
// object. Signatures, citations and every other member are not output the
// client is billed for as text, and are not counted.
//
// It is not a validating JSON parser: it follows just enough of the grammar
// (strings, escapes, nesting, the key/value position) to find those members,
// skipping other strings at memchr speed, and allocates nothing. A character
// is a Unicode code point of the decoded string: a UTF-8 sequence, or a
// backslash escape ("\n", "\u00e9"), counts as one, and a \u surrogate pair
// as one. Malformed data may be miscounted but never makes it fail.
type deltaCounter struct {
	chars int64

	st        dcState
	esc       uint8  // where within a backslash escape (escNone outside one)
	depth     uint8  // nesting of objects and arrays; 0 outside the document
	objects   uint64 // bit d-1 is set when the container at depth d is an object
	expectKey bool   // the next string at this depth is an object key
	inDelta   bool   // the object at depth 2 is the top-level "delta"
	pending   dcKey  // the key whose value comes next
	broken    bool   // nested deeper than objects can track: counting stopped
	fed       bool   // feed has had bytes
	keyLen    uint8  // bytes of the current key in key; keyNoMatch when none can match
	key       [len("partial_json")]byte
}

// dcState is where a deltaCounter is in the JSON text.
type dcState uint8

const (
	dcOutside  dcState = iota // between tokens
	dcKeyStr                  // inside an object key
	dcSkipStr                 // inside a string value that is not counted
	dcCountStr                // inside a string value that is counted
)

// dcKey classifies an object key.
type dcKey uint8

const (
	keyOther  dcKey = iota
	keyDelta        // "delta" at the top level
	keyOutput       // "text", "thinking" or "partial_json" inside the delta
)

// Positions within a backslash escape, in deltaCounter.esc.
const (
	escNone  = iota
	escStart // after the backslash
	escU1    // after "\u", expecting the first hex digit
	escU2    // expecting the second hex digit
	escU2D   // expecting the second hex digit after a "d" or "D"
	escU3    // expecting the third hex digit
	escU4    // expecting the last hex digit
)

const keyNoMatch = 0xff

func (d *deltaCounter) reset() { *d = deltaCounter{} }

// feed counts the next piece of the event's data.
func (d *deltaCounter) feed(b []byte) {
	if !d.fed && len(b) > 0 {
		d.fed = true
		b = d.canonical(b)
	}
	for len(b) > 0 && !d.broken {
		switch d.st {
		case dcOutside:
			b = d.outside(b)
		case dcKeyStr:
			b = d.keyString(b)
		case dcSkipStr:
			b = d.skipString(b)
		case dcCountStr:
			b = d.countString(b)
		}
	}
}

// The start of a content_block_delta as Anthropic writes it, up to the
// opening quote of the counted string.
const (
	canonicalStart = `{"type":"content_block_delta","index":`
	canonicalDelta = `,"delta":{"type":"`
)

// canonical skips, at the start of the data, the envelope of a delta in
// Anthropic's own layout, {"type":"content_block_delta","index":N,
// "delta":{"type":"T","K":" with K one of the counted keys, and leaves the
// counter where the general path would be: inside the counted string. Data
// in any other layout, or split before the string starts, is returned
// whole for the general path.
func (d *deltaCounter) canonical(b []byte) []byte {
	rest, ok := bytes.CutPrefix(b, []byte(canonicalStart))
	if !ok {
		return b
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(canonicalDelta)); !ok || i == 0 {
		return b
	}
	i = 0
	for i < len(rest) && (rest[i] >= 'a' && rest[i] <= 'z' || rest[i] == '_') {
		i++
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`","`)); !ok {
		return b
	}
	for _, key := range [...]string{`text":"`, `thinking":"`, `partial_json":"`} {
		if after, ok := bytes.CutPrefix(rest, []byte(key)); ok {
			d.st, d.depth, d.objects, d.inDelta, d.pending = dcCountStr, 2, 0b11, true, keyOutput
			return after
		}
	}
	return b
}

// outside reads structural bytes until a string starts. The state lives in
// locals while it runs and is written back once.
func (d *deltaCounter) outside(b []byte) []byte {
	depth, objects, expectKey, inDelta, pending := d.depth, d.objects, d.expectKey, d.inDelta, d.pending
	save := func() {
		d.depth, d.objects, d.expectKey, d.inDelta, d.pending = depth, objects, expectKey, inDelta, pending
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			switch {
			case expectKey:
				d.st, d.keyLen = dcKeyStr, 0
			case depth == 2 && inDelta && pending == keyOutput:
				d.st = dcCountStr
			default:
				d.st = dcSkipStr
			}
			save()
			return b[i+1:]
		case ':':
			expectKey = false
		case ',':
			expectKey = depth > 0 && objects&(1<<(depth-1)) != 0
			pending = keyOther
		case '{', '[':
			if depth == 64 {
				d.broken = true
				save()
				return nil
			}
			if c == '{' {
				objects |= 1 << depth
				inDelta = inDelta || depth == 1 && pending == keyDelta
			} else {
				objects &^= 1 << depth
			}
			depth++
			expectKey = c == '{'
			pending = keyOther
		case '}', ']':
			if depth == 2 {
				inDelta = false
			}
			if depth > 0 {
				depth--
			}
			expectKey = false
			pending = keyOther
		}
	}
	save()
	return nil
}

// keyString reads an object key and classifies it at its closing quote.
func (d *deltaCounter) keyString(b []byte) []byte {
	for len(b) > 0 {
		if d.esc != escNone {
			// Anthropic's keys carry no escapes; one that does matches nothing.
			d.esc = d.escNext(b[0])
			b = b[1:]
			continue
		}
		end := bytes.IndexByte(b, '"')
		if end < 0 {
			end = len(b)
		}
		seg := b[:end]
		if bs := bytes.IndexByte(seg, '\\'); bs >= 0 {
			d.esc, d.keyLen = escStart, keyNoMatch
			b = b[bs+1:]
			continue
		}
		if d.keyLen != keyNoMatch {
			if int(d.keyLen)+len(seg) <= len(d.key) {
				d.keyLen += uint8(copy(d.key[d.keyLen:], seg))
			} else {
				d.keyLen = keyNoMatch
			}
		}
		if end == len(b) {
			return nil
		}
		d.st = dcOutside
		d.pending = d.classify()
		return b[end+1:]
	}
	return nil
}

func (d *deltaCounter) classify() dcKey {
	k := d.key[:min(d.keyLen, uint8(len(d.key)))]
	switch {
	case d.keyLen == keyNoMatch:
	case d.depth == 1 && string(k) == "delta":
		return keyDelta
	case d.depth == 2 && d.inDelta && (string(k) == "text" || string(k) == "thinking" || string(k) == "partial_json"):
		return keyOutput
	}
	return keyOther
}

// escNext returns the escape position after byte c of an escape.
func (d *deltaCounter) escNext(c byte) uint8 {
	switch d.esc {
	case escStart:
		if c == 'u' {
			return escU1
		}
		return escNone
	case escU1:
		if c == 'd' || c == 'D' {
			return escU2D
		}
		return escU2
	case escU2, escU2D:
		return escU3
	case escU3:
		return escU4
	}
	return escNone
}

// skipString skips a string that is not counted.
func (d *deltaCounter) skipString(b []byte) []byte {
	for len(b) > 0 {
		if d.esc != escNone {
			// The escaped byte cannot end the string, and \u digits are
			// neither quotes nor backslashes.
			d.esc = escNone
			b = b[1:]
			continue
		}
		end := bytes.IndexByte(b, '"')
		if end < 0 {
			end = len(b)
		}
		if bs := bytes.IndexByte(b[:end], '\\'); bs >= 0 {
			d.esc = escStart
			b = b[bs+1:]
			continue
		}
		if end == len(b) {
			return nil
		}
		d.st = dcOutside
		return b[end+1:]
	}
	return nil
}

// countString counts the characters of a counted string up to its end.
func (d *deltaCounter) countString(b []byte) []byte {
	for len(b) > 0 {
		if d.esc != escNone {
			c := b[0]
			if d.esc == escU2D && (c >= 'c' && c <= 'f' || c >= 'C' && c <= 'F') {
				// A low surrogate (\uDC00 to \uDFFF) completes a pair
				// already counted at its high half.
				d.chars--
			}
			d.esc = d.escNext(c)
			b = b[1:]
			continue
		}
		end := bytes.IndexByte(b, '"')
		if end < 0 {
			end = len(b)
		}
		seg := b[:end]
		bs := bytes.IndexByte(seg, '\\')
		if bs >= 0 {
			seg = seg[:bs]
		}
		d.chars += leadBytes(seg)
		switch {
		case bs >= 0:
			d.chars++ // the escape is one character
			d.esc = escStart
			b = b[bs+1:]
		case end < len(b):
			d.st = dcOutside
			return b[end+1:]
		default:
			return nil
		}
	}
	return nil
}

// leadBytes counts the bytes of b that start a UTF-8 sequence, so that a
// character split between two pieces is counted once, in the first. It
// subtracts the continuation bytes (10xxxxxx), eight at a time.
func leadBytes(b []byte) int64 {
	n := len(b)
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// Bit 7 of a byte set and bit 6 clear: shifting left by one moves
		// each byte's bit 6 to its bit 7; carries across bytes are masked.
		n -= bits.OnesCount64(w &^ (w << 1) & 0x8080808080808080)
		b = b[8:]
	}
	for _, c := range b {
		if c&0xc0 == 0x80 {
			n--
		}
	}
	return int64(n)
}

package cache

// This file keeps the first implementation of Canonical (the one the cache
// shipped with), as the reference the differential tests compare the
// current one with: both must give the same bytes, or both refuse.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// refCanonical is Canonical as first implemented.
func refCanonical(body []byte, exclude []string) ([]byte, error) {
	c, err := refCanonicalize(body, exclude)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body))
	for _, p := range c.out {
		out = append(out, c.bytes(p)...)
	}
	return out, nil
}

// canonicalize reads body into c.out, the refPieces of its canonical form.
func refCanonicalize(body []byte, exclude []string) (*refCanonicalizer, error) {
	c := &refCanonicalizer{in: body, out: make([]refPiece, 0, 16+len(body)/32)}
	copy(c.refPunct[:], refPunct)
	var paths [][]string
	for _, p := range exclude {
		paths = append(paths, strings.Split(p, "."))
	}
	c.skipSpace()
	if err := c.value(paths, 0); err != nil {
		return nil, err
	}
	c.skipSpace()
	if c.pos != len(c.in) {
		return nil, c.errorf("data after the top-level value")
	}
	return c, nil
}

// refCanonicalizer holds the canonical form of a body as refPieces: ranges of
// the body (strings, numbers, literals) and refPunctuation, never copies, so
// that sorting an object moves small values without pointers, not bytes.
type refCanonicalizer struct {
	in         []byte
	pos        int
	out        []refPiece
	refPunct   [len(refPunct)]byte
	refMembers []refMember // the refMembers of the objects being read, innermost last
	scratch    []refPiece  // the copy an object's refMembers are reordered from
}

// refPiece is in[off:off+n] or, when off is negative, the refPunctuation
// character at -off-1 of refPunct.
type refPiece struct{ off, n int32 }

const refPunct = "{}[],:"

var (
	refOpenObj, refCloseObj = refPiece{-1, 1}, refPiece{-2, 1}
	refOpenArr, refCloseArr = refPiece{-3, 1}, refPiece{-4, 1}
	refComma, refColon      = refPiece{-5, 1}, refPiece{-6, 1}
)

// span is the refPiece of in[start:end].
func refSpan(start, end int) refPiece { return refPiece{int32(start), int32(end - start)} }

// bytes returns the bytes of p.
func (c *refCanonicalizer) bytes(p refPiece) []byte {
	if p.off < 0 {
		i := -p.off - 1
		return c.refPunct[i : i+1]
	}
	return c.in[p.off : p.off+p.n]
}

func (c *refCanonicalizer) errorf(format string, args ...any) error {
	return fmt.Errorf("cache: canonical JSON: offset %d: %s", c.pos, fmt.Sprintf(format, args...))
}

func (c *refCanonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value copies the value at c.pos to c.out; exclude holds the paths still
// to match below it.
func (c *refCanonicalizer) value(exclude [][]string, depth int) error {
	if depth > maxDepth {
		return c.errorf("nested deeper than %d", maxDepth)
	}
	if c.pos >= len(c.in) {
		return c.errorf("unexpected end")
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(exclude, depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		start := c.pos
		if _, err := c.str(); err != nil {
			return err
		}
		c.out = append(c.out, refSpan(start, c.pos))
		return nil
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
			c.out = append(c.out, refSpan(c.pos, c.pos+len(lit)))
			c.pos += len(lit)
			return nil
		}
	}
	return c.errorf("unexpected %q", c.in[c.pos])
}

// str returns the string at c.pos, quotes included, as written. It finds
// the closing quote with bytes.IndexByte (a quote after an odd number of
// backslashes is escaped) and checks nothing else inside: the client
// format has read the body as JSON already.
func (c *refCanonicalizer) str() ([]byte, error) {
	start := c.pos
	c.pos++
	for {
		i := bytes.IndexByte(c.in[c.pos:], '"')
		if i < 0 {
			c.pos = len(c.in)
			return nil, c.errorf("unterminated string")
		}
		q := c.pos + i
		c.pos = q + 1
		n := 0
		for j := q - 1; j > start && c.in[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return c.in[start:c.pos], nil
		}
	}
}

func (c *refCanonicalizer) number() error {
	start := c.pos
	for c.pos < len(c.in) {
		switch b := c.in[c.pos]; {
		case b >= '0' && b <= '9', b == '-', b == '+', b == '.', b == 'e', b == 'E':
			c.pos++
			continue
		}
		break
	}
	if !json.Valid(c.in[start:c.pos]) {
		return c.errorf("invalid number %q", c.in[start:c.pos])
	}
	c.out = append(c.out, refSpan(start, c.pos))
	return nil
}

func (c *refCanonicalizer) array(depth int) error {
	c.pos++
	c.out = append(c.out, refOpenArr)
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, refCloseArr)
		return nil
	}
	for {
		c.skipSpace()
		if err := c.value(nil, depth+1); err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return c.errorf("unterminated array")
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
			c.out = append(c.out, refComma)
		case ']':
			c.pos++
			c.out = append(c.out, refCloseArr)
			return nil
		default:
			return c.errorf("expected , or ] in an array")
		}
	}
}

// refMember is one object refMember in c.out: name is its name as written, and
// out[start:end] is "name":value.
type refMember struct {
	name       []byte
	start, end int
}

func (c *refCanonicalizer) object(exclude [][]string, depth int) error {
	c.pos++
	c.out = append(c.out, refOpenObj)
	open := len(c.out)
	base := len(c.refMembers) // c.refMembers is a stack: nested objects use it above base
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, refCloseObj)
		return nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.errorf("expected a refMember name")
		}
		nameStart := c.pos
		name, err := c.str()
		if err != nil {
			return err
		}
		if bytes.IndexByte(name, '\\') >= 0 {
			return fmt.Errorf("%w: refMember name %s has an escape", ErrAmbiguousNames, name)
		}
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.errorf("expected : after a refMember name")
		}
		c.pos++
		c.skipSpace()
		drop, below := refMatchExclude(exclude, name)
		before := len(c.out)
		if len(c.refMembers) > base {
			c.out = append(c.out, refComma)
		}
		start := len(c.out)
		c.out = append(c.out, refSpan(nameStart, nameStart+len(name)), refColon)
		if err := c.value(below, depth+1); err != nil {
			return err
		}
		if drop {
			c.out = c.out[:before]
		} else {
			c.refMembers = append(c.refMembers, refMember{name: name, start: start, end: len(c.out)})
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return c.errorf("unterminated object")
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] != '}' {
			return c.errorf("expected , or } in an object")
		}
		c.pos++
		break
	}
	refMembers := c.refMembers[base:]
	defer func() { c.refMembers = c.refMembers[:base] }()
	byName := func(a, b refMember) int { return bytes.Compare(a.name, b.name) }
	sorted := slices.IsSortedFunc(refMembers, byName)
	if !sorted {
		slices.SortStableFunc(refMembers, byName)
	}
	for i := 1; i < len(refMembers); i++ {
		if bytes.Equal(refMembers[i-1].name, refMembers[i].name) {
			return fmt.Errorf("%w: refMember %s appears twice", ErrAmbiguousNames, refMembers[i].name)
		}
	}
	if sorted {
		c.out = append(c.out, refCloseObj)
		return nil
	}
	// Nested objects are done by now, so the scratch copy is free to reuse.
	body := append(c.scratch[:0], c.out[open:]...)
	c.scratch = body
	c.out = c.out[:open]
	for i, m := range refMembers {
		if i > 0 {
			c.out = append(c.out, refComma)
		}
		c.out = append(c.out, body[m.start-open:m.end-open]...)
	}
	c.out = append(c.out, refCloseObj)
	return nil
}

// refMatchExclude reports whether the refMember named name (quoted, as written)
// is excluded, and the paths that continue below it.
func refMatchExclude(exclude [][]string, name []byte) (drop bool, below [][]string) {
	if len(exclude) == 0 {
		return false, nil
	}
	n := string(name[1 : len(name)-1]) // quoted, without escapes (object checks)
	for _, p := range exclude {
		if p[0] != n {
			continue
		}
		if len(p) == 1 {
			return true, nil
		}
		below = append(below, p[1:])
	}
	return false, below
}

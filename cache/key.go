package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// KeyInput is everything that decides a cached answer.
type KeyInput struct {
	// Body is the request body, JSON. It enters the key in canonical form
	// (see Canonical), without the Exclude fields.
	Body []byte
	// Exclude lists fields of the body left out of the key, as dotted paths
	// of object members from the root ("metadata.user_id").
	Exclude []string
	// Endpoint is the request's method and path with its query
	// ("POST /v1/messages?beta=true"), ClientFormat the API the client
	// speaks ("anthropic").
	Endpoint, ClientFormat string
	// Route is the resolved route's slug, Model the resolved model: the id
	// the route sends its first provider, after the policy's mappings (the
	// client's own model is in the body), so that a changed mapping is a
	// miss.
	Route, Model string
	// Scope is the tenant: "team:<name>", "key:<id>" or "global".
	Scope string
	// Headers are the request headers that change the answer, name and
	// value; an absent header is absent here too. The order does not matter.
	Headers []Header
}

// Header is a request header that enters a key.
type Header struct{ Name, Value string }

// NewKey returns the SHA-256 of in: every field but Body and Exclude, each
// length-prefixed so that no two inputs run together, the headers sorted by
// name, and then the canonical body. An error means the body is not JSON.
func NewKey(in KeyInput) (Key, error) { return new(canonicalizer).key(in) }

// Keyer makes keys as NewKey does, reusing its working memory (the pieces
// of a body's canonical form, a few KB for 100 KB) from one key to the
// next: a hit then allocates next to nothing for its key. The zero value
// is ready; it is safe for concurrent use, and must not be copied after
// its first use.
type Keyer struct {
	pool sync.Pool // of *canonicalizer
}

// maxPooledPieces bounds the pieces a pooled canonicalizer keeps room for:
// a huge body's working memory is left to the garbage collector.
const maxPooledPieces = 1 << 16

// NewKey implements NewKey with reused memory.
func (k *Keyer) NewKey(in KeyInput) (Key, error) {
	c, _ := k.pool.Get().(*canonicalizer)
	if c == nil {
		c = new(canonicalizer)
	}
	key, err := c.key(in)
	c.in = nil // the pool keeps no body alive
	if cap(c.out) <= maxPooledPieces && cap(c.scratch) <= maxPooledPieces {
		k.pool.Put(c)
	}
	return key, err
}

// key is NewKey on c's memory.
func (c *canonicalizer) key(in KeyInput) (Key, error) {
	if err := c.run(in.Body, in.Exclude); err != nil {
		return Key{}, err
	}
	if c.h == nil {
		c.h = sha256.New()
	}
	h := c.h
	h.Reset()
	var lenBuf [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(s))))
		h.Write([]byte(s))
	}
	// v2: the hash reads the canonical bytes strictly in order (v1 could
	// hash a long string before the small pieces ahead of it).
	field("tollgate-cache-v2")
	field(in.Endpoint)
	field(in.ClientFormat)
	field(in.Route)
	field(in.Model)
	field(in.Scope)
	hs := slices.Clone(in.Headers)
	slices.SortFunc(hs, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	h.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(hs))))
	for _, x := range hs {
		field(strings.ToLower(x.Name))
		field(x.Value)
	}
	// Small pieces are gathered into buf: one Write per piece would cost
	// more than the hashing itself. Long ones are hashed in place, after
	// what buf holds: the hash reads the canonical bytes in their order,
	// however they are cut into pieces.
	var buf [1024]byte
	n := 0
	for _, p := range c.out {
		b := c.bytes(p)
		if n+len(b) > len(buf) || len(b) > len(buf)/2 {
			h.Write(buf[:n])
			n = 0
		}
		if len(b) > len(buf)/2 {
			h.Write(b)
			continue
		}
		n += copy(buf[n:], b)
	}
	h.Write(buf[:n])
	var k Key
	h.Sum(k[:0])
	return k, nil
}

// ErrAmbiguousNames is returned for a body with an object whose member
// names repeat, or are spelled with escapes: JSON parsers disagree on what
// a repeated name means (the first or the last value), so no key could be
// sure to stand for one request. Such a body is not cached.
var ErrAmbiguousNames = errors.New("cache: canonical JSON: ambiguous member names")

// maxDepth bounds the nesting of a body Canonical reads.
const maxDepth = 512

// Canonical returns body as canonical JSON: no insignificant whitespace, the
// members of every object sorted by their names (bytewise), numbers and
// strings exactly as written,
// and the members named by exclude (dotted paths from the root) left out.
// A body whose member names repeat or hold escapes is refused
// (ErrAmbiguousNames). Two bodies that differ only in member order or
// whitespace have the same
// canonical form; two that spell a string or number differently ("\u0041"
// and "A", 1.0 and 1) do not, which errs on the side of a miss. The body is
// read once, without decoding it into Go values.
func Canonical(body []byte, exclude []string) ([]byte, error) {
	c, err := canonicalize(body, exclude)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body))
	for _, p := range c.out {
		out = append(out, c.bytes(p)...)
	}
	return out, nil
}

// canonicalize reads body into the pieces of its canonical form.
func canonicalize(body []byte, exclude []string) (*canonicalizer, error) {
	c := new(canonicalizer)
	return c, c.run(body, exclude)
}

// run reads body into c.out, the pieces of its canonical form, reusing
// the memory c holds.
func (c *canonicalizer) run(body []byte, exclude []string) error {
	c.in, c.pos, c.barrier = body, 0, 0
	if c.out == nil {
		c.out = make([]piece, 0, 16+len(body)/128)
	}
	c.out, c.members, c.scratch = c.out[:0], c.members[:0], c.scratch[:0]
	copy(c.punct[:], punct)
	var paths [][]string
	for _, p := range exclude {
		paths = append(paths, strings.Split(p, "."))
	}
	c.skipSpace()
	if err := c.value(paths, 0); err != nil {
		return err
	}
	c.skipSpace()
	if c.pos != len(c.in) {
		return c.errorf("data after the top-level value")
	}
	return nil
}

// canonicalizer holds the canonical form of a body as pieces: ranges of
// the body and punctuation, never copies, so that sorting an object moves
// small values without pointers, not bytes. A piece that continues the
// range of the one before it is merged into it (add): a compact body
// (what every SDK sends) becomes a few long ranges per object member,
// which the hash reads in place.
type canonicalizer struct {
	in    []byte
	pos   int
	out   []piece
	punct [len(punct)]byte
	// barrier is the first index of out whose piece add may extend: the
	// pieces below it end an object member, or one starts at it.
	barrier int
	members []member  // the members of the objects being read, innermost last
	scratch []piece   // the copy an object's members are reordered from
	h       hash.Hash // the SHA-256 of key, kept for the next key
}

// piece is in[off:off+n] or, when off is negative, the punctuation
// character at -off-1 of punct.
type piece struct{ off, n int32 }

const punct = "{}[],:"

var comma = piece{-5, 1}

// span is the piece of in[start:end].
func span(start, end int) piece { return piece{int32(start), int32(end - start)} }

// add appends p to c.out, or extends the last piece when p continues it in
// the body.
func (c *canonicalizer) add(p piece) {
	if n := len(c.out); n > c.barrier {
		if last := &c.out[n-1]; last.off >= 0 && last.off+last.n == p.off {
			last.n += p.n
			return
		}
	}
	c.out = append(c.out, p)
}

// fence stops add from extending the pieces before it.
func (c *canonicalizer) fence() { c.barrier = len(c.out) }

// bytes returns the bytes of p.
func (c *canonicalizer) bytes(p piece) []byte {
	if p.off < 0 {
		i := -p.off - 1
		return c.punct[i : i+1]
	}
	return c.in[p.off : p.off+p.n]
}

func (c *canonicalizer) errorf(format string, args ...any) error {
	return fmt.Errorf("cache: canonical JSON: offset %d: %s", c.pos, fmt.Sprintf(format, args...))
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// char adds the punctuation character at c.pos and moves past it.
func (c *canonicalizer) char() {
	c.add(span(c.pos, c.pos+1))
	c.pos++
}

// value copies the value at c.pos to c.out; exclude holds the paths still
// to match below it.
func (c *canonicalizer) value(exclude [][]string, depth int) error {
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
		if err := c.str(); err != nil {
			return err
		}
		c.add(span(start, c.pos))
		return nil
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
			c.add(span(c.pos, c.pos+len(lit)))
			c.pos += len(lit)
			return nil
		}
	}
	return c.errorf("unexpected %q", c.in[c.pos])
}

// str moves past the string at c.pos, as written. It finds the closing
// quote with bytes.IndexByte (a quote after an odd number of backslashes
// is escaped) and checks nothing else inside: the client format has read
// the body as JSON already.
func (c *canonicalizer) str() error {
	start := c.pos
	c.pos++
	for {
		i := bytes.IndexByte(c.in[c.pos:], '"')
		if i < 0 {
			c.pos = len(c.in)
			return c.errorf("unterminated string")
		}
		q := c.pos + i
		c.pos = q + 1
		n := 0
		for j := q - 1; j > start && c.in[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return nil
		}
	}
}

func (c *canonicalizer) number() error {
	start := c.pos
	for c.pos < len(c.in) {
		switch b := c.in[c.pos]; {
		case b >= '0' && b <= '9', b == '-', b == '+', b == '.', b == 'e', b == 'E':
			c.pos++
			continue
		}
		break
	}
	if !reqbody.ValidNumber(c.in[start:c.pos]) {
		return c.errorf("invalid number %q", c.in[start:c.pos])
	}
	c.add(span(start, c.pos))
	return nil
}

func (c *canonicalizer) array(depth int) error {
	c.char()
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.char()
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
			c.char()
		case ']':
			c.char()
			return nil
		default:
			return c.errorf("expected , or ] in an array")
		}
	}
}

// member is one object member in c.out: in[name:name+nameLen] is its name
// as written, quotes included, and out[start:end] is "name":value.
type member struct{ name, nameLen, start, end int32 }

func (c *canonicalizer) object(exclude [][]string, depth int) error {
	c.char()
	open := len(c.out)
	base := len(c.members) // c.members is a stack: nested objects use it above base
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.char()
		return nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.errorf("expected a member name")
		}
		nameStart := c.pos
		if err := c.str(); err != nil {
			return err
		}
		name := c.in[nameStart:c.pos]
		if bytes.IndexByte(name, '\\') >= 0 {
			return fmt.Errorf("%w: member name %s has an escape", ErrAmbiguousNames, name)
		}
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.errorf("expected : after a member name")
		}
		drop, below := matchExclude(exclude, name)
		c.fence()
		before := len(c.out)
		if len(c.members) > base {
			c.out = append(c.out, comma)
		}
		c.fence()
		start := len(c.out)
		c.add(span(nameStart, nameStart+len(name)))
		c.char()
		c.skipSpace()
		if err := c.value(below, depth+1); err != nil {
			return err
		}
		if drop {
			c.out = c.out[:before]
		} else {
			c.members = append(c.members, member{name: int32(nameStart), nameLen: int32(len(name)), start: int32(start), end: int32(len(c.out))})
		}
		c.fence()
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
		break
	}
	members := c.members[base:]
	defer func() { c.members = c.members[:base] }()
	byName := func(a, b member) int {
		return bytes.Compare(c.in[a.name:a.name+a.nameLen], c.in[b.name:b.name+b.nameLen])
	}
	sorted := slices.IsSortedFunc(members, byName)
	if !sorted {
		// The names differ, or the object is refused below: a stable
		// sort is not needed.
		slices.SortFunc(members, byName)
	}
	for i := 1; i < len(members); i++ {
		if byName(members[i-1], members[i]) == 0 {
			return fmt.Errorf("%w: member %s appears twice", ErrAmbiguousNames, c.in[members[i].name:members[i].name+members[i].nameLen])
		}
	}
	if !sorted {
		// Nested objects are done by now, so the scratch copy is free to
		// reuse. A comma of the body is used where one follows the member
		// before, so that the pieces around it may be merged.
		body := append(c.scratch[:0], c.out[open:]...)
		c.scratch = body
		c.out = c.out[:open]
		for i, m := range members {
			if i > 0 {
				sep := comma
				if last := c.out[len(c.out)-1]; last.off >= 0 && int(last.off+last.n) < len(c.in) && c.in[last.off+last.n] == ',' {
					sep = piece{last.off + last.n, 1}
				}
				c.out = append(c.out, sep)
			}
			c.out = append(c.out, body[m.start-int32(open):m.end-int32(open)]...)
		}
	}
	c.fence()
	c.char()
	c.merge(open - 1)
	return nil
}

// merge joins the pieces of c.out from i on that continue each other in
// the body, once the object whose opening brace is in c.out[i] is done:
// its members are in their order, and nothing outside it keeps an index
// above i.
func (c *canonicalizer) merge(i int) {
	w := i
	for _, p := range c.out[i+1:] {
		if last := &c.out[w]; last.off >= 0 && last.off+last.n == p.off {
			last.n += p.n
			continue
		}
		w++
		c.out[w] = p
	}
	c.out = c.out[:w+1]
	c.barrier = i
}

// matchExclude reports whether the member named name (quoted, as written)
// is excluded, and the paths that continue below it.
func matchExclude(exclude [][]string, name []byte) (drop bool, below [][]string) {
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

package envoytest

import (
	"net/http"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// header is one entry of a headerMap. Keys are always lowercase.
type header struct {
	key, value string
}

// headerMap is an ordered, multi-valued header map with lowercase keys, like
// Envoy's HeaderMap: pseudo-headers first, then the others in insertion order.
type headerMap struct {
	entries []header
}

func (m *headerMap) clone() *headerMap {
	return &headerMap{entries: append([]header(nil), m.entries...)}
}

// get returns the first value of key and whether it is present.
func (m *headerMap) get(key string) (string, bool) {
	for _, e := range m.entries {
		if e.key == key {
			return e.value, true
		}
	}
	return "", false
}

// values returns every value of key.
func (m *headerMap) values(key string) []string {
	var vs []string
	for _, e := range m.entries {
		if e.key == key {
			vs = append(vs, e.value)
		}
	}
	return vs
}

func (m *headerMap) has(key string) bool {
	_, ok := m.get(key)
	return ok
}

// add appends a value, keeping pseudo-headers ahead of regular ones.
func (m *headerMap) add(key, value string) {
	if strings.HasPrefix(key, ":") {
		i := 0
		for i < len(m.entries) && strings.HasPrefix(m.entries[i].key, ":") {
			i++
		}
		m.entries = append(m.entries, header{})
		copy(m.entries[i+1:], m.entries[i:])
		m.entries[i] = header{key, value}
		return
	}
	m.entries = append(m.entries, header{key, value})
}

// set replaces every value of key by value (Envoy's setCopy): the first
// occurrence keeps its position, later ones are dropped.
func (m *headerMap) set(key, value string) {
	out := m.entries[:0]
	done := false
	for _, e := range m.entries {
		if e.key != key {
			out = append(out, e)
			continue
		}
		if !done {
			out = append(out, header{key, value})
			done = true
		}
	}
	m.entries = out
	if !done {
		m.add(key, value)
	}
}

func (m *headerMap) del(key string) {
	out := m.entries[:0]
	for _, e := range m.entries {
		if e.key != key {
			out = append(out, e)
		}
	}
	m.entries = out
}

// byteSize is the size Envoy counts against max_request_headers_kb.
func (m *headerMap) byteSize() int {
	n := 0
	for _, e := range m.entries {
		n += len(e.key) + len(e.value)
	}
	return n
}

// proto renders the map as Envoy sends it to a processor: lowercase keys, the
// value in raw_value and value left empty.
func (m *headerMap) proto() *corev3.HeaderMap {
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(m.entries))}
	for _, e := range m.entries {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)})
	}
	return hm
}

// hopByHop lists the connection-level headers Envoy's codecs never forward.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true, "te": true, "host": true,
}

// fromHTTP builds a header map from net/http headers, sorted by name so the
// order is deterministic (net/http does not keep the wire order).
func fromHTTP(h http.Header) *headerMap {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := &headerMap{}
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		for _, v := range h[k] {
			m.add(lk, v)
		}
	}
	return m
}

// toHTTP copies the regular (non-pseudo) headers into h.
func (m *headerMap) toHTTP(h http.Header) {
	for _, e := range m.entries {
		if strings.HasPrefix(e.key, ":") || hopByHop[e.key] {
			continue
		}
		h[http.CanonicalHeaderKey(e.key)] = append(h[http.CanonicalHeaderKey(e.key)], e.value)
	}
}

// validHeaderName reports whether name is a valid lowercase HTTP header name
// (an RFC 9110 token, optionally with a leading ':' for pseudo-headers).
func validHeaderName(name string) bool {
	if strings.HasPrefix(name, ":") {
		name = name[1:]
	}
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c >= 'A' && c <= 'Z':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v contains no NUL, CR or LF, which Envoy's
// header validation rejects.
func validHeaderValue(v string) bool {
	return strings.IndexAny(v, "\x00\r\n") < 0
}

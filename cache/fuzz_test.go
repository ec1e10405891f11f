package cache

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzCanonical checks Canonical on any input: it never panics; on valid
// JSON it succeeds, its output is valid JSON with the same meaning, and it
// is its own canonical form (or it is refused as ambiguous).
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1,{"d":2,"c":"\"x\\"}]}`, `[]`, `"s"`, `{"a":{"b":{}}}`, ` {"z" : -1.5e3 , "a" : null} `, `{"a":"\u00e9\\"}`, `{`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonical(in, []string{"a.b"})
		if !json.Valid(in) {
			return
		}
		if errors.Is(err, ErrAmbiguousNames) {
			return
		}
		if err != nil {
			t.Fatalf("valid JSON %q refused: %v", in, err)
		}
		if !json.Valid(out) {
			t.Fatalf("Canonical(%q) = %q, not JSON", in, out)
		}
		again, err := Canonical(out, nil)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		all, _ := Canonical(in, nil)
		var a, b any
		if json.Unmarshal(in, &a) != nil || json.Unmarshal(all, &b) != nil {
			return
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("meaning changed: %q -> %q", in, all)
		}
	})
}

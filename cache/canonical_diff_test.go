package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
)

// sameAsReference fails t unless Canonical and refCanonical, the first
// implementation, agree on in: the same bytes, or both refuse it (and both
// for ambiguous names, or neither).
func sameAsReference(t *testing.T, in []byte, exclude []string) {
	t.Helper()
	got, err := Canonical(in, exclude)
	want, wantErr := refCanonical(in, exclude)
	if (err != nil) != (wantErr != nil) || errors.Is(err, ErrAmbiguousNames) != errors.Is(wantErr, ErrAmbiguousNames) {
		t.Fatalf("Canonical(%.200q, %q): error %v; the reference: %v", in, exclude, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Canonical(%.200q, %q):\n got %.300s\nwant %.300s", in, exclude, got, want)
	}
}

// differentialCorpus is the bench's Claude Code bodies, compact and
// indented, and small bodies in the shapes the merging of pieces must get
// right: sorted and unsorted objects, nested, in arrays, with members
// excluded first, in the middle and last.
func differentialCorpus(t testing.TB) [][]byte {
	var corpus [][]byte
	for _, size := range []int{2 << 10, 100 << 10} {
		for _, stream := range []bool{false, true} {
			b, err := bench.ClaudeCodeBody(size, "claude-opus-4-8", stream, uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			var ind bytes.Buffer
			if err := json.Indent(&ind, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			corpus = append(corpus, b, ind.Bytes())
		}
	}
	for _, s := range []string{
		`{"a":1,"b":{"c":[1,2,{"e":3,"d":4}],"f":{}},"g":[]}`,
		`{"z":{"y":{"x":{"w":1,"v":2},"u":3},"t":4},"s":[{"r":5,"q":6},{"p":[{"o":7,"n":8}]}]}`,
		`{"metadata":{"user_id":"u","a":1},"model":"m","b":{"metadata":{"user_id":"v"}}}`,
		`{"user_id":1,"metadata":{"z":0,"user_id":"u"}}`,
		`[{"b":1,"a":2},{"a":1,"b":2},"s",-1.5e+3,true,null,[[]],{}]`,
		` { "b" : [ 1 , 2 ] , "a" : { "d" : 1 , "c" : 2 } } `,
		`{"a":1, "c":3,"b":2}`,
		`{"b":"` + strings.Repeat("x", 5000) + `","a":{"d":"` + strings.Repeat("y", 700) + `","c":1}}`,
		`{"b":1,"a":2,"b":3}`, `{"a":{"\u0062":1}}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":.5}`,
	} {
		corpus = append(corpus, []byte(s))
	}
	return corpus
}

var differentialExcludes = [][]string{nil, {"metadata.user_id"}, {"metadata.user_id", "model", "a", "b.c"}, {"metadata"}}

// TestCanonicalMatchesReference: the current Canonical gives the bytes of
// the first implementation, on the bench's bodies and on shapes chosen
// for the merging of pieces.
func TestCanonicalMatchesReference(t *testing.T) {
	for i, in := range differentialCorpus(t) {
		for _, ex := range differentialExcludes {
			t.Run(fmt.Sprintf("%d/%v", i, ex), func(t *testing.T) { sameAsReference(t, in, ex) })
		}
	}
}

// FuzzCanonicalReference compares Canonical with the first implementation
// on any input.
func FuzzCanonicalReference(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1,{"d":2,"c":"\"x\\"}]}`, `[]`, `{"a":{"b":{}},"c":{"b":1,"a":2}}`, ` {"z" : -1.5e3 , "a" : null} `, `{"a":"\u00e9\\"}`, `{`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, ex := range differentialExcludes {
			sameAsReference(t, in, ex)
		}
	})
}

// TestKeyHashesCanonicalBytes: a key is the SHA-256 of its fields and of
// the canonical body's bytes in order, however the body's strings are cut
// into the pieces the hash is fed (around the size where pieces are
// gathered or hashed in place). Before v2 a long string could be hashed
// ahead of the small pieces before it.
func TestKeyHashesCanonicalBytes(t *testing.T) {
	in := baseKey()
	for _, n := range []int{0, 1, 100, 500, 511, 512, 513, 1000, 1024, 1500, 2047, 2049, 3000, 4095, 5000} {
		for _, body := range []string{
			`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("a", n) + `"}]}`,
			`{"z":"` + strings.Repeat("b", n) + `","a":[1,2,"` + strings.Repeat("c", n/2) + `"],"m":{"y":1,"x":"` + strings.Repeat("d", n) + `"}}`,
		} {
			in.Body = []byte(body)
			canon, err := Canonical(in.Body, in.Exclude)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			field := func(s string) {
				h.Write(binary.AppendUvarint(nil, uint64(len(s))))
				h.Write([]byte(s))
			}
			for _, s := range []string{"tollgate-cache-v2", in.Endpoint, in.ClientFormat, in.Route, in.Model, in.Scope} {
				field(s)
			}
			hs := slices.Clone(in.Headers)
			slices.SortFunc(hs, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
			h.Write(binary.AppendUvarint(nil, uint64(len(hs))))
			for _, x := range hs {
				field(strings.ToLower(x.Name))
				field(x.Value)
			}
			h.Write(canon)
			var want Key
			h.Sum(want[:0])
			if got := mustKey(t, in); got != want {
				t.Errorf("n=%d %.40s: key %s, want the hash of the canonical bytes %s", n, body, got, want)
			}
		}
	}
}

// TestKeyerSameAsNewKey: a Keyer, its memory reused from key to key (and
// after bodies it refused), gives NewKey's keys, also concurrently.
func TestKeyerSameAsNewKey(t *testing.T) {
	corpus := differentialCorpus(t)
	var k Keyer
	check := func(t *testing.T) {
		for round := range 2 {
			for i, body := range corpus {
				for _, ex := range differentialExcludes {
					in := baseKey()
					in.Body, in.Exclude = body, ex
					want, wantErr := NewKey(in)
					got, err := k.NewKey(in)
					if got != want || (err != nil) != (wantErr != nil) {
						t.Fatalf("round %d body %d %v: Keyer %s %v; NewKey %s %v", round, i, ex, got, err, want, wantErr)
					}
				}
			}
		}
	}
	check(t)
	t.Run("concurrent", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				check(t)
			})
		}
	})
}

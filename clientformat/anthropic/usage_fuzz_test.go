package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzStreamParser checks that the parser never panics and that its results
// do not depend on how the input is cut into chunks: one chunk, two chunks at
// a fuzzed offset, three chunks, and (for short inputs) byte by byte.
func FuzzStreamParser(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.sse")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2), uint16(len(b)/3))
	}
	for _, s := range []string{
		"event: message_delta\r\ndata:{\"usage\":{\"output_tokens\":1}}\r\r\n",
		"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"cache_creation_input_tokens\":5}}}\n\n",
		"event:error\ndata\n\n:\n\n\r\r",
		"data: {\"type\":\"ping\"\ndata: }\nevent: message_delta\n\n",
		"event: message_delta\ndata: {\"usage\":{\"cache_creation\":{\"ephemeral_1h_input_tokens\":3},\"cache_creation_input_tokens\":1}}\n\n",
	} {
		f.Add([]byte(s), uint16(3), uint16(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut1, cut2 uint16) {
		want := parseChunks(in)
		if want.Usage.CacheWrite5mTokens < 0 || want.Usage.CacheWrite1hTokens < 0 {
			t.Fatalf("negative cache writes: %+v", want.Usage)
		}
		i := 0
		if len(in) > 0 {
			i = int(cut1) % (len(in) + 1)
		}
		j := i
		if len(in)-i > 0 {
			j = i + int(cut2)%(len(in)-i+1)
		}
		if got := parseChunks(in[:i], in[i:]); !cmp.Equal(got, want) {
			t.Fatalf("split at %d (-one chunk +split):\n%s", i, cmp.Diff(want, got))
		}
		if got := parseChunks(in[:i], in[i:j], in[j:]); !cmp.Equal(got, want) {
			t.Fatalf("split at %d and %d (-one chunk +split):\n%s", i, j, cmp.Diff(want, got))
		}
		if len(in) <= 4096 {
			if got := parseSizes(in, func() int { return 1 }); !cmp.Equal(got, want) {
				t.Fatalf("byte by byte (-one chunk +split):\n%s", cmp.Diff(want, got))
			}
		}
	})
}

// FuzzParseMessage checks that ParseMessage never panics, accepts only what
// encoding/json accepts (apart from control characters in strings, which it
// does not check), and reads the same counts as a generic decode.
func FuzzParseMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.message.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"usage":{"input_tokens":1,"input_tokens":2,"Output_tokens":3}}`))
	f.Add([]byte(`{"usage":{"cache_read_input_tokens":1e2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, _, err := ParseMessage(body)
		if err != nil {
			var apiErr *APIError
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoUsage) && !errors.As(err, &apiErr) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !json.Valid(body) {
			if !bytes.ContainsFunc(body, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' }) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
		}
		usage, _ := doc["usage"].(map[string]any)
		for key, got := range map[string]int64{
			"input_tokens":            u.InputTokens,
			"cache_read_input_tokens": u.CacheReadTokens,
			"output_tokens":           u.OutputTokens,
		} {
			want := int64(0)
			if n, ok := usage[key].(json.Number); ok {
				v, err := n.Int64()
				if err != nil {
					t.Fatalf("accepted %s = %s", key, n)
				}
				want = v
			}
			if got != want {
				t.Fatalf("%s = %d, encoding/json reads %d", key, got, want)
			}
		}
	})
}

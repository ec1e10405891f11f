package openaichat

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStream feeds arbitrary Messages event streams, cut in two at an
// arbitrary offset, to the chunk translation: it must not panic, every
// data line it emits must be valid JSON (or [DONE]), and the cut must not
// change the output.
func FuzzStream(f *testing.F) {
	files, _ := filepath.Glob("testdata/response/*.anthropic.sse")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\ud800\"}}\n\n"), uint16(9))
	f.Fuzz(func(t *testing.T, body []byte, cut uint16) {
		at := int(cut) % (len(body) + 1)
		run := func(pieces ...[]byte) []byte {
			fn := Response(PathChat, "m", 200, func(k string) string {
				if k == "content-type" {
					return "text/event-stream"
				}
				return ""
			}, func(string, string) {}, func(string) {})
			var out []byte
			for i, p := range pieces {
				out = append(out, fn(p, i == len(pieces)-1)...)
			}
			return out
		}
		whole := run(body)
		if split := run(body[:at], body[at:]); !bytes.Equal(whole, split) {
			t.Fatalf("the cut at %d changed the output:\n%s\nvs\n%s", at, split, whole)
		}
		for _, line := range strings.Split(string(whole), "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if ok && data != "[DONE]" && !json.Valid([]byte(data)) {
				t.Fatalf("invalid chunk %q from %q", data, body)
			}
		}
	})
}

// FuzzRequest feeds arbitrary bodies to the request translation: it must
// not panic, what it returns without an error is a JSON object, and Check
// accepts every body it accepts.
func FuzzRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/request/*.openai.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range checkBodies {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, err := Request(body, identity)
		if err == nil && (!json.Valid(out) || len(out) == 0 || out[0] != '{') {
			t.Fatalf("%s became %s", body, out)
		}
		if cerr := Check(body); err == nil && cerr != nil {
			t.Fatalf("Check refuses what Request accepts: %s: %v", body, cerr)
		}
	})
}

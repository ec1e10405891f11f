package openai

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzStream feeds arbitrary bodies, cut in two at an arbitrary offset, to
// the stream translation: it must not panic, every event it emits must be
// one data line of valid JSON, nothing may follow an error event or
// message_stop, and the cut must not change the output.
func FuzzStream(f *testing.F) {
	files, _ := filepath.Glob("testdata/response/*.openai.sse")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Fuzz(func(t *testing.T, body []byte, cut uint16) {
		at := int(cut) % (len(body) + 1)
		run := func(pieces ...[]byte) []byte {
			names := &toolNames{limit: 64}
			s := newStream(names, "m", nil)
			var out []byte
			for i, p := range pieces {
				out = append(out, s.chunk(p, i == len(pieces)-1)...)
			}
			return out
		}
		whole := run(body)
		if split := run(body[:at], body[at:]); !bytes.Equal(whole, split) {
			t.Fatalf("the cut at %d changed the output:\n%s\nvs\n%s", at, split, whole)
		}
		ended := false
		for _, ev := range bytes.Split(bytes.TrimSuffix(whole, []byte("\n\n")), []byte("\n\n")) {
			if len(ev) == 0 {
				continue
			}
			if ended {
				t.Fatalf("an event after the end: %s", ev)
			}
			name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
			if !ok || !bytes.HasPrefix(name, []byte("event: ")) || bytes.IndexByte(data, '\n') >= 0 || !json.Valid(data) {
				t.Fatalf("malformed event %q", ev)
			}
			ended = bytes.Equal(name, []byte("event: error")) || bytes.Equal(name, []byte("event: message_stop"))
		}
	})
}

// FuzzRequest feeds arbitrary bodies to the request translation: it must
// not panic, and what it accepts becomes valid JSON.
func FuzzRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/request/*.anthropic.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr := (&fromAnthropic{}).ForAttempt(newSettings()).(*fromAnthropic)
		out, _, err := tr.TranslateRequest("/v1/messages", nil, body, func(m string) string { return m })
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON out of %s: %s", body, out)
		}
	})
}

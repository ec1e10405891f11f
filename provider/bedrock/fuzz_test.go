package bedrock

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEventStream feeds arbitrary bytes, split in two, to the event stream
// translation: it never panics, and what it emits is whole SSE events, each
// "event: <type>\ndata: <one line>\n\n", ending with at most one error.
func FuzzEventStream(f *testing.F) {
	good := append(chunkFrame(f, `{"type":"message_start","message":{"usage":{"input_tokens":1}}}`), chunkFrame(f, `{"type":"message_stop"}`)...)
	f.Add(good, 7)
	f.Add(good[:20], 3)
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 0)
	f.Add(frame(f, map[string]string{":message-type": "exception", ":exception-type": "x"}, []byte(`{"message":"m"}`)), 1)
	f.Fuzz(func(t *testing.T, stream []byte, split int) {
		if split < 0 || split > len(stream) {
			split = len(stream) / 2
		}
		s := newEventStream()
		s.warn = func(string, string) {}
		out := append(s.chunk(stream[:split], false), s.chunk(stream[split:], true)...)
		errors := 0
		for len(out) > 0 {
			end := bytes.Index(out, []byte("\n\n"))
			if end < 0 {
				t.Fatalf("unterminated event in %q", out)
			}
			ev := out[:end]
			out = out[end+2:]
			head, data, ok := bytes.Cut(ev, []byte("\ndata: "))
			if !ok || !bytes.HasPrefix(head, []byte("event: ")) || bytes.IndexByte(data, '\n') >= 0 {
				t.Fatalf("malformed event %q", ev)
			}
			if string(head) == "event: error" {
				errors++
				if !json.Valid(data) || len(out) > 0 {
					t.Fatalf("error event %q, then %q", data, out)
				}
			}
		}
		if errors > 1 {
			t.Fatalf("%d error events", errors)
		}
	})
}

// FuzzTranslateBody checks the body rewrite on arbitrary JSON objects: the
// output is JSON with anthropic_version first, and every member but model,
// stream, anthropic_version (and an anthropic_beta the translation adds)
// keeps its bytes.
func FuzzTranslateBody(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream":true,"max_tokens":1}`), "a,b")
	f.Add([]byte(`{"x":1,"model":"m"}`), "")
	f.Add([]byte(`{"model":"m"}`), "z")
	f.Add([]byte(`{"anthropic_beta":[],"model":"m","anthropic_version":"v","stream":false}`), "q")
	f.Fuzz(func(t *testing.T, body []byte, betas string) {
		var in map[string]json.RawMessage
		if json.Unmarshal(body, &in) != nil || !json.Valid(body) {
			return
		}
		var model string
		if json.Unmarshal(in["model"], &model) != nil || model == "" {
			return
		}
		out, _, err := translateBody(body, identity, betas, false)
		if err != nil {
			return // the scanner is stricter about duplicates and literals than encoding/json
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s -> %s: %v", body, out, err)
		}
		if !bytes.HasPrefix(out, []byte(`{"anthropic_version":"bedrock-2023-05-31"`)) {
			t.Fatalf("%s -> %s", body, out)
		}
		for k, v := range in {
			switch k {
			case "model", "stream", "anthropic_version":
				if k != "anthropic_version" {
					if _, ok := got[k]; ok {
						t.Fatalf("%s kept in %s", k, out)
					}
				}
			case "anthropic_beta":
			default:
				if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
					t.Fatalf("%s changed: %s -> %s", k, v, got[k])
				}
			}
		}
	})
}

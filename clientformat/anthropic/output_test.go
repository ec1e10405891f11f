package anthropic

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// decodedOutputChars is the reference count of OutputChars for one
// content_block_delta's data: a generic decode, then the characters of the
// delta's text, thinking and partial_json.
func decodedOutputChars(t *testing.T, data string) int64 {
	t.Helper()
	var ev struct {
		Delta map[string]any `json:"delta"`
	}
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		t.Fatalf("reference decode of %s: %v", data, err)
	}
	var n int64
	for _, k := range []string{"text", "thinking", "partial_json"} {
		if s, ok := ev.Delta[k].(string); ok {
			n += int64(utf8.RuneCountInString(s))
		}
	}
	return n
}

// TestOutputChars counts the output of content_block_delta events of every
// shape against a generic decode, with the stream split at every offset and
// fed byte by byte.
func TestOutputChars(t *testing.T) {
	for _, tt := range []struct {
		name   string
		event  string // "" for an unnamed event
		data   string
		prefix string // raw SSE before the data line, instead of an event line
	}{
		{name: "text", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, world"}}`},
		{name: "canonical start, then more members", event: "content_block_delta", data: `{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"a\"b","extra":{"text":"no"},"list":[{"text":"no"}],"thinking":"yes"},"text":"no"}`},
		{name: "canonical but for spaces", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta", "text":"spaced"}}`},
		{name: "thinking", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}`},
		{name: "tool input", event: "content_block_delta", data: `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"/tmp/a b\", \"n\": 3"}}`},
		{name: "escapes count one each", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb\t\"c\"\\d\/e\u00e9\u4e2d"}}`},
		{name: "surrogate pair counts one", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x\ud83d\ude00y\uD83D\uDE00"}}`},
		{name: "raw UTF-8 counts characters", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"déjà vu 中文 😀"}}`},
		{name: "backslashes before the closing quote", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ends in \\\\"}}`},
		{name: "signature is not output", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}`},
		{name: "citations are not output", event: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"quoted","text":"nested"}}}`},
		{name: "text outside the delta is not output", event: "content_block_delta", data: `{"text":"top","type":"content_block_delta","meta":{"delta":{"text":"deep"}},"delta":{"type":"text_delta","x":["text","a"],"text":"yes"}}`},
		{name: "look-alike keys", event: "content_block_delta", data: `{"type":"content_block_delta","delta":{"a\"text":"no","text_delta":"no","partial_json2":"no","text" : "yes"}}`},
		{name: "text in a string value is not a key", event: "content_block_delta", data: `{"type":"content_block_delta","delta":{"type":"\"text\":\"","text":"ok"}}`},
		{name: "unnamed, type first (sniffed)", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"from Bedrock"}}`},
		{name: "unnamed, type last (decoded at the end)", data: `{"index":0,"delta":{"type":"text_delta","text":"type comes last"},"type":"content_block_delta"}`},
		{name: "unnamed, long text before the sniff decides", data: `{"type":` + string(bytes.Repeat([]byte(" "), 300)) + `"content_block_delta","delta":{"text":"padded"}}`},
		{name: "two data lines", prefix: "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":\n", data: `{"type":"text_delta","text":"joined"}}`},
		{name: "event line after the data", prefix: "data: {\"delta\":{\"text\":\"named late\"}}\n", event: "content_block_delta", data: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ev string
			switch {
			case tt.data == "":
				ev = tt.prefix + "event: " + tt.event + "\n\n"
			case tt.prefix != "":
				ev = tt.prefix + "data: " + tt.data + "\n\n"
			default:
				ev = string(sse(tt.event, tt.data))
			}
			// Twice, so that nothing of one event's count leaks into the next.
			in := append(sse("message_start", testStart), ev...)
			in = append(in, ev...)
			in = append(in, sse("ping", `{"type":"ping"}`)...)
			data := tt.data
			switch tt.name {
			case "two data lines":
				data = `{"type":"content_block_delta","delta":` + "\n" + tt.data
			case "event line after the data":
				data = `{"delta":{"text":"named late"}}`
			}
			want := 2 * decodedOutputChars(t, data)
			if tt.name != "signature is not output" && tt.name != "citations are not output" && want == 0 {
				t.Fatal("the case counts nothing")
			}
			for i := 0; i <= len(in); i++ {
				r := parseChunks(bytes.Clone(in[:i]), bytes.Clone(in[i:]))
				if r.OutputChars != want || r.Malformed != 0 {
					t.Fatalf("split at %d: %d characters (%d malformed); want %d", i, r.OutputChars, r.Malformed, want)
				}
			}
			if r := parseSizes(in, func() int { return 1 }); r.OutputChars != want {
				t.Fatalf("byte by byte: %d characters; want %d", r.OutputChars, want)
			}
		})
	}
}

// TestBilledUsage: without a message_delta the output is the estimate from
// the characters seen, unless message_start said more; with one it is the
// provider's count.
func TestBilledUsage(t *testing.T) {
	text := func(s string) []byte {
		b, _ := json.Marshal(s)
		return sse("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+string(b)+`}}`)
	}
	cut := append(sse("message_start", testStart), text("0123456789")...) // 10 characters: 3 tokens
	for _, tt := range []struct {
		name      string
		in        []byte
		output    int64
		estimated bool
	}{
		{"cut: estimate above message_start's 1", cut, 3, true},
		{"one character rounds up", append(sse("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":3}}}`), text("é")...), 1, true},
		{"message_start said more", append(sse("message_start", `{"type":"message_start","message":{"usage":{"output_tokens":9}}}`), text("0123456789")...), 9, false},
		{"message_delta reports fewer than the estimate", append(bytes.Clone(cut), sse("message_delta", `{"type":"message_delta","usage":{"output_tokens":2}}`)...), 2, false},
		{"message_delta without output_tokens", append(bytes.Clone(cut), sse("message_delta", `{"type":"message_delta","usage":{"input_tokens":10}}`)...), 3, true},
		{"nothing seen", nil, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p StreamParser
			p.Write(tt.in)
			u, est := p.BilledUsage()
			if u.OutputTokens != tt.output || est != tt.estimated {
				t.Fatalf("output %d estimated %v; want %d %v", u.OutputTokens, est, tt.output, tt.estimated)
			}
			want := p.Usage()
			want.OutputTokens = tt.output
			if u != want {
				t.Fatalf("usage %+v; want %+v", u, want)
			}
		})
	}
	for chars, tokens := range map[int64]int64{0: 0, 1: 1, 4: 1, 5: 2, 8: 2, 4001: 1001} {
		if got := EstimateOutputTokens(chars); got != tokens {
			t.Errorf("EstimateOutputTokens(%d) = %d; want %d", chars, got, tokens)
		}
	}
}

// TestLeadBytes compares the word-at-a-time count with utf8.RuneCount on
// valid UTF-8 of every length up to a few words.
func TestLeadBytes(t *testing.T) {
	s := []byte("aé中😀bcdefghé中😀ijk\x7f\u07ff\uffff")
	for i := 0; i <= len(s); i++ {
		for j := i; j <= len(s); j++ {
			b := s[i:j]
			if !utf8.Valid(b) {
				continue
			}
			if got, want := leadBytes(b), int64(utf8.RuneCount(b)); got != want {
				t.Fatalf("leadBytes(%q) = %d; want %d", b, got, want)
			}
		}
	}
}

// TestCanonicalStart checks that the shortcut over Anthropic's own envelope
// leaves the counter exactly where the general path does.
func TestCanonicalStart(t *testing.T) {
	for _, prefix := range []string{
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`,
		`{"type":"content_block_delta","index":137,"delta":{"type":"thinking_delta","thinking":"`,
		`{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"`,
	} {
		var fast, slow deltaCounter
		fast.feed([]byte(prefix))
		if fast.st != dcCountStr {
			t.Fatalf("%s: the shortcut was not taken", prefix)
		}
		for i := range len(prefix) {
			slow.feed([]byte{prefix[i]})
		}
		fast.fed, fast.key, fast.keyLen = slow.fed, slow.key, slow.keyLen
		if fast != slow {
			t.Errorf("%s:\nshortcut %+v\ngeneral  %+v", prefix, fast, slow)
		}
	}
}

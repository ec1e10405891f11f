package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// result is everything a StreamParser reports, for comparisons.
type result struct {
	Usage      pricing.Usage `json:"usage"`
	Model      string        `json:"model"`
	StopReason string        `json:"stop_reason"`
	Started    bool          `json:"started"`
	Done       bool          `json:"done"`
	Err        *errResult    `json:"error"`
	Malformed  int           `json:"malformed"`
	// OutputChars and OutputReported feed the output estimate of a cut
	// stream. The fixtures' counts come from a generic decode of each
	// content_block_delta (Python's json module and len), not from the parser.
	OutputChars    int64 `json:"output_chars"`
	OutputReported bool  `json:"output_reported"`
}

type errResult struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func resultOf(p *StreamParser) result {
	r := result{
		Usage:      p.Usage(),
		Model:      p.Model(),
		StopReason: p.StopReason(),
		Started:    p.Started(),
		Done:       p.Done(),
		Malformed:  p.Malformed(),

		OutputChars:    p.OutputChars(),
		OutputReported: p.OutputReported(),
	}
	if typ, msg, ok := p.Err(); ok {
		r.Err = &errResult{Type: typ, Message: msg}
	}
	return r
}

// parseChunks feeds chunks to a new parser.
func parseChunks(chunks ...[]byte) result {
	var p StreamParser
	for _, c := range chunks {
		p.Write(c)
	}
	return resultOf(&p)
}

// parseSizes feeds b in chunks whose sizes come from next.
func parseSizes(b []byte, next func() int) result {
	var p StreamParser
	for len(b) > 0 {
		n := min(next(), len(b))
		// A fresh copy per chunk, so that the parser cannot depend on bytes
		// it was given earlier.
		p.Write(bytes.Clone(b[:n]))
		b = b[n:]
	}
	return resultOf(&p)
}

func readWant(t *testing.T, path string) result {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var want result
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return want
}

func sseFixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.sse")
	if err != nil || len(files) == 0 {
		t.Fatalf("no SSE fixtures: %v", err)
	}
	return files
}

// TestStreamParserGolden checks every SSE fixture against its .want.json.
func TestStreamParserGolden(t *testing.T) {
	for _, file := range sseFixtures(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".sse")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := readWant(t, strings.TrimSuffix(file, ".sse")+".want.json")
			if diff := cmp.Diff(want, parseChunks(in)); diff != "" {
				t.Errorf("one chunk (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStreamParserChunking feeds every SSE fixture split at every byte offset,
// byte by byte, and in seeded random chunks of 1 to 17 bytes (Envoy AI Gateway
// #2162 lost usage on an event split across chunks).
func TestStreamParserChunking(t *testing.T) {
	for _, file := range sseFixtures(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := parseChunks(in)
			for i := 0; i <= len(in); i++ {
				if got := parseChunks(bytes.Clone(in[:i]), bytes.Clone(in[i:])); got != want && !cmp.Equal(got, want) {
					t.Fatalf("split at %d of %d (-want +got):\n%s", i, len(in), cmp.Diff(want, got))
				}
			}
			if got := parseSizes(in, func() int { return 1 }); !cmp.Equal(got, want) {
				t.Fatalf("byte by byte (-want +got):\n%s", cmp.Diff(want, got))
			}
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 0x7011))
				if got := parseSizes(in, func() int { return 1 + rng.IntN(17) }); !cmp.Equal(got, want) {
					t.Fatalf("random chunks, seed %d (-want +got):\n%s", seed, cmp.Diff(want, got))
				}
			}
		})
	}
}

// TestStreamParserLineEndings feeds every SSE fixture with its line endings
// rewritten to "\n", "\r\n" and "\r".
func TestStreamParserLineEndings(t *testing.T) {
	for _, file := range sseFixtures(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := parseChunks(in)
			lf := bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n"))
			for _, eol := range []string{"\n", "\r\n", "\r"} {
				b := bytes.ReplaceAll(lf, []byte("\n"), []byte(eol))
				if got := parseChunks(b); !cmp.Equal(got, want) {
					t.Errorf("%q (-want +got):\n%s", eol, cmp.Diff(want, got))
				}
				// A "\r\n" split between chunks is one line end.
				if got := parseSizes(b, func() int { return 1 }); !cmp.Equal(got, want) {
					t.Errorf("%q byte by byte (-want +got):\n%s", eol, cmp.Diff(want, got))
				}
			}
		})
	}
}

// TestParseMessageGolden checks every non-streaming fixture.
func TestParseMessageGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.message.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no JSON fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".message.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := readWant(t, strings.TrimSuffix(file, ".json")+".want.json")
			u, model, err := ParseMessage(body)
			got := result{Usage: u, Model: model}
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				got.Err = &errResult{Type: apiErr.Type, Message: apiErr.Message}
			} else if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStreamMatchesMessage checks that a stream and the non-streaming
// response of the same request give the same usage.
func TestStreamMatchesMessage(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.message.json")
	n := 0
	for _, file := range files {
		sse := strings.TrimSuffix(file, ".message.json") + ".sse"
		in, err := os.ReadFile(sse)
		if err != nil {
			continue
		}
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n++
		u, model, err := ParseMessage(body)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		s := parseChunks(in)
		if s.Usage != u || s.Model != model {
			t.Errorf("%s: stream %+v %q, message %+v %q", file, s.Usage, s.Model, u, model)
		}
	}
	if n < 5 {
		t.Fatalf("only %d fixtures exist in both forms", n)
	}
}

// TestLongContextFixture pins that the long-context fixture is above the
// 200K-token tier boundary, counting cached input.
func TestLongContextFixture(t *testing.T) {
	in, err := os.ReadFile("testdata/long_context.sse")
	if err != nil {
		t.Fatal(err)
	}
	u := parseChunks(in).Usage
	if got := u.TotalInputTokens(); got != 207200 {
		t.Fatalf("total input %d, want 207200 (above 200K only with cached tokens counted)", got)
	}
	if u.InputTokens >= 200000 {
		t.Fatalf("the fixture should cross 200K only through cached tokens")
	}
}

func TestSplitCacheWrites(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		total, split5m, split1 int64
		haveSplit              bool
		w5m, w1h               int64
	}{
		{"no split object: all 5m", 1200, 0, 0, false, 1200, 0},
		{"consistent split", 3048, 2048, 1000, true, 2048, 1000},
		{"larger total, mixed split: difference to 5m", 4000, 2048, 1000, true, 3000, 1000},
		{"larger total, 1h-only split: difference to 1h", 6000, 0, 5000, true, 0, 6000},
		{"larger total, zero split: difference to 5m", 4511, 0, 0, true, 4511, 0},
		{"larger total, 5m-only split", 900, 500, 0, true, 900, 0},
		{"smaller total keeps 1h first", 1500, 2048, 1000, true, 500, 1000},
		{"smaller total than 1h alone", 600, 2048, 1000, true, 0, 600},
		{"zero total", 0, 2048, 1000, true, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w5m, w1h := splitCacheWrites(tt.total, tt.split5m, tt.split1, tt.haveSplit)
			if w5m != tt.w5m || w1h != tt.w1h {
				t.Fatalf("got %d/%d, want %d/%d", w5m, w1h, tt.w5m, tt.w1h)
			}
			if w5m+w1h != tt.total {
				t.Fatalf("split %d+%d does not sum to total %d", w5m, w1h, tt.total)
			}
		})
	}
}

// sse builds a stream from event/data pairs.
func sse(events ...string) []byte {
	var b strings.Builder
	for i := 0; i+1 < len(events); i += 2 {
		if events[i] != "" {
			fmt.Fprintf(&b, "event: %s\n", events[i])
		}
		fmt.Fprintf(&b, "data: %s\n\n", events[i+1])
	}
	return []byte(b.String())
}

const testStart = `{"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_creation_input_tokens":300,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":1}}}`

// TestStreamParserRules covers the event and usage rules one at a time.
func TestStreamParserRules(t *testing.T) {
	usage := func(in, cr, w5, w1, out int64) pricing.Usage {
		return pricing.Usage{InputTokens: in, CacheReadTokens: cr, CacheWrite5mTokens: w5, CacheWrite1hTokens: w1, OutputTokens: out}
	}
	for _, tt := range []struct {
		name string
		in   string
		want result
	}{{
		name: "delta total without split, mixed split: difference to 5m",
		in: string(sse("message_start", testStart,
			"message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"cache_creation_input_tokens":450,"output_tokens":7}}`)),
		want: result{Usage: usage(10, 0, 250, 200, 7), Model: "claude-sonnet-4-5", StopReason: "end_turn", Started: true, OutputReported: true},
	}, {
		name: "delta carrying a new split without total sets the total",
		in: string(sse("message_start", testStart,
			"message_delta", `{"type":"message_delta","usage":{"cache_creation":{"ephemeral_1h_input_tokens":700}}}`)),
		want: result{Usage: usage(10, 0, 100, 700, 1), Model: "claude-sonnet-4-5", Started: true},
	}, {
		name: "cache_creation null is absent",
		in: string(sse("message_start", `{"type":"message_start","message":{"usage":{"cache_creation_input_tokens":300,"cache_creation":null}}}`,
			"message_stop", `{"type":"message_stop"}`)),
		want: result{Usage: usage(0, 0, 300, 0, 0), Started: true, Done: true},
	}, {
		name: "stop_reason null keeps the previous one",
		in: string(sse("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use"}}`,
			"message_delta", `{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}`)),
		want: result{Usage: usage(0, 0, 0, 0, 3), StopReason: "tool_use", OutputReported: true},
	}, {
		name: "unknown stop reason and escaped model",
		in: string(sse("message_start", `{"type":"message_start","message":{"model":"claude\u002dopus-5-5"}}`,
			"message_delta", `{"type":"message_delta","delta":{"stop_reason":"something_new"}}`)),
		want: result{Model: "claude-opus-5-5", StopReason: "something_new", Started: true},
	}, {
		name: "escaped keys",
		in:   string(sse("message_delta", `{"type":"message_delta","\u0075sage":{"output_\u0074okens":4}}`)),
		want: result{Usage: usage(0, 0, 0, 0, 4), OutputReported: true},
	}, {
		name: "event line wins over the JSON type",
		in: string(sse("ping", `{"type":"message_delta","usage":{"output_tokens":99}}`,
			"message_delta", `{"type":"ping","usage":{"output_tokens":5}}`)),
		want: result{Usage: usage(0, 0, 0, 0, 5), OutputReported: true},
	}, {
		name: "event line after the data lines",
		in:   "data: {\"usage\":{\"output_tokens\":8}}\nevent: message_delta\n\n",
		want: result{Usage: usage(0, 0, 0, 0, 8), OutputReported: true},
	}, {
		name: "event renamed after its data was skipped is malformed",
		in:   "event: ping\ndata: {\"usage\":{\"output_tokens\":8}}\nevent: message_delta\n\n",
		want: result{Malformed: 1},
	}, {
		name: "unnamed event sniffed as skipped, then named, is malformed",
		in:   "data: {\"type\":\"content_block_delta\",\"usage\":{\"output_tokens\":8}}\nevent: message_delta\n\n",
		want: result{Malformed: 1},
	}, {
		name: "empty event line means unnamed",
		in:   "event:\ndata: {\"type\":\"message_stop\"}\n\n",
		want: result{Done: true},
	}, {
		name: "event with no data is not dispatched",
		in:   "event: message_stop\n\nevent: message_start\nid: 3\n\n",
		want: result{},
	}, {
		name: "field name without colon: data with an empty value",
		in:   "event: message_delta\ndata\n\n",
		want: result{Malformed: 1},
	}, {
		name: "two spaces after the colon keep one in the value",
		in:   "event:  message_stop\ndata: {}\n\n",
		want: result{},
	}, {
		name: "unterminated last event is not dispatched",
		in:   string(sse("message_delta", `{"usage":{"output_tokens":3}}`)) + "event: message_delta\ndata: {\"usage\":{\"output_tokens\":4}}\n",
		want: result{Usage: usage(0, 0, 0, 0, 3), OutputReported: true},
	}, {
		name: "first decodable error wins; a malformed error event still counts",
		in: string(sse("error", `{"type":"error","error":{"type":"overloaded_error"`,
			"error", `{"type":"error","error":{"type":"api_error","message":"Internal"}}`,
			"error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)),
		want: result{Err: &errResult{Type: "api_error", Message: "Internal"}, Malformed: 1},
	}, {
		name: "malformed error event alone",
		in:   string(sse("error", `nope`)),
		want: result{Err: &errResult{}, Malformed: 1},
	}, {
		name: "malformed message_start still starts",
		in:   string(sse("message_start", `{"type":"message_start","message":{"model":"m","usage":{"input_tokens":"12"}}}`)),
		want: result{Started: true, Malformed: 1},
	}, {
		name: "usage counts: null absent, overflow and exponent malformed",
		in: string(sse("message_delta", `{"usage":{"input_tokens":5,"output_tokens":6}}`,
			"message_delta", `{"usage":{"input_tokens":null,"output_tokens":7}}`,
			"message_delta", `{"usage":{"output_tokens":9223372036854775808}}`,
			"message_delta", `{"usage":{"output_tokens":1e3}}`,
			"message_delta", `{"usage":{"output_tokens":012}}`,
			"message_delta", `{"usage":{"output_tokens":9223372036854775807}}`)),
		want: result{Usage: usage(5, 0, 0, 0, 9223372036854775807), Malformed: 3, OutputReported: true},
	}, {
		name: "trailing garbage after the JSON is malformed",
		in:   string(sse("message_delta", `{"usage":{"output_tokens":5}} x`)),
		want: result{Malformed: 1},
	}, {
		name: "unnamed: an object without type is ignored, other JSON is malformed",
		in:   string(sse("", `{"usage":{"output_tokens":5}}`, "", `[1,2]`)),
		want: result{Malformed: 1},
	}, {
		name: "unnamed type with an escape is read from the whole event",
		in:   string(sse("", `{"type":"message_\u0073top"}`)),
		want: result{Done: true},
	}, {
		name: "comments and unknown fields between data lines",
		in:   "event: message_delta\ndata: {\"usage\":\n: comment\nid: 7\ndata: {\"output_tokens\":2}}\n\n",
		want: result{Usage: usage(0, 0, 0, 0, 2), OutputReported: true},
	}, {
		name: "reasoning_tokens alias and server tool counts",
		in: string(sse("message_delta", `{"usage":{"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"server_tool_use":{"web_search_requests":1}}}`,
			"message_delta", `{"usage":{"server_tool_use":{"web_fetch_requests":2}}}`)),
		want: result{Usage: pricing.Usage{OutputTokens: 50, ReasoningTokens: 20, WebSearchRequests: 1, WebFetchRequests: 2}, OutputReported: true},
	}, {
		name: "a second message_start overwrites what it carries",
		in: string(sse("message_start", testStart,
			"message_start", `{"type":"message_start","message":{"model":"claude-haiku-4-5","usage":{"input_tokens":11}}}`)),
		want: result{Usage: usage(11, 0, 100, 200, 1), Model: "claude-haiku-4-5", Started: true},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got := parseChunks(in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if split := parseSizes(in, func() int { return 1 }); !cmp.Equal(split, got) {
				t.Errorf("byte by byte differs (-one chunk +split):\n%s", cmp.Diff(got, split))
			}
		})
	}
}

func TestParseMessageErrors(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       error
		model      string
	}{
		{"empty", ``, ErrMalformed, ""},
		{"not an object", `[{"usage":{}}]`, ErrMalformed, ""},
		{"truncated", `{"model":"m","usage":{"input_tokens":3`, ErrMalformed, ""},
		{"negative count", `{"usage":{"input_tokens":-3}}`, ErrMalformed, ""},
		{"string count", `{"usage":{"input_tokens":"3"}}`, ErrMalformed, ""},
		{"trailing data", `{"usage":{}} {}`, ErrMalformed, ""},
		{"deep nesting", `{"content":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `,"usage":{}}`, ErrMalformed, ""},
		{"no usage", `{"type":"message","model":"claude-x"}`, ErrNoUsage, "claude-x"},
		{"null usage", `{"model":"claude-x","usage":null}`, ErrNoUsage, "claude-x"},
		{"count_tokens response", `{"input_tokens":2095}`, ErrNoUsage, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, model, err := ParseMessage([]byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if model != tt.model || u != (pricing.Usage{}) {
				t.Fatalf("got %+v %q with the error", u, model)
			}
		})
	}
	_, _, err := ParseMessage([]byte(`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Type != "rate_limit_error" || apiErr.Message != "slow down" {
		t.Fatalf("error body: %v", err)
	}
}

// streamWithDeltas is a realistic stream with n content_block_delta events.
func streamWithDeltas(n int) []byte {
	var b bytes.Buffer
	b.WriteString("event: message_start\ndata: " + testStart + "\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := range n {
		if i%10 == 0 {
			b.WriteString("event: ping\ndata: {\"type\": \"ping\"}\n\n")
		}
		fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token %d of the answer, with some words \"}}\n\n", i)
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	fmt.Fprintf(&b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":0,\"output_tokens\":%d}}\n\n", n)
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return b.Bytes()
}

// chunk cuts b into pieces of size n.
func chunk(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

// TestStreamParserAllocsIndependentOfLength proves that allocations per
// stream do not grow with the number of content_block_delta chunks.
func TestStreamParserAllocsIndependentOfLength(t *testing.T) {
	allocs := func(deltas int) float64 {
		chunks := chunk(streamWithDeltas(deltas), 61)
		var r result
		a := testing.AllocsPerRun(20, func() {
			var p StreamParser
			for _, c := range chunks {
				p.Write(c)
			}
			r = resultOf(&p)
		})
		if r.Usage.OutputTokens != int64(deltas) || !r.Done || r.Malformed != 0 {
			t.Fatalf("%d deltas: parsed %+v", deltas, r)
		}
		return a
	}
	short, long := allocs(50), allocs(5000)
	if short != long {
		t.Fatalf("allocations per stream: %v with 50 deltas, %v with 5000", short, long)
	}
	// The event buffer and the model string.
	if long > 2 {
		t.Fatalf("%v allocations per stream, want at most 2", long)
	}
}

// TestStreamParserSkippedChunksDoNotAllocate feeds chunks of events that are
// skipped (deltas, pings) and message_delta events to a started parser.
func TestStreamParserSkippedChunksDoNotAllocate(t *testing.T) {
	var p StreamParser
	p.Write(sse("message_start", testStart))
	deltas := chunk(streamWithDeltas(100)[len(sse("message_start", testStart)):], 37)
	if a := testing.AllocsPerRun(50, func() {
		for _, c := range deltas {
			p.Write(c)
		}
	}); a != 0 {
		t.Fatalf("%v allocations for %d chunks of a started stream", a, len(deltas))
	}
}

// TestStreamParserMemoryIndependentOfLength feeds one 8 MiB text delta, named
// and unnamed, in 16 KiB chunks: nothing of it is kept.
func TestStreamParserMemoryIndependentOfLength(t *testing.T) {
	text := strings.Repeat("x", 8<<20)
	for _, name := range []string{"content_block_delta", ""} {
		delta := `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"` + text + `"}}`
		stream := sse("message_start", testStart, name, delta,
			"message_delta", `{"type":"message_delta","usage":{"output_tokens":2000000}}`)
		chunks := chunk(stream, 16<<10)
		var p StreamParser
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, c := range chunks {
			p.Write(c)
		}
		runtime.ReadMemStats(&after)
		if r := resultOf(&p); r.Usage.OutputTokens != 2000000 || r.Malformed != 0 {
			t.Fatalf("event %q: parsed %+v", name, r)
		}
		if c := cap(p.buf); c > initialEventBytes {
			t.Errorf("event %q: buffer capacity %d after an 8 MiB delta", name, c)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("event %q: %d bytes allocated parsing an 8 MiB stream", name, n)
		}
	}
}

// TestStreamParserEventCap checks that a kept event above maxEventBytes is
// malformed and its buffer is released.
func TestStreamParserEventCap(t *testing.T) {
	pad := strings.Repeat(" ", maxEventBytes)
	var p StreamParser
	p.Write(sse("message_delta", `{"usage":{"output_tokens":1}}`))
	p.Write(sse("message_delta", `{"usage":{"output_tokens":2},`+pad+`"x":1}`))
	p.Write(sse("", `{"usage":{"output_tokens":3},`+pad+`"type":"message_delta"}`))
	if r := resultOf(&p); r.Usage.OutputTokens != 1 || r.Malformed != 2 {
		t.Fatalf("got %+v", r)
	}
	if cap(p.buf) > keepEventBytes {
		t.Fatalf("buffer of %d bytes kept after the event", cap(p.buf))
	}
	// Just below the cap is fine.
	body := `{"usage":{"output_tokens":4}}`
	p.Write(sse("message_delta", body[:len(body)-1]+strings.Repeat(" ", maxEventBytes-len(body))+"}"))
	if r := resultOf(&p); r.Usage.OutputTokens != 4 || r.Malformed != 2 {
		t.Fatalf("event of exactly the cap: got %+v", r)
	}
}

func TestSniffType(t *testing.T) {
	for _, tt := range []struct {
		in   string
		kind eventKind
		ok   bool
	}{
		{``, kindNone, false},
		{` {`, kindNone, false},
		{`{"ty`, kindNone, false},
		{`{"type" : "message_st`, kindNone, false},
		{`{"type" : "message_start"`, kindMessageStart, true},
		{"{\n\"type\":\"ping\"}", kindOther, true},
		{`{"index":0,"type":"content_block_delta"}`, kindNone, true},
		{`{"type":"mess\u0061ge_stop"}`, kindNone, true},
		{`{"type":5}`, kindNone, true},
		{`[`, kindNone, true},
		{strings.Repeat(" ", sniffBytes), kindNone, true},
	} {
		k, ok := sniffType([]byte(tt.in))
		if k != tt.kind || ok != tt.ok {
			t.Errorf("sniffType(%q) = %v, %v; want %v, %v", tt.in, k, ok, tt.kind, tt.ok)
		}
	}
}

// TestParseMessageEscapes reads escaped strings and skips long strings of
// escapes (scanned in linear time).
func TestParseMessageEscapes(t *testing.T) {
	text := strings.Repeat(`\n\"\u00e9`, 200000)
	body := `{"content":[{"type":"text","text":"` + text + `"}],"model":"claude-\"x\"\\\u00e9","usage":{"input_tokens":3,"output_tokens":4}}`
	u, model, err := ParseMessage([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if model != `claude-"x"\é` || u.InputTokens != 3 || u.OutputTokens != 4 {
		t.Fatalf("got %+v %q", u, model)
	}
	if _, _, err := ParseMessage([]byte(`{"model":"bad \x escape","usage":{}}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad escape: %v", err)
	}
	if _, _, err := ParseMessage([]byte(`{"model":"short \u12","usage":{}}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short \\u escape: %v", err)
	}
}

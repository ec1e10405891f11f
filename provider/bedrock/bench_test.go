package bedrock

import (
	"bytes"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/provider/anthropic"
	"github.com/tollgate-dev/tollgate/translate"
)

func claudeCodeBody(b *testing.B) []byte {
	b.Helper()
	body, err := bench.ClaudeCodeBody(100<<10, "claude-opus-4-8", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkRequestBody100KB is the Bedrock rewrite of a 100 KB Claude
// Code-shaped body: model to the path, stream out, anthropic_version and
// the betas in.
func BenchmarkRequestBody100KB(b *testing.B) {
	body := claudeCodeBody(b)
	h := header("anthropic-beta", "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14")
	profile := func(string) string { return "us.anthropic.claude-opus-4-8-v1:0" }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := (fromAnthropic{}).TranslateRequest("/v1/messages?beta=true", h, body, profile); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdaptedRequestBody100KB is the whole rewrite the adapter makes
// of the same body for Bedrock: the compatibility table (with Claude Code's
// betas) and then the translation.
func BenchmarkAdaptedRequestBody100KB(b *testing.B) {
	body := claudeCodeBody(b)
	s := newSettings()
	profile := func(string) string { return "us.anthropic.claude-opus-4-8-v1:0" }
	note := func(string, string, string) {}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		adapted, betas, err := s.AdaptRequest(body, claudeCodeBetas, note)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := (fromAnthropic{}).TranslateRequest("/v1/messages?beta=true", header("anthropic-beta", betas), adapted, profile); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnthropicRequestBody100KB is the same body to an Anthropic
// provider with a model mapping (the passthrough's one edit), for comparison.
func BenchmarkAnthropicRequestBody100KB(b *testing.B) {
	body := claudeCodeBody(b)
	tr, _ := anthropic.Type{}.Translator(translate.ClientAnthropic)
	mapped := func(string) string { return "claude-opus-4-8-20260101" }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tr.RequestBody(body, mapped); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventStreamToSSE translates one event stream frame per operation
// (the bench's 50-event Anthropic stream, framed as Bedrock frames it), so
// ns/op and allocs/op are per frame.
func BenchmarkEventStreamToSSE(b *testing.B) {
	events, err := bench.AnthropicSSE(50, "claude-opus-4-8", 1)
	if err != nil {
		b.Fatal(err)
	}
	var frames [][]byte
	for _, ev := range events {
		_, data, _ := bytes.Cut(ev, []byte("\ndata: "))
		data = bytes.TrimSpace(data)
		frames = append(frames, chunkFrame(b, string(data)))
	}
	s := newEventStream()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if out := s.chunk(frames[i%len(frames)], false); len(out) == 0 {
			b.Fatal("no event")
		}
		i++
	}
}

package bedrock

import (
	"bytes"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/translate"
)

// BenchmarkOpenAIClientPerFrame translates the bench's 50-event Anthropic
// stream, framed as Bedrock frames it, for an OpenAI client (Bedrock's frames
// to Anthropic events to chat.completion.chunk events) per operation, and
// reports the time and allocations per frame.
func BenchmarkOpenAIClientPerFrame(b *testing.B) {
	events, err := bench.AnthropicSSE(50, "claude-opus-4-8", 1)
	if err != nil {
		b.Fatal(err)
	}
	var frames [][]byte
	for _, ev := range events {
		_, data, _ := bytes.Cut(ev, []byte("\ndata: "))
		frames = append(frames, chunkFrame(b, string(bytes.TrimSpace(data))))
	}
	tr, _ := Type{}.Translator(translate.ClientOpenAI)
	hdr := func(name string) string {
		if name == "content-type" {
			return contentTypeEventStream
		}
		return ""
	}
	b.ReportAllocs()
	for b.Loop() {
		rt := tr.(translate.AttemptTranslator).ForAttempt(nil).(translate.ResponseTranslator)
		body := rt.TranslateResponse("/v1/chat/completions", 200, hdr, func(string, string) {}, func(string) {}, nil)
		var n int
		for i, f := range frames {
			n += len(body(f, i == len(frames)-1))
		}
		if n == 0 {
			b.Fatal("no chunk")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(frames)), "ns/frame")
}

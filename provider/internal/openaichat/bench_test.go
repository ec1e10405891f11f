package openaichat_test

import (
	"fmt"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/provider"
	"github.com/tollgate-dev/tollgate/provider/internal/openaichat"
	"github.com/tollgate-dev/tollgate/translate"
)

// chatBody100KB returns the bench's 100 KB Claude Code-shaped body (its
// generator's tools, system blocks and turns) as a Chat Completions request,
// translated by the openai provider type: what an OpenAI client with the
// same conversation sends.
func chatBody100KB(b *testing.B) []byte {
	b.Helper()
	body, err := bench.ClaudeCodeBody(100<<10, "claude-opus-4-8", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	typ, ok := provider.Lookup("openai")
	if !ok {
		b.Fatal("no openai provider type")
	}
	tr, _ := typ.Translator(translate.ClientAnthropic)
	tr = tr.(translate.AttemptTranslator).ForAttempt(typ.NewSettings())
	out, _, err := tr.(translate.RequestTranslator).TranslateRequest("/v1/messages", func(string) string { return "" }, body,
		func(m string) string { return m })
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkRequest100KB is the translation of a 100 KB Chat Completions
// request (the bench's Claude Code-shaped body in OpenAI's form) into a
// Messages request.
func BenchmarkRequest100KB(b *testing.B) {
	body := chatBody100KB(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := openaichat.Request(body, func(m string) string { return m }); err != nil {
			b.Fatal(err)
		}
	}
}

// streamEvents returns a Messages event stream of n text deltas of a few
// words each and two tool calls of three fragments each, with its
// message_delta and message_stop, one chunk per event, as Anthropic sends it.
func streamEvents(n int) [][]byte {
	var out [][]byte
	add := func(typ, data string) { out = append(out, []byte("event: "+typ+"\ndata: "+data+"\n\n")) }
	add("message_start", `{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":2051,"cache_read_input_tokens":1024,"output_tokens":1}}}`)
	add("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	for i := range n {
		add("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" streaming token %d, and some more"}}`, i))
	}
	add("content_block_stop", `{"type":"content_block_stop","index":0}`)
	for c := 1; c <= 2; c++ {
		add("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"toolu_0%d","name":"Read","input":{}}}`, c, c))
		for _, frag := range []string{`{\"file_`, `path\":\"/repo/`, `parser.go\"}`} {
			add("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":"%s"}}`, c, frag))
		}
		add("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, c))
	}
	add("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":503}}`)
	add("message_stop", `{"type":"message_stop"}`)
	return out
}

// BenchmarkStreamPerChunk translates a 50-delta Messages stream (plus two
// tool calls, 64 events in all, one per chunk) into chat.completion.chunk
// events per operation, and reports the time and allocations per chunk.
func BenchmarkStreamPerChunk(b *testing.B) {
	chunks := streamEvents(50)
	var total int
	for _, c := range chunks {
		total += len(c)
	}
	hdr := func(name string) string {
		if name == "content-type" {
			return "text/event-stream"
		}
		return ""
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		fn := openaichat.Response(openaichat.PathChat, "claude-sonnet-4-5", 200, hdr, func(string, string) {}, func(string) {})
		var n int
		for i, c := range chunks {
			n += len(fn(c, i == len(chunks)-1))
		}
		if n == 0 {
			b.Fatal("no stream")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(chunks)), "ns/chunk")
}

// BenchmarkCheck100KB is the policy role's check of the same body
// (openaichat.Check: decoded and validated, not encoded), which a request
// from an OpenAI client to a provider served through the Messages API pays
// before it is reserved, on top of the translation at the attempt.
func BenchmarkCheck100KB(b *testing.B) {
	body := chatBody100KB(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := openaichat.Check(body); err != nil {
			b.Fatal(err)
		}
	}
}

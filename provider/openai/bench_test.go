package openai

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
)

// BenchmarkRequest100KB is the translation of the bench's 100 KB Claude
// Code-shaped body (its generator's tools, system blocks and turns) into a
// Chat Completions request.
func BenchmarkRequest100KB(b *testing.B) {
	body, err := bench.ClaudeCodeBody(100<<10, "claude-opus-4-8", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	mapped := func(string) string { return "gpt-4.1" }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		tr := (&fromAnthropic{}).ForAttempt(newSettings()).(*fromAnthropic)
		if _, _, err := tr.TranslateRequest("/v1/messages?beta=true", nil, body, mapped); err != nil {
			b.Fatal(err)
		}
	}
}

// streamChunks returns a Chat Completions stream of n text deltas of a few
// words each and two tool calls of three fragments each, with its usage
// chunk and [DONE], one chunk per element, as OpenAI sends it.
func streamChunks(n int) [][]byte {
	const head = `data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1728933352,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_44709d6fcb","choices":[`
	var out [][]byte
	add := func(choice, usage string) {
		out = append(out, []byte(head+choice+`],"usage":`+usage+"}\n\n"))
	}
	add(`{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`, "null")
	for i := range n {
		add(fmt.Sprintf(`{"index":0,"delta":{"content":" streaming token %d, and some more"},"logprobs":null,"finish_reason":null}`, i), "null")
	}
	for c := range 2 {
		add(fmt.Sprintf(`{"index":0,"delta":{"tool_calls":[{"index":%d,"id":"call_%d","type":"function","function":{"name":"Read","arguments":""}}]},"logprobs":null,"finish_reason":null}`, c, c), "null")
		for _, frag := range []string{`{\"file_`, `path\":\"/repo/`, `parser.go\"}`} {
			add(fmt.Sprintf(`{"index":0,"delta":{"tool_calls":[{"index":%d,"function":{"arguments":"%s"}}]},"logprobs":null,"finish_reason":null}`, c, frag), "null")
		}
	}
	add(`{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}`, "null")
	out = append(out, []byte(head[:strings.Index(head, `"choices":[`)]+`"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":25,"total_tokens":1225,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":0}}}`+"\n\n"))
	out = append(out, []byte("data: [DONE]\n\n"))
	return out
}

// BenchmarkStreamPerChunk translates a 50-delta stream (plus two tool calls,
// 61 chunks in all) per operation and reports the time and allocations per
// chunk.
func BenchmarkStreamPerChunk(b *testing.B) {
	chunks := streamChunks(50)
	var total int
	for _, c := range chunks {
		total += len(c)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		s := newStream(&toolNames{}, "gpt-4o", nil)
		var n int
		for i, c := range chunks {
			n += len(s.chunk(c, i == len(chunks)-1))
		}
		if n == 0 || !s.done {
			b.Fatal("no stream")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(chunks)), "ns/chunk")
}

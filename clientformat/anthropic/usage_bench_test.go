package anthropic

import (
	"bytes"
	"os"
	"testing"
)

// benchStream is the design's reference response: a 50-event stream with
// usage (message_start, content_block_start, 4 pings, 40 text deltas,
// content_block_stop, message_delta, message_stop, plus one more ping).
func benchStream() []byte {
	b := streamWithDeltas(40)
	if n := bytes.Count(b, []byte("\n\n")); n != 49 {
		panic("bench stream has the wrong number of events")
	}
	return append(b, "event: ping\ndata: {\"type\": \"ping\"}\n\n"...)
}

// envoyChunks cuts a stream into one chunk per event, shifted by 17 bytes so
// that chunks are not aligned to events, as a proxy reading from a socket
// delivers them.
func envoyChunks(stream []byte) [][]byte {
	var cuts []int
	for i := 0; ; {
		n := bytes.Index(stream[i:], []byte("\n\n"))
		if n < 0 {
			break
		}
		i += n + 2
		cuts = append(cuts, min(i+17, len(stream)))
	}
	cuts[len(cuts)-1] = len(stream)
	var out [][]byte
	start := 0
	for _, c := range cuts {
		if c > start {
			out = append(out, stream[start:c])
			start = c
		}
	}
	return out
}

// BenchmarkStreamParserChunk measures one Write of a chunk of the reference
// stream, a new parser per stream, so the per-stream allocations are spread
// over the stream's chunks (see also allocs/stream).
func BenchmarkStreamParserChunk(b *testing.B) {
	stream := benchStream()
	chunks := envoyChunks(stream)
	if total := len(bytes.Join(chunks, nil)); total != len(stream) {
		b.Fatalf("chunks hold %d bytes, stream %d", total, len(stream))
	}
	b.SetBytes(int64(len(stream) / len(chunks)))
	b.ReportAllocs()
	var p StreamParser
	k := 0
	for b.Loop() {
		if k == len(chunks) {
			if p.Usage().OutputTokens != 40 {
				b.Fatalf("parsed %+v", p.Usage())
			}
			p, k = StreamParser{}, 0
		}
		p.Write(chunks[k])
		k++
	}
	b.ReportMetric(float64(len(chunks)), "chunks/stream")
}

// BenchmarkStreamParserStream measures a whole reference stream per op.
func BenchmarkStreamParserStream(b *testing.B) {
	chunks := envoyChunks(benchStream())
	b.ReportAllocs()
	for b.Loop() {
		var p StreamParser
		for _, c := range chunks {
			p.Write(c)
		}
		if !p.Done() {
			b.Fatal("not done")
		}
	}
}

// BenchmarkStreamParserSkippedChunk measures a chunk holding only a skipped
// content_block_delta event of a started stream: the common case.
func BenchmarkStreamParserSkippedChunk(b *testing.B) {
	var p StreamParser
	p.Write(sse("message_start", testStart))
	delta := sse("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"token 17 of the answer, with some words "}}`)
	b.SetBytes(int64(len(delta)))
	b.ReportAllocs()
	for b.Loop() {
		p.Write(delta)
	}
}

// BenchmarkParseMessage measures a non-streaming response.
func BenchmarkParseMessage(b *testing.B) {
	body, err := os.ReadFile("testdata/server_tools.message.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseMessage(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutputCount measures the output count of one content_block_delta
// event's data alone, the work a counted chunk adds to a skipped one.
func BenchmarkOutputCount(b *testing.B) {
	data := []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"token 17 of the answer, with some words "}}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var d deltaCounter
	for b.Loop() {
		d.reset()
		d.feed(data)
	}
	if d.chars != 40 {
		b.Fatalf("counted %d", d.chars)
	}
}

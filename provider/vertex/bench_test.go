package vertex

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/bench"
)

// BenchmarkRequestBody100KB is the Vertex AI rewrite of a 100 KB Claude
// Code-shaped body: model to the path, anthropic_version in.
func BenchmarkRequestBody100KB(b *testing.B) {
	body, err := bench.ClaudeCodeBody(100<<10, "claude-opus-4-8", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	id := func(string) string { return "claude-opus-4-8" }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := (fromAnthropic{}).TranslateRequest("/v1/messages?beta=true", noHeaders, body, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenHeader is what an attempt pays for its access token when
// the cache holds a usable one: the hot path, run from every core.
func BenchmarkTokenHeader(b *testing.B) {
	now := time.Now()
	src := &fakeSource{life: time.Hour}
	src.set(now)
	c := newTokenCache(src)
	if _, err := c.header(context.Background(), now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.header(context.Background(), now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

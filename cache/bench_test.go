package cache

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/bench"
)

// benchBody is the bench's 100 KB Claude Code request body.
func benchBody(b *testing.B) []byte {
	b.Helper()
	body, err := bench.ClaudeCodeBody(100<<10, "claude-opus-4-8", false, 92)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkKeyClaudeCode100KB is the cache key of the bench's 100 KB
// request: canonical JSON streamed into SHA-256, the default exclusion.
func BenchmarkKeyClaudeCode100KB(b *testing.B) {
	body := benchBody(b)
	in := KeyInput{Body: body, Exclude: []string{"metadata.user_id"}, Endpoint: "POST /v1/messages?beta=true",
		ClientFormat: "anthropic", Route: "demo", Model: "claude-opus-4-8", Scope: "team:demo",
		Headers: []Header{{"anthropic-version", "2023-06-01"}, {"anthropic-beta", "a,b,c"}}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewKey(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyerClaudeCode100KB is BenchmarkKeyClaudeCode100KB with the
// working memory reused, as the policy role makes its keys.
func BenchmarkKeyerClaudeCode100KB(b *testing.B) {
	body := benchBody(b)
	in := KeyInput{Body: body, Exclude: []string{"metadata.user_id"}, Endpoint: "POST /v1/messages?beta=true",
		ClientFormat: "anthropic", Route: "demo", Model: "claude-opus-4-8", Scope: "team:demo",
		Headers: []Header{{"anthropic-version", "2023-06-01"}, {"anthropic-beta", "a,b,c"}}}
	var k Keyer
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.NewKey(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256100KB is the floor of a key: SHA-256 of the body as sent.
func BenchmarkSHA256100KB(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(body)
	}
}

// BenchmarkCanonicalClaudeCode100KB is the canonical form alone, as bytes.
func BenchmarkCanonicalClaudeCode100KB(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(body, []string{"metadata.user_id"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisDecode reads a stored entry as a hit does once GET has
// returned it: the 2 KB JSON answer of the bench's cache-hit scenario, and
// a 100 KB one.
func BenchmarkRedisDecode(b *testing.B) {
	for _, size := range []int{2 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			r := &Redis{maxEntry: DefaultMaxEntryBytes}
			body := bench.AnthropicMessage("claude-opus-4-8", size, 92)
			enc, err := r.encodeEntry(&Entry{ContentType: "application/json", Body: body, Info: []byte(`{"provider":"demo"}`)})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if e, err := r.decodeEntry(enc); err != nil || len(e.Body) != len(body) {
					b.Fatal(err)
				}
			}
		})
	}
}

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// TestEstimateReport prints, for Claude Code-shaped bench bodies, the input
// reserved by budget.InputBound and by the previous estimate (body bytes /
// 3). With TOLLGATE_ESTIMATE_REPORT=DIR it also writes the bodies to DIR,
// for a tokenizer to count (README "Budgets" says how they were measured).
// Without it, it only checks that the bound is at least the body's bytes.
func TestEstimateReport(t *testing.T) {
	dir := os.Getenv("TOLLGATE_ESTIMATE_REPORT")
	for _, size := range []int{2 << 10, 32 << 10, 100 << 10, 1 << 20} {
		body, err := ClaudeCodeBody(size, "claude-opus-5-5", true, 1)
		if err != nil {
			t.Fatal(err)
		}
		f, err := reqbody.Scan(body)
		if err != nil {
			t.Fatal(err)
		}
		m := reqbody.ScanMedia(body, f)
		bound := budget.InputBound(len(body), budget.Media{Images: m.Images, Documents: m.Documents,
			Base64Bytes: m.Base64Bytes, Tools: m.Tools, TypedTools: m.TypedTools})
		old := (int64(len(body)) + 2) / 3
		if bound < min(int64(len(body)), budget.MaxEstimatedInputTokens) {
			t.Errorf("%d bytes: bound %d below the bytes", len(body), bound)
		}
		if dir == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("body-%d.json", size)), body, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%8d bytes: bound %8d tokens, previous estimate %7d, tools %d", len(body), bound, old, m.Tools)
	}
}

// BenchmarkScanWithMedia compares, on a 100 KB Claude Code-shaped body,
// reqbody.Scan with the one-pass scan the budget check uses, which also walks
// messages and tools for images, documents and tools.
func BenchmarkScanWithMedia(b *testing.B) {
	body, err := ClaudeCodeBody(100<<10, "claude-opus-5-5", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Scan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reqbody.Scan(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ScanWithMedia", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := reqbody.ScanWithMedia(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

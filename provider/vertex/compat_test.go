package vertex

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// claudeCodeBetas is the anthropic-beta header of Claude Code 2.1.332
// (WIRE-FORMATS section 8), with advanced-tool-use for deferred tools.
const claudeCodeBetas = "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27," +
	"prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24,advanced-tool-use-2025-11-20"

// TestClaudeCodeBodyAdapted runs the captured Claude Code body through
// Vertex AI's compatibility table and the translation: the betas Vertex AI
// takes come back for the header, the body is the client's with the
// table's adaptations (effort, which Vertex AI refuses, dropped with
// output_config; the system message folded) and the translation's edits.
func TestClaudeCodeBodyAdapted(t *testing.T) {
	body, err := os.ReadFile("../../extproc/e2e/testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	s := newSettings()
	adapted, betas, err := s.AdaptRequest(body, claudeCodeBetas, func(k, a, d string) { notes = append(notes, k+":"+a) })
	if err != nil {
		t.Fatal(err)
	}
	if want := "context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27,tool-search-tool-2025-10-19"; betas != want {
		t.Errorf("betas %q, want %q", betas, want)
	}
	out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages?beta=true", func(string) string { return betas }, adapted,
		func(string) string { return "claude-opus-4-8@20260101" })
	if err != nil {
		t.Fatal(err)
	}
	if path != "/publishers/anthropic/models/claude-opus-4-8@20260101:streamRawPredict" {
		t.Errorf("path %s", path)
	}
	for _, gone := range []string{`"model"`, `"output_config"`, `"role":"system"`} {
		if bytes.Contains(out, []byte(gone)) {
			t.Errorf("the body still has %s", gone)
		}
	}
	if !bytes.HasPrefix(out, []byte(`{"anthropic_version":"vertex-2023-10-16","messages":`)) || !bytes.Contains(out, []byte(`"defer_loading":true`)) {
		t.Errorf("body %.300s", out)
	}
	if !slices.Contains(notes, "effort-2025-11-24:drop") || !slices.Contains(notes, "messages.system:adapt") {
		t.Errorf("notes %q", notes)
	}
}

// TestCompatSettings: compat is a mapping whose entries override the table
// (an unknown key is refused); a scalar compat is refused.
func TestCompatSettings(t *testing.T) {
	s := newSettings()
	if err := s.Set("compat", "drop"); err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Errorf("scalar compat: %v", err)
	}
	if err := s.SetEntry("compat", "effort-2025-11-24", "pass"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEntry("compat", "no-such-field", "pass"); err == nil {
		t.Error("an unknown key was accepted")
	}
	if err := s.SetEntry("region", "x", "y"); err == nil {
		t.Error("region taken as a mapping")
	}
	out, betas, err := s.AdaptRequest([]byte(`{"output_config":{"effort":"high"},"max_tokens":1}`), "effort-2025-11-24", func(string, string, string) {})
	if err != nil || betas != "effort-2025-11-24" || string(out) != `{"output_config":{"effort":"high"},"max_tokens":1}` {
		t.Errorf("override: %s %q %v", out, betas, err)
	}
}

// TestDefaultModel: Anthropic ids map to the catalog's Vertex AI ids
// without any models field, credentials or Resolve; Vertex ids pass.
func TestDefaultModel(t *testing.T) {
	s := newSettings()
	for in, want := range map[string]string{"claude-sonnet-4-5": "claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929": "claude-sonnet-4-5@20250929"} {
		if got, ok := s.DefaultModel(in); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, ok, want)
		}
	}
	if got, ok := s.DefaultModel("claude-sonnet-4-5@20250929"); ok {
		t.Errorf("a Vertex id mapped to %q", got)
	}
}

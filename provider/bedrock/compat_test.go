package bedrock

import (
	"bytes"
	"slices"
	"testing"
)

// claudeCodeBetas is the anthropic-beta header of Claude Code 2.1.332
// (WIRE-FORMATS section 8), with advanced-tool-use for deferred tools.
const claudeCodeBetas = "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27," +
	"prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24,advanced-tool-use-2025-11-20"

// TestClaudeCodeBodyAdapted runs the captured Claude Code body through the
// whole Bedrock rewrite (the compatibility table, then the translation) and
// compares bytes: the body Bedrock gets is the client's with exactly the
// table's adaptations (the mid-conversation system message folded into the
// user turn before it) and the translation's edits (model and stream out,
// anthropic_version and the accepted betas in), nothing else.
func TestClaudeCodeBodyAdapted(t *testing.T) {
	body := readTestdata(t, "../../extproc/e2e/testdata/claude-code-request.json")
	var notes []string
	s := newSettings()
	adapted, betas, err := s.AdaptRequest(body, claudeCodeBetas, func(k, a, d string) { notes = append(notes, k+":"+a) })
	if err != nil {
		t.Fatal(err)
	}
	out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages?beta=true", header("anthropic-beta", betas), adapted,
		func(string) string { return "us.anthropic.claude-opus-4-8-v1:0" })
	if err != nil {
		t.Fatal(err)
	}
	if path != "/model/us.anthropic.claude-opus-4-8-v1%3A0/invoke-with-response-stream" {
		t.Errorf("path %s", path)
	}
	want := slices.Concat([]byte(`{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07","interleaved-thinking-2025-05-14","context-management-2025-06-27","effort-2025-11-24","tool-search-tool-2025-10-19"],`),
		body[len(`{"model":"@demo/claude-opus-4-8",`):])
	want = bytes.Replace(want, []byte(`,"stream":true}`), []byte(`}`), 1)
	want = bytes.Replace(want,
		[]byte(`error { return nil }\n"}]},{"role":"system","content":"The user switched to plan mode."},{"role":"user"`),
		[]byte(`error { return nil }\n"},{"type":"text","text":"<system-reminder>\nThe user switched to plan mode.\n</system-reminder>"}]},{"role":"user"`), 1)
	if !bytes.Equal(out, want) {
		t.Errorf("body:\n%s\nwant:\n%s", out, want)
	}
	if wantNotes := []string{"claude-code-20250219:drop", "prompt-caching-scope-2026-01-05:drop", "mid-conversation-system-2026-04-07:drop",
		"advanced-tool-use-2025-11-20:adapt", "messages.system:adapt"}; !slices.Equal(notes, wantNotes) {
		t.Errorf("notes %q", notes)
	}
}

// TestCompatOverride: a policy override reaches the rewrite.
func TestCompatOverride(t *testing.T) {
	s := newSettings()
	if err := s.Set("region", "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEntry("compat", "effort-2025-11-24", "drop"); err != nil {
		t.Fatal(err)
	}
	out, betas, err := s.AdaptRequest([]byte(`{"output_config":{"effort":"high"},"max_tokens":1}`), "effort-2025-11-24", func(string, string, string) {})
	if err != nil || string(out) != `{"max_tokens":1}` || betas != "" {
		t.Errorf("%s %q %v", out, betas, err)
	}
	if err := s.SetEntry("region", "x", "y"); err == nil {
		t.Error("SetEntry of a scalar field succeeded")
	}
	if err := (&Settings{}).Set("compat", "drop"); err == nil {
		t.Error("a scalar compat was accepted")
	}
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// claudeCodeBetas is the anthropic-beta header of Claude Code 2.1.332
// (WIRE-FORMATS section 8), with advanced-tool-use for its deferred tools.
const claudeCodeBetas = "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27," +
	"prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24,advanced-tool-use-2025-11-20"

// The mid-conversation system message of testdata/claude-code-request.json,
// and what Bedrock's compatibility table makes of it: a text block appended
// to the user turn before it.
const (
	fixtureSystemMessage = `error { return nil }\n"}]},{"role":"system","content":"The user switched to plan mode."},{"role":"user"`
	fixtureFoldedMessage = `error { return nil }\n"},{"type":"text","text":"<system-reminder>\nThe user switched to plan mode.\n</system-reminder>"}]},{"role":"user"`
)

// claudeCodeBody is the captured Claude Code body for claude-sonnet-4-5.
func claudeCodeBody(t *testing.T) []byte {
	t.Helper()
	body, err := os.ReadFile("testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(body, []byte(`"model":"@demo/claude-opus-4-8"`), []byte(`"model":"claude-sonnet-4-5"`), 1)
}

// sendClaudeCode streams the Claude Code body with Claude Code's betas
// through anthropic-sdk-go and returns the accumulated message.
func sendClaudeCode(t *testing.T, client anthropic.Client, body []byte, opts ...option.RequestOption) (anthropic.Message, *http.Response, error) {
	t.Helper()
	var resp *http.Response
	opts = append([]option.RequestOption{option.WithRequestBody("application/json", body),
		option.WithHeader("anthropic-beta", claudeCodeBetas), option.WithResponseInto(&resp)}, opts...)
	st := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{}, opts...)
	var msg anthropic.Message
	for st.Next() {
		if err := msg.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	return msg, resp, st.Err()
}

// TestBedrockClaudeCodeSDK sends the captured Claude Code body with Claude
// Code's betas through anthropic-sdk-go to the fake Bedrock, which refuses
// what Bedrock refuses (an unknown beta, a role "system" message, a beta
// field without its beta): it is accepted, and Bedrock gets the client's
// bytes with exactly the compatibility table's adaptations and the
// translation's edits; each change is counted.
func TestBedrockClaudeCodeSDK(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{})
	body := claudeCodeBody(t)
	msg, _, err := sendClaudeCode(t, s.client, body)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Model != bedrockProfile || msg.StopReason != anthropic.StopReasonEndTurn || len(msg.Content) != 1 || msg.Content[0].Text == "" {
		t.Errorf("message %s", msg.RawJSON())
	}
	reqs := s.bedrock.Requests()
	if len(reqs) != 1 || !strings.HasSuffix(reqs[0].Path, "/invoke-with-response-stream") {
		t.Fatalf("bedrock requests %d", len(reqs))
	}
	want := slices.Concat([]byte(`{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07","interleaved-thinking-2025-05-14","context-management-2025-06-27","effort-2025-11-24","tool-search-tool-2025-10-19"],`),
		body[len(`{"model":"claude-sonnet-4-5",`):])
	want = bytes.Replace(want, []byte(`,"stream":true}`), []byte(`}`), 1)
	want = bytes.Replace(want, []byte(fixtureSystemMessage), []byte(fixtureFoldedMessage), 1)
	if !bytes.Equal(reqs[0].Body, want) {
		t.Errorf("Bedrock got:\n%s\nwant:\n%s", reqs[0].Body, want)
	}
	for _, c := range []struct{ key, action string }{
		{"claude-code-20250219", "drop"}, {"prompt-caching-scope-2026-01-05", "drop"}, {"mid-conversation-system-2026-04-07", "drop"},
		{"advanced-tool-use-2025-11-20", "adapt"}, {"messages.system", "adapt"},
	} {
		if n := metricValue(t, s.reg, "tollgate_compat_actions_total", map[string]string{"provider_type": "bedrock", "key": c.key, "action": c.action}); n != 1 {
			t.Errorf("%s %s counted %v times", c.key, c.action, n)
		}
	}
}

// TestBedrockRefusesWithoutTable passes everything the table adapts or drops
// (policy overrides): the fake Bedrock then refuses the Claude Code body as
// Bedrock does, so the table is what makes TestBedrockClaudeCodeSDK pass.
func TestBedrockRefusesWithoutTable(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{violations: true, compat: "{unlisted_betas: pass, claude-code-20250219: pass, " +
		"prompt-caching-scope-2026-01-05: pass, messages.system: pass, advanced-tool-use-2025-11-20: pass}"})
	_, _, err := sendClaudeCode(t, s.client, claudeCodeBody(t))
	var apiErr *anthropic.Error
	if err == nil || !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("error %v, want Bedrock's 400", err)
	}
	if v := s.bedrock.Violations(); len(v) != 1 || !strings.Contains(v[0], "invalid beta flag claude-code-20250219") {
		t.Errorf("violations %q", v)
	}
}

// TestBedrockFallbackToAnthropicVerbatim: after a throttled Bedrock attempt,
// which adapted the request, the Anthropic attempt gets every beta and the
// body as the client sent them (only the model edited): no table applies
// to Anthropic, and nothing of Bedrock's adaptations leaks into the header
// map the attempts share.
func TestBedrockFallbackToAnthropicVerbatim(t *testing.T) {
	s := newBedrockStack(t, bedrockOptions{bedrockFirst: true, bModel: "us.anthropic.claude-sonnet-4-5-throttled"})
	body := claudeCodeBody(t)
	_, resp, err := sendClaudeCode(t, s.client, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("x-tollgate-provider") != "anthropic" || resp.Header.Get("x-tollgate-attempts") != "2" {
		t.Errorf("served by %q on attempt %q", resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"))
	}
	if n := len(s.bedrock.Requests()); n != 1 {
		t.Errorf("bedrock got %d requests", n)
	}
	ra := s.anthropic.Requests()
	if len(ra) != 1 {
		t.Fatalf("anthropic got %d requests", len(ra))
	}
	if got := ra[0].Header.Values("anthropic-beta"); len(got) != 1 || got[0] != claudeCodeBetas {
		t.Errorf("anthropic-beta %q, want %q", got, claudeCodeBetas)
	}
	if !bytes.Equal(ra[0].Body, body) {
		t.Errorf("anthropic got:\n%s\nwant:\n%s", ra[0].Body, body)
	}
}

package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// TestBodyCapture: a team that opts in gets request and response bodies in its
// records, cut at the limit and scrubbed of credentials.
func TestBodyCapture(t *testing.T) {
	s := newStackWith(t, stackOptions{policyTail: "teams:\n  platform: {capture_bodies: {max_bytes: 4096}}\n"})
	params := anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 16,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(
			"deploy with ANTHROPIC_API_KEY=sk-ant-api03-SECRETSECRETSECRET and " + strings.Repeat("x", 5000)))},
	}
	if _, err := s.client.Messages.New(context.Background(), params, option.WithMaxRetries(0)); err != nil {
		t.Fatal(err)
	}
	r := s.records.wait(t, 1)[0]
	if !strings.Contains(r.RequestBody, `"max_tokens":16`) || !strings.Contains(r.RequestBody, "[REDACTED]") ||
		strings.Contains(r.RequestBody, "SECRETSECRET") || !strings.Contains(r.RequestBody, "…[truncated ") {
		t.Errorf("request body capture = %.300q", r.RequestBody)
	}
	if !strings.Contains(r.ResponseBody, `"usage"`) {
		t.Errorf("response body capture = %.300q", r.ResponseBody)
	}

	// Without the opt-in nothing is captured.
	plain := newStack(t)
	if _, err := plain.client.Messages.New(context.Background(), params, option.WithMaxRetries(0)); err != nil {
		t.Fatal(err)
	}
	if r := plain.records.wait(t, 1)[0]; r.RequestBody != "" || r.ResponseBody != "" {
		t.Error("bodies captured without an opt-in")
	}
}

package e2e

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
)

// vertexBetas is what Vertex AI's compatibility table makes of
// claudeCodeBetas: the betas it takes, advanced-tool-use under Vertex AI's
// name for it.
const vertexBetas = "context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27,tool-search-tool-2025-10-19"

// fixtureEffort is the output_config of testdata/claude-code-request.json,
// which Vertex AI does not take: the table drops it with its beta.
const fixtureEffort = `,"output_config":{"effort":"high"}`

// wantVertexBody is the body Vertex AI gets for the Claude Code body:
// model out, anthropic_version in first, the table's adaptations (the
// system message folded, output_config dropped), nothing else changed.
func wantVertexBody(t *testing.T, body []byte) []byte {
	t.Helper()
	want := slices.Concat([]byte(`{"anthropic_version":"vertex-2023-10-16",`), body[len(`{"model":"claude-sonnet-4-5",`):])
	want = bytes.Replace(want, []byte(fixtureSystemMessage), []byte(fixtureFoldedMessage), 1)
	if !bytes.Contains(want, []byte(fixtureEffort)) {
		t.Fatalf("the fixture has no %s", fixtureEffort)
	}
	return bytes.Replace(want, []byte(fixtureEffort), nil, 1)
}

// checkBetaHeader checks that r carried exactly one anthropic-beta header,
// want.
func checkBetaHeader(t *testing.T, who string, r envoytest.RecordedRequest, want string) {
	t.Helper()
	if got := r.Header.Values("anthropic-beta"); len(got) != 1 || got[0] != want {
		t.Errorf("%s got anthropic-beta %q, want %q", who, got, want)
	}
}

// TestVertexClaudeCodeSDK sends the captured Claude Code body with Claude
// Code's betas through anthropic-sdk-go to the fake Vertex AI, which refuses
// what Vertex AI refuses (a beta it does not take in the anthropic-beta
// header, a role "system" message, output_config.effort, a beta field
// without its beta): it is accepted, Vertex AI gets the table's betas in
// the header and the client's bytes with exactly the table's adaptations
// and the translation's edits; each change is counted.
func TestVertexClaudeCodeSDK(t *testing.T) {
	s := newVertexStack(t, vertexOptions{})
	body := claudeCodeBody(t)
	msg, _, err := sendClaudeCode(t, s.client, body)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Model != vertexModel || msg.StopReason != anthropic.StopReasonEndTurn || len(msg.Content) != 1 || msg.Content[0].Text == "" {
		t.Errorf("message %s", msg.RawJSON())
	}
	reqs := s.vertex.Requests()
	if len(reqs) != 1 {
		t.Fatalf("vertex requests %d", len(reqs))
	}
	checkVertexRequest(t, reqs[0], "streamRawPredict")
	checkBetaHeader(t, "Vertex AI", reqs[0], vertexBetas)
	if want := wantVertexBody(t, body); !bytes.Equal(reqs[0].Body, want) {
		t.Errorf("Vertex AI got:\n%s\nwant:\n%s", reqs[0].Body, want)
	}
	for _, c := range []struct{ key, action string }{
		{"claude-code-20250219", "drop"}, {"prompt-caching-scope-2026-01-05", "drop"}, {"mid-conversation-system-2026-04-07", "drop"},
		{"effort-2025-11-24", "drop"}, {"advanced-tool-use-2025-11-20", "adapt"}, {"messages.system", "adapt"},
	} {
		if n := metricValue(t, s.reg, "tollgate_compat_actions_total", map[string]string{"provider_type": "vertex", "key": c.key, "action": c.action}); n != 1 {
			t.Errorf("%s %s counted %v times", c.key, c.action, n)
		}
	}
}

// TestVertexRefusesWithoutTable passes everything the table adapts or drops
// (policy overrides): the fake Vertex AI then refuses the Claude Code
// request as Vertex AI does, so the table is what makes
// TestVertexClaudeCodeSDK pass.
func TestVertexRefusesWithoutTable(t *testing.T) {
	s := newVertexStack(t, vertexOptions{violations: true, compat: "{unlisted_betas: pass, claude-code-20250219: pass, " +
		"prompt-caching-scope-2026-01-05: pass, messages.system: pass, advanced-tool-use-2025-11-20: pass, effort-2025-11-24: pass}"})
	_, _, err := sendClaudeCode(t, s.client, claudeCodeBody(t))
	var apiErr *anthropic.Error
	if err == nil || !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("error %v, want Vertex AI's 400", err)
	}
	if v := s.vertex.Violations(); len(v) != 1 || !strings.Contains(v[0], "claude-code-20250219") {
		t.Errorf("violations %q", v)
	}
}

// TestVertexFallbackToAnthropicVerbatim: after an overloaded Vertex AI
// attempt, which sent the table's betas in the anthropic-beta header of the
// header map the attempts share, the Anthropic attempt gets the client's
// betas verbatim (the adapter restores them from the decision) and the
// client's body.
func TestVertexFallbackToAnthropicVerbatim(t *testing.T) {
	s := newVertexStack(t, vertexOptions{vertexFirst: true, vModel: "claude-sonnet-4-5-overloaded"})
	body := claudeCodeBody(t)
	_, resp, err := sendClaudeCode(t, s.client, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("x-tollgate-provider") != "anthropic" || resp.Header.Get("x-tollgate-attempts") != "2" {
		t.Errorf("served by %q on attempt %q", resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"))
	}
	rv := s.vertex.Requests()
	if len(rv) != 1 {
		t.Fatalf("vertex got %d requests", len(rv))
	}
	checkBetaHeader(t, "Vertex AI", rv[0], vertexBetas)
	ra := s.anthropic.Requests()
	if len(ra) != 1 {
		t.Fatalf("anthropic got %d requests", len(ra))
	}
	checkBetaHeader(t, "Anthropic", ra[0], claudeCodeBetas)
	if !bytes.Equal(ra[0].Body, body) {
		t.Errorf("anthropic got:\n%s\nwant:\n%s", ra[0].Body, body)
	}
}

// TestAnthropicFallbackToVertexFiltered: after an overloaded Anthropic
// attempt, which got the client's betas verbatim, the Vertex AI attempt
// gets the table's betas in the header and the adapted body.
func TestAnthropicFallbackToVertexFiltered(t *testing.T) {
	s := newVertexStack(t, vertexOptions{anthropicFirst: true, aModel: "claude-sonnet-4-5-overloaded"})
	body := claudeCodeBody(t)
	_, resp, err := sendClaudeCode(t, s.client, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("x-tollgate-provider") != "anthropic" || resp.Header.Get("x-tollgate-attempts") != "2" {
		t.Errorf("served by %q on attempt %q", resp.Header.Get("x-tollgate-provider"), resp.Header.Get("x-tollgate-attempts"))
	}
	ra := s.anthropic.Requests()
	if len(ra) != 1 {
		t.Fatalf("anthropic got %d requests", len(ra))
	}
	checkBetaHeader(t, "Anthropic", ra[0], claudeCodeBetas)
	rv := s.vertex.Requests()
	if len(rv) != 1 {
		t.Fatalf("vertex got %d requests", len(rv))
	}
	checkBetaHeader(t, "Vertex AI", rv[0], vertexBetas)
	if want := wantVertexBody(t, body); !bytes.Equal(rv[0].Body, want) {
		t.Errorf("Vertex AI got:\n%s\nwant:\n%s", rv[0].Body, want)
	}
}

// TestVertexDefaultModel: with no models field, claude-sonnet-4-5 goes to
// the catalog's Vertex AI id, claude-sonnet-4-5@20250929, and is priced
// exactly at the catalog's Vertex AI price.
func TestVertexDefaultModel(t *testing.T) {
	s := newVertexStack(t, vertexOptions{defaultModels: true})
	c := &chain{recs: s.recs, client: s.client}
	model, _, err := c.send(t, false)
	if err != nil {
		t.Fatal(err)
	}
	if model != vertexModel {
		t.Errorf("model %q", model)
	}
	reqs := s.vertex.Requests()
	if len(reqs) != 1 {
		t.Fatalf("vertex got %d requests", len(reqs))
	}
	checkVertexRequest(t, reqs[0], "rawPredict")
	vertexCost(t, s.recs.wait(t, 1)[0])
}

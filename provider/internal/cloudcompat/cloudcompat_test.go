package cloudcompat

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// claudeCodeBetas is an anthropic-beta header as Claude Code 2.1.332 sends
// it (WIRE-FORMATS section 8), with advanced-tool-use for its deferred tools.
const claudeCodeBetas = "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27," +
	"prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24,advanced-tool-use-2025-11-20"

func readFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../extproc/e2e/testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type noted struct{ key, action, detail string }

func apply(t *testing.T, c *Config, body []byte, betas string) ([]byte, []string, []noted) {
	t.Helper()
	var notes []noted
	out, outBetas, err := c.Apply(body, betas, func(k string, a Action, d string) { notes = append(notes, noted{k, string(a), d}) })
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	return out, outBetas, notes
}

// The mid-conversation system message of the captured body, and where the
// fold puts it: appended to the user turn before it.
const (
	fixtureSystem = `"content":"package parser\n\nfunc Parse(b []byte) error { return nil }\n"}]},{"role":"system","content":"The user switched to plan mode."},{"role":"user"`
	fixtureFolded = `"content":"package parser\n\nfunc Parse(b []byte) error { return nil }\n"},{"type":"text","text":"<system-reminder>\nThe user switched to plan mode.\n</system-reminder>"}]},{"role":"user"`
)

// TestBedrockClaudeCodeBody applies Bedrock's table to the captured Claude
// Code body: the system message is folded, and every other byte is as it
// was; the betas Bedrock does not know go, advanced-tool-use is renamed.
func TestBedrockClaudeCodeBody(t *testing.T) {
	body := readFixture(t)
	out, betas, notes := apply(t, New(Bedrock()), body, claudeCodeBetas)
	want := bytes.Replace(body, []byte(fixtureSystem), []byte(fixtureFolded), 1)
	if bytes.Equal(want, body) {
		t.Fatal("the fixture changed: update fixtureSystem")
	}
	if !bytes.Equal(out, want) {
		t.Errorf("body:\n%s\nwant:\n%s", out, want)
	}
	wantBetas := []string{"context-1m-2025-08-07", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "effort-2025-11-24", "tool-search-tool-2025-10-19"}
	if !slices.Equal(betas, wantBetas) {
		t.Errorf("betas %q, want %q", betas, wantBetas)
	}
	wantNotes := []noted{
		{"claude-code-20250219", "drop", ""},
		{"prompt-caching-scope-2026-01-05", "drop", ""},
		{"mid-conversation-system-2026-04-07", "drop", "its fields are adapted"},
		{"advanced-tool-use-2025-11-20", "adapt", "sent as tool-search-tool-2025-10-19"},
		{"messages.system", "adapt", "1 messages"},
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes %q\nwant %q", notes, wantNotes)
	}
}

// TestVertexClaudeCodeBody: Vertex also loses the effort pair, which takes
// output_config (its only member) with it.
func TestVertexClaudeCodeBody(t *testing.T) {
	body := readFixture(t)
	out, betas, _ := apply(t, New(Vertex()), body, claudeCodeBetas)
	want := bytes.Replace(body, []byte(fixtureSystem), []byte(fixtureFolded), 1)
	want = bytes.Replace(want, []byte(`"output_config":{"effort":"high"},`), nil, 1)
	if !bytes.Equal(out, want) {
		t.Errorf("body:\n%s\nwant:\n%s", out, want)
	}
	wantBetas := []string{"context-1m-2025-08-07", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "tool-search-tool-2025-10-19"}
	if !slices.Equal(betas, wantBetas) {
		t.Errorf("betas %q, want %q", betas, wantBetas)
	}
}

// TestPairsTravelTogether overrides one half of a pair: the other half
// follows.
func TestPairsTravelTogether(t *testing.T) {
	body := readFixture(t)
	for _, key := range []string{"context-management-2025-06-27", "context_management"} {
		c := New(Bedrock())
		if err := c.Set(key, "drop"); err != nil {
			t.Fatal(err)
		}
		out, betas, _ := apply(t, c, body, claudeCodeBetas)
		if bytes.Contains(out, []byte("context_management")) || slices.Contains(betas, "context-management-2025-06-27") {
			t.Errorf("%s: drop kept a half: %q %s", key, betas, out)
		}
	}
	c := New(Vertex())
	if err := c.Set("output_config.effort", "pass"); err != nil {
		t.Fatal(err)
	}
	out, betas, _ := apply(t, c, body, claudeCodeBetas)
	if !bytes.Contains(out, []byte(`"output_config":{"effort":"high"}`)) || !slices.Contains(betas, "effort-2025-11-24") {
		t.Errorf("pass kept a half only: %q %s", betas, out)
	}
}

func TestOverrides(t *testing.T) {
	body := readFixture(t)
	c := New(Bedrock())
	for k, v := range map[string]string{"messages.system": "pass", "unlisted_betas": "pass", "claude-code-20250219": "pass", "new-thing-2027-01-01": "drop", "advanced-tool-use-2025-11-20": "pass"} {
		if err := c.Set(k, v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	out, betas, _ := apply(t, c, body, "claude-code-20250219,mid-conversation-system-2026-04-07,unknown-2026-01-01,new-thing-2027-01-01,advanced-tool-use-2025-11-20")
	if !bytes.Equal(out, body) {
		t.Errorf("body changed: %s", out)
	}
	if &out[0] != &body[0] {
		t.Error("an unchanged body was copied")
	}
	if want := []string{"claude-code-20250219", "mid-conversation-system-2026-04-07", "unknown-2026-01-01", "advanced-tool-use-2025-11-20"}; !slices.Equal(betas, want) {
		t.Errorf("betas %q, want %q", betas, want)
	}
}

func TestSetErrors(t *testing.T) {
	for _, c := range []struct {
		sets [][2]string
		want string
	}{
		{[][2]string{{"effort-2025-11-24", "maybe"}}, "must be pass, drop or adapt"},
		{[][2]string{{"contxt_management", "drop"}}, `bedrock lists no beta or field "contxt_management"`},
		{[][2]string{{"effort-2025-11-24", "adapt"}}, "bedrock has no adaptation for effort-2025-11-24"},
		{[][2]string{{"unlisted_betas", "adapt"}}, "must be pass or drop"},
		{[][2]string{{"new-2027-01-01", "adapt"}}, "no adaptation"},
		{[][2]string{{"context_management", "drop"}, {"context-management-2025-06-27", "pass"}}, "context_management and context-management-2025-06-27 travel as a pair"},
	} {
		cfg := New(Bedrock())
		var err error
		for _, s := range c.sets {
			if err = cfg.Set(s[0], s[1]); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.sets, err, c.want)
		}
	}
	if err := New(Bedrock()).Set("context_management", "drop"); err != nil {
		t.Error(err)
	}
}

// TestKeysOnce checks that no beta or field names two rows of a table.
func TestKeysOnce(t *testing.T) {
	for _, tb := range []Table{Bedrock(), Vertex()} {
		seen := map[string]bool{}
		for _, r := range tb.Rows {
			if r.Source == "" || r.Action == "" || (r.Action == Adapt && !r.adaptable()) {
				t.Errorf("%s: row %+v", tb.Provider, r)
			}
			for _, k := range r.keys() {
				if seen[k] {
					t.Errorf("%s: %s twice", tb.Provider, k)
				}
				seen[k] = true
			}
		}
	}
}

// TestFold covers where a system message's text goes, byte for byte.
func TestFold(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"after an assistant: first in the next user turn (a string)",
			`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"system","content":"s"},{"role":"user","content":"c"}]}`,
			`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"<system-reminder>\ns\n</system-reminder>"},{"type":"text","text":"c"}]}]}`},
		{"last, after an assistant: becomes a user turn",
			`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"system","content":"s", "cache_control":{"type":"ephemeral"}}]}`,
			`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"<system-reminder>\ns\n</system-reminder>","cache_control":{"type":"ephemeral"}}]}]}`},
		{"blocks keep their members; the message's cache_control goes to the last",
			`{"messages":[{"role":"user","content":[]},{"role":"system","content":[{"type":"text","text":"x"},{"type":"text","text":"y\u00e9"}],"cache_control":{"type":"ephemeral"}},{"role":"assistant","content":"b"}]}`,
			`{"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>\nx\n</system-reminder>"},{"type":"text","text":"<system-reminder>\ny\u00e9\n</system-reminder>","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":"b"}]}`},
		{"two around one user string",
			`{"messages":[{"role":"assistant","content":"b"},{"role":"system","content":"s1"},{"role":"user","content":"u"},{"role":"system","content":"s2"}], "x":1}`,
			`{"messages":[{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"<system-reminder>\ns1\n</system-reminder>"},{"type":"text","text":"u"},{"type":"text","text":"<system-reminder>\ns2\n</system-reminder>"}]}], "x":1}`},
	} {
		out, _, _ := apply(t, New(Bedrock()), []byte(c.in), "")
		if string(out) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, out, c.want)
		}
	}
}

// TestFieldDrops drops tool and output_config members in place.
func TestFieldDrops(t *testing.T) {
	in := `{"tools":[{"name":"a","eager_input_streaming":true,"strict":true},{"name":"b", "defer_loading":true ,"eager_input_streaming":false}],"output_config":{"format":{"type":"json_schema"},"effort":"low"}}`
	out, _, notes := apply(t, New(Bedrock()), []byte(in), "")
	want := `{"tools":[{"name":"a","strict":true},{"name":"b", "defer_loading":true}],"output_config":{"format":{"type":"json_schema"},"effort":"low"}}`
	if string(out) != want {
		t.Errorf("bedrock:\n got %s\nwant %s", out, want)
	}
	if !slices.Contains(notes, noted{"tools.eager_input_streaming", "drop", "2 tools"}) {
		t.Errorf("notes %q", notes)
	}
	out, _, _ = apply(t, New(Vertex()), []byte(in), "")
	want = `{"tools":[{"name":"a"},{"name":"b", "defer_loading":true}]}`
	if string(out) != want {
		t.Errorf("vertex:\n got %s\nwant %s", out, want)
	}
}

// TestSystemBlocksUntouched: the top-level system array is never edited,
// whatever the table does.
func TestSystemBlocksUntouched(t *testing.T) {
	body := readFixture(t)
	var in map[string]json.RawMessage
	_ = json.Unmarshal(body, &in)
	for _, tb := range []Table{Bedrock(), Vertex()} {
		out, _, _ := apply(t, New(tb), body, claudeCodeBetas)
		var got map[string]json.RawMessage
		_ = json.Unmarshal(out, &got)
		if !bytes.Equal(got["system"], in["system"]) || !bytes.HasPrefix(got["system"], []byte(`[{"type":"text","text":"x-anthropic-billing-header:`)) {
			t.Errorf("%s: system %s", tb.Provider, got["system"])
		}
	}
}

func TestMalformed(t *testing.T) {
	if _, _, err := New(Bedrock()).Apply([]byte(`{"a":`), "", func(string, Action, string) {}); err == nil {
		t.Error("no error")
	}
}

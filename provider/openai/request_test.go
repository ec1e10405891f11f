package openai

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got, indented, with the file name under testdata, or
// rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var ind bytes.Buffer
	if json.Valid(got) {
		if err := json.Indent(&ind, got, "", "  "); err != nil {
			t.Fatal(err)
		}
		ind.WriteByte('\n')
		got = ind.Bytes()
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// settingsFor returns the settings a request golden is translated with,
// from its name.
func settingsFor(name string) *Settings {
	s := newSettings()
	if strings.Contains(name, "max_tokens") {
		s.MaxTokensField = MaxTokens
	}
	if strings.Contains(name, "no_options") {
		s.StreamOptions = false
	}
	if strings.Contains(name, "capped") {
		s.MaxOutputTokens = 16384
	}
	return s
}

// TestRequestGolden translates every testdata/request/*.anthropic.json (one
// or more per row of the WIRE-FORMATS section 6 mapping table; README.md
// there says which) and compares with its .openai.json.
func TestRequestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/request/*.anthropic.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".anthropic.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tr := (&fromAnthropic{}).ForAttempt(settingsFor(name))
			out, path, err := tr.(*fromAnthropic).TranslateRequest("/v1/messages?beta=true", nil, body, func(m string) string { return m })
			if err != nil {
				t.Fatal(err)
			}
			if path != "" {
				t.Errorf("path %q; the settings set it", path)
			}
			golden(t, "request/"+name+".openai.json", out)
		})
	}
}

func TestRequestRefusals(t *testing.T) {
	tr := (&fromAnthropic{}).ForAttempt(newSettings()).(*fromAnthropic)
	same := func(m string) string { return m }
	for _, tt := range []struct{ path, body, want string }{
		{"/v1/messages/count_tokens", `{"model":"m","messages":[]}`, "an OpenAI-compatible provider serves only POST /v1/messages"},
		{"/v1/messages", `{"max_tokens":1,"messages":[]}`, "the request names no model"},
		{"/v1/messages", `[1]`, "the body is not a Messages request: invalid JSON"},
		{"/v1/messages", `{"model":"m","messages":[{"role":"user","content":[{"type":"container_upload","file_id":"f"}]}]}`,
			`messages[0]: a user "container_upload" block has no Chat Completions equivalent`},
		{"/v1/messages", `{"model":"m","messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`,
			`messages[0]: an assistant "server_tool_use" block has no Chat Completions equivalent`},
		{"/v1/messages", `{"model":"m","messages":[{"role":"user"}]}`, "messages[0] has no content"},
		{"/v1/messages", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			`messages[0]: an image source of type "file" has no Chat Completions equivalent`},
	} {
		_, _, err := tr.TranslateRequest(tt.path, nil, []byte(tt.body), same)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %s: %v; want %q", tt.path, tt.body, err, tt.want)
		}
	}
}

// TestClaudeCodeBody translates the Claude Code-shaped body of the e2e tests
// (extproc/e2e/testdata, built from the capture in WIRE-FORMATS section 8):
// every part of it must have a place, and the result is its golden.
func TestClaudeCodeBody(t *testing.T) {
	body, err := os.ReadFile("../../extproc/e2e/testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	tr := (&fromAnthropic{}).ForAttempt(newSettings()).(*fromAnthropic)
	out, _, err := tr.TranslateRequest("/v1/messages?beta=true", nil, body, func(string) string { return "gpt-4.1" })
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "request/claude-code.openai.json.golden", out)
}

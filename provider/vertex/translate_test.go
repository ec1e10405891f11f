package vertex

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func noHeaders(string) string { return "" }

// TestTranslateRequest checks the body and path for each kind of request:
// model to the path (escaped but for "@"), anthropic_version first, stream
// kept, every other byte kept.
func TestTranslateRequest(t *testing.T) {
	for _, c := range []struct {
		name, path, body, model string
		wantBody, wantPath      string
	}{
		{"message", "/v1/messages", `{"model":"claude","max_tokens":5,"messages":[]}`, "claude-sonnet-4@20250514",
			`{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[]}`, "/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"},
		{"stream kept, query", "/v1/messages?beta=true", `{"max_tokens":5, "stream" : true ,"model":"claude" }`, "claude-opus-4-6",
			`{"anthropic_version":"vertex-2023-10-16","max_tokens":5, "stream" : true }`, "/publishers/anthropic/models/claude-opus-4-6:streamRawPredict"},
		{"stream false", "/v1/messages", `{"stream":false,"model":"m","x":{"model":"inner"}}`, "m",
			`{"anthropic_version":"vertex-2023-10-16","stream":false,"x":{"model":"inner"}}`, "/publishers/anthropic/models/m:rawPredict"},
		{"client's anthropic_version replaced", "/v1/messages", `{"anthropic_version":"bedrock-2023-05-31","model":"m","max_tokens":1}`, "m",
			`{"anthropic_version":"vertex-2023-10-16","max_tokens":1}`, "/publishers/anthropic/models/m:rawPredict"},
		{"model only", "/v1/messages", `{"model":"m"}`, "m", `{"anthropic_version":"vertex-2023-10-16"}`, "/publishers/anthropic/models/m:rawPredict"},
		{"escaped model", "/v1/messages", `{"model":"m"}`, "a/b:c d", `{"anthropic_version":"vertex-2023-10-16"}`,
			"/publishers/anthropic/models/a%2Fb%3Ac%20d:rawPredict"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, path, err := fromAnthropic{}.TranslateRequest(c.path, noHeaders, []byte(c.body), func(string) string { return c.model })
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.wantBody || path != c.wantPath {
				t.Errorf("got %s at %s\nwant %s at %s", out, path, c.wantBody, c.wantPath)
			}
			if !json.Valid(out) {
				t.Errorf("%s is not JSON", out)
			}
		})
	}
}

// count_tokens keeps its model (mapped, without @default or @latest) in the
// body and goes to count-tokens:rawPredict.
func TestTranslateCountTokens(t *testing.T) {
	for _, c := range []struct{ model, mapped, want string }{
		{"claude-sonnet-4-5", "claude-sonnet-4-5@20250929", `{"anthropic_version":"vertex-2023-10-16","model":"claude-sonnet-4-5@20250929","messages":[]}`},
		{"claude-opus-4-6", "claude-opus-4-6@default", `{"anthropic_version":"vertex-2023-10-16","model":"claude-opus-4-6","messages":[]}`},
		{"m", "m", `{"anthropic_version":"vertex-2023-10-16","model":"m","messages":[]}`},
	} {
		out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages/count_tokens?beta=true", noHeaders,
			[]byte(`{"model":"`+c.model+`","messages":[]}`), func(string) string { return c.mapped })
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != c.want || path != "/publishers/anthropic/models/count-tokens:rawPredict" {
			t.Errorf("%s: got %s at %s; want %s", c.mapped, out, path, c.want)
		}
	}
}

func TestTranslateRequestRefusals(t *testing.T) {
	for _, c := range []struct{ path, body string }{
		{"/v1/messages", `{"max_tokens":1}`},
		{"/v1/messages/count_tokens", `{"messages":[]}`},
		{"/v1/messages", `{"model":`},
		{"/v1/messages", `[]`},
		{"/v1/models", `{"model":"m"}`},
	} {
		if out, _, err := (fromAnthropic{}).TranslateRequest(c.path, noHeaders, []byte(c.body), func(m string) string { return m }); err == nil {
			t.Errorf("%s %s: translated to %s", c.path, c.body, out)
		}
	}
}

// A Claude Code-shaped body reaches Vertex AI with only the documented
// edits: model out, anthropic_version in, every other member's bytes kept
// (system blocks, tools, context_management, stream) in their order.
func TestClaudeCodeBody(t *testing.T) {
	body, err := os.ReadFile("../../extproc/e2e/testdata/claude-code-request.json")
	if err != nil {
		t.Fatal(err)
	}
	out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages?beta=true", noHeaders, body, func(string) string { return "claude-opus-4-8" })
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if string(in["stream"]) == "true" && !strings.HasSuffix(path, ":streamRawPredict") || !strings.HasPrefix(path, "/publishers/anthropic/models/claude-opus-4-8:") {
		t.Errorf("path %s", path)
	}
	want := []byte(`{"anthropic_version":"vertex-2023-10-16",`)
	rest := body[1:]
	// The model member and its comma are the only bytes taken out.
	i := bytes.Index(rest, []byte(`"model":`))
	j := i + bytes.IndexByte(rest[i+len(`"model":"`):], '"') + len(`"model":"`) + 1
	if j < len(rest) && rest[j] == ',' {
		j++
	}
	want = append(append(want, rest[:i]...), rest[j:]...)
	if !bytes.Equal(out, want) {
		t.Errorf("body:\n%.300s\nwant:\n%.300s", out, want)
	}
}

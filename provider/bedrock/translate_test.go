package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func identity(m string) string { return m }

func header(kv ...string) func(string) string {
	return func(name string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == name {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestTranslateRequest checks the body and path for each kind of request:
// model to the path (escaped), stream gone, anthropic_version and the betas
// added, every other byte kept.
func TestTranslateRequest(t *testing.T) {
	for _, c := range []struct {
		name, path, betas, body, model string
		wantBody, wantPath             string
	}{
		{"message", "/v1/messages", "", `{"model":"claude","max_tokens":5,"messages":[]}`, "anthropic.claude-v1:0",
			`{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[]}`, "/model/anthropic.claude-v1%3A0/invoke"},
		{"stream, betas, query", "/v1/messages?beta=true", " a-1 ,b-2,a-1,", `{"max_tokens":5, "stream" : true ,"model":"claude" }`, "us.anthropic.claude",
			`{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["a-1","b-2"],"max_tokens":5 }`, "/model/us.anthropic.claude/invoke-with-response-stream"},
		{"ARN", "/v1/messages", "", `{"model":"m","x":{"model":"inner"}}`, "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude",
			`{"anthropic_version":"bedrock-2023-05-31","x":{"model":"inner"}}`, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude/invoke"},
		{"own anthropic_beta kept", "/v1/messages", "h-1", `{"anthropic_beta":["b-1"],"model":"m","anthropic_version":"x"}`, "m",
			`{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["b-1"]}`, "/model/m/invoke"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, path, err := fromAnthropic{}.TranslateRequest(c.path, header("anthropic-beta", c.betas), []byte(c.body),
				func(string) string { return c.model })
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

func TestTranslateCountTokens(t *testing.T) {
	out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages/count_tokens?beta=true", header(), []byte(`{"model":"m","messages":[]}`), identity)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Input struct {
			InvokeModel struct {
				Body string `json:"body"`
			} `json:"invokeModel"`
		} `json:"input"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	inner, _ := base64.StdEncoding.DecodeString(v.Input.InvokeModel.Body)
	if path != "/model/m/count-tokens" || string(inner) != `{"anthropic_version":"bedrock-2023-05-31","max_tokens":1,"messages":[]}` {
		t.Errorf("%s at %s (inner %s)", out, path, inner)
	}
}

func TestTranslateRequestRefuses(t *testing.T) {
	for _, c := range []struct{ path, body string }{
		{"/v1/messages", `{"messages":[]}`}, // no model
		{"/v1/messages", `{"model":"m"`},    // malformed
		{"/v1/models", `{"model":"m"}`},     // not served
		{"/v1/complete", `{"model":"m"}`},   // not served
		{"/v1/messages", `["model","m"]`},   // not an object
	} {
		if _, _, err := (fromAnthropic{}).TranslateRequest(c.path, header(), []byte(c.body), identity); err == nil {
			t.Errorf("%s %s: no error", c.path, c.body)
		}
	}
}

// TestClaudeCodeBody translates the captured Claude Code body: only the
// documented edits happen.
func TestClaudeCodeBody(t *testing.T) {
	body := readTestdata(t, "../../extproc/e2e/testdata/claude-code-request.json")
	out, path, err := fromAnthropic{}.TranslateRequest("/v1/messages?beta=true", header("anthropic-beta", "claude-code-20250219,context-management-2025-06-27"),
		body, func(string) string { return "us.anthropic.claude-opus-4-8-v1:0" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, "/invoke-with-response-stream") && !strings.HasSuffix(path, "/invoke") {
		t.Errorf("path %s", path)
	}
	var in, got map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		switch k {
		case "model", "stream":
			if _, ok := got[k]; ok {
				t.Errorf("%s is still in the body", k)
			}
		default:
			if !bytes.Equal(got[k], v) {
				t.Errorf("%s changed", k)
			}
		}
	}
	if string(got["anthropic_version"]) != `"bedrock-2023-05-31"` || string(got["anthropic_beta"]) != `["claude-code-20250219","context-management-2025-06-27"]` {
		t.Errorf("added %s %s", got["anthropic_version"], got["anthropic_beta"])
	}
	if len(got) != len(in)-2+2-boolInt(in["stream"] == nil) {
		t.Errorf("members: %d, from %d", len(got), len(in))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestEscapeModel(t *testing.T) {
	if got := escapeModel("a.b-c_d~e:f/g h"); got != "a.b-c_d~e%3Af%2Fg%20h" {
		t.Errorf("%s", got)
	}
}

// CountTokens is sent the foundation model of an inference profile id, which
// it requires; messages keep the profile.
func TestTranslateCountTokensFoundationModel(t *testing.T) {
	toProfile := func(string) string { return "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[]}`)
	_, path, err := fromAnthropic{}.TranslateRequest("/v1/messages/count_tokens", header(), body, toProfile)
	if err != nil || path != "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens" {
		t.Errorf("count_tokens at %s, %v", path, err)
	}
	_, path, err = fromAnthropic{}.TranslateRequest("/v1/messages", header(), body, toProfile)
	if err != nil || path != "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke" {
		t.Errorf("messages at %s, %v", path, err)
	}
}

package anthropic

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
)

func TestClassify(t *testing.T) {
	messages := clientformat.Endpoint{Name: "messages", Metered: true, Body: true}
	countTokens := clientformat.Endpoint{Name: "count_tokens", Body: true}
	models := clientformat.Endpoint{Name: "models"}
	probe := clientformat.Endpoint{Name: "probe", Probe: true}
	for _, tt := range []struct {
		method, path string
		want         clientformat.Endpoint
		ok           bool
	}{
		{"POST", "/v1/messages", messages, true},
		{"POST", "/v1/messages?beta=true", messages, true},
		{"POST", "/v1/messages/count_tokens?beta=true", countTokens, true},
		{"GET", "/v1/models", models, true},
		{"GET", "/v1/models/claude-sonnet-4-5", models, true},
		{"HEAD", "/", probe, true},
		{"HEAD", "/api/hello", probe, true},
		{"GET", "/v1/messages", clientformat.Endpoint{}, false},
		{"GET", "/", clientformat.Endpoint{}, false},
		{"POST", "/v1/complete", clientformat.Endpoint{}, false},
		{"POST", "/v1/chat/completions", clientformat.Endpoint{}, false},
	} {
		ep, ok, err := Format{}.Classify(tt.method, tt.path)
		if ep != tt.want || ok != tt.ok || err != nil {
			t.Errorf("%s %s: %+v %v %v; want %+v %v", tt.method, tt.path, ep, ok, err, tt.want, tt.ok)
		}
	}
}

// TestClassifyModelsPath: GET /v1/models/{id} is budget-exempt and goes out
// with the provider key, so only a well-formed id segment is a models request
// (issue 9, item 13); anything an edge could decode or normalise into another
// endpoint is this format's, and refused.
func TestClassifyModelsPath(t *testing.T) {
	for _, path := range []string{
		"/v1/models", "/v1/models?limit=1000", "/v1/models/claude-sonnet-4-5-20250929",
		"/v1/models/claude-3-5-sonnet-latest?beta=true", "/v1/models/anthropic.claude-3-5-sonnet-20240620-v1:0",
		"/v1/models/claude-opus-4.1",
	} {
		if ep, ok, err := (Format{}).Classify("GET", path); ep.Name != "models" || !ok || err != nil {
			t.Errorf("%s: %v %v %v; want a models request", path, ep, ok, err)
		}
	}
	for _, path := range []string{
		"/v1/models/%2e%2e/files", "/v1/models/%2E%2E/files", "/v1/models/..", "/v1/models/.",
		"/v1/models/../files", "/v1/models/./claude", "/v1/models/.%2e", "/v1/models/%2e",
		"/v1/models/..%2ffiles", "/v1/models/..%2Ffiles", "/v1/models/claude%2f..%2f..%2fv1%2ffiles",
		"/v1/models/..%5cfiles", "/v1/models/..\\files", "/v1/models/", "/v1/models//claude",
		"/v1/models/claude/", "/v1/models/claude/files", "/v1/models/-claude", "/v1/models/.hidden",
		"/v1/models/" + strings.Repeat("m", 257),
	} {
		ep, ok, err := Format{}.Classify("GET", path+"?beta=true")
		if ep.Name != "" || !ok || err == nil {
			t.Errorf("%s: %v %v %v; want a refusal", path, ep, ok, err)
			continue
		}
		want := "GET " + path + ": a model id is one path segment of letters, digits, '-', '.', '_' and ':', starting with a letter or digit; percent-escapes, dot-segments and further segments are refused"
		if err.Error() != want {
			t.Errorf("%s: %q", path, err)
		}
	}
}

package openai

import (
	"net/url"
	"testing"
)

// GET /v1/models and /v1/models/{id} go to the provider's models endpoint
// under its base URL (Azure: /openai/models, with its api-version); every
// other client path to its Chat Completions path.
func TestModelsPath(t *testing.T) {
	s := newSettings()
	s.BaseURL, _ = url.Parse("https://openrouter.ai/api/v1")
	azure := newSettings()
	azure.BaseURL, _ = url.Parse("https://res.openai.azure.com")
	azure.AzureDeployment, azure.APIVersion = "gpt", "2024-10-21"
	for _, tt := range []struct {
		s          *Settings
		path, want string
	}{
		{s, "/v1/models", "/api/v1/models"},
		{s, "/v1/models?limit=5", "/api/v1/models?limit=5"},
		{s, "/v1/models/gpt-4.1", "/api/v1/models/gpt-4.1"},
		{s, "/v1/modelsx", "/api/v1/chat/completions"},
		{s, "/v1/messages?beta=true", "/api/v1/chat/completions"},
		{azure, "/v1/models", "/openai/models?api-version=2024-10-21"},
		{azure, "/v1/models?x=1", "/openai/models?x=1&api-version=2024-10-21"},
	} {
		var got string
		tt.s.SetRequestHeaders(tt.path, func(string) bool { return false }, func(k, v string) {
			if k == ":path" {
				got = v
			}
		})
		if got != tt.want {
			t.Errorf("%s: %s; want %s", tt.path, got, tt.want)
		}
	}
}

// The provider's models answers become the Anthropic API's list and model.
func TestAnthropicModels(t *testing.T) {
	list := anthropicModels([]byte(`{"object":"list","data":[{"id":"a","object":"model","created":1744316542,"owned_by":"x"},{"id":"b","created":0}]}`), true)
	if string(list) != `{"data":[{"created_at":"2025-04-10T20:22:22Z","display_name":"a","id":"a","type":"model"},`+
		`{"created_at":"1970-01-01T00:00:00Z","display_name":"b","id":"b","type":"model"}],"first_id":"a","has_more":false,"last_id":"b"}` {
		t.Errorf("list %s", list)
	}
	if one := anthropicModels([]byte(`{"id":"a","created":1744316542}`), false); string(one) !=
		`{"created_at":"2025-04-10T20:22:22Z","display_name":"a","id":"a","type":"model"}` {
		t.Errorf("model %s", one)
	}
	if bad := anthropicModels([]byte(`[`), true); string(bad[:30]) != `{"type":"error","error":{"type` {
		t.Errorf("bad %s", bad)
	}
}

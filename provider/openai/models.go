package openai

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// clientModelsPath is the models endpoint's path, which the Anthropic and
// OpenAI APIs share.
const clientModelsPath = "/v1/models"

// modelsRest returns what follows /v1/models in clientPath (query
// included: "", "/{id}", "?limit=5"), and whether clientPath is GET
// /v1/models or /v1/models/{id} at all.
func modelsRest(clientPath string) (string, bool) {
	rest, ok := strings.CutPrefix(clientPath, clientModelsPath)
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
		return "", false
	}
	return rest, true
}

// isModelsPath reports whether clientPath is GET /v1/models or
// /v1/models/{id}.
func isModelsPath(clientPath string) bool {
	_, ok := modelsRest(clientPath)
	return ok
}

// ModelsPath returns the escaped path of the provider's models endpoint for
// a client's GET /v1/models or /v1/models/{id} (rest is what follows
// /v1/models, query included): the base URL's path plus /models and rest;
// with an Azure deployment, /openai/models and rest, with ?api-version=.
func (s *Settings) ModelsPath(rest string) string {
	p := strings.TrimSuffix(s.BaseURL.EscapedPath(), "/")
	if s.AzureDeployment != "" {
		p += "/openai"
	}
	p += "/models" + rest
	if s.APIVersion != "" {
		sep := "?"
		if strings.Contains(rest, "?") {
			sep = "&"
		}
		p += sep + "api-version=" + url.QueryEscape(s.APIVersion)
	}
	return p
}

// openAIModel is a model object of the OpenAI models API.
type openAIModel struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
}

// anthropicModel returns m as a model of the Anthropic models API: its id
// (also its display_name, the only name it has) and created_at from created
// (RFC 3339, UTC).
func anthropicModel(m openAIModel) map[string]any {
	return map[string]any{"type": "model", "id": m.ID, "display_name": m.ID,
		"created_at": time.Unix(m.Created, 0).UTC().Format(time.RFC3339)}
}

// anthropicModels returns an OpenAI models answer in the Anthropic API's
// shape: a list ({"object":"list","data":[...]}) as
// {"data":[...],"first_id","last_id","has_more":false}, one model (list
// false) as a model object. A body that does not decode becomes an
// api_error.
func anthropicModels(body []byte, list bool) []byte {
	if !list {
		var m openAIModel
		if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
			return errorJSON("api_error", "the provider's model answer does not decode")
		}
		out, _ := json.Marshal(anthropicModel(m))
		return out
	}
	var l struct {
		Data []openAIModel `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return errorJSON("api_error", "the provider's models answer does not decode: "+err.Error())
	}
	data := make([]any, 0, len(l.Data))
	var first, last any
	for i, m := range l.Data {
		data = append(data, anthropicModel(m))
		if i == 0 {
			first = m.ID
		}
		last = m.ID
	}
	out, _ := json.Marshal(map[string]any{"data": data, "first_id": first, "last_id": last, "has_more": false})
	return out
}

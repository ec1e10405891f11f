package openai

import (
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// Name is the format's name, in logs, in the routing decision and in the
// translations' lookup (translate.ClientOpenAI).
const Name = "openai"

// Format is the OpenAI Chat Completions client format. The zero value is
// ready to use; it holds no state, so one value serves every stream at once.
type Format struct{}

// Name returns "openai".
func (Format) Name() string { return Name }

// chatEndpoint is the format's one endpoint. It shares the name "messages"
// with the Anthropic format's, since it means the same (a metered model
// call): the policy's budget_exempt list and cost records name both alike.
func chatEndpoint() clientformat.Endpoint {
	return clientformat.Endpoint{Name: "messages", Metered: true, Body: true}
}

// modelsEndpoint is GET /v1/models and /v1/models/{id}, named as the
// Anthropic format's, since it means the same.
func modelsEndpoint() clientformat.Endpoint { return clientformat.Endpoint{Name: "models"} }

// Endpoints lists the endpoints a client of this format may call, for the
// 404 of a request that no format serves.
func (Format) Endpoints() []string { return []string{"POST /v1/chat/completions"} }

// Classify maps POST /v1/chat/completions (the query ignored) to the
// format's endpoint. GET /v1/models, which the Anthropic API has too, is
// claimed by the request's headers (ClassifyHeaders).
func (Format) Classify(method, path string) (ep clientformat.Endpoint, ok bool, err error) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "/v1/chat/completions" && method == "POST" {
		return chatEndpoint(), true, nil
	}
	return clientformat.Endpoint{}, false, nil
}

// ClassifyHeaders claims GET /v1/models and GET /v1/models/{id} (the query
// ignored) for an OpenAI client, told apart from an Anthropic one by its
// headers: its credential is Authorization: Bearer, and it sends neither
// x-api-key nor anthropic-version (every Anthropic SDK and Claude Code send
// anthropic-version, whatever their credential). Any other request is left
// to Classify and the other formats. A models path whose id is not one
// well-formed segment is claimed and refused (clientformat.ValidModelID), in
// this format's shape.
func (Format) ClassifyHeaders(method, path string, header func(name string) string) (ep clientformat.Endpoint, ok bool, err error) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if method != "GET" || !clientformat.IsModelsPath(path) || header == nil || !IsClient(header) {
		return clientformat.Endpoint{}, false, nil
	}
	if id, one := strings.CutPrefix(path, clientformat.ModelsPath+"/"); one && !clientformat.ValidModelID(id) {
		return clientformat.Endpoint{}, true, &clientformat.ModelPathError{Path: path}
	}
	return modelsEndpoint(), true, nil
}

// IsClient reports whether a request's headers (read by header) are an
// OpenAI client's rather than an Anthropic one's: an Authorization: Bearer
// credential, and neither x-api-key nor anthropic-version.
func IsClient(header func(name string) string) bool {
	auth := header("authorization")
	return len(auth) > len("bearer ") && strings.EqualFold(auth[:len("bearer ")], "bearer ") &&
		header("x-api-key") == "" && header("anthropic-version") == ""
}

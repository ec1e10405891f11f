package anthropic

import (
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// Format is the Anthropic Messages client format. The zero value is ready to
// use; it holds no state, so one value serves every stream at once.
//
// It implements extproc.ClientFormat (checked by extproc's tests, since
// this package does not import extproc).
type Format struct{}

// Name returns "anthropic".
func (Format) Name() string { return "anthropic" }

// messagesEndpoint and the three below are the format's endpoints. Their
// names are those of the policy's budget_exempt list and of cost records.
func messagesEndpoint() clientformat.Endpoint {
	return clientformat.Endpoint{Name: "messages", Metered: true, Body: true}
}

func countTokensEndpoint() clientformat.Endpoint {
	return clientformat.Endpoint{Name: "count_tokens", Body: true}
}

func modelsEndpoint() clientformat.Endpoint { return clientformat.Endpoint{Name: "models"} }

func probeEndpoint() clientformat.Endpoint { return clientformat.Endpoint{Name: "probe", Probe: true} }

// Endpoints lists the endpoints a client of this format may call, for the
// 404 of a request that no format serves.
func (Format) Endpoints() []string {
	return []string{"POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models"}
}

// Classify maps a method and path (the query ignored) to an endpoint of the
// Anthropic API: POST /v1/messages, POST /v1/messages/count_tokens, GET
// /v1/models and GET /v1/models/{id}, and HEAD / or HEAD /api/hello, Claude
// Code's credential-less warm-up probe. A models path whose id is not one
// well-formed segment (see clientformat.ValidModelID) is this format's and refused: ok is
// true and err says why.
func (Format) Classify(method, path string) (ep clientformat.Endpoint, ok bool, err error) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case path == "/v1/messages" && method == "POST":
		return messagesEndpoint(), true, nil
	case path == "/v1/messages/count_tokens" && method == "POST":
		return countTokensEndpoint(), true, nil
	case path == "/v1/models" && method == "GET":
		return modelsEndpoint(), true, nil
	case strings.HasPrefix(path, "/v1/models/") && method == "GET":
		if id := path[len("/v1/models/"):]; !clientformat.ValidModelID(id) {
			return clientformat.Endpoint{}, true, &clientformat.ModelPathError{Path: path}
		}
		return modelsEndpoint(), true, nil
	case (path == "/" || path == "/api/hello") && method == "HEAD":
		// Its answer is ignored; it only warms the connection.
		return probeEndpoint(), true, nil
	}
	return clientformat.Endpoint{}, false, nil
}

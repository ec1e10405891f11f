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

// Endpoints lists the endpoints a client of this format may call, for the
// 404 of a request that no format serves.
func (Format) Endpoints() []string { return []string{"POST /v1/chat/completions"} }

// Classify maps POST /v1/chat/completions (the query ignored) to the
// format's endpoint. GET /v1/models is left to the formats before it.
func (Format) Classify(method, path string) (ep clientformat.Endpoint, ok bool, err error) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "/v1/chat/completions" && method == "POST" {
		return chatEndpoint(), true, nil
	}
	return clientformat.Endpoint{}, false, nil
}

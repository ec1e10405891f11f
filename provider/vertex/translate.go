package vertex

import (
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/provider/internal/openaichat"
	"github.com/tollgate-dev/tollgate/translate"
)

// AnthropicVersion is the anthropic_version Vertex AI requires in the body of
// an Anthropic model's request.
const AnthropicVersion = "vertex-2023-10-16"

// The client paths an Anthropic client sends to Vertex AI, query excluded.
const (
	pathMessages    = "/v1/messages"
	pathCountTokens = "/v1/messages/count_tokens"
)

// The paths under a project's location that Vertex AI serves Anthropic
// models at.
const (
	modelsPath       = "/publishers/anthropic/models/"
	countTokensModel = "count-tokens"
)

// Translator returns the translation of requests written in clientFormat to
// a provider of this type, or false when a client of that format cannot be
// served by one: Anthropic Messages clients, and OpenAI Chat Completions
// clients through the Messages API (package openaichat: their request
// becomes a Messages request, which then goes as an Anthropic client's
// would, and the answer comes back as Chat Completions).
func (Type) Translator(clientFormat string) (translate.Translator, bool) {
	switch clientFormat {
	case translate.ClientAnthropic:
		return fromAnthropic{}, true
	case translate.ClientOpenAI:
		return &openaichat.Via{Inner: fromAnthropic{}}, true
	}
	return nil, false
}

// fromAnthropic sends an Anthropic Messages request to Vertex AI's
// rawPredict methods and turns Vertex AI's Google-style errors into the
// Messages API's.
type fromAnthropic struct{}

// NeedsBody implements [translate.Translator.NeedsBody]: every request to
// Vertex AI has its body translated, since the model leaves it for the path.
func (fromAnthropic) NeedsBody(bool) bool { return true }

// RequestBody implements [translate.Translator.RequestBody] for a Messages
// request. The adapter calls TranslateRequest, which also returns the path;
// this is for callers of the plain contract.
func (fromAnthropic) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	out, _, err := messagesBody(body, mapModel)
	return out, err == nil, err
}

// TranslateRequest implements [translate.RequestTranslator]: the body for
// Vertex AI and the path under the provider's location (the settings put
// /v1/projects/{project}/locations/{region} before it). A Messages request
// goes to /publishers/anthropic/models/{model}:rawPredict, or
// :streamRawPredict for stream:true, its model (mapped, escaped but for
// its "@") leaving the body; count_tokens goes to
// /publishers/anthropic/models/count-tokens:rawPredict with the model kept in
// the body (mapped, without an @default or @latest suffix). Both bodies get
// "anthropic_version":"vertex-2023-10-16" first, in place of any the client
// sent; stream stays (Vertex AI reads it), and every other byte is kept as
// it was.
//
// Betas stay in the anthropic-beta header, which Vertex AI reads as
// Anthropic does. Which betas and body fields Vertex AI accepts is decided
// before, by the compatibility table (Settings.AdaptRequest, compat.go): the
// adapter hands this the adapted body and sends the adapted betas in the
// header.
func (fromAnthropic) TranslateRequest(clientPath string, _ func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	p, _, _ := strings.Cut(clientPath, "?")
	switch p {
	case pathMessages:
		out, f, err := messagesBody(body, mapModel)
		if err != nil {
			return nil, "", err
		}
		method := ":rawPredict"
		if f.Stream {
			method = ":streamRawPredict"
		}
		return out, modelsPath + escapeSegment(mapModel(f.Model)) + method, nil
	case pathCountTokens:
		out, err := countTokensBody(body, mapModel)
		if err != nil {
			return nil, "", err
		}
		return out, modelsPath + countTokensModel + ":rawPredict", nil
	}
	return nil, "", errors.New("Vertex AI serves only POST /v1/messages and /v1/messages/count_tokens")
}

// messagesBody returns the rawPredict body for an Anthropic Messages body:
// model and any anthropic_version removed, and
// "anthropic_version":"vertex-2023-10-16" inserted first. Every other byte is
// kept as it was. The body must name a model.
func messagesBody(body []byte, mapModel func(string) string) ([]byte, reqbody.Fields, error) {
	f, ms, err := reqbody.Members(body)
	if err != nil {
		return nil, f, err
	}
	if !f.HasModel || mapModel(f.Model) == "" {
		return nil, f, errors.New("the request names no model")
	}
	removed := func(m reqbody.Member) bool { return m.Key == "model" || m.Key == "anthropic_version" }
	return withVersion(body, ms, removed, nil), f, nil
}

// countTokensBody returns the count-tokens:rawPredict body for an Anthropic
// count_tokens body: its model mapped and stripped of an @default or
// @latest suffix, any anthropic_version removed and
// "anthropic_version":"vertex-2023-10-16" inserted first.
func countTokensBody(body []byte, mapModel func(string) string) ([]byte, error) {
	f, ms, err := reqbody.Members(body)
	if err != nil {
		return nil, err
	}
	model := mapModel(f.Model)
	if !f.HasModel || model == "" {
		return nil, errors.New("the request names no model")
	}
	for _, suffix := range []string{"@default", "@latest"} {
		model = strings.TrimSuffix(model, suffix)
	}
	var edits []reqbody.Edit
	if model != f.Model {
		edits = append(edits, reqbody.ModelEdit(f, model))
	}
	removed := func(m reqbody.Member) bool { return m.Key == "anthropic_version" }
	return withVersion(body, ms, removed, edits), nil
}

// withVersion returns body (whose members are ms, at least one) with the
// members removed says to remove gone, "anthropic_version":"vertex-2023-10-16"
// inserted first, and the other edits made (none may touch a removed member).
func withVersion(body []byte, ms []reqbody.Member, removed func(reqbody.Member) bool, edits []reqbody.Edit) []byte {
	kept := 0
	for _, m := range ms {
		if !removed(m) {
			kept++
		}
	}
	ins := []byte(`"anthropic_version":"` + AnthropicVersion + `"`)
	if kept > 0 {
		ins = append(ins, ',')
	}
	// The insertion comes first in the list, before a removal starting at the
	// same offset (reqbody.RemoveMembers).
	all := append([]reqbody.Edit{reqbody.InsertAt(ms[0].KeySpan.Start, ins)}, reqbody.RemoveMembers(ms, removed)...)
	return reqbody.Apply(body, append(all, edits...)...)
}

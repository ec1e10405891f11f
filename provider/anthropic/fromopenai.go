package anthropic

import (
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/provider/internal/openaichat"
	"github.com/tollgate-dev/tollgate/translate"
)

// DefaultMaxTokens is the max_tokens an OpenAI client's request is sent with
// when it sets no output limit: the Messages API requires one, and Chat
// Completions has none by default.
const DefaultMaxTokens = openaichat.DefaultMaxTokens

// fromOpenAI sends an OpenAI Chat Completions request to the Messages API
// and turns the answers, JSON or SSE, back into Chat Completions (package
// openaichat). The value the adapter uses is one attempt's (ForAttempt): it
// holds the provider's base path and the model the request named.
type fromOpenAI struct {
	s     *Settings
	model string
}

// ForAttempt implements [translate.AttemptTranslator].
func (t *fromOpenAI) ForAttempt(settings any) translate.Translator {
	s, ok := settings.(*Settings)
	if !ok {
		s = newSettings()
	}
	return &fromOpenAI{s: s}
}

// NeedsBody implements [translate.Translator.NeedsBody]: every request is
// translated.
func (*fromOpenAI) NeedsBody(bool) bool { return true }

// CheckRequest implements [translate.RequestChecker]: a request at another
// path than POST /v1/chat/completions, or one openaichat.Check refuses (n
// above 1, among others), cannot be sent.
func (*fromOpenAI) CheckRequest(clientPath string, body []byte) error {
	if p, _, _ := strings.Cut(clientPath, "?"); p != openaichat.PathChat {
		return errors.New("an Anthropic provider serves OpenAI clients only at POST /v1/chat/completions")
	}
	return openaichat.Check(body)
}

// RequestBody implements [translate.Translator.RequestBody].
func (t *fromOpenAI) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	out, model, err := openaichat.Request(body, mapModel)
	t.model = model
	return out, err == nil, err
}

// TranslateRequest implements [translate.RequestTranslator]: the Messages
// request for a POST /v1/chat/completions, sent to /v1/messages under the
// provider's base.
func (t *fromOpenAI) TranslateRequest(clientPath string, _ func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	if p, _, _ := strings.Cut(clientPath, "?"); p != openaichat.PathChat {
		return nil, "", errors.New("an Anthropic provider serves OpenAI clients only at POST /v1/chat/completions")
	}
	out, model, err := openaichat.Request(body, mapModel)
	if err != nil {
		return nil, "", err
	}
	t.model = model
	base := t.s
	if base == nil {
		base = newSettings()
	}
	return out, JoinPath(base.BaseURL, openaichat.PathMessages), nil
}

// TranslateResponse implements [translate.ResponseTranslator] for an OpenAI
// client (openaichat.Response): an error in OpenAI's shape, an event stream
// as chat.completion.chunk events, a Message as a chat.completion, the
// models list (GET /v1/models, forwarded to the provider's path like an
// Anthropic client's) as OpenAI's.
func (t *fromOpenAI) TranslateResponse(clientPath string, status int, header func(string) string,
	set func(name, value string), remove func(name string), _ func(kind, msg string)) func([]byte, bool) []byte {
	return openaichat.Response(clientPath, t.model, status, header, set, remove)
}

package openai

import (
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/translate"
)

// pathMessages is the one client path an Anthropic client is served at by
// such a provider, query excluded.
const pathMessages = "/v1/messages"

// Translator returns the translation of requests written in clientFormat to
// a provider of this type, or false when a client of that format cannot be
// served by one: Anthropic Messages clients (translated) and OpenAI Chat
// Completions clients (native). The adapter makes it an attempt's own with
// ForAttempt.
func (Type) Translator(clientFormat string) (translate.Translator, bool) {
	switch clientFormat {
	case translate.ClientAnthropic:
		return &fromAnthropic{q: quirksOf(newSettings())}, true
	case translate.ClientOpenAI:
		return native{q: quirksOf(newSettings())}, true
	}
	return nil, false
}

// fromAnthropic sends an Anthropic Messages request to a Chat Completions
// API and turns the answers back into the Messages API's. The value the
// adapter uses is one attempt's (ForAttempt): it holds the provider's quirks
// and the tool names its request shortened, which its response restores.
type fromAnthropic struct {
	q     quirks
	names toolNames
	// model is the model id the request named, for an answer that names
	// none.
	model string
}

func quirksOf(s *Settings) quirks {
	return quirks{maxTokensField: s.MaxTokensField, streamOptions: s.StreamOptions, maxOutputTokens: s.MaxOutputTokens}
}

// ForAttempt implements [translate.AttemptTranslator]: a translation for one
// attempt to the provider whose settings are given (a *Settings).
func (t *fromAnthropic) ForAttempt(settings any) translate.Translator {
	s, ok := settings.(*Settings)
	if !ok {
		s = newSettings()
	}
	return &fromAnthropic{q: quirksOf(s), names: toolNames{limit: s.ToolNameLimit}}
}

// NeedsBody implements [translate.Translator.NeedsBody]: every request is
// translated.
func (*fromAnthropic) NeedsBody(bool) bool { return true }

// RequestBody implements [translate.Translator.RequestBody]: the Chat
// Completions request for an Anthropic Messages request.
func (t *fromAnthropic) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	out, model, err := translateRequest(body, mapModel, t.q, &t.names)
	t.model = model
	return out, err == nil, err
}

// TranslateRequest implements [translate.RequestTranslator]: RequestBody's
// translation for POST /v1/messages, the one endpoint such a provider
// serves for Anthropic clients (count_tokens has no Chat Completions
// equivalent, and is refused). The path stays the one the settings set at
// the request headers.
func (t *fromAnthropic) TranslateRequest(clientPath string, _ func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	if p, _, _ := strings.Cut(clientPath, "?"); p != pathMessages {
		return nil, "", errors.New("an OpenAI-compatible provider serves only POST /v1/messages")
	}
	out, model, err := translateRequest(body, mapModel, t.q, &t.names)
	t.model = model
	return out, "", err
}

package anthropic

import (
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/translate"
)

// Translator returns the translation of requests written in clientFormat to
// a provider of this type, or false when a client of that format cannot be
// served by one: Anthropic Messages clients (the body as it is) and OpenAI
// Chat Completions clients (translated, fromOpenAI).
func (Type) Translator(clientFormat string) (translate.Translator, bool) {
	switch clientFormat {
	case translate.ClientAnthropic:
		return fromAnthropic{}, true
	case translate.ClientOpenAI:
		return &fromOpenAI{}, true
	}
	return nil, false
}

// fromAnthropic sends an Anthropic Messages request to a provider that speaks
// the same API: the body goes as it is, apart from the model id. Every other
// byte is kept, so prompt caching sees the client's own bytes.
type fromAnthropic struct{}

// NeedsBody implements [translate.Translator.NeedsBody]: only a model id that
// may change needs the body.
func (fromAnthropic) NeedsBody(mapsModel bool) bool { return mapsModel }

// RequestBody implements [translate.Translator.RequestBody]. A body without a
// model, or one that does not scan, goes unchanged: the policy role validated
// it, and the router replays the same bytes to every attempt.
func (fromAnthropic) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	f, err := reqbody.Scan(body)
	if err != nil || !f.HasModel {
		return body, false, nil
	}
	mapped := mapModel(f.Model)
	if mapped == f.Model {
		return body, false, nil
	}
	return reqbody.ReplaceModel(body, f, mapped), true, nil
}

package openai

import (
	"bytes"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/translate"
)

// native sends an OpenAI Chat Completions request to a provider that speaks
// the same API: the body goes as the client sent it (the client format has
// already made a stream ask for usage), apart from the model id and what the
// provider's quirks require: the output limit under the field the provider
// takes (max_tokens_field), and no stream_options for an API that refuses
// them. Every other byte is kept, and edits are made in place.
type native struct{ q quirks }

// ForAttempt implements [translate.AttemptTranslator]: the translation for
// one attempt to the provider whose settings are given (a *Settings).
func (native) ForAttempt(settings any) translate.Translator {
	s, ok := settings.(*Settings)
	if !ok {
		s = newSettings()
	}
	return native{q: quirksOf(s)}
}

// NeedsBody implements [translate.Translator.NeedsBody]: the body is read
// when the model id may change, or the provider's quirks may change it.
func (t native) NeedsBody(mapsModel bool) bool {
	return mapsModel || !t.q.streamOptions || t.q.maxTokensField == MaxTokens
}

// RequestBody implements [translate.Translator.RequestBody]. A body that
// does not scan goes unchanged: the policy role validated it.
func (t native) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	f, ms, err := reqbody.Members(body)
	if err != nil {
		return body, false, nil
	}
	var edits []reqbody.Edit
	if f.HasModel {
		if mapped := mapModel(f.Model); mapped != f.Model {
			edits = append(edits, reqbody.ModelEdit(f, mapped))
		}
	}
	// The client's output limit goes under the field the provider takes;
	// "null" is as good as absent.
	want, other := t.q.maxTokensField, MaxTokens
	if want == MaxTokens {
		other = MaxCompletionTokens
	}
	var hasWant bool
	for _, m := range ms {
		if m.Key == want && !bytes.Equal(body[m.Value.Start:m.Value.End], []byte("null")) {
			hasWant = true
		}
	}
	var remove []string
	for _, m := range ms {
		switch {
		case m.Key == other && !hasWant:
			edits = append(edits, reqbody.Edit{Span: m.KeySpan, Value: []byte(`"` + want + `"`)})
		case m.Key == other:
			remove = append(remove, other)
		case m.Key == "stream_options" && !t.q.streamOptions:
			remove = append(remove, m.Key)
		}
	}
	if len(remove) > 0 {
		edits = append(edits, reqbody.RemoveMembers(ms, func(m reqbody.Member) bool {
			for _, k := range remove {
				if m.Key == k {
					return true
				}
			}
			return false
		})...)
	}
	if len(edits) == 0 {
		return body, false, nil
	}
	return reqbody.Apply(body, edits...), true, nil
}

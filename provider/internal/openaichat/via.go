package openaichat

import (
	"errors"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/translate"
)

// Inner is a provider type's translation from Anthropic Messages clients
// that also chooses the path (Bedrock, Vertex AI: the model goes to it) and
// translates the provider's answers back to the Messages API's.
type Inner interface {
	translate.Translator
	translate.RequestTranslator
	translate.ResponseTranslator
}

// Via is the translation from OpenAI Chat Completions clients to a provider
// whose translation from Anthropic clients is Inner: the request becomes a
// Messages request (ToMessages, [Request]), which the adapter hands to the
// provider's compatibility table as it would an Anthropic client's, and
// then Inner's TranslateRequest gives its body, path and (through the
// provider's settings) credentials; the answer goes through Inner's
// TranslateResponse to the Messages API's, then [Response] to Chat
// Completions. The value a provider type registers is a template: the
// adapter uses ForAttempt's, which holds one attempt's state (the client's
// model id, for answers that name none).
type Via struct {
	Inner Inner
	// model is the client's model id; converted reports that ToMessages
	// ran, so that TranslateRequest gets a Messages body.
	model     string
	converted bool
}

// ForAttempt implements [translate.AttemptTranslator]: a fresh Via over the
// same Inner.
func (v *Via) ForAttempt(any) translate.Translator { return &Via{Inner: v.Inner} }

// NeedsBody implements [translate.Translator.NeedsBody]: every request is
// translated.
func (*Via) NeedsBody(bool) bool { return true }

// identity leaves a model id as it is: Inner maps it.
func identity(model string) string { return model }

// ToMessages returns the Messages request for a Chat Completions request at
// clientPath, and the Messages path it stands for (PathMessages). The
// adapter calls it at the attempt's request body, before the provider's
// compatibility table, and then TranslateRequest with what it returned. The
// model id stays the client's: Inner maps it.
func (v *Via) ToMessages(clientPath string, body []byte) ([]byte, string, error) {
	if p, _, _ := strings.Cut(clientPath, "?"); p != PathChat {
		return nil, "", errors.New("OpenAI clients are served only at POST " + PathChat)
	}
	out, model, err := Request(body, identity)
	if err != nil {
		return nil, "", err
	}
	v.model, v.converted = model, true
	return out, PathMessages, nil
}

// CheckRequest implements [translate.RequestChecker]: a request at another
// path than PathChat, or one [Check] refuses, cannot be sent.
func (*Via) CheckRequest(clientPath string, body []byte) error {
	if p, _, _ := strings.Cut(clientPath, "?"); p != PathChat {
		return errors.New("OpenAI clients are served only at POST " + PathChat)
	}
	return Check(body)
}

// RequestBody implements [translate.Translator.RequestBody]: Inner's body
// for the Messages request.
func (v *Via) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	msgs, _, err := v.ToMessages(PathChat, body)
	if err != nil {
		return nil, false, err
	}
	out, _, err := v.Inner.RequestBody(msgs, mapModel)
	return out, err == nil, err
}

// TranslateRequest implements [translate.RequestTranslator]: Inner's body
// and path for body, the Messages request ToMessages returned (or, when
// ToMessages was not called, the Chat Completions request at clientPath,
// translated here without a compatibility table).
func (v *Via) TranslateRequest(clientPath string, header func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	if !v.converted {
		msgs, _, err := v.ToMessages(clientPath, body)
		if err != nil {
			return nil, "", err
		}
		body = msgs
	}
	return v.Inner.TranslateRequest(PathMessages, header, body, mapModel)
}

// TranslateResponse implements [translate.ResponseTranslator]: Inner's
// translation, then [Response] (see Compose).
func (v *Via) TranslateResponse(clientPath string, status int, header func(string) string,
	set func(name, value string), remove func(name string), warn func(kind, msg string)) func([]byte, bool) []byte {
	return Compose(v.Inner.TranslateResponse, clientPath, v.model, status, header, set, remove, warn)
}

// headerEdit is one header set or removed by a response translation.
type headerEdit struct {
	name, value string
	removed     bool
}

// Compose returns the translation for an OpenAI client's request to
// clientPath of the answer of a provider whose own translation to the
// Messages API is inner (a [translate.ResponseTranslator]'s
// TranslateResponse, called for PathMessages when clientPath is PathChat,
// else for clientPath): inner turns the provider's answer (Bedrock's event stream
// and errors, Vertex AI's Google errors) into the Messages API's, and
// [Response] turns that into Chat Completions, seeing the status and the
// headers inner set. Each header either sets or removes reaches set or
// remove once, with its final value, in the order first touched. model is
// the client's model id.
func Compose(inner func(clientPath string, status int, header func(string) string, set func(name, value string),
	remove func(name string), warn func(kind, msg string)) func([]byte, bool) []byte,
	clientPath, model string, status int, header func(string) string, set func(name, value string), remove func(name string),
	warn func(kind, msg string)) func([]byte, bool) []byte {
	var edits []headerEdit
	edit := func(e headerEdit) {
		for i := range edits {
			if edits[i].name == e.name {
				edits[i] = e
				return
			}
		}
		edits = append(edits, e)
	}
	innerSet := func(name, value string) {
		edit(headerEdit{name: name, value: value})
		if name == ":status" {
			if n, err := strconv.Atoi(value); err == nil {
				status = n
			}
		}
	}
	innerRemove := func(name string) { edit(headerEdit{name: name, removed: true}) }
	view := func(name string) string {
		for _, e := range edits {
			if e.name == name {
				return e.value // "" when removed
			}
		}
		return header(name)
	}
	innerPath := clientPath
	if pathOnly(clientPath) == PathChat {
		innerPath = PathMessages
	}
	ib := inner(innerPath, status, header, innerSet, innerRemove, warn)
	ob := Response(clientPath, model, status, view, innerSet, innerRemove)
	for _, e := range edits {
		if e.removed {
			remove(e.name)
		} else {
			set(e.name, e.value)
		}
	}
	switch {
	case ib == nil:
		return ob
	case ob == nil:
		return ib
	}
	return func(chunk []byte, end bool) []byte { return ob(ib(chunk, end), end) }
}

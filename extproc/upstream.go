package extproc

import (
	"context"
	"time"

	"github.com/tollgate-dev/tollgate/translate"
)

// Upstream is what the adapter needs of the provider an attempt goes to. A
// loaded policy's Provider.Settings implements it for every registered
// provider type: *anthropic.Settings (package provider/anthropic) for type
// anthropic. TestProviderTypesAreUpstreams checks every registered type.
type Upstream interface {
	// SetRequestHeaders sets, through set, the headers an attempt to the
	// provider needs on a request whose client-facing path was clientPath
	// (query included): the host (:authority), the path under the provider's
	// base, the credentials, and defaults for headers the client did not send
	// (sent reports which headers the request carries). Each is an overwrite.
	SetRequestHeaders(clientPath string, sent func(name string) bool, set func(name, value string))
	// CredentialHeaders returns the request headers through which the
	// provider is authenticated. An attempt to any other provider of the
	// chain removes them: Envoy keeps one request header map across attempts
	// (ENVOY-EXTPROC section 12).
	CredentialHeaders() []string
}

// Translation adapts an attempt's request from the client's format to that of
// the provider's type. The wiring sets Options.Translation to package
// provider's lookup: each provider type translates from the client formats it
// serves. A translation may also implement RequestTranslation (a path chosen
// from the body) and ResponseTranslation (a provider answering in another
// format).
type Translation interface {
	// NeedsBody reports whether the attempt's request body must pass through
	// RequestBody; mapsModel says whether the policy may change the model id
	// of the attempt. When it is false, the adapter asks Envoy not to send
	// the body.
	NeedsBody(mapsModel bool) bool
	// RequestBody returns the body to send for body, with its model id mapped
	// by mapModel; changed is false when the body goes as it is. An error
	// means the body cannot be sent to the provider.
	RequestBody(body []byte, mapModel func(model string) string) (out []byte, changed bool, err error)
}

// AttemptTranslation is implemented by a Translation that depends on the
// provider's settings or keeps state from an attempt's request to its
// response (translate.AttemptTranslator). The adapter calls ForAttempt once
// per attempt with the provider's Settings and uses what it returns for that
// attempt only.
type AttemptTranslation interface {
	ForAttempt(settings any) translate.Translator
}

// RequestTranslation is implemented by a Translation whose provider takes
// the request at a path chosen from the body (translate.RequestTranslator).
// The adapter calls it at the body instead of RequestBody, sends its body,
// and has the Upstream set the path (BodyHeaders) or sets it itself.
type RequestTranslation interface {
	// TranslateRequest returns the body to send and the path under the
	// provider's base, for a request to clientPath with the headers header
	// reads and body, its model mapped by mapModel.
	TranslateRequest(clientPath string, header func(name string) string, body []byte, mapModel func(model string) string) (out []byte, path string, err error)
}

// MessagesTranslation is implemented by a Translation from another client
// format to a provider that takes Anthropic Messages requests through
// adaptations of its own (an OpenAI client to Bedrock or Vertex AI,
// translate.MessagesTranslator). The adapter calls ToMessages first, at the
// attempt's request body: the returned Messages request then goes through
// the provider's RequestAdapter like an Anthropic client's, and reaches the
// RequestTranslation as its body, with messagesPath as its client path.
type MessagesTranslation interface {
	ToMessages(clientPath string, body []byte) (messages []byte, messagesPath string, err error)
}

// ResponseTranslation is implemented by a Translation whose provider answers
// in another format (translate.ResponseTranslator). At the attempt's response
// headers it changes them through set and remove and returns the body's
// translation, or nil; the adapter then asks Envoy for the body chunk by
// chunk (mode_override STREAMED) and sends what the function returns for
// each chunk in its place. What the translation reports through warn is
// logged and counted (tollgate_translation_warnings_total).
type ResponseTranslation interface {
	TranslateResponse(clientPath string, status int, header func(name string) string,
		set func(name, value string), remove func(name string), warn func(kind, msg string)) (body func(chunk []byte, end bool) []byte)
}

// RequestCheck is implemented by a Translation that can tell from the
// client's request body alone that it cannot send it to its provider (an
// OpenAI client's n above 1 to a provider that answers one choice, a role
// the provider's API has no equivalent for). The policy role calls it, with
// the client's path (query included), for the type of every provider of the
// route's chain, before the request is reserved, cached or forwarded, so
// that such a request is refused at once rather than by an attempt's
// adapter. An error is the client's 400; a *clientformat.FieldError in it
// names the field (the OpenAI error's param).
type RequestCheck interface {
	CheckRequest(clientPath string, body []byte) error
}

// BodyHeaders is implemented by an Upstream whose path and credentials
// depend on the translated request (a signature over the body: SigV4 for
// Bedrock). The adapter calls it at the body, after a RequestTranslation,
// with the request's method, the translation's path and the final body; now
// is the signing time. It sets :path (under the provider's base) and the
// credentials through set. An error (credentials that cannot be had) refuses
// the attempt.
type BodyHeaders interface {
	SetBodyHeaders(ctx context.Context, now time.Time, method, path string, body []byte, set func(name, value string)) error
}

// RequestAdapter is implemented by an Upstream whose provider accepts only
// part of what clients send: some anthropic-beta values and the body fields
// they gate (a cloud's compatibility table, provider/internal/cloudcompat).
// The adapter calls it at the request body of every attempt to such a
// provider, before the translation, with the anthropic-beta header's value;
// the translation then gets the returned body, and the returned betas as
// that header's value (the header map itself changes only for a
// HeaderBetas provider, and each attempt first restores the client's value,
// since attempts share it). note is called for each beta or field not passed as
// it was; the adapter logs it and counts it (tollgate_compat_actions_total).
// An error means the body is not a JSON object.
type RequestAdapter interface {
	AdaptRequest(body []byte, betas string, note func(key, action, detail string)) (out []byte, outBetas string, err error)
}

// HeaderBetas is implemented by a RequestAdapter whose provider reads betas
// in the anthropic-beta header (Vertex AI), not in the body (Bedrock). When
// BetasInHeader is true, the adapter sends AdaptRequest's betas in that
// header, in this attempt's body reply (removing it when none remain). Every
// attempt's adapter first sets the header back to the client's value (from
// the decision, which carries it), so a later attempt to Anthropic gets the
// client's betas verbatim.
type HeaderBetas interface {
	BetasInHeader() bool
}

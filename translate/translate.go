// Package translate declares what a translation is: how a request written in
// a client format (the API a client speaks to Tollgate, such as the Anthropic
// Messages API) is sent to a provider of some type (the API an upstream
// speaks). It holds the contract and the names of the client formats, and no
// translation: each provider type's package under provider/ translates from
// every client format it serves, and package provider registers the types.
// The adapter chooses a translation per attempt from the request's client
// format and the type of the provider Envoy picked, so a fallback to a
// provider of another type translates the same client request differently.
//
// A translation whose provider needs more than a new body (a path that holds
// the model, as Bedrock's does) also implements [RequestTranslator]; one
// whose provider answers in another format (Bedrock's event stream) also
// implements [ResponseTranslator], which the adapter calls on the attempt's
// response headers and body. One that depends on the provider's settings, or
// keeps state from an attempt's request to its response (OpenAI-compatible
// providers: their quirks, and the tool names they shortened), also
// implements [AttemptTranslator], and the adapter uses a fresh one per
// attempt. One from another client format to a provider with a
// compatibility table (an OpenAI client to Bedrock or Vertex AI) also
// implements [MessagesTranslator]: the request becomes a Messages request
// first, which the table and the provider's own translation then take.
package translate

// ClientAnthropic names the Anthropic Messages client format.
const ClientAnthropic = "anthropic"

// ClientOpenAI names the OpenAI Chat Completions client format.
const ClientOpenAI = "openai"

// Translator translates the requests of one (client format, provider type)
// pair. Implementations are stateless and safe for concurrent use.
type Translator interface {
	// NeedsBody reports whether an attempt's request body must pass through
	// RequestBody; mapsModel says whether the policy may change the model id
	// of the attempt (false when it surely does not). When it is false, the
	// adapter asks Envoy not to send the body.
	NeedsBody(mapsModel bool) bool
	// RequestBody returns the body to send to the provider for body, a
	// request in the client format, with its model id mapped by mapModel;
	// changed is false when the body goes as it is. An error means the body
	// cannot be sent to the provider; the client gets it as a refusal.
	RequestBody(body []byte, mapModel func(model string) string) (out []byte, changed bool, err error)
}

// RequestTranslator is implemented by a Translator whose provider takes the
// request at another path, chosen from the body. The adapter then calls
// TranslateRequest instead of RequestBody, at the attempt's request body,
// where it can still change the request headers (Envoy buffers the body and
// has sent nothing upstream yet).
type RequestTranslator interface {
	// TranslateRequest returns the body to send for body, a request in the
	// client format sent to clientPath (the client-facing path, query
	// included) with the request headers header reads, its model id mapped
	// by mapModel; and the path to send it to under the provider's base
	// (escaped, with its query if any). The provider's settings then set
	// the path and the credentials, which may sign the body. An error means
	// the request cannot be sent to the provider; the client gets it as a
	// refusal.
	TranslateRequest(clientPath string, header func(name string) string, body []byte, mapModel func(model string) string) (out []byte, path string, err error)
}

// ResponseTranslator is implemented by a Translator whose provider answers in
// another format than the client's, or with other error statuses.
type ResponseTranslator interface {
	// TranslateResponse is called at an attempt's response headers, with
	// the client-facing path of its request, the response status and a
	// reader of the response headers. It changes headers through set
	// (":status" included) and remove, and returns the translation of the
	// body: called with each chunk as it arrives (end is true on the last),
	// it returns the bytes to send in its place, possibly none. It returns
	// nil when the body passes as it is. The returned function holds the
	// state of one response and is called from one goroutine at a time.
	// It reports through warn what the translation noticed but did not act
	// on (kind is a short label such as "usage_mismatch", msg the details),
	// which the adapter logs and counts.
	TranslateResponse(clientPath string, status int, header func(name string) string,
		set func(name, value string), remove func(name string), warn func(kind, msg string)) (body func(chunk []byte, end bool) []byte)
}

// MessagesTranslator is implemented by a Translator from another client
// format (OpenAI Chat Completions) to a provider that takes Anthropic
// Messages requests through adaptations of its own (Bedrock, Vertex AI: a
// compatibility table, a body, path and credentials of their own). The
// adapter calls ToMessages first, at an attempt's request body, applies the
// provider's compatibility table to the Messages request it returns as it
// would to an Anthropic client's, and then calls TranslateRequest
// ([RequestTranslator]) with that request as the body and messagesPath as
// the client path.
type MessagesTranslator interface {
	// ToMessages returns the Messages request for body, a request in the
	// client format sent to clientPath, and the Messages API path it stands
	// for (/v1/messages). An error means the request cannot be sent to the
	// provider; the client gets it as a refusal.
	ToMessages(clientPath string, body []byte) (messages []byte, messagesPath string, err error)
}

// AttemptTranslator is implemented by a Translator that depends on the
// settings of the provider an attempt goes to (an OpenAI-compatible
// provider's quirks), or that keeps state from an attempt's request to its
// response (tool names it shortened, restored in the answer). The adapter
// calls ForAttempt once per attempt, with the provider's settings (the value
// its type's NewSettings returned, as the policy decoded it), and uses the
// returned Translator, which may then hold that one attempt's state, for
// that attempt only: its request and its response, from one goroutine at a
// time.
type AttemptTranslator interface {
	ForAttempt(settings any) Translator
}

// RequestChecker is implemented by a Translator that can tell from a
// client's request body alone that the request cannot be sent to its
// provider (an OpenAI client's n above 1 to a provider that answers one
// choice). The gateway calls CheckRequest, with the client-facing path
// (query included) and the client's body, for every provider of a route's
// chain before it reserves budget or forwards anything, and refuses the
// request with a 400 on an error; a *clientformat.FieldError names the
// field.
type RequestChecker interface {
	CheckRequest(clientPath string, body []byte) error
}

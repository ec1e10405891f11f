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
// Responses are not translated yet: every pair so far answers in the client's
// format. A pair whose provider answers in another format (Bedrock's event
// stream, OpenAI's chat chunks) will add response methods to [Translator],
// which the adapter calls on the attempt's response headers and body.
package translate

// ClientAnthropic names the Anthropic Messages client format.
const ClientAnthropic = "anthropic"

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

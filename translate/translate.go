// Package translate holds the translations between a client format (the API a
// client speaks to Tollgate, such as the Anthropic Messages API) and a
// provider type (the API an upstream speaks, see provider/), one per pair, in
// one file per pair. The adapter chooses one per attempt from the pair of the
// request's client format and the type of the provider Envoy picked, so a
// fallback to a provider of another type translates the same client request
// differently.
//
// Only the pair anthropic -> anthropic exists: the identity, apart from the
// model id that the policy maps per route and provider.
//
// Responses are not translated yet: every pair so far answers in the client's
// format. A pair whose provider answers in another format (Bedrock's event
// stream, OpenAI's chat chunks) will add response methods to [Translator],
// which the adapter calls on the attempt's response headers and body.
package translate

import "github.com/tollgate-dev/tollgate/provider/anthropic"

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

// Pair names a translation: the client format a request is written in and
// the provider type it is sent to.
type Pair struct {
	Client, Provider string
}

// pairs lists every translation, one line per pair. Adding a pair is a file
// in this package plus its line here. It is never modified.
var pairs = map[Pair]Translator{
	{Client: ClientAnthropic, Provider: anthropic.TypeName}: anthropicToAnthropic{},
}

// Lookup returns the translation from clientFormat to providerType, or false
// when there is none: a client of that format cannot be served by a provider
// of that type.
func Lookup(clientFormat, providerType string) (Translator, bool) {
	t, ok := pairs[Pair{Client: clientFormat, Provider: providerType}]
	return t, ok
}

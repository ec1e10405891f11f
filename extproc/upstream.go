package extproc

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

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

// Translation adapts an attempt's request from the client's format to that of
// the provider's type. The wiring sets Options.Translation to package
// provider's lookup: each provider type translates from the client formats it
// serves. Responses pass untranslated so far.
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

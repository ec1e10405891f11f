// Package anthropic is the Anthropic upstream provider type: the Anthropic API
// itself and any endpoint that speaks the Messages API natively under a base
// URL. It owns what a policy says about such a provider (its [Settings]:
// base_url, api_key, api_key_file) and what one attempt to it needs: the host,
// the path under the base URL, the x-api-key credential and a default
// anthropic-version.
//
// The package knows nothing of the policy file's syntax or of Envoy. The policy
// decoder reaches it through [Type] (registered in package provider), and the
// adapter through the methods of [*Settings] and the translation
// [Type.Translator] returns; both declare the interfaces they need, which
// these types satisfy structurally.
//
// The request body is the business of that translation: for an Anthropic
// client it passes unchanged apart from the model id.
package anthropic

import (
	"net/url"
	"strings"
)

// TypeName is the value of a provider's type field that selects this type.
const TypeName = "anthropic"

// DefaultBaseURL is where a provider of this type sends requests when its
// policy entry has no base_url.
const DefaultBaseURL = "https://api.anthropic.com"

// DefaultVersion is the anthropic-version sent when the client sent none.
const DefaultVersion = "2023-06-01"

// hdrAPIKey carries the provider's credential.
const hdrAPIKey = "x-api-key"

// Type is the anthropic provider type. Its zero value is ready to use.
type Type struct{}

// Name returns "anthropic", the value of the type field that selects the type.
func (Type) Name() string { return TypeName }

// Fields returns the fields of a provider of this type besides the ones every
// provider has, in the order messages list them.
func (Type) Fields() []string { return []string{fieldBaseURL, fieldAPIKey, fieldAPIKeyFile} }

// NewSettings returns fresh settings, a *Settings with the default base URL,
// for the policy decoder to fill in.
func (Type) NewSettings() any { return newSettings() }

// SetRequestHeaders sets, through set, the headers one attempt to this
// provider needs on a request whose client-facing path was clientPath (query
// included): the host, the path under the base URL, the credential, and
// anthropic-version when the client did not send one (sent reports which
// headers the request carries). anthropic-beta and every other client header
// are left as sent: Claude Code's beta headers must reach the provider
// verbatim. Every header is an overwrite, never an append.
func (s *Settings) SetRequestHeaders(clientPath string, sent func(name string) bool, set func(name, value string)) {
	set(":authority", s.BaseURL.Host)
	set(":path", JoinPath(s.BaseURL, clientPath))
	if key := s.APIKey.Reveal(); key != "" {
		set(hdrAPIKey, key)
	}
	if !sent("anthropic-version") {
		set("anthropic-version", DefaultVersion)
	}
}

// CredentialHeaders returns the request headers through which a provider of
// this type is authenticated: x-api-key. An attempt to any other provider
// removes them, since Envoy keeps one request header map across attempts.
func (s *Settings) CredentialHeaders() []string { return []string{hdrAPIKey} }

// JoinPath puts clientPath (which starts with "/") under the base URL's path.
func JoinPath(base *url.URL, clientPath string) string {
	prefix := strings.TrimSuffix(base.EscapedPath(), "/")
	return prefix + clientPath
}

// Package vertex is the Google Vertex AI upstream provider type, for
// Anthropic models through rawPredict, streamRawPredict and
// count-tokens:rawPredict (WIRE-FORMATS section 5). It owns what a policy
// says about such a provider (its [Settings]: project, region, base_url and
// the Google credentials), what one attempt to it needs (the host, the path
// under /v1/projects/{project}/locations/{region}, and an OAuth2 access token
// as bearer, cached and refreshed before expiry, shared by every stream), and
// the translation from Anthropic Messages clients: the request body gains
// anthropic_version and loses model (to the path); Vertex answers in
// Anthropic's own JSON and SSE, so only its Google-style errors are
// translated. OpenAI Chat Completions clients are served through the same
// translation (package openaichat).
//
// Like every provider type's package, it imports neither package provider,
// nor policy, nor extproc: the adapter reaches it through interfaces it
// declares, which these types satisfy structurally.
package vertex

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TypeName is the value of a provider's type field that selects this type.
const TypeName = "vertex"

// hdrAuthorization carries the OAuth2 access token.
const hdrAuthorization = "authorization"

// Type is the vertex provider type. Its zero value is ready to use.
type Type struct{}

// Name returns "vertex", the value of the type field that selects the type.
func (Type) Name() string { return TypeName }

// Fields returns the fields of a provider of this type besides the ones every
// provider has, in the order messages list them.
func (Type) Fields() []string { return fieldNames() }

// NewSettings returns fresh settings, a *Settings, for the policy decoder to
// fill in.
func (Type) NewSettings() any { return newSettings() }

// SetRequestHeaders sets, through set, the headers an attempt to this
// provider needs at its request headers: the host. The path, which holds the
// model from the body, and the access token are set at the body
// (TranslateRequest, then SetBodyHeaders), where the stream's context is at
// hand for a token that must be fetched first.
func (s *Settings) SetRequestHeaders(_ string, _ func(name string) bool, set func(name, value string)) {
	set(":authority", s.BaseURL.Host)
}

// CredentialHeaders returns the request headers through which a provider of
// this type is authenticated. An attempt to any other provider removes them,
// since Envoy keeps one request header map across attempts.
func (s *Settings) CredentialHeaders() []string { return []string{hdrAuthorization} }

// SetBodyHeaders sets, through set, the path and the credentials of a
// request once its body is final: the path is the base URL's, then
// /v1/projects/{project}/locations/{region}, then path (from the
// translation: /publishers/anthropic/models/{model}:rawPredict and the
// like); the credentials are authorization: Bearer with an access token from
// the shared cache (see tokenCache), valid at now. A request waits, until
// ctx ends, only when the cache holds no usable token (the first request, or
// after refreshes failed).
func (s *Settings) SetBodyHeaders(ctx context.Context, now time.Time, _, path string, _ []byte, set func(name, value string)) error {
	set(":path", s.resourcePath()+path)
	if s.tokens == nil {
		return errors.New("no Google credentials: the policy's secrets did not resolve")
	}
	auth, err := s.tokens.header(ctx, now)
	if err != nil {
		return fmt.Errorf("Google access token: %w", err)
	}
	set(hdrAuthorization, auth)
	return nil
}

// resourcePath returns the escaped path under which the provider's
// publisher models are: the base URL's path, then
// /v1/projects/{project}/locations/{region}.
func (s *Settings) resourcePath() string {
	return strings.TrimSuffix(s.BaseURL.EscapedPath(), "/") + "/v1/projects/" + escapeSegment(s.Project) +
		"/locations/" + escapeSegment(s.Region)
}

// Endpoint returns where attempts to this provider connect: the host of the
// base URL (the region's Vertex AI host unless base_url says otherwise), its
// port (the URL's, or 443 for https and 80 for http), and whether the
// connection uses TLS (https). `tollgate envoy render` writes the provider's
// Envoy cluster from it; it needs no credentials.
func (s *Settings) Endpoint() (host string, port int, tls bool) {
	tls = s.BaseURL.Scheme == "https"
	port = 80
	if tls {
		port = 443
	}
	if p := s.BaseURL.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			port = n
		}
	}
	return strings.ToLower(s.BaseURL.Hostname()), port, tls
}

// escapeSegment escapes s for one path segment: every byte but the
// unreserved ones (letters, digits, "-", "_", ".", "~") and "@" (Vertex's
// model versions, claude-sonnet-4@20250514) is percent-encoded, so a ":"
// cannot pose as the method suffix and a "/" cannot start another segment.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '@' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

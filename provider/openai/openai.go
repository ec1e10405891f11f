// Package openai is the upstream provider type for OpenAI's Chat Completions
// API and the many APIs compatible with it (Azure OpenAI, OpenRouter, Groq,
// Together, Fireworks, DeepSeek, Mistral, vLLM, Ollama, ...). It owns what a
// policy says about such a provider (its [Settings]: base URL, how the key is
// sent, extra headers and the API's quirks as data), what one attempt to it
// needs (host, path, key), and the translation from Anthropic Messages
// clients (WIRE-FORMATS section 6): the request becomes a Chat Completions
// request, and the answer, JSON or SSE, becomes an Anthropic Message or
// Anthropic SSE, usage normalised (OpenAI's prompt_tokens includes cached
// tokens; Anthropic's input_tokens does not).
//
// Like every provider type's package, it imports neither package provider,
// nor policy, nor extproc: the adapter reaches it through interfaces it
// declares, which these types satisfy structurally.
package openai

import (
	"net/url"
	"strconv"
	"strings"
)

// TypeName is the value of a provider's type field that selects this type.
const TypeName = "openai"

// Headers an attempt to such a provider sets.
const (
	hdrAuthorization = "authorization"
	hdrAPIKey        = "api-key"
)

// minToolNameLimit is the smallest tool_name_limit: a shortened name keeps
// at least one character of the original before its hash suffix.
const minToolNameLimit = hashSuffixLen + 2

// Type is the openai provider type. Its zero value is ready to use.
type Type struct{}

// Name returns "openai", the value of the type field that selects the type.
func (Type) Name() string { return TypeName }

// Fields returns the fields of a provider of this type besides the ones every
// provider has, in the order messages list them.
func (Type) Fields() []string { return fieldNames() }

// NewSettings returns fresh settings, a *Settings, for the policy decoder to
// fill in.
func (Type) NewSettings() any { return newSettings() }

// SetRequestHeaders sets, through set, the headers an attempt to this
// provider needs: the host, the path (ModelsPath for GET /v1/models and
// /v1/models/{id}, ChatPath for anything else: the Messages API and Chat
// Completions; the translation refuses every other client path at the
// body), the key as the settings say, and the extra headers.
func (s *Settings) SetRequestHeaders(clientPath string, _ func(name string) bool, set func(name, value string)) {
	set(":authority", s.BaseURL.Host)
	if rest, ok := modelsRest(clientPath); ok {
		set(":path", s.ModelsPath(rest))
	} else {
		set(":path", s.ChatPath())
	}
	switch key := s.APIKey.Reveal(); {
	case key == "":
	case s.Auth == AuthAPIKey:
		set(hdrAPIKey, key)
	case s.Auth == AuthBearer:
		set(hdrAuthorization, "Bearer "+key)
	}
	for _, h := range s.Headers {
		set(h.Name, h.Value)
	}
}

// ChatPath returns the escaped path, query included, of the provider's Chat
// Completions endpoint: the base URL's path plus /chat/completions, or with
// an Azure deployment plus /openai/deployments/{deployment}/chat/completions,
// and ?api-version= when one is set.
func (s *Settings) ChatPath() string {
	p := strings.TrimSuffix(s.BaseURL.EscapedPath(), "/")
	if s.AzureDeployment != "" {
		p += "/openai/deployments/" + url.PathEscape(s.AzureDeployment)
	}
	p += "/chat/completions"
	if s.APIVersion != "" {
		p += "?api-version=" + url.QueryEscape(s.APIVersion)
	}
	return p
}

// CredentialHeaders returns the request headers through which a provider of
// this type is authenticated, and its extra headers: an attempt to any other
// provider removes them, since Envoy keeps one request header map across
// attempts.
func (s *Settings) CredentialHeaders() []string {
	out := []string{hdrAuthorization, hdrAPIKey}
	for _, h := range s.Headers {
		out = append(out, h.Name)
	}
	return out
}

// Endpoint returns where the provider's Envoy cluster sends requests, for
// tollgate envoy render: the base URL's host, its port (default 443 for
// https, 80 for http) and whether to use TLS.
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

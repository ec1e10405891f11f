// Package anthropic adapts requests for Anthropic-format providers: the Anthropic
// API itself and any endpoint that speaks the Messages API natively. The request
// body passes unchanged apart from the model id, so only headers are computed here.
package anthropic

import (
	"net/url"
	"strings"
)

// DefaultVersion is the anthropic-version sent when the client sent none.
const DefaultVersion = "2023-06-01"

// Target is the provider a request is sent to.
type Target struct {
	BaseURL *url.URL
	APIKey  string
}

// Header is one header to set on the upstream request.
type Header struct{ Key, Value string }

// RequestHeaders returns the headers an Anthropic provider needs for a request
// whose client-facing path was clientPath (query included): the host, the path
// under the provider's base URL, the credential, and anthropic-version when the
// client did not send one. anthropic-beta and every other client header are left
// as sent: Claude Code's beta headers must reach the provider verbatim.
func RequestHeaders(t Target, clientPath string, clientSentVersion bool) []Header {
	hs := []Header{
		{":authority", t.BaseURL.Host},
		{":path", JoinPath(t.BaseURL, clientPath)},
	}
	if t.APIKey != "" {
		hs = append(hs, Header{"x-api-key", t.APIKey})
	}
	if !clientSentVersion {
		hs = append(hs, Header{"anthropic-version", DefaultVersion})
	}
	return hs
}

// JoinPath puts clientPath (which starts with "/") under the base URL's path.
func JoinPath(base *url.URL, clientPath string) string {
	prefix := strings.TrimSuffix(base.EscapedPath(), "/")
	return prefix + clientPath
}

package bedrock

import (
	"strconv"
	"strings"
)

// Endpoint returns where attempts to this provider connect: the host of
// base_url, or of Bedrock's runtime endpoint in the region
// (bedrock-runtime.REGION.amazonaws.com) when there is none; its port (the
// URL's, or 443 for https and 80 for http); and whether the connection uses
// TLS. `tollgate envoy render` writes the provider's Envoy cluster from it.
// It reads only region and base_url, so rendering needs neither the
// credentials nor the AWS SDK's default chain, and works on settings that
// Resolve has not completed.
func (s *Settings) Endpoint() (host string, port int, tls bool) {
	u := s.BaseURL
	if u == nil {
		u = defaultBaseURL(s.Region)
	}
	tls = u.Scheme == "https"
	port = 80
	if tls {
		port = 443
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			port = n
		}
	}
	return strings.ToLower(u.Hostname()), port, tls
}

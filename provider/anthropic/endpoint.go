package anthropic

import (
	"strconv"
	"strings"
)

// Endpoint returns where attempts to this provider connect: the host of the
// base URL (a name or an IP address, without brackets), its port (the URL's,
// or 443 for https and 80 for http), and whether the connection uses TLS
// (https). `tollgate envoy render` writes the provider's Envoy cluster from
// it.
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

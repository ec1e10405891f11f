package anthropic

import "testing"

func TestEndpoint(t *testing.T) {
	for _, c := range []struct {
		base string
		host string
		port int
		tls  bool
	}{
		{DefaultBaseURL, "api.anthropic.com", 443, true},
		{"http://fake-provider:8080", "fake-provider", 8080, false},
		{"http://Example.COM/v1", "example.com", 80, false},
		{"https://10.0.0.7:8443/x", "10.0.0.7", 8443, true},
		{"http://[::1]:9000", "::1", 9000, false},
	} {
		s := newSettings()
		if err := s.Set(fieldBaseURL, c.base); err != nil {
			t.Fatal(err)
		}
		host, port, tls := s.Endpoint()
		if host != c.host || port != c.port || tls != c.tls {
			t.Errorf("%s: got %s %d %v; want %s %d %v", c.base, host, port, tls, c.host, c.port, c.tls)
		}
	}
}

package bedrock

import "testing"

// Endpoint needs only region and base_url: not Resolve, so not the
// credentials nor the AWS SDK's default chain.
func TestEndpoint(t *testing.T) {
	for _, c := range []struct {
		region, base string
		host         string
		port         int
		tls          bool
	}{
		{"us-east-1", "", "bedrock-runtime.us-east-1.amazonaws.com", 443, true},
		{"eu-central-1", "", "bedrock-runtime.eu-central-1.amazonaws.com", 443, true},
		{"us-east-1", "https://VPCE-1.bedrock-runtime.us-east-1.vpce.amazonaws.com", "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com", 443, true},
		{"us-east-1", "http://fake-bedrock:8080/x", "fake-bedrock", 8080, false},
		{"us-east-1", "https://10.0.0.7:8443", "10.0.0.7", 8443, true},
	} {
		s := newSettings()
		if err := s.Set(fieldRegion, c.region); err != nil {
			t.Fatal(err)
		}
		if c.base != "" {
			if err := s.Set(fieldBaseURL, c.base); err != nil {
				t.Fatal(err)
			}
		}
		host, port, tls := s.Endpoint()
		if host != c.host || port != c.port || tls != c.tls {
			t.Errorf("%s %s: got %s %d %v; want %s %d %v", c.region, c.base, host, port, tls, c.host, c.port, c.tls)
		}
	}
}

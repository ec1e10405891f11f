package envoytest

import (
	"net/http"
	"testing"
)

// Section 7: the route timeout (from the end of the request to the response
// headers) is a 504; the route idle_timeout bounds silence with a 408.
func TestRouteTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name, route string
		wantCode    int
		wantMessage string
		details     string
	}{
		{"route timeout", `{match: {prefix: "/"}, route: {cluster: up, timeout: 0.05s}}`, 504, "upstream request timeout", "upstream_response_timeout"},
		{"idle timeout", `{match: {prefix: "/"}, route: {cluster: up, timeout: 0s, idle_timeout: 0.05s}}`, 408, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
			h := startHarness(t, testConfig{routes: []string{tc.route}}.write(t), map[string]string{"up": up.addr})
			code, _, body := do(t, h, "GET", "/", "")
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (%s)", code, tc.wantCode, body)
			}
			if tc.details != "" {
				if lr := decodeLocalReply(t, body); lr.Error.Message != tc.wantMessage || lr.Details != tc.details {
					t.Errorf("local reply %+v", lr)
				}
			} else if body != "stream timeout" {
				t.Errorf("body %q", body)
			}
		})
	}
}

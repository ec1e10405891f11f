package extproc

import (
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
)

// TestFinalRefusalsSayNoRetry: every refusal the same request cannot pass on
// retry carries x-should-retry: false, which stops Claude Code at once (issue 9,
// item 11); without it the CLI retried a 401 for three minutes.
func TestFinalRefusalsSayNoRetry(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name    string
		headers []string
		body    string // sent when the headers pass
		status  int
	}{
		{"no key", []string{":method", "POST", ":path", "/v1/messages"}, "", 401},
		{"bad key", []string{":method", "POST", ":path", "/v1/messages", "authorization", "Bearer nope"}, "", 401},
		{"unknown path", []string{":method", "POST", ":path", "/v1/complete", "x-api-key", "tg-alice"}, "", 404},
		{"malformed json", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":`, 400},
		{"unknown route", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":"@nope/m"}`, 400},
		{"bad trace id", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice", "x-tollgate-trace-id", strings.Repeat("t", 200)}, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stream(t, s, rolePolicy)
			resp := roundTrip(t, c, reqHeaders(false, tt.headers...))
			if tt.body != "" {
				resp = roundTrip(t, c, reqBody(tt.body))
			}
			ir := resp.GetImmediateResponse()
			if ir == nil {
				t.Fatalf("want an immediate response, got %v", resp)
			}
			if st, _, _ := anthropicError(t, ir); st != tt.status {
				t.Errorf("status %d; want %d", st, tt.status)
			}
			h := sets(t, ir.GetHeaders())
			if h[hdrShouldRetry] != "false" {
				t.Errorf("x-should-retry = %q; want false", h[hdrShouldRetry])
			}
			if _, ok := h["retry-after"]; ok {
				t.Error("a final refusal carries retry-after")
			}
		})
	}
}

// TestRetryableRefusals: a limit that frees up soon keeps its retry-after and
// says nothing against retrying; the fail-closed 503 stays retryable; a wait
// longer than Claude Code waits (60 s) is final.
func TestRetryableRefusals(t *testing.T) {
	for _, tt := range []struct {
		seconds int
		final   bool
	}{{0, true}, {1, false}, {60, false}, {61, true}, {3600, true}} {
		if got := !retryHelps(tt.seconds); got != tt.final {
			t.Errorf("retry-after %d s: final %v; want %v", tt.seconds, got, tt.final)
		}
	}
	rate := errorf(429, clientformat.CodeRateLimit, "rate limit")
	rate.RetryAfter = "7"
	h := sets(t, immediate(anthropic.Format{}, rate, "r").GetImmediateResponse().GetHeaders())
	if h["retry-after"] != "7" || h[hdrShouldRetry] != "" {
		t.Errorf("rate limit headers %v; want retry-after 7 and no x-should-retry", h)
	}
	down := errorf(503, clientformat.CodeOverloaded, "the gateway cannot check budgets right now; retry shortly")
	if h := sets(t, immediate(anthropic.Format{}, down, "r").GetImmediateResponse().GetHeaders()); h[hdrShouldRetry] != "" {
		t.Errorf("the fail-closed 503 says x-should-retry %q", h[hdrShouldRetry])
	}
}

// TestModelsPathIsOneModelID: a GET /v1/models/{id} path whose id the
// Anthropic format refuses (clientformat/anthropic's TestClassifyModelsPath
// has the cases) is a final 404 in Anthropic's shape, recorded under the
// endpoint "unknown" (issue 9, item 13).
func TestModelsPathIsOneModelID(t *testing.T) {
	s := newTestServer(t)
	f, ep, err := s.formats.classify("GET", "/v1/models/..%2ffiles", nil)
	if err == nil || err.Status != 404 || err.Code != clientformat.CodeNotFound || !err.Final || ep.Name != unknownEndpoint || f.Name() != "anthropic" {
		t.Errorf("got %s %+v %v; want a final 404 of the anthropic format", f.Name(), ep, err)
	}
	if _, ep, err := s.formats.classify("GET", "/v1/models/claude-opus-4.1?beta=true", nil); err != nil || ep.Name != "models" || ep.Metered {
		t.Errorf("a well-formed id: %+v %v", ep, err)
	}
}

// TestEmptyMessageBodyIs400: Content-Length: 0 (headers with end of stream)
// on POST /v1/messages or count_tokens is refused at once, never forwarded
// (issue 9, item 14).
func TestEmptyMessageBodyIs400(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"} {
		c := stream(t, s, rolePolicy)
		resp := roundTrip(t, c, reqHeaders(true, ":method", "POST", ":path", path, "x-api-key", "tg-alice", "content-length", "0"))
		ir := resp.GetImmediateResponse()
		if ir == nil {
			t.Fatalf("%s: want an immediate response, got %v", path, resp)
		}
		st, typ, msg := anthropicError(t, ir)
		if st != 400 || typ != "invalid_request_error" || !strings.Contains(msg, "empty") {
			t.Errorf("%s: %d %s %q", path, st, typ, msg)
		}
	}
}

// TestInvalidKeyNamesTheHeaderRead: the key comes from the first key header
// present, so a stale x-portkey-api-key wins over a good Authorization:
// Bearer; the 401 says which header was read and which were not, and no key
// (issue 9, item 15).
func TestInvalidKeyNamesTheHeaderRead(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, rolePolicy)
	resp := roundTrip(t, c, reqHeaders(false, ":method", "POST", ":path", "/v1/messages",
		"authorization", "Bearer tg-alice", "x-portkey-api-key", "tg-stale"))
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("want an immediate response, got %v", resp)
	}
	st, typ, msg := anthropicError(t, ir)
	if st != 401 || typ != "authentication_error" {
		t.Fatalf("got %d %s %q", st, typ, msg)
	}
	for _, want := range []string{"in x-portkey-api-key", "not read: authorization", "x-tollgate-api-key, x-portkey-api-key, authorization, x-api-key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "tg-alice") || strings.Contains(msg, "tg-stale") {
		t.Errorf("message %q echoes a key", msg)
	}
}

// TestClientOnlyHeadersAreRemoved: gateway credentials, cookies and every
// Tollgate or Portkey header are removed from the request; anthropic-*,
// x-claude-code-* and custom headers pass (issue 9, item 12).
func TestClientOnlyHeadersAreRemoved(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, rolePolicy)
	resp := roundTrip(t, c, reqHeaders(false, ":method", "POST", ":path", "/v1/messages",
		"x-api-key", "tg-alice", "proxy-authorization", "Bearer tg-alice", "cookie", "session=1",
		"x-portkey-config", `{"api_key":"sk-secret"}`, "x-portkey-virtual-key", "vk", "x-tollgate-anything", "1",
		"x-tollgate-trace-id", "t1", "anthropic-beta", "b", "anthropic-version", "v",
		"x-claude-code-session-id", "s", "x-team", "web"))
	hr := resp.GetRequestHeaders().GetResponse()
	if hr == nil {
		t.Fatalf("want a request_headers reply, got %v", resp)
	}
	removed := hr.GetHeaderMutation().GetRemoveHeaders()
	for _, h := range []string{"x-api-key", "proxy-authorization", "cookie", "x-portkey-config", "x-portkey-virtual-key",
		"x-tollgate-anything", "x-tollgate-trace-id", "accept-encoding"} {
		if !slices.Contains(removed, h) {
			t.Errorf("%s not removed (removed: %v)", h, removed)
		}
	}
	for _, h := range []string{"anthropic-beta", "anthropic-version", "x-claude-code-session-id", "x-team"} {
		if slices.Contains(removed, h) {
			t.Errorf("%s removed", h)
		}
	}
}

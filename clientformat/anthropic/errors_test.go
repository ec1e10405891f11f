package anthropic

import (
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// TestRenderError: the refusal's shape is Anthropic's (WIRE-FORMATS 1.5),
// byte for byte what the gateway sent before client formats, and every code
// keeps its name as the error type.
func TestRenderError(t *testing.T) {
	r := Format{}.RenderError(clientformat.Error{Status: 401, Code: clientformat.CodeAuthentication,
		Message: `missing gateway key: "x" <&>`, RequestID: "01J"})
	want := `{"type":"error","error":{"type":"authentication_error","message":"missing gateway key: \"x\" \u003c\u0026\u003e"},"request_id":"01J"}`
	if r.Status != 401 || r.ContentType != "application/json" || string(r.Body) != want || len(r.Headers) != 0 {
		t.Errorf("got %d %q %s %v", r.Status, r.ContentType, r.Body, r.Headers)
	}
	if r := (Format{}).RenderError(clientformat.Error{Status: 503, Code: clientformat.CodeOverloaded, Message: "m"}); string(r.Body) != `{"type":"error","error":{"type":"overloaded_error","message":"m"}}` {
		t.Errorf("without a request id: %s", r.Body)
	}
	for _, c := range []clientformat.Code{clientformat.CodeInvalidRequest, clientformat.CodeAuthentication, clientformat.CodePermission,
		clientformat.CodeNotFound, clientformat.CodeRateLimit, clientformat.CodeOverloaded} {
		if errorType(c) != string(c) {
			t.Errorf("%s renders as %s", c, errorType(c))
		}
	}
	if errorType("made_up") != "api_error" {
		t.Errorf("an unknown code renders as %s", errorType("made_up"))
	}
}

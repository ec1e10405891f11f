package vertex

import (
	"strconv"
	"testing"
)

// respond runs TranslateResponse over one response and returns the status
// and content-type it set and the body the client gets (nil: as it was).
func respond(status int, body string) (int, string, []byte, bool) {
	hdr := map[string]string{}
	fn := fromAnthropic{}.TranslateResponse("/v1/messages", status, func(string) string { return "" },
		func(k, v string) { hdr[k] = v }, func(k string) { delete(hdr, k) }, func(string, string) {})
	if fn == nil {
		return status, "", nil, false
	}
	st, _ := strconv.Atoi(hdr[":status"])
	// In two chunks, as a body may arrive.
	out := fn([]byte(body[:len(body)/2]), false)
	out = append(out, fn([]byte(body[len(body)/2:]), true)...)
	return st, hdr["content-type"], out, true
}

// TestErrors checks the error table: Google's errors by their status string
// (or HTTP status), Anthropic's passed as they are.
func TestErrors(t *testing.T) {
	google := func(code int, status, msg string) string {
		return `{"error":{"code":` + strconv.Itoa(code) + `,"message":"` + msg + `","status":"` + status + `"}}`
	}
	for _, c := range []struct {
		status   int
		body     string
		wantCode int
		wantBody string
	}{
		{429, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), 429, `{"type":"error","error":{"type":"rate_limit_error","message":"Quota exceeded"}}`},
		{503, google(503, "UNAVAILABLE", "down"), 529, `{"type":"error","error":{"type":"overloaded_error","message":"down"}}`},
		{400, google(400, "INVALID_ARGUMENT", "bad"), 400, `{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}`},
		{400, google(400, "FAILED_PRECONDITION", "region"), 400, `{"type":"error","error":{"type":"invalid_request_error","message":"region"}}`},
		{401, google(401, "UNAUTHENTICATED", "token"), 401, `{"type":"error","error":{"type":"authentication_error","message":"token"}}`},
		{403, google(403, "PERMISSION_DENIED", "denied"), 403, `{"type":"error","error":{"type":"permission_error","message":"denied"}}`},
		{404, google(404, "NOT_FOUND", "no model"), 404, `{"type":"error","error":{"type":"not_found_error","message":"no model"}}`},
		{409, google(409, "ABORTED", "again"), 409, `{"type":"error","error":{"type":"conflict_error","message":"again"}}`},
		{504, google(504, "DEADLINE_EXCEEDED", "slow"), 504, `{"type":"error","error":{"type":"timeout_error","message":"slow"}}`},
		{500, google(500, "INTERNAL", "oops"), 500, `{"type":"error","error":{"type":"api_error","message":"oops"}}`},
		{429, `[` + google(429, "RESOURCE_EXHAUSTED", "in an array") + `]`, 429, `{"type":"error","error":{"type":"rate_limit_error","message":"in an array"}}`},
		{502, `<html>Bad Gateway</html>`, 500, `{"type":"error","error":{"type":"api_error","message":"\u003chtml\u003eBad Gateway\u003c/html\u003e"}}`},
		{503, ``, 529, `{"type":"error","error":{"type":"overloaded_error","message":"Vertex AI answered with an error and no message"}}`},
		{418, `{"error":{}}`, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"{\"error\":{}}"}}`},
		// The model's own errors are Anthropic's: passed as they are.
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0.thinking.signature: Invalid signature"},"request_id":"req_vrtx_1"}`, 400,
			`{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0.thinking.signature: Invalid signature"},"request_id":"req_vrtx_1"}`},
	} {
		st, ct, out, ok := respond(c.status, c.body)
		if !ok || st != c.wantCode || ct != "application/json" || string(out) != c.wantBody {
			t.Errorf("%d %s:\n got %d %q %s\nwant %d %s", c.status, c.body, st, ct, out, c.wantCode, c.wantBody)
		}
	}
}

// A success, JSON or SSE, passes as it is: Vertex AI answers in Anthropic's
// format.
func TestSuccessPasses(t *testing.T) {
	for _, st := range []int{200, 201} {
		if _, _, _, ok := respond(st, `{"type":"message"}`); ok {
			t.Errorf("status %d translated", st)
		}
	}
}

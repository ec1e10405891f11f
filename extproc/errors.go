package extproc

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// ClientError is a request Tollgate refuses. It carries everything the edge needs:
// the HTTP status, the Anthropic error type (which doubles as the metric label) and
// a message for the client. Messages never contain credentials.
type ClientError struct {
	Status  int
	Type    string // Anthropic error.type, e.g. "authentication_error"
	Message string
	// RetryAfter is the retry-after header in seconds, for rate and
	// concurrency limits; empty for everything a retry cannot fix soon.
	RetryAfter string
	// Final marks a refusal that the same request cannot pass on retry (a bad
	// key, a malformed request, a spent budget). immediate sends it as
	// x-should-retry: false, which Claude Code and the Anthropic SDKs obey at
	// once; without it they retry a 429 up to ten times with backoff
	// (CLAUDE-CODE-GATEWAY section 6).
	Final bool
}

func (e *ClientError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

// errorf builds a refusal a retry may pass (Final false): the fail-closed 503
// of a budget ledger that is down, for instance.
func errorf(status int, typ, format string, args ...any) *ClientError {
	return &ClientError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// finalf builds a refusal the same request can never pass (Final true).
func finalf(status int, typ, format string, args ...any) *ClientError {
	e := errorf(status, typ, format, args...)
	e.Final = true
	return e
}

// Constructors for the Anthropic error types of WIRE-FORMATS section 1.5. Each
// of these refusals depends only on the request and the policy, so they are
// all final: the same request gets the same answer.
func invalidRequest(format string, args ...any) *ClientError {
	return finalf(400, "invalid_request_error", format, args...)
}
func authenticationError(format string, args ...any) *ClientError {
	return finalf(401, "authentication_error", format, args...)
}
func permissionError(format string, args ...any) *ClientError {
	return finalf(403, "permission_error", format, args...)
}
func notFound(format string, args ...any) *ClientError {
	return finalf(404, "not_found_error", format, args...)
}

// maxRetryAfterSeconds is the longest retry-after Claude Code waits for; above
// it the CLI does not retry (CLAUDE-CODE-GATEWAY section 6), and the Anthropic
// SDKs ignore the header and retry within seconds, which cannot succeed.
const maxRetryAfterSeconds = 60

// retryHelps reports whether a limit whose retry-after is seconds (0: none)
// lets a client's automatic retry through. When no wait helps (a spend or
// token budget, or a request larger than the limit) or the wait is longer
// than clients wait, the refusal is final.
func retryHelps(seconds int) bool { return seconds > 0 && seconds <= maxRetryAfterSeconds }

// anthropicErrorBody is the Anthropic error shape:
// {"type":"error","error":{"type":...,"message":...},"request_id":...}.
func anthropicErrorBody(e *ClientError, requestID string) []byte {
	body := struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id,omitempty"`
	}{Type: "error", RequestID: requestID}
	body.Error.Type, body.Error.Message = e.Type, e.Message
	b, _ := json.Marshal(body) // plain strings always marshal
	return b
}

// immediate builds an ImmediateResponse carrying e as an Anthropic error. The
// details string (Envoy's %RESPONSE_CODE_DETAILS%) names the error type.
func immediate(e *ClientError, requestID string) *extprocv3.ProcessingResponse {
	body := anthropicErrorBody(e, requestID)
	var m mutation
	m.Set("content-type", "application/json")
	m.Set("content-length", strconv.Itoa(len(body)))
	if e.RetryAfter != "" {
		m.Set("retry-after", e.RetryAfter)
	}
	if e.Final {
		m.Set(hdrShouldRetry, "false")
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.Status)},
			Headers: m.proto(),
			Body:    body,
			Details: "tollgate_" + e.Type,
		}}}
}

// emptyImmediate answers with a status and no body (the warm-up probe).
func emptyImmediate(status int, details string) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Details: details,
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
				Header: &corev3.HeaderValue{Key: "content-length", RawValue: []byte("0")},
			}}},
		}}}
}

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
}

func (e *ClientError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

func errorf(status int, typ, format string, args ...any) *ClientError {
	return &ClientError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Constructors for the Anthropic error types of WIRE-FORMATS section 1.5.
func invalidRequest(format string, args ...any) *ClientError {
	return errorf(400, "invalid_request_error", format, args...)
}
func authenticationError(format string, args ...any) *ClientError {
	return errorf(401, "authentication_error", format, args...)
}
func permissionError(format string, args ...any) *ClientError {
	return errorf(403, "permission_error", format, args...)
}
func notFound(format string, args ...any) *ClientError {
	return errorf(404, "not_found_error", format, args...)
}

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

package extproc

import (
	"errors"
	"fmt"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// ClientError is a request Tollgate refuses. It carries everything the edge needs:
// the HTTP status, the stable code (the metric label and the record's error
// type, whatever the client format) and a message for the client; the
// request's client format renders it (immediate). Messages never contain
// credentials.
type ClientError struct {
	Status  int
	Code    clientformat.Code // e.g. "authentication_error"
	Message string
	// Param names the request field the refusal is about, for formats
	// whose error body names one (clientformat.Error.Param); empty when none.
	Param string
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

func (e *ClientError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// errorf builds a refusal a retry may pass (Final false): the fail-closed 503
// of a budget ledger that is down, for instance.
func errorf(status int, code clientformat.Code, format string, args ...any) *ClientError {
	return &ClientError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// finalf builds a refusal the same request can never pass (Final true).
func finalf(status int, code clientformat.Code, format string, args ...any) *ClientError {
	e := errorf(status, code, format, args...)
	e.Final = true
	return e
}

// Constructors for the refusals that depend only on the request and the
// policy, so they are all final: the same request gets the same answer.
func invalidRequest(format string, args ...any) *ClientError {
	return finalf(400, clientformat.CodeInvalidRequest, format, args...)
}

// invalidField is invalidRequest about one field of the request body, named
// param in the terms of the client's API.
func invalidField(param, format string, args ...any) *ClientError {
	e := invalidRequest(format, args...)
	e.Param = param
	return e
}

// invalidBody refuses a request body the client format's reader refused,
// or a translation could not send: prefix, then err, whose field (a
// *clientformat.FieldError) becomes the refusal's Param.
func invalidBody(prefix string, err error) *ClientError {
	e := invalidRequest("%s%v", prefix, err)
	if fe := (*clientformat.FieldError)(nil); errors.As(err, &fe) {
		e.Param = fe.Param
	}
	return e
}
func authenticationError(format string, args ...any) *ClientError {
	return finalf(401, clientformat.CodeAuthentication, format, args...)
}
func permissionError(format string, args ...any) *ClientError {
	return finalf(403, clientformat.CodePermission, format, args...)
}
func notFound(format string, args ...any) *ClientError {
	return finalf(404, clientformat.CodeNotFound, format, args...)
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

// immediate builds an ImmediateResponse carrying e as format renders it,
// with content-length, and retry-after and x-should-retry as e says. The
// details string (Envoy's %RESPONSE_CODE_DETAILS%) names the code.
func immediate(format ClientFormat, e *ClientError, requestID string) *extprocv3.ProcessingResponse {
	reply := format.RenderError(clientformat.Error{Status: e.Status, Code: e.Code, Message: e.Message, Param: e.Param, RequestID: requestID})
	var m mutation
	m.Set("content-type", reply.ContentType)
	m.Set("content-length", strconv.Itoa(len(reply.Body)))
	for _, h := range reply.Headers {
		m.Set(h.Key, h.Value)
	}
	if e.RetryAfter != "" {
		m.Set("retry-after", e.RetryAfter)
	}
	if e.Final {
		m.Set(hdrShouldRetry, "false")
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(reply.Status)},
			Headers: m.proto(),
			Body:    reply.Body,
			Details: "tollgate_" + string(e.Code),
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

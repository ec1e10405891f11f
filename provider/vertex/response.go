package vertex

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// TranslateResponse implements [translate.ResponseTranslator]. Vertex AI
// answers Anthropic models in Anthropic's own JSON and SSE, so a success
// passes as it is (nil), usage and all. An error (status 300 and up) gets the
// Anthropic status its HTTP status maps to (errorFor: the route's
// fallback_on sees Anthropic's statuses, so an unavailable Vertex AI is a
// 529); its body, when Google-style ({"error":{"code","message","status"}},
// possibly inside a JSON array), becomes Anthropic's error shape with the
// type its status string maps to, and an Anthropic error body (what the
// model itself refuses with) passes as it is, its wording intact for
// clients that act on it.
func (fromAnthropic) TranslateResponse(_ string, status int, _ func(name string) string,
	set func(name, value string), remove func(name string), _ func(kind, msg string)) func([]byte, bool) []byte {
	if status < 300 {
		return nil
	}
	st, typ := errorFor("", status)
	set(":status", strconv.Itoa(st))
	set("content-type", "application/json")
	remove("content-length")
	var buf []byte
	return func(chunk []byte, end bool) []byte {
		buf = append(buf, chunk...)
		if !end {
			return nil
		}
		return errorBody(buf, typ)
	}
}

// errorBody returns the Anthropic error body for a Vertex AI error body: an
// Anthropic one as it is, a Google one with the type its status string maps
// to (or typ, the HTTP status's), anything else with typ and the body as
// its message.
func errorBody(body []byte, typ string) []byte {
	trimmed := bytes.TrimSpace(body)
	var anthropic struct {
		Type  string `json:"type"`
		Error *struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(trimmed, &anthropic) == nil && anthropic.Type == "error" && anthropic.Error != nil && anthropic.Error.Type != "" {
		return body
	}
	if g, ok := googleError(trimmed); ok {
		if g.Status != "" {
			_, typ = errorFor(g.Status, g.Code)
		}
		msg := g.Message
		if msg == "" {
			msg = "Vertex AI answered " + g.Status
		}
		return errorJSON(typ, msg)
	}
	if len(trimmed) == 0 {
		return errorJSON(typ, "Vertex AI answered with an error and no message")
	}
	return errorJSON(typ, string(trimmed))
}

// googleStatus is the error of a Google API error body.
type googleStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
}

// googleError decodes a Google API error body, {"error":{...}}, or the
// same as the first element of an array (as streaming methods send it).
func googleError(body []byte) (googleStatus, bool) {
	type wrapper struct {
		Error *googleStatus `json:"error"`
	}
	if bytes.HasPrefix(body, []byte("[")) {
		var list []wrapper
		if json.Unmarshal(body, &list) == nil && len(list) > 0 && list[0].Error != nil {
			return *list[0].Error, true
		}
		return googleStatus{}, false
	}
	var w wrapper
	if json.Unmarshal(body, &w) == nil && w.Error != nil && (w.Error.Status != "" || w.Error.Message != "") {
		return *w.Error, true
	}
	return googleStatus{}, false
}

// errorFor maps a Vertex AI error, by its Google status string (case
// ignored) or else its HTTP status, to the Anthropic status and error type.
// An HTTP status that is already Anthropic's keeps its meaning. The table is
// in the README.
func errorFor(googleStatus string, status int) (int, string) {
	switch strings.ToUpper(googleStatus) {
	case "RESOURCE_EXHAUSTED":
		return 429, "rate_limit_error"
	case "UNAVAILABLE":
		return 529, "overloaded_error"
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return 400, "invalid_request_error"
	case "UNAUTHENTICATED":
		return 401, "authentication_error"
	case "PERMISSION_DENIED":
		return 403, "permission_error"
	case "NOT_FOUND":
		return 404, "not_found_error"
	case "ABORTED", "ALREADY_EXISTS":
		return 409, "conflict_error"
	case "DEADLINE_EXCEEDED":
		return 504, "timeout_error"
	case "INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED", "CANCELLED":
		return 500, "api_error"
	}
	switch status {
	case 400:
		return 400, "invalid_request_error"
	case 401:
		return 401, "authentication_error"
	case 402:
		return 402, "billing_error"
	case 403:
		return 403, "permission_error"
	case 404:
		return 404, "not_found_error"
	case 409:
		return 409, "conflict_error"
	case 413:
		return 413, "request_too_large"
	case 429:
		return 429, "rate_limit_error"
	case 503, 529:
		return 529, "overloaded_error"
	case 504:
		return 504, "timeout_error"
	}
	if status >= 300 && status < 500 {
		return 400, "invalid_request_error"
	}
	return 500, "api_error"
}

// errorJSON renders an Anthropic error body.
func errorJSON(typ, msg string) []byte {
	type detail struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		Error detail `json:"error"`
	}{"error", detail{typ, msg}}) // strings always marshal
	return b
}

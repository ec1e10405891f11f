package openai

import (
	"encoding/json"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// RenderError renders a refusal in OpenAI's error shape,
// {"error":{"message":...,"type":...,"param":...,"code":...}}, as
// application/json with the status it was given (see errorTypeCode for the
// type and code of each refusal); param names the request field the
// refusal is about (e.Param), null when none. OpenAI's body carries no request id; the
// client has it in the x-request-id header.
func (Format) RenderError(e clientformat.Error) clientformat.ErrorReply {
	typ, code := errorTypeCode(e.Code)
	body := struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}{}
	body.Error.Message, body.Error.Type = e.Message, typ
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	if code != "" {
		body.Error.Code = &code
	}
	b, _ := json.Marshal(body) // plain strings always marshal
	return clientformat.ErrorReply{Status: e.Status, ContentType: "application/json", Body: b}
}

// errorTypeCode returns the OpenAI error type and code (empty for null) of a
// refusal's code, in the terms OpenAI's API uses for the same failure.
func errorTypeCode(c clientformat.Code) (typ, code string) {
	switch c {
	case clientformat.CodeInvalidRequest:
		return "invalid_request_error", ""
	case clientformat.CodeAuthentication:
		return "invalid_request_error", "invalid_api_key"
	case clientformat.CodePermission:
		return "invalid_request_error", "permission_denied"
	case clientformat.CodeNotFound:
		return "invalid_request_error", "unknown_url"
	case clientformat.CodeRateLimit:
		return "requests", "rate_limit_exceeded"
	case clientformat.CodeOverloaded:
		return "server_error", "overloaded"
	}
	return "server_error", ""
}

package anthropic

import (
	"encoding/json"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// RenderError renders a refusal in Anthropic's error shape (WIRE-FORMATS
// section 1.5), {"type":"error","error":{"type":...,"message":...},
// "request_id":...}, as application/json with the status it was given.
func (Format) RenderError(e clientformat.Error) clientformat.ErrorReply {
	body := struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id,omitempty"`
	}{Type: "error", RequestID: e.RequestID}
	body.Error.Type, body.Error.Message = errorType(e.Code), e.Message
	b, _ := json.Marshal(body) // plain strings always marshal
	return clientformat.ErrorReply{Status: e.Status, ContentType: "application/json", Body: b}
}

// errorType is the Anthropic error.type of a refusal's code. The gateway's
// codes are named after Anthropic's types; a code Anthropic has no type for
// is an api_error.
func errorType(c clientformat.Code) string {
	switch c {
	case clientformat.CodeInvalidRequest, clientformat.CodeAuthentication, clientformat.CodePermission,
		clientformat.CodeNotFound, clientformat.CodeRateLimit, clientformat.CodeOverloaded:
		return string(c)
	}
	return "api_error"
}

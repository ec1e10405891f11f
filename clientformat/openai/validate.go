package openai

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// knownRole reports whether r is a message role of OpenAI's Chat
// Completions API (rolesText).
func knownRole(r string) bool {
	switch r {
	case "system", "developer", "user", "assistant", "tool", "function":
		return true
	}
	return false
}

// rolesText lists the roles for an error message.
const rolesText = "system, developer, user, assistant, tool or function"

// fieldError returns a *clientformat.FieldError for param, its message
// starting with param, as OpenAI's own errors name the field.
func fieldError(param, format string, args ...any) *clientformat.FieldError {
	return &clientformat.FieldError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// asFieldError returns err as a *clientformat.FieldError when it is a
// reqbody.FieldError (a top-level field of the wrong type), else err.
func asFieldError(err error) error {
	var fe *reqbody.FieldError
	if errors.As(err, &fe) {
		return fieldError(fe.Field, "%s", fe.Msg)
	}
	return err
}

// validate checks what every target of a Chat Completions request needs
// and a provider would otherwise get as garbage, or answer without the
// client noticing what it dropped: messages a non-empty array of objects
// each with a role of OpenAI's, and n, when set, a positive integer. The
// model is checked by extproc (every format's requests name one). Errors
// are *clientformat.FieldError.
func (r *request) validate() error {
	if err := validateMessages(r.body, r.messages); err != nil {
		return err
	}
	if r.n.Present() {
		v := bytes.TrimSpace(r.body[r.n.Start:r.n.End])
		if string(v) == "null" {
			return nil
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 1 {
			return fieldError("n", "must be a positive integer (the number of choices), not %.40s", v)
		}
		if n > maxChoices {
			return fieldError("n", "at most %d choices can be asked for, not %d", maxChoices, n)
		}
		r.choices = n
	}
	return nil
}

// validateMessages checks the messages value at s in body.
func validateMessages(body []byte, s reqbody.Span) error {
	if !s.Present() || string(body[s.Start:s.End]) == "null" {
		return fieldError("messages", "field required; a chat completion takes a non-empty array of messages, each with a role and content")
	}
	if body[s.Start] != '[' {
		return fieldError("messages", "must be an array of messages, each an object with a role and content")
	}
	msgs, err := reqbody.Elements(body, s)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return fieldError("messages", "empty array; a chat completion takes at least one message")
	}
	for i, m := range msgs {
		if body[m.Start] != '{' {
			return fieldError(fmt.Sprintf("messages[%d]", i), "must be an object with a role and content")
		}
		var role reqbody.Span
		err := reqbody.EachMember(body, m, func(key []byte, val reqbody.Span) error {
			if string(key) == "role" {
				role = val
			}
			return nil
		})
		if err != nil {
			return err
		}
		param := fmt.Sprintf("messages[%d].role", i)
		if !role.Present() {
			return fieldError(param, "field required; one of %s", rolesText)
		}
		v, ok := reqbody.String(body, role)
		if !ok {
			return fieldError(param, "must be a string, one of %s", rolesText)
		}
		if !knownRole(v) {
			return fieldError(param, "%q is not a role; one of %s", clip(v, 40), rolesText)
		}
	}
	return nil
}

// clip cuts s to at most n bytes, for an error message that quotes what the
// client sent.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

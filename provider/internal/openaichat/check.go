package openaichat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// Check reports, with reqbody's scanner and without decoding the body, why
// [Request] would refuse a Chat Completions body, for the gateway to refuse
// it before it reserves budget or forwards anything: an n other than 1 (a
// *clientformat.FieldError for "n": the Messages API answers one choice per
// request, and the client would silently get one where it asked for
// several), a role with no Messages equivalent or a content part its role
// cannot take (for "messages[i].role" and "messages[i].content"), tool call
// arguments that are not JSON, a tool that is not a function, a
// tool_choice or stop with no equivalent. It never refuses a body Request
// accepts (FuzzRequest checks); what else Request refuses (a field of the
// wrong type deep in the body) the attempt's translation refuses. Keys are
// matched as encoding/json matches them in Request: struct fields case
// insensitively, the last one winning; the members of content parts
// exactly.
func Check(body []byte) error {
	_, ms, err := reqbody.Members(body)
	if err != nil {
		return fmt.Errorf("the Chat Completions request does not decode: %w", err)
	}
	if v, ok := last(ms, "n"); ok {
		if err := oneChoice(json.RawMessage(body[v.Start:v.End])); err != nil {
			return err
		}
	}
	if v, ok := last(ms, "messages"); ok && body[v.Start] == '[' {
		if err := checkMessages(body, v); err != nil {
			return err
		}
	}
	if v, ok := last(ms, "tools"); ok && body[v.Start] == '[' {
		if err := checkTools(body, v); err != nil {
			return err
		}
	}
	if v, ok := last(ms, "tool_choice"); ok {
		if err := checkToolChoice(body, v); err != nil {
			return err
		}
	}
	if v, ok := last(ms, "stop"); ok {
		if err := checkStop(body, v); err != nil {
			return err
		}
	}
	return nil
}

// last returns the value of the last member whose key matches name as
// encoding/json matches a struct field's.
func last(ms []reqbody.Member, name string) (v reqbody.Span, ok bool) {
	for _, m := range ms {
		if strings.EqualFold(m.Key, name) {
			v, ok = m.Value, true
		}
	}
	return v, ok
}

// isNull reports whether the value at v is null.
func isNull(body []byte, v reqbody.Span) bool { return string(body[v.Start:v.End]) == "null" }

// checkMessages checks each message's role and content as request does.
// Members are walked with reqbody.EachMember, which allocates nothing for
// keys without escapes.
func checkMessages(body []byte, s reqbody.Span) error {
	msgs, err := reqbody.Elements(body, s)
	if err != nil {
		return err
	}
	for i, m := range msgs {
		if body[m.Start] != '{' {
			continue // not a message: Request's decoding refuses it
		}
		var roleAt, content, calls reqbody.Span
		err := reqbody.EachMember(body, m, func(key []byte, v reqbody.Span) error {
			switch {
			case bytes.EqualFold(key, []byte("role")):
				roleAt = v
			case bytes.EqualFold(key, []byte("content")):
				content = v
			case bytes.EqualFold(key, []byte("tool_calls")):
				calls = v
			}
			return nil
		})
		if err != nil {
			return err
		}
		var role []byte
		if roleAt.Present() && !isNull(body, roleAt) {
			var ok bool
			if role, ok = str(body, roleAt); !ok {
				continue // Request's decoding refuses it
			}
		}
		if content.Present() && isNull(body, content) {
			content = reqbody.Span{}
		}
		field := func(what string) string { return fmt.Sprintf("messages[%d].%s", i, what) }
		var cerr error
		switch string(role) {
		case "system", "developer", "tool":
			cerr = checkText(body, content)
		case "assistant":
			cerr = checkText(body, content)
			if cerr == nil && calls.Present() && body[calls.Start] == '[' {
				if err := checkToolCalls(body, calls); err != nil {
					return fmt.Errorf("messages[%d]: %w", i, err)
				}
			}
		case "user":
			cerr = checkUser(body, content)
		default:
			return &clientformat.FieldError{Param: field("role"), Message: fmt.Sprintf("role %q has no Messages API equivalent", role)}
		}
		if cerr != nil {
			return &clientformat.FieldError{Param: field("content"), Message: cerr.Error()}
		}
	}
	return nil
}

// str returns the decoded value of the JSON string at v, without a copy
// when it has no escapes; ok is false when the value is not a string.
func str(body []byte, v reqbody.Span) (b []byte, ok bool) {
	if body[v.Start] != '"' {
		return nil, false
	}
	raw := body[v.Start+1 : v.End-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	s, ok := reqbody.String(body, v)
	return []byte(s), ok
}

// parts returns the content parts of a content that is a list (nil for a
// string or no content), or partsOf's error for any other value.
func parts(body []byte, c reqbody.Span) ([]reqbody.Span, error) {
	if !c.Present() {
		return nil, nil
	}
	switch body[c.Start] {
	case '"':
		return nil, nil
	case '[':
		ps, err := reqbody.Elements(body, c)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if body[p.Start] != '{' {
				return nil, errors.New("content parts must be objects")
			}
		}
		return ps, nil
	}
	return nil, errors.New("content must be a string or a list of parts")
}

// part reads a content part's type and image_url members (exact keys, the
// last one winning, as a part decoded into a map has them); the type is
// empty when it is not a string.
func part(body []byte, p reqbody.Span) (typ []byte, image reqbody.Span, err error) {
	err = reqbody.EachMember(body, p, func(key []byte, v reqbody.Span) error {
		switch string(key) {
		case "type":
			typ, _ = str(body, v)
		case "image_url":
			image = v
		}
		return nil
	})
	return typ, image, err
}

// checkText checks a content textOf takes: a string or text parts.
func checkText(body []byte, c reqbody.Span) error {
	ps, err := parts(body, c)
	if err != nil {
		return err
	}
	for _, p := range ps {
		t, _, err := part(body, p)
		if err != nil {
			return err
		}
		if string(t) != "text" {
			return fmt.Errorf("a %s part has no Messages API equivalent here", t)
		}
	}
	return nil
}

// checkUser checks a user content as userBlocks does: text and images.
func checkUser(body []byte, c reqbody.Span) error {
	ps, err := parts(body, c)
	if err != nil {
		return err
	}
	for _, p := range ps {
		t, image, err := part(body, p)
		if err != nil {
			return err
		}
		switch {
		case string(t) == "text":
		case string(t) == "image_url" && image.Present() && body[image.Start] == '{':
			var url []byte
			err := reqbody.EachMember(body, image, func(key []byte, v reqbody.Span) error {
				if string(key) == "url" {
					url, _ = str(body, v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if rest, ok := bytes.CutPrefix(url, []byte("data:")); ok && !bytes.Contains(rest, []byte(";base64,")) {
				return errors.New("an image data URL must be base64")
			}
		default:
			return fmt.Errorf("a %s part has no Messages API equivalent", t)
		}
	}
	return nil
}

// checkToolCalls checks that each tool call's arguments are JSON or blank.
func checkToolCalls(body []byte, s reqbody.Span) error {
	calls, err := reqbody.Elements(body, s)
	if err != nil {
		return err
	}
	for _, c := range calls {
		if body[c.Start] != '{' {
			continue
		}
		ms, err := reqbody.ObjectMembers(body, c)
		if err != nil {
			return err
		}
		fn, ok := last(ms, "function")
		if !ok || body[fn.Start] != '{' {
			continue
		}
		fms, err := reqbody.ObjectMembers(body, fn)
		if err != nil {
			return err
		}
		a, ok := last(fms, "arguments")
		if !ok {
			continue
		}
		args, ok := reqbody.String(body, a)
		if ok && strings.TrimSpace(args) != "" && !json.Valid([]byte(args)) {
			var id string
			if v, ok := last(ms, "id"); ok {
				id, _ = reqbody.String(body, v)
			}
			return fmt.Errorf("tool call %s: arguments are not JSON", id)
		}
	}
	return nil
}

// checkTools checks that each tool is a function tool.
func checkTools(body []byte, s reqbody.Span) error {
	tools, err := reqbody.Elements(body, s)
	if err != nil {
		return err
	}
	for _, tl := range tools {
		if body[tl.Start] != '{' {
			continue
		}
		ms, err := reqbody.ObjectMembers(body, tl)
		if err != nil {
			return err
		}
		var typ string
		if v, ok := last(ms, "type"); ok && !isNull(body, v) {
			if typ, ok = reqbody.String(body, v); !ok {
				continue
			}
		}
		if typ != "function" {
			return fmt.Errorf("tool type %q has no Messages API equivalent", typ)
		}
	}
	return nil
}

// checkToolChoice checks tool_choice as toolChoice maps it.
func checkToolChoice(body []byte, v reqbody.Span) error {
	switch body[v.Start] {
	case 'n':
		return nil // null
	case '"':
		s, _ := reqbody.String(body, v)
		if s == "auto" || s == "required" || s == "none" {
			return nil
		}
		return fmt.Errorf("tool_choice %q has no Messages API equivalent", s)
	case '{':
		ms, err := reqbody.ObjectMembers(body, v)
		if err != nil {
			return err
		}
		if fn, ok := last(ms, "function"); ok && body[fn.Start] == '{' {
			fms, err := reqbody.ObjectMembers(body, fn)
			if err != nil {
				return err
			}
			if n, ok := last(fms, "name"); ok {
				if name, _ := reqbody.String(body, n); name != "" {
					return nil
				}
			}
		}
	}
	return errors.New("tool_choice has no Messages API equivalent")
}

// checkStop checks that stop is a string or a list of strings.
func checkStop(body []byte, v reqbody.Span) error {
	switch body[v.Start] {
	case 'n', '"':
		return nil
	case '[':
		es, err := reqbody.Elements(body, v)
		if err != nil {
			return err
		}
		for _, e := range es {
			if b := body[e.Start:e.End]; b[0] != '"' && !bytes.Equal(b, []byte("null")) {
				return errors.New("stop must be a string or a list of strings")
			}
		}
		return nil
	}
	return errors.New("stop must be a string or a list of strings")
}

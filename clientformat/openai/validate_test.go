package openai

import (
	"errors"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// Every body a provider would get as garbage, or answer without the client
// noticing what it dropped, is refused with the field OpenAI names.
func TestReadRequestRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ body, param string }{
		{`{"model":"gpt-4o"}`, "messages"},
		{`{"model":"gpt-4o","messages":null}`, "messages"},
		{`{"model":"gpt-4o","messages":[]}`, "messages"},
		{`{"model":"gpt-4o","messages":"hi"}`, "messages"},
		{`{"model":"gpt-4o","messages":{"role":"user"}}`, "messages"},
		{`{"model":"gpt-4o","messages":["hi"]}`, "messages[0]"},
		{`{"model":"gpt-4o","messages":[{"role":"user","content":"a"},{"content":"b"}]}`, "messages[1].role"},
		{`{"model":"gpt-4o","messages":[{"role":7,"content":"a"}]}`, "messages[0].role"},
		{`{"model":"gpt-4o","messages":[{"role":"human","content":"a"}]}`, "messages[0].role"},
		{`{"model":5,"messages":[{"role":"user","content":"a"}]}`, "model"},
		{`{"model":"gpt-4o","stream":"yes","messages":[{"role":"user","content":"a"}]}`, "stream"},
		{`{"model":"gpt-4o","max_tokens":"9","messages":[{"role":"user","content":"a"}]}`, "max_tokens"},
		{`{"model":"gpt-4o","max_completion_tokens":1.5,"messages":[{"role":"user","content":"a"}]}`, "max_completion_tokens"},
		{`{"model":"gpt-4o","n":0,"messages":[{"role":"user","content":"a"}]}`, "n"},
		{`{"model":"gpt-4o","n":"2","messages":[{"role":"user","content":"a"}]}`, "n"},
		{`{"model":"gpt-4o","n":129,"messages":[{"role":"user","content":"a"}]}`, "n"},
	} {
		_, err := Format{}.ReadRequest(chatEndpoint(), "/v1/chat/completions", []byte(tc.body), true)
		var fe *clientformat.FieldError
		if !errors.As(err, &fe) || fe.Param != tc.param || fe.Message == "" {
			t.Errorf("%s: %v; want a field error for %q", tc.body, err, tc.param)
		}
	}
	for _, body := range []string{`{"model":`, `[]`, `{"model":"a"} x`} {
		var fe *clientformat.FieldError
		if _, err := (Format{}).ReadRequest(chatEndpoint(), "", []byte(body), false); err == nil || errors.As(err, &fe) {
			t.Errorf("%s: %v; want a syntax error without a field", body, err)
		}
	}
	for _, body := range []string{
		`{"model":"gpt-4o","messages":[{"role":"system","content":"a"},{"role":"developer","content":"b"},{"role":"user","content":"c"},` +
			`{"role":"assistant","tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
			`{"role":"tool","tool_call_id":"x","content":"d"},{"role":"function","name":"f","content":"e"}]}`,
		`{"model":"gpt-4o","n":3,"messages":[{"role":"user","content":"a"}]}`,
		`{"model":"gpt-4o","n":null,"messages":[{"role":"user","content":"a"}]}`,
	} {
		if _, err := (Format{}).ReadRequest(chatEndpoint(), "", []byte(body), true); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// Choices is the n a request asks for, 1 without one, so that a budget
// reserves the output of every choice.
func TestChoices(t *testing.T) {
	for body, want := range map[string]int64{
		`{"model":"gpt-4o","n":3,"messages":[{"role":"user","content":"a"}]}`:    3,
		`{"model":"gpt-4o","n":null,"messages":[{"role":"user","content":"a"}]}`: 1,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"a"}]}`:          1,
	} {
		r, err := Format{}.ReadRequest(chatEndpoint(), "", []byte(body), false)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := r.(interface{ Choices() int64 }).Choices(); got != want {
			t.Errorf("%s: %d choices, want %d", body, got, want)
		}
	}
}

// A refusal about a field names it in param.
func TestRenderErrorParam(t *testing.T) {
	r := Format{}.RenderError(clientformat.Error{Status: 400, Code: clientformat.CodeInvalidRequest, Message: "m", Param: "messages[0].role"})
	want := `{"error":{"message":"m","type":"invalid_request_error","param":"messages[0].role","code":null}}`
	if r.Status != 400 || string(r.Body) != want {
		t.Errorf("%d %s", r.Status, r.Body)
	}
}

package openaichat

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/translate"
)

// fakeInner stands for a provider's translation from Anthropic clients: it
// records what it is given, and answers as a cloud would translate its own
// answers (a status and headers set, a body turned into Messages SSE).
type fakeInner struct {
	body       []byte
	clientPath string
	status     string
}

func (*fakeInner) NeedsBody(bool) bool { return true }
func (f *fakeInner) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	f.body = body
	return append([]byte("inner:"), body...), true, nil
}
func (f *fakeInner) TranslateRequest(clientPath string, _ func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	f.clientPath, f.body = clientPath, body
	return body, "/model/" + mapModel("m") + "/invoke", nil
}
func (f *fakeInner) TranslateResponse(clientPath string, status int, _ func(string) string,
	set func(string, string), remove func(string), _ func(string, string)) func([]byte, bool) []byte {
	f.clientPath = clientPath
	if f.status != "" {
		set(":status", f.status)
	}
	set("content-type", "text/event-stream")
	set("cache-control", "no-cache")
	remove("content-length")
	return func(chunk []byte, end bool) []byte {
		return []byte(strings.ReplaceAll(string(chunk), "FRAME", "event: "))
	}
}

var _ translate.MessagesTranslator = (*Via)(nil)
var _ translate.RequestTranslator = (*Via)(nil)
var _ translate.ResponseTranslator = (*Via)(nil)
var _ translate.AttemptTranslator = (*Via)(nil)
var _ translate.RequestChecker = (*Via)(nil)

// Via hands the provider's translation the Messages request ToMessages
// made, at the Messages path, and composes the answers: the provider's
// translation first (its headers and status seen by Response), then
// Response; each header reaches the adapter once.
func TestVia(t *testing.T) {
	inner := &fakeInner{}
	v := (&Via{Inner: inner}).ForAttempt(nil).(*Via)
	msgs, path, err := v.ToMessages("/v1/chat/completions?x=1", []byte(`{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil || path != PathMessages || !strings.Contains(string(msgs), `"model":"gpt-x"`) {
		t.Fatalf("ToMessages: %s %q %v", msgs, path, err)
	}
	if _, _, err := v.ToMessages("/v1/models", nil); err == nil {
		t.Error("another path was translated")
	}
	out, p, err := v.TranslateRequest(path, nil, msgs, func(m string) string { return m + "-mapped" })
	if err != nil || string(out) != string(msgs) || p != "/model/m-mapped/invoke" || inner.clientPath != PathMessages {
		t.Errorf("TranslateRequest: %s %q %v (inner saw %q)", out, p, err, inner.clientPath)
	}
	// Without ToMessages (an adapter that does not know it), the request is
	// translated here.
	v2 := (&Via{Inner: inner}).ForAttempt(nil).(*Via)
	if _, _, err := v2.TranslateRequest("/v1/chat/completions", nil, []byte(`{"model":"gpt-x","messages":[]}`), identity); err != nil ||
		!strings.HasPrefix(string(inner.body), `{"max_tokens":4096`) {
		t.Errorf("TranslateRequest without ToMessages: %v, inner got %s", err, inner.body)
	}

	set := map[string][]string{}
	var removed []string
	body := v.TranslateResponse(PathChat, 200, func(string) string { return "" },
		func(k, val string) { set[k] = append(set[k], val) }, func(k string) { removed = append(removed, k) }, nil)
	if len(set["content-type"]) != 1 || set["content-type"][0] != "text/event-stream" || len(removed) != 1 || removed[0] != "content-length" {
		t.Errorf("headers set %v, removed %v", set, removed)
	}
	got := string(body([]byte("FRAMEmessage_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}\n\n"), false))
	if !strings.Contains(got, `"model":"gpt-x"`) || !strings.Contains(got, `"role":"assistant"`) {
		t.Errorf("first chunk %q", got)
	}

	// An error status the provider's translation sets is the one Response
	// maps (529 to 503), set once.
	inner.status = "529"
	set = map[string][]string{}
	body = v.TranslateResponse(PathChat, 503, func(string) string { return "" },
		func(k, val string) { set[k] = append(set[k], val) }, func(string) {}, nil)
	if len(set[":status"]) != 1 || set[":status"][0] != "503" || set["content-type"][0] != "application/json" {
		t.Errorf("headers set %v", set)
	}
	if got := string(body([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`), true)); !strings.Contains(got, `"code":"overloaded_error"`) {
		t.Errorf("error body %s", got)
	}
}

// CheckRequest refuses, naming the field, what the translation cannot send:
// several choices (the Messages API answers one), a role without a Messages
// equivalent; and a request at another path. The adapter's translation
// refuses the same.
func TestCheckRequest(t *testing.T) {
	v := &Via{Inner: &fakeInner{}}
	for _, tc := range []struct{ body, param string }{
		{`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{`{"model":"m","n":0,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"function","name":"f","content":"x"}]}`, "messages[1].role"},
	} {
		var fe *clientformat.FieldError
		if err := v.CheckRequest(PathChat, []byte(tc.body)); !errors.As(err, &fe) || fe.Param != tc.param {
			t.Errorf("%s: %v; want a field error for %s", tc.body, err, tc.param)
		}
		if _, _, err := Request([]byte(tc.body), identity); !errors.As(err, &fe) || fe.Param != tc.param {
			t.Errorf("Request(%s): %v", tc.body, err)
		}
	}
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","n":1,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","n":null,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		if err := v.CheckRequest(PathChat+"?x=1", []byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	if err := v.CheckRequest("/v1/responses", []byte(`{"model":"m","messages":[]}`)); err == nil {
		t.Error("another path was not refused")
	}
}

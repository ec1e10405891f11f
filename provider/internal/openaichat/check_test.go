package openaichat

import (
	"errors"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// checkBodies are Chat Completions bodies Request refuses or accepts, which
// Check must judge alike (and FuzzRequest starts from).
var checkBodies = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","n":1,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","n":null,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","N":2,"n":1,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","n":1,"N":2,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","n":1.0,"messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`,
	`{"model":"m","messages":[{"Role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":null,"content":"hi"}]}`,
	`{"model":"m","messages":[{"content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x"}}]}]}`,
	`{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"a"}]},{"role":"developer","content":null}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,AAAA"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":["hi"]}]}`,
	`{"model":"m","messages":[{"role":"user","content":{"text":"hi"}}]}`,
	`{"model":"m","messages":[{"role":"user","content":[]}]}`,
	`{"model":"m","messages":[{"role":"user","Content":[{"type":"file"}],"content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}`,
	`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{oops"}}]}]}`,
	`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"f","arguments":"  "}}]}]}`,
	`{"model":"m","messages":[{"role":"tool","content":[{"type":"refusal"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"f"}}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"function":{"name":"f"}}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"always"}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"function","function":{}}}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":5}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a",null]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"a"}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":[1]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":{}}`,
}

// Check refuses what Request refuses for the reasons it looks for, and
// accepts what Request accepts.
func TestCheckAgreesWithRequest(t *testing.T) {
	for _, body := range checkBodies {
		_, _, rerr := Request([]byte(body), identity)
		cerr := Check([]byte(body))
		if (rerr == nil) != (cerr == nil) {
			t.Errorf("%s: Request %v, Check %v", body, rerr, cerr)
		}
	}
}

// The refusals the client can act on name the field.
func TestCheckParams(t *testing.T) {
	for _, tc := range []struct{ body, param string }{
		{`{"model":"m","n":3,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"function","content":"x"}]}`, "messages[1].role"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "messages[0].content"},
	} {
		var fe *clientformat.FieldError
		if err := Check([]byte(tc.body)); !errors.As(err, &fe) || fe.Param != tc.param {
			t.Errorf("%s: %v; want a field error for %s", tc.body, err, tc.param)
		}
	}
}

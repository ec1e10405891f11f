package anthropic

import (
	"errors"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// read reads body as the format reads every endpoint's: the fields a
// Messages request must have are checked apart (TestReadRequestRequiredFields).
func read(t *testing.T, body string, withMedia bool) clientformat.Request {
	t.Helper()
	r, err := Format{}.ReadRequest(clientformat.Endpoint{}, "/v1/messages", []byte(body), withMedia)
	if err != nil {
		t.Fatalf("ReadRequest(%s): %v", body, err)
	}
	return r
}

func TestReadRequestFields(t *testing.T) {
	r := read(t, `{"model":"claude-x","stream":true,"max_tokens":300,"messages":[]}`, false)
	if m, ok := r.Model(); m != "claude-x" || !ok {
		t.Errorf("model %q %v", m, ok)
	}
	if n, ok := r.MaxTokens(); n != 300 || !ok || !r.Stream() || r.MinMaxTokens() != 0 {
		t.Errorf("max_tokens %d %v, stream %v, min %d", n, ok, r.Stream(), r.MinMaxTokens())
	}
	if b, edited := r.Body(); edited || string(b) != `{"model":"claude-x","stream":true,"max_tokens":300,"messages":[]}` {
		t.Errorf("unedited body %s %v", b, edited)
	}
	r = read(t, `{"messages":[]}`, false)
	if _, ok := r.Model(); ok {
		t.Error("a body without a model names one")
	}
	if _, ok := r.MaxTokens(); ok {
		t.Error("a body without max_tokens sets one")
	}
	r.SetModel("m")
	if r.SetMaxTokens(10) != 0 {
		t.Error("thinking lowered in a body without max_tokens")
	}
	if _, edited := r.Body(); edited {
		t.Error("a body without model and max_tokens was edited")
	}
}

func TestReadRequestErrors(t *testing.T) {
	for _, body := range []string{`{"model":`, `[]`, `{"model":1}`, `{"max_tokens":"x"}`, ``} {
		if _, err := (Format{}).ReadRequest(clientformat.Endpoint{}, "/v1/messages", []byte(body), true); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}

func TestReadRequestMedia(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"QUJD"}},{"type":"document","source":{}}]}],"tools":[{"name":"a"},{"type":"bash_20250124","name":"bash"}]}`
	want := budget.Media{Images: 1, Documents: 1, Base64Bytes: len(`"QUJD"`), Tools: 2, TypedTools: 1}
	if got := read(t, body, true).Media(); got != want {
		t.Errorf("media %+v; want %+v", got, want)
	}
	if got := read(t, body, false).Media(); got != (budget.Media{}) {
		t.Errorf("media read without withMedia: %+v", got)
	}
}

// TestRequestEdits: the model and the fitted max_tokens and thinking budget
// are replaced in place, everything else byte for byte as it came.
func TestRequestEdits(t *testing.T) {
	body := `{"model" : "@r/claude-x", "max_tokens":128000,"thinking":{"type":"enabled","budget_tokens":31999},"x":[1, 2]}`
	r := read(t, body, false)
	if r.MinMaxTokens() != minThinkingBudget+1 {
		t.Errorf("MinMaxTokens %d with thinking", r.MinMaxTokens())
	}
	r.SetModel("claude-x")
	if got := r.SetMaxTokens(20_000); got != 4_999 {
		t.Errorf("thinking budget %d; want 4999", got)
	}
	got, edited := r.Body()
	want := `{"model" : "claude-x", "max_tokens":20000,"thinking":{"type":"enabled","budget_tokens":4999},"x":[1, 2]}`
	if !edited || string(got) != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}

	// A thinking budget already below the new max_tokens stays.
	r = read(t, `{"model":"m","max_tokens":64000,"thinking":{"type":"enabled","budget_tokens":2000}}`, false)
	if got := r.SetMaxTokens(8000); got != 0 {
		t.Errorf("thinking budget lowered to %d", got)
	}
	if b, _ := r.Body(); string(b) != `{"model":"m","max_tokens":8000,"thinking":{"type":"enabled","budget_tokens":2000}}` {
		t.Errorf("body %s", b)
	}

	// Adaptive or disabled thinking has no budget to keep below max_tokens.
	r = read(t, `{"model":"m","max_tokens":64000,"thinking":{"type":"disabled","budget_tokens":9000}}`, false)
	if r.MinMaxTokens() != 0 || r.SetMaxTokens(5000) != 0 {
		t.Error("a disabled thinking budget counts")
	}
}

func TestFitThinking(t *testing.T) {
	for _, tt := range []struct{ think, asked, m, want int64 }{
		{31_999, 128_000, 20_000, 4_999},   // a quarter stays a quarter
		{31_999, 128_000, 2_000, 1_024},    // never below Anthropic's minimum
		{200_000, 128_000, 8_000, 7_999},   // a budget above max_tokens stays below the new one
		{1_024, 1_100, 1_025, 1_024},       // the smallest request that can think
		{100_000, 100_001, 50_000, 49_999}, // almost all thinking
	} {
		got := fitThinking(tt.think, tt.asked, tt.m)
		if got != tt.want || got < minThinkingBudget || got >= tt.m {
			t.Errorf("fitThinking(%d, %d, %d) = %d, want %d", tt.think, tt.asked, tt.m, got, tt.want)
		}
	}
}

// A Messages request without messages or max_tokens, which the Messages API
// requires, is refused naming the field; count_tokens takes no max_tokens.
func TestReadRequestRequiredFields(t *testing.T) {
	for _, tc := range []struct{ body, param string }{
		{`{"model":"m","max_tokens":5}`, "messages"},
		{`{"model":"m","max_tokens":5,"messages":null}`, "messages"},
		{`{"model":"m","max_tokens":5,"messages":"hi"}`, "messages"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":null,"messages":[]}`, "max_tokens"},
		{`{"model":7,"max_tokens":5,"messages":[]}`, "model"},
	} {
		_, err := Format{}.ReadRequest(messagesEndpoint(), "/v1/messages", []byte(tc.body), true)
		var fe *clientformat.FieldError
		if !errors.As(err, &fe) || fe.Param != tc.param {
			t.Errorf("%s: %v; want a field error for %s", tc.body, err, tc.param)
		}
	}
	if _, err := (Format{}).ReadRequest(countTokensEndpoint(), "/v1/messages/count_tokens",
		[]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), false); err != nil {
		t.Errorf("count_tokens without max_tokens: %v", err)
	}
}

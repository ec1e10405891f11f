package openai

import (
	"testing"

	"github.com/tollgate-dev/tollgate/translate"
)

// An OpenAI client's body reaches the provider natively: the model mapped
// and the quirks' fields fixed in place, every other byte kept.
func TestNativeRequestBody(t *testing.T) {
	tr, ok := Type{}.Translator(translate.ClientOpenAI)
	if !ok {
		t.Fatal("the openai client format is not served")
	}
	mapModel := func(m string) string {
		if m == "a" {
			return "gpt-4o"
		}
		return m
	}
	for _, tc := range []struct {
		field   string
		noOpts  bool
		in      string
		want    string
		changed bool
	}{
		{MaxCompletionTokens, false, `{"model":"a","max_completion_tokens":10}`, `{"model":"gpt-4o","max_completion_tokens":10}`, true},
		{MaxCompletionTokens, false, `{"model":"b", "max_completion_tokens":10}`, `{"model":"b", "max_completion_tokens":10}`, false},
		{MaxCompletionTokens, false, `{"model":"b","max_tokens":10}`, `{"model":"b","max_completion_tokens":10}`, true},
		{MaxTokens, false, `{"model":"b","max_completion_tokens":10}`, `{"model":"b","max_tokens":10}`, true},
		{MaxTokens, false, `{"model":"b","max_completion_tokens":10,"max_tokens":10}`, `{"model":"b","max_tokens":10}`, true},
		{MaxCompletionTokens, true, `{"stream_options":{"include_usage":true},"model":"a","stream":true}`, `{"model":"gpt-4o","stream":true}`, true},
	} {
		s := newSettings()
		s.MaxTokensField, s.StreamOptions = tc.field, !tc.noOpts
		at := tr.(translate.AttemptTranslator).ForAttempt(s)
		out, changed, err := at.RequestBody([]byte(tc.in), mapModel)
		if err != nil || changed != tc.changed || string(out) != tc.want {
			t.Errorf("%s (%s, no options %v):\n got %s %v %v\nwant %s", tc.in, tc.field, tc.noOpts, out, changed, err, tc.want)
		}
	}
}

package anthropic

import (
	"testing"

	"github.com/tollgate-dev/tollgate/translate"
)

func TestTranslatorFromAnthropic(t *testing.T) {
	if _, ok := (Type{}).Translator("bedrock-invoke"); ok {
		t.Error("a translation from a client format the type does not serve")
	}
	tr, ok := Type{}.Translator(translate.ClientAnthropic)
	if !ok {
		t.Fatal("no translation from Anthropic clients")
	}
	if tr.NeedsBody(false) || !tr.NeedsBody(true) {
		t.Errorf("NeedsBody(false, true) = %v, %v; want false, true", tr.NeedsBody(false), tr.NeedsBody(true))
	}
	mapModel := func(m string) string {
		if m == "sonnet" {
			return "claude-sonnet-4-5"
		}
		return m
	}
	for _, tt := range []struct {
		name, body, want string
		changed          bool
	}{
		{"mapped, every other byte kept", `{"max_tokens":1, "model" : "sonnet","stream":true}`,
			`{"max_tokens":1, "model" : "claude-sonnet-4-5","stream":true}`, true},
		{"not mapped", `{"model":"claude-haiku-4-5"}`, `{"model":"claude-haiku-4-5"}`, false},
		{"no model", `{"max_tokens":1}`, `{"max_tokens":1}`, false},
		{"not JSON", `{"model":`, `{"model":`, false},
	} {
		got, changed, err := tr.RequestBody([]byte(tt.body), mapModel)
		if err != nil || string(got) != tt.want || changed != tt.changed {
			t.Errorf("%s: RequestBody = %s, %v, %v; want %s, %v", tt.name, got, changed, err, tt.want, tt.changed)
		}
	}
}

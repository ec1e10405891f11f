package translate

import (
	"testing"

	"github.com/tollgate-dev/tollgate/policy"
)

// TestEveryProviderTypeHasAnAnthropicTranslation checks that a client of the
// Anthropic format can be sent to a provider of every registered type: a
// policy that loads never names a provider its clients cannot reach.
func TestEveryProviderTypeHasAnAnthropicTranslation(t *testing.T) {
	for _, pt := range policy.ProviderTypes() {
		if _, ok := Lookup(ClientAnthropic, pt.Name()); !ok {
			t.Errorf("no translation from %s to provider type %s", ClientAnthropic, pt.Name())
		}
	}
	if _, ok := Lookup(ClientAnthropic, "nosuch"); ok {
		t.Error("Lookup found a translation to an unknown provider type")
	}
}

func TestAnthropicToAnthropic(t *testing.T) {
	tr, _ := Lookup(ClientAnthropic, "anthropic")
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

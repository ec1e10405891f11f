package openai

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tollgate-dev/tollgate/secret"
)

func decode(t *testing.T, fields ...[2]string) (*Settings, error) {
	t.Helper()
	s := Type{}.NewSettings().(*Settings)
	for _, f := range fields {
		if err := s.Set(f[0], f[1]); err != nil {
			return s, err
		}
	}
	env := func(field string) (secret.Secret, error) { return "sk-env", nil }
	file := func(field string) (secret.Secret, error) { return "", errors.New("no file") }
	return s, s.Resolve(env, file)
}

func headersOf(s *Settings) [][2]string {
	var got [][2]string
	s.SetRequestHeaders("/v1/messages?beta=true", func(string) bool { return false }, func(k, v string) { got = append(got, [2]string{k, v}) })
	return got
}

func TestSettingsOpenAI(t *testing.T) {
	s, err := decode(t, [2]string{"api_key", "${K}"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{":authority", "api.openai.com"}, {":path", "/v1/chat/completions"}, {"authorization", "Bearer sk-env"}}
	if got := headersOf(s); !reflect.DeepEqual(got, want) {
		t.Errorf("headers %v; want %v", got, want)
	}
	if s.MaxTokensField != MaxCompletionTokens || !s.StreamOptions || s.ToolNameLimit != 64 {
		t.Errorf("defaults: %+v", s)
	}
	if h, p, tls := s.Endpoint(); h != "api.openai.com" || p != 443 || !tls {
		t.Errorf("Endpoint() = %s %d %v", h, p, tls)
	}
}

func TestSettingsAzure(t *testing.T) {
	s, err := decode(t, [2]string{"base_url", "https://res.openai.azure.com"}, [2]string{"api_key", "${K}"},
		[2]string{"azure_deployment", "gpt-4o-prod"}, [2]string{"api_version", "2024-10-21"},
		[2]string{"headers", "X-Title: Tollgate\nHTTP-Referer: https://example.com"}, [2]string{"max_tokens_field", "max_tokens"},
		[2]string{"stream_options", "false"}, [2]string{"tool_name_limit", "40"}, [2]string{"max_output_tokens", "16384"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{":authority", "res.openai.azure.com"}, {":path", "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"},
		{"api-key", "sk-env"}, {"x-title", "Tollgate"}, {"http-referer", "https://example.com"}}
	if got := headersOf(s); !reflect.DeepEqual(got, want) {
		t.Errorf("headers %v; want %v", got, want)
	}
	if got := s.CredentialHeaders(); !reflect.DeepEqual(got, []string{"authorization", "api-key", "x-title", "http-referer"}) {
		t.Errorf("CredentialHeaders() = %v", got)
	}
	if s.MaxTokensField != MaxTokens || s.StreamOptions || s.ToolNameLimit != 40 || s.MaxOutputTokens != 16384 {
		t.Errorf("quirks: %+v", s)
	}
}

func TestSettingsNoKey(t *testing.T) {
	s, err := decode(t, [2]string{"base_url", "http://127.0.0.1:11434/v1"}, [2]string{"auth", "none"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{":authority", "127.0.0.1:11434"}, {":path", "/v1/chat/completions"}}
	if got := headersOf(s); !reflect.DeepEqual(got, want) {
		t.Errorf("headers %v; want %v", got, want)
	}
	if h, p, tls := s.Endpoint(); h != "127.0.0.1" || p != 11434 || tls {
		t.Errorf("Endpoint() = %s %d %v", h, p, tls)
	}
}

func TestSettingsRefusals(t *testing.T) {
	for _, tt := range []struct {
		fields [][2]string
		want   string
	}{
		{nil, "api_key or api_key_file is required (or auth: none for a provider that takes no key)"},
		{[][2]string{{"api_key", "${K}"}, {"api_key_file", "/k"}}, "api_key and api_key_file are mutually exclusive; keep one"},
		{[][2]string{{"auth", "none"}, {"api_key", "${K}"}}, "auth: none sends no key; remove api_key or choose bearer or api-key"},
		{[][2]string{{"auth", "basic"}}, `must be bearer, api-key or none, not "basic"`},
		{[][2]string{{"headers", "Authorization: Bearer x"}}, "header authorization is Tollgate's to set"},
		{[][2]string{{"headers", "no colon"}}, `line "no colon" is not a "Name: Value" header`},
		{[][2]string{{"max_tokens_field", "max_output_tokens"}}, `must be max_completion_tokens or max_tokens, not "max_output_tokens"`},
		{[][2]string{{"tool_name_limit", "5"}}, `must be 0 (no limit) or a length of at least 11, not "5"`},
		{[][2]string{{"stream_options", "maybe"}}, `must be true or false, not "maybe"`},
		{[][2]string{{"max_output_tokens", "-1"}}, `must be 0 (no cap) or a number of tokens, not "-1"`},
		{[][2]string{{"azure_deployment", "a/b"}}, "must be an Azure deployment name, without /, ?, # or %"},
		{[][2]string{{"region", "us-east-1"}}, `type openai has no field "region"`},
		{[][2]string{{"api_key_file", "/k"}}, "no file"},
	} {
		_, err := decode(t, tt.fields...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: %v; want %q", tt.fields, err, tt.want)
		}
	}
}

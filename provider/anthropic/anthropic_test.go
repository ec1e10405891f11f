package anthropic

import (
	"errors"
	"net/url"
	"reflect"
	"testing"

	"github.com/tollgate-dev/tollgate/secret"
)

// headers collects what SetRequestHeaders sets, in order.
func headers(s *Settings, clientPath string, sent ...string) [][2]string {
	var got [][2]string
	has := func(name string) bool {
		for _, h := range sent {
			if h == name {
				return true
			}
		}
		return false
	}
	s.SetRequestHeaders(clientPath, has, func(k, v string) { got = append(got, [2]string{k, v}) })
	return got
}

func TestSetRequestHeaders(t *testing.T) {
	s := Type{}.NewSettings().(*Settings)
	s.APIKey = "sk-ant"
	got := headers(s, "/v1/messages?beta=true")
	want := [][2]string{
		{":authority", "api.anthropic.com"},
		{":path", "/v1/messages?beta=true"},
		{"x-api-key", "sk-ant"},
		{"anthropic-version", DefaultVersion},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if hs := headers(s, "/v1/models", "anthropic-version"); len(hs) != 3 {
		t.Fatalf("anthropic-version set although the client sent one: %v", hs)
	}
	s.APIKey = ""
	for _, h := range headers(s, "/v1/models") {
		if h[0] == "x-api-key" {
			t.Fatalf("an empty key is sent: %v", h)
		}
	}
	if got := s.CredentialHeaders(); !reflect.DeepEqual(got, []string{"x-api-key"}) {
		t.Errorf("CredentialHeaders() = %v", got)
	}
}

func TestJoinPath(t *testing.T) {
	for _, tt := range []struct{ base, path, want string }{
		{"https://api.anthropic.com", "/v1/messages", "/v1/messages"},
		{"https://api.anthropic.com/", "/v1/messages", "/v1/messages"},
		{"https://bedrock-mantle.us-east-1.api.aws/anthropic", "/v1/messages?beta=true", "/anthropic/v1/messages?beta=true"},
		{"http://fake-provider:8080/prefix/", "/v1/models", "/prefix/v1/models"},
	} {
		u, _ := url.Parse(tt.base)
		if got := JoinPath(u, tt.path); got != tt.want {
			t.Errorf("JoinPath(%q, %q) = %q; want %q", tt.base, tt.path, got, tt.want)
		}
	}
}

// TestSettings checks decoding and resolving the type's own fields; the
// policy package's tests check the same through a policy file, with positions.
func TestSettings(t *testing.T) {
	errUnset := errors.New("unset")
	env := func(field string) (secret.Secret, error) {
		if field != "api_key" {
			t.Errorf("env(%q)", field)
		}
		return "from-env", nil
	}
	file := func(field string) (secret.Secret, error) {
		if field != "api_key_file" {
			t.Errorf("file(%q)", field)
		}
		return "", errUnset
	}
	tests := []struct {
		name      string
		fields    [][2]string
		wantBase  string
		wantKey   string
		wantErr   error  // matched with errors.Is
		wantMsg   string // the error's message
		wantField string // the error's Field, if any
	}{
		{name: "defaults", fields: [][2]string{{"api_key", "${K}"}}, wantBase: DefaultBaseURL, wantKey: "from-env"},
		{name: "base_url without its trailing slash", fields: [][2]string{{"base_url", "http://h:8/p/"}, {"api_key", "${K}"}},
			wantBase: "http://h:8/p", wantKey: "from-env"},
		{name: "file error passed on", fields: [][2]string{{"api_key_file", "/k"}}, wantBase: DefaultBaseURL,
			wantErr: errUnset, wantMsg: "unset"},
		{name: "neither", wantBase: DefaultBaseURL, wantMsg: "api_key or api_key_file is required"},
		{name: "both", fields: [][2]string{{"api_key_file", "/k"}, {"api_key", "${K}"}}, wantBase: DefaultBaseURL,
			wantMsg: "api_key and api_key_file are mutually exclusive; keep one", wantField: "api_key"},
		{name: "empty file name is reported by Set only", fields: [][2]string{{"api_key_file", ""}}, wantBase: DefaultBaseURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Type{}.NewSettings().(*Settings)
			for _, f := range tt.fields {
				if err := s.Set(f[0], f[1]); err != nil && f[1] != "" {
					t.Fatalf("Set(%q, %q): %v", f[0], f[1], err)
				}
			}
			err := s.Resolve(env, file)
			if s.BaseURL.String() != tt.wantBase || s.APIKey.Reveal() != tt.wantKey {
				t.Errorf("base %s, key %q; want %s, %q", s.BaseURL, s.APIKey.Reveal(), tt.wantBase, tt.wantKey)
			}
			switch {
			case tt.wantMsg == "" && err != nil:
				t.Fatalf("Resolve: %v", err)
			case tt.wantMsg != "" && (err == nil || err.Error() != tt.wantMsg):
				t.Fatalf("Resolve = %v; want %q", err, tt.wantMsg)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Resolve = %v; want it to wrap %v", err, tt.wantErr)
			}
			var fe interface{ Field() string }
			if errors.As(err, &fe) != (tt.wantField != "") || tt.wantField != "" && fe.Field() != tt.wantField {
				t.Errorf("error %v names field %v; want %q", err, fe, tt.wantField)
			}
		})
	}
}

func TestSetRefusesBadValues(t *testing.T) {
	for _, tt := range []struct{ field, value, want string }{
		{"base_url", "api.anthropic.com", "must be an absolute http or https URL, such as https://api.anthropic.com"},
		{"base_url", "https://u:p@h", "must not contain credentials; use api_key or api_key_file"},
		{"api_key_file", "", "must not be empty"},
		{"region", "us-east-1", `type anthropic has no field "region"`},
	} {
		err := Type{}.NewSettings().(*Settings).Set(tt.field, tt.value)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Set(%q, %q) = %v; want %q", tt.field, tt.value, err, tt.want)
		}
	}
}

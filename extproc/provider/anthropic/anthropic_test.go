package anthropic

import (
	"net/url"
	"reflect"
	"testing"
)

func TestRequestHeaders(t *testing.T) {
	base, _ := url.Parse("https://api.anthropic.com")
	got := RequestHeaders(Target{BaseURL: base, APIKey: "sk-ant"}, "/v1/messages?beta=true", false)
	want := []Header{
		{":authority", "api.anthropic.com"},
		{":path", "/v1/messages?beta=true"},
		{"x-api-key", "sk-ant"},
		{"anthropic-version", DefaultVersion},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if hs := RequestHeaders(Target{BaseURL: base, APIKey: "k"}, "/v1/models", true); len(hs) != 3 {
		t.Fatalf("anthropic-version set although the client sent one: %v", hs)
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

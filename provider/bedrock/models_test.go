package bedrock_test

import (
	"testing"

	"github.com/tollgate-dev/tollgate/envoyrender"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/provider/bedrock"
)

// The settings map models by default for the policy, and say where the
// provider is for the renderer.
var (
	_ policy.ModelMapper     = (*bedrock.Settings)(nil)
	_ envoyrender.Endpointer = (*bedrock.Settings)(nil)
)

// A loaded provider maps Anthropic ids to its region's inference profiles by
// default, whatever its credentials.
func TestDefaultModel(t *testing.T) {
	for _, c := range []struct {
		fields, model, want string
	}{
		{"    region: us-east-1\n    api_key: ${KEY}\n", "claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"    region: eu-west-1\n    access_key_id: ${ID}\n    secret_access_key: ${SECRET}\n", "claude-haiku-4-5-20251001", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"},
		{"    region: ap-northeast-1\n    api_key: ${KEY}\n", "claude-sonnet-4-5", "jp.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"    region: us-east-1\n    api_key: ${KEY}\n", "claude-opus-9", ""},
		{"    region: us-east-1\n    api_key: ${KEY}\n", "us.anthropic.claude-opus-4-8-v1", ""},
	} {
		s, err := parse(t, c.fields)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := s.DefaultModel(c.model)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s in %s: DefaultModel = %q, %v; want %q", c.model, s.Region, got, ok, c.want)
		}
	}
	// Settings that were never resolved map nothing.
	var s bedrock.Settings
	if _, ok := s.DefaultModel("claude-sonnet-4-5"); ok {
		t.Error("unresolved settings map")
	}
}

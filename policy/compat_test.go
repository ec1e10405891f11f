package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// compatAdapter is what a bedrock provider's settings do with its compat
// field (provider/bedrock).
type compatAdapter interface {
	AdaptRequest(body []byte, betas string, note func(key, action, detail string)) ([]byte, string, error)
}

// TestProviderCompat decodes a provider's compat mapping into its settings:
// the overrides change what the table does.
func TestProviderCompat(t *testing.T) {
	p, err := Parse("p.yaml", doc(
		"version: 1",
		"providers:",
		"  aws:",
		"    type: bedrock",
		"    region: us-east-1",
		"    compat:",
		"      claude-code-20250219: pass",
		"      context_management: drop",
		"      messages.system: pass",
		"routes: {r: {chain: [aws]}}",
		"keys: [{id: k, sha256: "+hashK+"}]",
	), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
	if err != nil {
		t.Fatal(err)
	}
	ad, ok := p.Providers["aws"].Settings.(compatAdapter)
	if !ok {
		t.Fatalf("settings %T adapt no request", p.Providers["aws"].Settings)
	}
	body := `{"messages":[{"role":"user","content":"a"},{"role":"system","content":"s"}],"context_management":{"edits":[]}}`
	out, betas, err := ad.AdaptRequest([]byte(body), "claude-code-20250219,context-management-2025-06-27", func(string, string, string) {})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"messages":[{"role":"user","content":"a"},{"role":"system","content":"s"}]}` || betas != "claude-code-20250219" {
		t.Errorf("adapted to %s, betas %q", out, betas)
	}
}

// TestProviderCompatErrors: each problem names the provider and the key.
func TestProviderCompatErrors(t *testing.T) {
	_, err := Parse("p.yaml", doc(
		"version: 1",
		"providers:",
		"  aws:",
		"    type: bedrock",
		"    region: us-east-1",
		"    compat:",
		"      context_management: drop",
		"      context-management-2025-06-27: pass",
		"      effort-2025-11-24: adapt",
		"      output_config.effrt: drop",
		"      unlisted_betas: maybe",
		"      tools.strict: [drop]",
		"  aws2: {type: bedrock, region: us-east-1, compat: drop}",
		"routes: {r: {chain: [aws, aws2]}}",
		"keys: [{id: k, sha256: "+hashK+"}]",
	), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"p.yaml:8:38: providers.aws.compat.context-management-2025-06-27: context_management and context-management-2025-06-27 travel as a pair (a beta and the body field it gates): give them one action, not drop and pass",
		"p.yaml:9:26: providers.aws.compat.effort-2025-11-24: must be pass or drop: bedrock has no adaptation for effort-2025-11-24",
		`p.yaml:10:28: providers.aws.compat.output_config.effrt: bedrock lists no beta or field "output_config.effrt"; fields: ` +
			strings.Join([]string{"context_management", "output_config.effort", "output_config.format", "tools.defer_loading", "tools.strict", "tools.eager_input_streaming", "messages.system"}, ", ") +
			" (a beta is a name and a date, such as effort-2025-11-24)",
		`p.yaml:11:23: providers.aws.compat.unlisted_betas: must be pass, drop or adapt, not "maybe"`,
		"p.yaml:12:21: providers.aws.compat.tools.strict: expected a string, got a sequence",
		"p.yaml:13:52: providers.aws2.compat: must be a mapping of betas and body fields to pass, drop or adapt",
	}
	if diff := cmp.Diff(want, problems(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

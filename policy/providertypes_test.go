package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestProviderTypes checks the registration of every provider type: a unique
// name, own fields apart from the common ones, and settings the decoder can
// fill in.
func TestProviderTypes(t *testing.T) {
	seen := map[string]bool{}
	for _, pt := range ProviderTypes() {
		name := pt.Name()
		if name == "" || seen[name] || !validName.MatchString(name) {
			t.Errorf("provider type name %q is empty, invalid or registered twice", name)
		}
		seen[name] = true
		for _, f := range pt.Fields() {
			if slices.Contains([]string{"type", "models", "budgets"}, f) {
				t.Errorf("type %s declares the common field %q", name, f)
			}
		}
		if _, ok := pt.NewSettings().(ProviderSettings); !ok {
			t.Errorf("type %s: settings %T do not implement ProviderSettings", name, pt.NewSettings())
		}
		if a, b := pt.NewSettings(), pt.NewSettings(); a == b {
			t.Errorf("type %s: NewSettings returns the same value twice", name)
		}
	}
}

// TestProviderTypeFields checks that each provider has the fields of its own
// type only, reported at the field's line, wherever type is in the mapping.
func TestProviderTypeFields(t *testing.T) {
	names := strings.Join(providerTypeNames(), ", ")
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{
			name: "a field of another type, or of none, on an anthropic provider",
			data: doc(
				"version: 1",
				"providers:",
				"  a:",
				"    region: us-east-1",
				"    type: anthropic",
				"    api_key: ${K}",
				"  b:",
				"    type: anthropic",
				"    api_key: ${K}",
				"    base_ur: https://example.com",
				"routes: {r: {chain: [a, b]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:4:5: providers.a: unknown field "region"; known fields: type, base_url, api_key, api_key_file, models, budgets`,
				`p.yaml:10:5: providers.b: unknown field "base_ur" (did you mean "base_url"?)`,
			},
		},
		{
			name: "the type's fields are checked before type is seen",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {base_url: 'ftp://x', api_key: '$K', type: anthropic}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:17: providers.a.base_url: must be an absolute http or https URL, such as https://api.anthropic.com`,
				`p.yaml:3:37: providers.a.api_key: must be written ${K}, with braces`,
			},
		},
		{
			name: "an unknown type lists the registered ones",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: nosuch, api_key: '${K}'}",
				"  b: {api_key: '${K}'}",
				"routes: {r: {chain: [a, b]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:13: providers.a.type: unknown provider type "nosuch"; known types: ` + names,
				`p.yaml:4:3: providers.b: type is required (one of: ` + names + `)`,
			},
		},
		{
			name: "a secret field that is not a string",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropic, api_key: 5}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:33: providers.a.api_key: must be a ${VAR} reference to an environment variable, or use api_key_file; provider keys are never written into the policy (value not shown)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", tt.data, LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if err == nil {
				t.Fatalf("Parse succeeded with warnings %q; want errors", strs(p.Warnings))
			}
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

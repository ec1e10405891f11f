package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/provider/anthropic"
)

// valid is a small policy that loads; tests vary it.
func valid() []byte {
	return doc(
		"version: 1",
		"providers:",
		"  anthropic:",
		"    type: anthropic",
		"    api_key: ${ANTHROPIC_API_KEY}",
		"    models: {claude-sonnet-4-5: claude-sonnet-4-5-20250929, haiku: claude-haiku-4-5}",
		"  backup:",
		"    type: anthropic",
		"    base_url: https://anthropic.internal.example:8443/proxy/",
		"    api_key_file: secrets/backup",
		"routes:",
		"  '@prod':",
		"    chain: [anthropic, backup]",
		"    models: {sonnet: claude-sonnet-4-5, fast: haiku}",
		"  backup:",
		"    chain: [backup]",
		"    cluster: custom_cluster",
		"default_route: '@prod'",
		"keys:",
		"  - {id: k, sha256: "+hashK+", user: alice, team: platform, project: web, metadata: {cost_center: '42'}}",
		"  - {id: j, sha256: "+hashJ+"}",
	)
}

func validOpts() LoadOptions {
	return LoadOptions{
		LookupEnv: env(map[string]string{"ANTHROPIC_API_KEY": "sk-ant-from-env"}),
		ReadFile:  files(map[string]string{"dir/secrets/backup": "sk-backup-from-file\n"}),
	}
}

func mustParse(t *testing.T, name string, data []byte, opts LoadOptions) *Policy {
	t.Helper()
	p, err := Parse(name, data, opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestParseValid(t *testing.T) {
	p := mustParse(t, "dir/p.yaml", valid(), validOpts())
	want := &Policy{
		Version: 1,
		Source:  "dir/p.yaml",
		Providers: map[string]*Provider{
			"anthropic": {
				Name: "anthropic", Type: "anthropic",
				Settings: &anthropic.Settings{BaseURL: mustURL("https://api.anthropic.com"), APIKey: "sk-ant-from-env"},
				Models:   map[string]string{"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "haiku": "claude-haiku-4-5"},
			},
			"backup": {
				Name: "backup", Type: "anthropic",
				Settings: &anthropic.Settings{BaseURL: mustURL("https://anthropic.internal.example:8443/proxy"), APIKey: "sk-backup-from-file"},
			},
		},
		Routes: map[string]*Route{
			"prod": {
				Slug: "prod", Chain: []string{"anthropic", "backup"}, Cluster: "chain_prod",
				Models:   map[string]string{"sonnet": "claude-sonnet-4-5", "fast": "haiku"},
				Fallback: defaultFallback(2),
			},
			"backup": {Slug: "backup", Chain: []string{"backup"}, Cluster: "custom_cluster", Fallback: defaultFallback(1)},
		},
		DefaultRoute: "prod",
		Keys: []*Key{
			{ID: "k", User: "alice", Team: "platform", Project: "web", Metadata: map[string]string{"cost_center": "42"}},
			{ID: "j"},
		},
		Budgets:      &budget.Config{},
		BudgetExempt: []string{"count_tokens", "models"},
	}
	// Secret's Format hides values from cmp's report too; compare them revealed.
	opts := cmp.Options{
		cmpopts.IgnoreUnexported(Policy{}, anthropic.Settings{}),
		cmp.Comparer(func(a, b Secret) bool { return a.Reveal() == b.Reveal() }),
		cmp.Comparer(func(a, b *url.URL) bool { return a.String() == b.String() }),
	}
	if diff := cmp.Diff(want, p, opts); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
}

func TestDefaultPolicy(t *testing.T) {
	if got, want := HashKey("tg-demo-key"), "e7aab4b439baa8c615eb31e352f5b4259085813fbcd95a65a5a346a6bdfb1bb3"; got != want {
		t.Fatalf("HashKey(tg-demo-key) = %s, want %s (the hash in default.yaml)", got, want)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
	}{
		{"default provider key", nil, "demo-provider-key"},
		{"key from the environment", map[string]string{"TOLLGATE_DEMO_PROVIDER_KEY": "other"}, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Default(LoadOptions{LookupEnv: env(tt.env), ReadFile: noFiles, RequireSecrets: true})
			if err != nil {
				t.Fatalf("Default: %v", err)
			}
			if p.Source != "embedded:default" || len(p.Warnings) != 0 {
				t.Errorf("Source %q, warnings %q; want embedded:default and none", p.Source, strs(p.Warnings))
			}
			k, ok := p.Authenticate("tg-demo-key")
			if !ok || k.ID != "demo" || k.User != "demo" || k.Team != "demo" {
				t.Errorf("Authenticate(tg-demo-key) = %+v, %v; want key demo of user and team demo", k, ok)
			}
			r, ok := p.Route("")
			if !ok || r.Slug != "demo" || r.Cluster != "chain_demo" || !cmp.Equal(r.Chain, []string{"demo"}) {
				t.Fatalf("default route = %+v, %v; want demo -> [demo] on chain_demo", r, ok)
			}
			prov := p.Providers["demo"]
			if prov.Type != "anthropic" || settings(prov).BaseURL.String() != "http://fake-provider:8080" || apiKey(prov) != tt.wantKey {
				t.Errorf("demo provider = %+v with key %q; want anthropic at http://fake-provider:8080 with key %q",
					prov, apiKey(prov), tt.wantKey)
			}
		})
	}
}

func TestExamplePolicy(t *testing.T) {
	const path = "../deploy/policy.example.yaml"
	tests := []struct {
		name         string
		env          map[string]string
		wantWarnings []string
	}{
		{
			name:         "ANTHROPIC_API_KEY unset",
			env:          map[string]string{"OPENROUTER_API_KEY": "sk-or-test"},
			wantWarnings: []string{path + ":27:5: providers.anthropic.api_key: unresolved secret: environment variable ANTHROPIC_API_KEY is not set"},
		},
		{
			name: "ANTHROPIC_API_KEY set",
			env:  map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test", "OPENROUTER_API_KEY": "sk-or-test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadFile(path, LoadOptions{LookupEnv: env(tt.env)})
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if diff := cmp.Diff(tt.wantWarnings, strs(p.Warnings)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			for slug, cluster := range map[string]string{"anthropic": "chain_anthropic", "demo": "chain_demo",
				"openrouter": "chain_openrouter", "ollama": "chain_ollama", "claude-or-openrouter": "chain_claude-or-openrouter"} {
				if r, ok := p.Route("@" + slug); !ok || r.Cluster != cluster {
					t.Errorf("route %s = %+v, %v; want cluster %s", slug, r, ok, cluster)
				}
			}
			if r := p.Routes["anthropic"]; !cmp.Equal(r.Fallback, defaultFallback(1)) {
				t.Errorf("route anthropic falls back %+v, want the defaults %+v it spells out", r.Fallback, defaultFallback(1))
			}
			if p.DefaultRoute != "anthropic" {
				t.Errorf("DefaultRoute = %q, want anthropic", p.DefaultRoute)
			}
			teams := map[string]bool{}
			for _, k := range p.Keys {
				teams[k.Team] = true
			}
			if len(p.Keys) < 2 || len(teams) < 2 {
				t.Errorf("keys %+v: want several keys of different teams", p.Keys)
			}
			// The example must not be usable as is with a published key.
			if _, ok := p.Authenticate("tg-demo-key"); ok {
				t.Error("the example accepts the published demo key")
			}
		})
	}
	if _, err := LoadFile(path, LoadOptions{LookupEnv: env(nil), RequireSecrets: true}); err == nil {
		t.Error("with RequireSecrets and no ANTHROPIC_API_KEY, the example loaded; want an error")
	}
}

func TestAuthenticate(t *testing.T) {
	p := mustParse(t, "dir/p.yaml", valid(), validOpts())
	tests := []struct {
		key    string
		wantID string
	}{
		{"k", "k"},
		{"j", "j"},
		{"unknown", ""},
		{"", ""},
		{"K", ""},
		{hashK, ""}, // The hash itself is not a key.
	}
	for _, tt := range tests {
		k, ok := p.Authenticate(tt.key)
		if ok != (tt.wantID != "") || ok && k.ID != tt.wantID {
			t.Errorf("Authenticate(%q) = %+v, %v; want id %q", tt.key, k, ok, tt.wantID)
		}
	}
	k, _ := p.Authenticate("k")
	want := &Key{ID: "k", User: "alice", Team: "platform", Project: "web", Metadata: map[string]string{"cost_center": "42"}}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}
}

func TestRoute(t *testing.T) {
	p := mustParse(t, "dir/p.yaml", valid(), validOpts())
	tests := []struct {
		slug, want string
	}{
		{"", "prod"},
		{"prod", "prod"},
		{"@prod", "prod"},
		{"backup", "backup"},
		{"@backup", "backup"},
		{"@", ""},
		{"@@prod", ""},
		{"Prod", ""},
		{"missing", ""},
	}
	for _, tt := range tests {
		r, ok := p.Route(tt.slug)
		if ok != (tt.want != "") || ok && r.Slug != tt.want {
			t.Errorf("Route(%q) = %+v, %v; want %q", tt.slug, r, ok, tt.want)
		}
	}
}

func TestSingleRouteIsDefault(t *testing.T) {
	p := mustParse(t, "p.yaml", doc(
		"version: 1",
		"providers: {a: {type: anthropic, api_key: '${K}'}}",
		"routes: {'@only': {chain: [a]}}",
		"keys: [{id: k, sha256: "+hashK+"}]",
	), LoadOptions{LookupEnv: anyEnv})
	if r, ok := p.Route(""); !ok || r.Slug != "only" || p.DefaultRoute != "only" {
		t.Errorf("Route(\"\") = %+v, %v with DefaultRoute %q; want only", r, ok, p.DefaultRoute)
	}
}

func TestMapModel(t *testing.T) {
	p := mustParse(t, "dir/p.yaml", valid(), validOpts())
	prod, _ := p.Route("prod")
	backup, _ := p.Route("backup")
	tests := []struct {
		route           *Route
		provider, model string
		want            string
	}{
		{prod, "anthropic", "sonnet", "claude-sonnet-4-5-20250929"},                     // Route, then provider.
		{prod, "anthropic", "fast", "claude-haiku-4-5"},                                 // Route, then provider.
		{prod, "anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"},          // Provider only.
		{prod, "backup", "sonnet", "claude-sonnet-4-5"},                                 // Route only.
		{prod, "anthropic", "claude-opus-4-1", "claude-opus-4-1"},                       // Neither.
		{backup, "backup", "sonnet", "sonnet"},                                          // Neither.
		{nil, "anthropic", "haiku", "claude-haiku-4-5"},                                 // No route.
		{prod, "no-such-provider", "sonnet", "claude-sonnet-4-5"},                       // Unknown provider.
		{prod, "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"}, // Not applied twice.
	}
	for _, tt := range tests {
		slug := "<nil>"
		if tt.route != nil {
			slug = tt.route.Slug
		}
		if got := p.MapModel(tt.route, tt.provider, tt.model); got != tt.want {
			t.Errorf("MapModel(%s, %s, %s) = %s, want %s", slug, tt.provider, tt.model, got, tt.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	// policy has one provider in use (a) and one unused (b), each with the
	// given secret field.
	policy := func(a, b string) []byte {
		return doc(
			"version: 1",
			"providers:",
			"  a:",
			"    type: anthropic",
			"    "+a,
			"  b:",
			"    type: anthropic",
			"    "+b,
			"routes: {r: {chain: [a]}}",
			"keys: [{id: k, sha256: "+hashK+"}]",
		)
	}
	const unusedB = "p.yaml:6:3: providers.b: not used by any route"
	tests := []struct {
		name         string
		a, b         string
		env          map[string]string
		files        map[string]string
		require      bool
		wantA, wantB string
		wantWarnings []string
		wantErrors   []string
	}{
		{
			name: "from the environment",
			a:    "api_key: ${A}", b: "api_key: ${B}",
			env:   map[string]string{"A": "key-a", "B": "key-b"},
			wantA: "key-a", wantB: "key-b",
			wantWarnings: []string{unusedB},
		},
		{
			name: "defaults apply when unset or empty",
			a:    "api_key: ${A:-default-a}", b: "api_key: ${B:-default-b}",
			env:   map[string]string{"B": ""},
			wantA: "default-a", wantB: "default-b",
			wantWarnings: []string{unusedB},
		},
		{
			name: "the environment wins over the default",
			a:    "api_key: ${A:-default-a}", b: "api_key: ${B:-}",
			env:   map[string]string{"A": "key-a", "B": "key-b"},
			wantA: "key-a", wantB: "key-b",
			wantWarnings: []string{unusedB},
		},
		{
			name: "from files, relative to the policy, trailing newline trimmed",
			a:    "api_key_file: /run/secrets/a", b: "api_key_file: b.key",
			files: map[string]string{"/run/secrets/a": "key-a\n", "b.key": "key-b\r\n"},
			wantA: "key-a", wantB: "key-b",
			wantWarnings: []string{unusedB},
		},
		{
			name: "unresolved without RequireSecrets: warnings",
			a:    "api_key: ${A}", b: "api_key_file: /missing",
			env: map[string]string{"A": ""},
			wantWarnings: []string{
				"p.yaml:5:5: providers.a.api_key: unresolved secret: environment variable A is empty",
				unusedB,
				"p.yaml:8:5: providers.b.api_key_file: unresolved secret: cannot read api_key_file: open /missing: file does not exist",
			},
		},
		{
			name: "unresolved with RequireSecrets: an error for the provider in use",
			a:    "api_key: ${A}", b: "api_key: ${B:-}",
			require: true,
			wantErrors: []string{
				"p.yaml:5:5: providers.a.api_key: unresolved secret: environment variable A is not set",
			},
		},
		{
			name: "unreadable or empty file with RequireSecrets",
			a:    "api_key_file: /empty", b: "api_key_file: /missing",
			files:   map[string]string{"/empty": "\n"},
			require: true,
			wantErrors: []string{
				"p.yaml:5:5: providers.a.api_key_file: unresolved secret: api_key_file /empty is empty",
			},
		},
		{
			name: "unused provider with RequireSecrets: a warning",
			a:    "api_key: ${A}", b: "api_key: ${B}",
			env:     map[string]string{"A": "key-a"},
			require: true,
			wantA:   "key-a",
			wantWarnings: []string{
				unusedB,
				"p.yaml:8:5: providers.b.api_key: unresolved secret: environment variable B is not set",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", policy(tt.a, tt.b), LoadOptions{
				LookupEnv: env(tt.env), ReadFile: files(tt.files), RequireSecrets: tt.require,
			})
			if diff := cmp.Diff(tt.wantErrors, problems(t, err)); diff != "" {
				t.Fatalf("errors (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantWarnings, strs(p.Warnings)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if got := apiKey(p.Providers["a"]); got != tt.wantA {
				t.Errorf("a's key = %q, want %q", got, tt.wantA)
			}
			if got := apiKey(p.Providers["b"]); got != tt.wantB {
				t.Errorf("b's key = %q, want %q", got, tt.wantB)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	p := mustParse(t, "p.yaml", doc(
		"version: 1",
		"providers:",
		"  a: {type: anthropic, api_key: '${A}'}",
		"  spare: {type: anthropic, api_key: '${SPARE}'}",
		"routes: {r: {chain: [a]}}",
		"keys:",
	), LoadOptions{LookupEnv: anyEnv})
	want := []string{
		"p.yaml:4:3: providers.spare: not used by any route",
		"p.yaml:6:1: keys: no keys are defined; every request will be rejected",
	}
	if diff := cmp.Diff(want, strs(p.Warnings)); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestSecretNeverPrinted checks that a provider's secret shows through no
// formatting or encoding path of the Provider or of its settings. Package
// secret checks the Secret type itself.
func TestSecretNeverPrinted(t *testing.T) {
	const value = "sk-ant-very-secret"
	set := &anthropic.Settings{BaseURL: mustURL("https://h"), APIKey: Secret(value)}
	prov := &Provider{Name: "a", Type: "anthropic", Settings: set}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "provider", prov, "settings", set)
	provJS, _ := json.Marshal(prov)
	outputs := map[string]string{
		"provider %v": fmt.Sprintf("%v", prov), "provider %+v": fmt.Sprintf("%+v", *prov),
		"provider %#v": fmt.Sprintf("%#v", *prov),
		"settings %v":  fmt.Sprintf("%v", *set), "settings %+v": fmt.Sprintf("%+v", *set),
		"settings %#v":  fmt.Sprintf("%#v", *set),
		"provider json": string(provJS), "slog": logged.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", []byte(value))) {
			t.Errorf("%s prints the secret: %s", how, out)
		}
		// A pointer prints as an address; what it points to is redacted.
		if strings.HasPrefix(how, "settings") || how == "provider json" || how == "slog" {
			if !strings.Contains(out, "[redacted]") {
				t.Errorf("%s = %s, want [redacted] in it", how, out)
			}
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "p.yaml", Line: 3, Column: 5, Message: "m"}, "p.yaml:3:5: m"},
		{Problem{File: "p.yaml", Line: 3, Message: "m"}, "p.yaml:3: m"},
		{Problem{File: "p.yaml", Message: "m"}, "p.yaml: m"},
		{Problem{Message: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
	err := &LoadError{Problems: []Problem{tests[0].p, tests[1].p}}
	if got, want := err.Error(), "p.yaml:3:5: m\np.yaml:3: m"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/p.yaml"
	if err := os.WriteFile(path, valid(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/secrets", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/secrets/backup", []byte("from-disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile(path, LoadOptions{LookupEnv: anyEnv, RequireSecrets: true})
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if p.Source != path || apiKey(p.Providers["backup"]) != "from-disk" {
		t.Errorf("Source %q, backup key %q; want %q, from-disk", p.Source, apiKey(p.Providers["backup"]), path)
	}
	if _, err := LoadFile(dir+"/missing.yaml", LoadOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want a not-exist error", err)
	}
}

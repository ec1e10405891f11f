package policy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that a failure is always a
// *LoadError with at least one problem, and that a policy it accepts keeps
// its invariants.
func FuzzParse(f *testing.F) {
	seeds := []string{"default.yaml", "../deploy/policy.example.yaml"}
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, path := range append(seeds, more...) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(valid())
	f.Add([]byte("a: &a {b: *a}\nversion: *a\nproviders: *a\nroutes: {r: *a}\nkeys: [*a, *a]\n"))
	f.Add([]byte("version: 1\nproviders: {a: {type: anthropic, api_key: ${K}}}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("version: !!binary AAAA\n"))
	f.Add(budgetDoc("budget_timezone: Europe/Berlin", "teams: {platform: {budgets: [{usd: 5, per: month}], capture_bodies: {max_bytes: 10}}}",
		"sessions: {ttl: 1h, budgets: [{usd: 5, per: session}]}", "global: {budgets: [{requests: 10, per: minute}, {concurrent: 3}]}"))

	opts := LoadOptions{
		LookupEnv: env(map[string]string{"K": "v", "ANTHROPIC_API_KEY": "v"}),
		ReadFile:  files(map[string]string{"/run/secrets/a": "v\n"}),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data, opts)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v is not a *LoadError with problems", err)
			}
			return
		}
		if p.Version != 1 {
			t.Fatalf("accepted version %d", p.Version)
		}
		if _, ok := p.Route(""); !ok {
			t.Fatalf("default route %q does not exist", p.DefaultRoute)
		}
		for slug, r := range p.Routes {
			if r.Slug != slug || len(r.Chain) == 0 || r.Cluster == "" {
				t.Fatalf("route %q: %+v", slug, r)
			}
			for _, name := range r.Chain {
				if p.Providers[name] == nil {
					t.Fatalf("route %q names missing provider %q", slug, name)
				}
			}
		}
		for name, prov := range p.Providers {
			// Every type's settings say where the provider is.
			ep, ok := prov.Settings.(interface{ Endpoint() (string, int, bool) })
			if prov.Name != name || !ok {
				t.Fatalf("provider %q: %+v", name, prov)
			}
			if host, port, _ := ep.Endpoint(); host == "" || port <= 0 || port > 65535 {
				t.Fatalf("provider %q: endpoint %q port %d", name, host, port)
			}
		}
		for _, k := range p.Keys {
			if k.ID == "" {
				t.Fatalf("key without id: %+v", k)
			}
		}
		for scope, limits := range p.Budgets.Limits {
			for _, l := range limits {
				if err := l.Validate(); err != nil {
					t.Fatalf("%v: %v", scope, err)
				}
			}
		}
		if n := p.CaptureLimit(p.Routes[p.DefaultRoute], "x"); n < 0 || n > MaxCaptureBytes {
			t.Fatalf("CaptureLimit = %d", n)
		}
	})
}

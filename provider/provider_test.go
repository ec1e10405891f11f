package provider_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/provider"
	"github.com/tollgate-dev/tollgate/translate"
)

// TestEveryProviderPackageIsRegistered checks that each package under
// provider/ that declares a Type is in the registry, so that a new provider
// type cannot be written and forgotten: its one registration line is the
// only place besides its package that adding it touches.
func TestEveryProviderPackageIsRegistered(t *testing.T) {
	registered := map[string]bool{}
	for _, pt := range provider.Types() {
		registered[reflect.TypeOf(pt).PkgPath()] = true
	}
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range dirs {
		if !d.IsDir() || !declaresType(t, d.Name()) {
			continue
		}
		found++
		if pkg := "github.com/tollgate-dev/tollgate/provider/" + d.Name(); !registered[pkg] {
			t.Errorf("package %s declares a provider Type but is not registered in provider/provider.go", pkg)
		}
	}
	if found != len(provider.Types()) {
		t.Errorf("%d packages declare a Type, %d types are registered", found, len(provider.Types()))
	}
}

// declaresType reports whether the package in dir declares a type named Type.
func declaresType(t *testing.T, dir string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range af.Decls {
			if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					if s.(*ast.TypeSpec).Name.Name == "Type" {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestRegistry checks the registry's lookups: unique names, a translation
// from Anthropic clients to every type (a policy that loads never names a
// provider its clients cannot reach), and nothing for a type that is not
// registered.
func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, pt := range provider.Types() {
		if seen[pt.Name()] {
			t.Errorf("provider type %s registered twice", pt.Name())
		}
		seen[pt.Name()] = true
		if got, ok := provider.Lookup(pt.Name()); !ok || got != pt {
			t.Errorf("Lookup(%s) = %v, %v", pt.Name(), got, ok)
		}
		if _, ok := provider.Translation(translate.ClientAnthropic, pt.Name()); !ok {
			t.Errorf("no translation from %s clients to provider type %s", translate.ClientAnthropic, pt.Name())
		}
	}
	if _, ok := provider.Lookup("nosuch"); ok {
		t.Error("Lookup found an unregistered type")
	}
	if _, ok := provider.Translation(translate.ClientAnthropic, "nosuch"); ok {
		t.Error("Translation found a translation to an unregistered type")
	}
}

// TestUnregisteredTypeFailsToLoad checks that a policy naming a provider type
// the registry lacks does not load, and says which types exist.
func TestUnregisteredTypeFailsToLoad(t *testing.T) {
	doc := `version: 1
providers:
  a: {type: nosuch, api_key: '${K}'}
routes: {r: {chain: [a]}}
keys: []
`
	_, err := policy.Parse("p.yaml", []byte(doc), policy.LoadOptions{LookupEnv: func(string) (string, bool) { return "k", true }})
	var names []string
	for _, pt := range provider.Types() {
		names = append(names, pt.Name())
	}
	want := `unknown provider type "nosuch"; known types: ` + strings.Join(names, ", ")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Parse = %v; want the unknown type refused", err)
	}
}

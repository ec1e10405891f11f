package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-dev/tollgate/envoyrender"
	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
	"github.com/tollgate-dev/tollgate/policy"
)

// The command that writes envoy.yaml, run from the repository root.
const renderCommand = "tollgate envoy render --policy deploy/policy.example.yaml --base envoy.base.yaml --out envoy.yaml (make envoy.yaml)"

// TestEnvoyYAMLIsRendered checks that the committed envoy.yaml is, byte for
// byte, the rendering of the example policy over envoy.base.yaml, and that
// the rendering passes the strict config test (parse, validate, lint).
func TestEnvoyYAMLIsRendered(t *testing.T) {
	root := repoDir(t)
	noEnv := func(string) (string, bool) { return "", false }
	p, err := policy.LoadFile(filepath.Join(root, "deploy", "policy.example.yaml"), policy.LoadOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(root, "envoy.base.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := envoyrender.Render(p, base, envoyrender.Options{PolicyFile: "deploy/policy.example.yaml", BaseFile: "envoy.base.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := envoyconfig.Check(path); err != nil {
		t.Errorf("the rendering fails the strict config test: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(root, "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		line := 1 + bytes.Count(got[:commonPrefix(got, want)], []byte("\n"))
		t.Errorf("envoy.yaml is not the rendering of deploy/policy.example.yaml and envoy.base.yaml (first difference at line %d); regenerate it with:\n  %s", line, renderCommand)
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

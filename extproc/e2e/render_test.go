package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-dev/tollgate/envoyrender"
	"github.com/tollgate-dev/tollgate/policy"
)

// renderEnvoy returns the Envoy configuration `tollgate envoy render`
// writes for p from the repository's envoy.base.yaml.
func renderEnvoy(t *testing.T, p *policy.Policy) []byte {
	t.Helper()
	base, err := os.ReadFile("../../envoy.base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := envoyrender.Render(p, base, envoyrender.Options{PolicyFile: p.Source, BaseFile: "envoy.base.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// renderEnvoyFile is renderEnvoy written to a temporary file.
func renderEnvoyFile(t *testing.T, p *policy.Policy) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, renderEnvoy(t, p), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRenderedChainFallsBack runs a two-provider chain on the configuration
// rendered from its policy alone, its provider clusters pointing where the
// policy's base URLs say: the first provider answers 529 (overloaded), and
// the route's rendered retry policy (previous_priorities over the rendered
// aggregate cluster) sends attempt 2 to the second, whose answer the SDK
// gets.
func TestRenderedChainFallsBack(t *testing.T) {
	for _, stream := range []bool{false, true} {
		c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-overloaded", rendered: true})
		model, hdr, err := c.send(t, stream)
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if model != "claude-sonnet-4-5" || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
			t.Errorf("stream=%v: model %q, served by %q after %q attempts; want anthropic's answer on attempt 2",
				stream, model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
		}
		if n := len(c.a.Requests()); n != 1 {
			t.Errorf("stream=%v: the first provider got %d requests; want 1", stream, n)
		}
	}
}

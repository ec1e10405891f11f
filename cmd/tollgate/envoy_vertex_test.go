package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Vertex AI providers render from their region alone: no credentials file
// is read, and Application Default Credentials are not looked up.
func TestEnvoyRenderVertex(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
	policy := filepath.Join(t.TempDir(), "vertex.yaml")
	src := `version: 1
providers:
  vx-global: {type: vertex, project: acme, region: global, credentials_file: /nonexistent/sa.json}
  vx-eu: {type: vertex, project: acme, region: eu}
  vx-regional: {type: vertex, project: acme, region: europe-west1, credentials: "${GOOGLE_SA_JSON}"}
routes:
  r: {chain: [vx-global, vx-eu, vx-regional]}
`
	if err := os.WriteFile(policy, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "", "envoy", "render", "--policy", policy, "--base", "../../envoy.base.yaml")
	if err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	for _, host := range []string{"aiplatform.googleapis.com", "aiplatform.eu.rep.googleapis.com", "europe-west1-aiplatform.googleapis.com"} {
		if !strings.Contains(out, "address: "+host) || !strings.Contains(out, "sni: "+host) {
			t.Errorf("output lacks the cluster of %s:\n%s", host, out)
		}
	}
}

package vertex_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/provider/vertex"
	"github.com/tollgate-dev/tollgate/secret"
)

// TestServiceAccountFlow runs golang.org/x/oauth2/google's flows against the
// fake Vertex AI's token endpoints: a service-account key from
// credentials_file and from Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS), whose JWT is verified there; workload
// identity federation (an external_account configuration, its subject token
// exchanged at the fake STS); and the metadata server of GCE and GKE
// workload identity (Application Default Credentials with
// GCE_METADATA_HOST). Each time the token issued is the bearer
// SetBodyHeaders sets, fetched once for several requests.
func TestServiceAccountFlow(t *testing.T) {
	fake, err := envoytest.NewFakeVertex(envoytest.FakeVertexConfig{Project: "p", Region: "global"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(keyFile, fake.ServiceAccountJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	subject, wifFile := filepath.Join(dir, "oidc-token"), filepath.Join(dir, "wif.json")
	if err := os.WriteFile(subject, []byte(envoytest.FakeSubjectToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wifFile, fake.WorkloadIdentityJSON(subject), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		kv      []string
		adcFile string // GOOGLE_APPLICATION_CREDENTIALS
		onGCE   bool   // GCE_METADATA_HOST set to the fake
	}{
		{"credentials_file", []string{"credentials_file", keyFile}, "", false},
		{"application default credentials", nil, keyFile, false},
		{"workload identity federation", []string{"credentials_file", wifFile}, "", false},
		{"metadata server", nil, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", c.adcFile)
			t.Setenv("HOME", t.TempDir()) // no gcloud file
			if c.onGCE {
				t.Setenv("GCE_METADATA_HOST", fake.Addr())
			}
			before := fake.TokensIssued()
			s := vertex.Type{}.NewSettings().(*vertex.Settings)
			for i, kv := 0, append([]string{"project", "p", "region", "global", "base_url", fake.URL()}, c.kv...); i+1 < len(kv); i += 2 {
				if err := s.Set(kv[i], kv[i+1]); err != nil {
					t.Fatal(err)
				}
			}
			// The policy's file reader, for the path credentials_file names.
			readFile := func(string) (secret.Secret, error) {
				b, err := os.ReadFile(c.kv[1])
				return secret.Secret(b), err
			}
			if err := s.Resolve(nil, readFile); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				hdr := map[string]string{}
				if err := s.SetBodyHeaders(context.Background(), time.Now(), "POST", "/p", nil, func(k, v string) { hdr[k] = v }); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(hdr["authorization"], "Bearer ya29.fake-") {
					t.Errorf("authorization %q", hdr["authorization"])
				}
			}
			if n := fake.TokensIssued() - before; n != 1 {
				t.Errorf("%d tokens issued for three requests", n)
			}
			if v := fake.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
		})
	}
}

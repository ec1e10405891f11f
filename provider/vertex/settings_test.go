package vertex

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/secret"
)

// settings returns settings with fields set in order, resolved with env and
// file; set errors fail the test.
func settings(t *testing.T, env, file func(string) (secret.Secret, error), kv ...string) (*Settings, error) {
	t.Helper()
	s := newSettings()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := s.Set(kv[i], kv[i+1]); err != nil {
			t.Fatalf("Set(%s, %s): %v", kv[i], kv[i+1], err)
		}
	}
	return s, s.Resolve(env, file)
}

func noSecret(field string) (secret.Secret, error) { return "", errors.New("not read: " + field) }

// TestHosts checks each kind of location's host (global, multi-region,
// regional, base_url), the path under it, and Endpoint, which needs no
// credentials: here none resolve, as under `tollgate envoy render`.
func TestHosts(t *testing.T) {
	for _, c := range []struct {
		region, baseURL string
		host            string
		port            int
		tls             bool
		path            string
	}{
		{"global", "", "aiplatform.googleapis.com", 443, true, "/v1/projects/p-1/locations/global"},
		{"us", "", "aiplatform.us.rep.googleapis.com", 443, true, "/v1/projects/p-1/locations/us"},
		{"eu", "", "aiplatform.eu.rep.googleapis.com", 443, true, "/v1/projects/p-1/locations/eu"},
		{"us-east5", "", "us-east5-aiplatform.googleapis.com", 443, true, "/v1/projects/p-1/locations/us-east5"},
		{"europe-west1", "http://127.0.0.1:8123/psc/", "127.0.0.1", 8123, false, "/psc/v1/projects/p-1/locations/europe-west1"},
	} {
		kv := []string{"project", "p-1", "region", c.region, "credentials_file", "/secrets/sa.json"}
		if c.baseURL != "" {
			kv = append(kv, "base_url", c.baseURL)
		}
		s, err := settings(t, noSecret, noSecret, kv...)
		if err == nil || !strings.Contains(err.Error(), "not read") {
			t.Errorf("%s: Resolve = %v; want the file's error", c.region, err)
		}
		host, port, tls := s.Endpoint()
		if host != c.host || port != c.port || tls != c.tls || s.resourcePath() != c.path {
			t.Errorf("%s: %s %d %v %s; want %s %d %v %s", c.region, host, port, tls, s.resourcePath(), c.host, c.port, c.tls, c.path)
		}
		hdr := map[string]string{}
		s.SetRequestHeaders("/v1/messages", nil, func(k, v string) { hdr[k] = v })
		if hdr[":authority"] != s.BaseURL.Host {
			t.Errorf("%s: authority %q", c.region, hdr[":authority"])
		}
		// Without credentials the attempt is refused, path set.
		err = s.SetBodyHeaders(context.Background(), time.Now(), "POST", "/x", nil, func(k, v string) { hdr[k] = v })
		if err == nil || hdr[":path"] != c.path+"/x" || hdr["authorization"] != "" {
			t.Errorf("%s: SetBodyHeaders without credentials: %v, %v", c.region, err, hdr)
		}
	}
}

func TestSettingsRefusals(t *testing.T) {
	for _, c := range []struct{ field, value string }{
		{"region", "us-east-1"}, {"region", "US"}, {"region", ""}, {"project", "My Project"}, {"project", "a/b"},
		{"base_url", "ftp://x"}, {"base_url", "https://user:pw@x"}, {"credentials_file", ""}, {"api_key", "x"},
	} {
		if err := newSettings().Set(c.field, c.value); err == nil {
			t.Errorf("%s %q accepted", c.field, c.value)
		}
	}
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"region", "global"}, "project is required"},
		{[]string{"project", "p"}, "region is required"},
		{[]string{"project", "p", "region", "global", "credentials", "${X}", "credentials_file", "f"}, "mutually exclusive"},
	} {
		if _, err := settings(t, noSecret, noSecret, c.kv...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want %q", c.kv, err, c.want)
		}
	}
	// Credentials that are not Google's are refused at their field.
	_, err := settings(t, func(string) (secret.Secret, error) { return `{"type":"nonsense"}`, nil }, noSecret,
		"project", "p", "region", "global", "credentials", "${X}")
	var fe interface{ Field() string }
	if !errors.As(err, &fe) || fe.Field() != "credentials" {
		t.Errorf("bad JSON: %v", err)
	}
}

// Without credentials fields, Application Default Credentials are looked
// up at the first request, not when the policy loads: here
// GOOGLE_APPLICATION_CREDENTIALS names a file that is not there, which only
// the request reports.
func TestDefaultCredentialsAreLookedUpLate(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
	s, err := settings(t, noSecret, noSecret, "project", "p", "region", "us")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	err = s.SetBodyHeaders(context.Background(), time.Now(), "POST", "/x", nil, func(string, string) {})
	if err == nil || !strings.Contains(err.Error(), "application default credentials") {
		t.Errorf("first request: %v", err)
	}
	if _, err := os.Stat(os.Getenv("GOOGLE_APPLICATION_CREDENTIALS")); err == nil {
		t.Fatal("the file exists")
	}
}

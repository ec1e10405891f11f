package bedrock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/tollgate-dev/tollgate/secret"
)

var signNow = time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC)

// verify signs the request again with the SDK's signer, as Bedrock would,
// from the headers set and reports whether the signature matches.
func verify(t *testing.T, set map[string]string, creds aws.Credentials, host string, body []byte) bool {
	t.Helper()
	u, err := url.Parse("https://" + host + set[":path"])
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: "POST", URL: u, Host: host, Header: http.Header{}}
	r.Header.Set("x-amz-content-sha256", set["x-amz-content-sha256"])
	at, err := time.Parse("20060102T150405Z", set["x-amz-date"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "bedrock", "eu-central-1", at); err != nil {
		t.Fatal(err)
	}
	return r.Header.Get("authorization") == set["authorization"] && r.Header.Get("x-amz-security-token") == set["x-amz-security-token"]
}

func settings(t *testing.T) *Settings {
	t.Helper()
	s := newSettings()
	if err := s.Set("region", "eu-central-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("base_url", "https://bedrock.example:8443/base/"); err != nil {
		t.Fatal(err)
	}
	return s
}

func bodyHeaders(t *testing.T, s *Settings, body []byte) map[string]string {
	t.Helper()
	set := map[string]string{}
	if err := s.SetBodyHeaders(context.Background(), signNow, "POST", "/model/a%3Ab/invoke", body, func(n, v string) { set[n] = v }); err != nil {
		t.Fatal(err)
	}
	if set[":path"] != "/base/model/a%3Ab/invoke" {
		t.Errorf(":path %q", set[":path"])
	}
	return set
}

func TestSetBodyHeadersStaticKeys(t *testing.T) {
	s := settings(t)
	for _, f := range []string{"access_key_id", "secret_access_key", "session_token"} {
		if err := s.Set(f, "${X}"); err != nil {
			t.Fatal(err)
		}
	}
	vals := map[string]string{"access_key_id": "AKID", "secret_access_key": "SECRET", "session_token": "TOKEN"}
	if err := s.Resolve(func(f string) (secret.Secret, error) { return secret.Secret(vals[f]), nil }, nil); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31"}`)
	set := bodyHeaders(t, s, body)
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET", SessionToken: "TOKEN"}
	if set["x-amz-date"] != "20261204T010203Z" || !verify(t, set, creds, "bedrock.example:8443", body) {
		t.Errorf("signature does not verify: %v", set)
	}
	// The signature covers the body and the secret.
	if verify(t, set, creds, "bedrock.example:8443", []byte(`{}`)) {
		t.Error("a changed body verifies")
	}
	creds.SecretAccessKey = "OTHER"
	if verify(t, set, creds, "bedrock.example:8443", body) {
		t.Error("a wrong secret verifies")
	}
}

func TestSetBodyHeadersAPIKey(t *testing.T) {
	s := settings(t)
	if err := s.Set("api_key", "${KEY}"); err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(func(string) (secret.Secret, error) { return secret.Secret("br-key"), nil }, nil); err != nil {
		t.Fatal(err)
	}
	set := bodyHeaders(t, s, []byte(`{}`))
	if set["authorization"] != "Bearer br-key" || set["x-amz-date"] != "" {
		t.Errorf("headers %v", set)
	}
}

// TestSetBodyHeadersDefaultChain signs with credentials from the SDK's
// default chain: here the environment, with shared files and the instance
// metadata service out of the way.
func TestSetBodyHeadersDefaultChain(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
	t.Setenv("AWS_SESSION_TOKEN", "ENVTOKEN")
	s := settings(t)
	if err := s.Resolve(nil, nil); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"x":1}`)
	set := bodyHeaders(t, s, body)
	if !verify(t, set, aws.Credentials{AccessKeyID: "ENVKEY", SecretAccessKey: "ENVSECRET", SessionToken: "ENVTOKEN"}, "bedrock.example:8443", body) {
		t.Errorf("signature does not verify: %v", set)
	}
	if !strings.Contains(set["authorization"], "Credential=ENVKEY/20261204/eu-central-1/bedrock/aws4_request") {
		t.Errorf("authorization %q", set["authorization"])
	}
}

// rotatingProvider hands out new keys on every call, each valid for a
// minute.
type rotatingProvider struct{ calls int }

func (p *rotatingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	p.calls++
	return aws.Credentials{AccessKeyID: "ROTATED" + strconv.Itoa(p.calls), SecretAccessKey: "S", CanExpire: true,
		Expires: time.Now().Add(time.Minute)}, nil
}

// TestSetBodyHeadersRefreshesBeforeExpiry signs through the SDK's
// credentials cache, as the default chain does: credentials valid for
// longer than the cache's expiry window are reused, and ones that expire
// within it are fetched again before signing.
func TestSetBodyHeadersRefreshesBeforeExpiry(t *testing.T) {
	keyOf := func(s *Settings) string {
		set := bodyHeaders(t, s, []byte(`{}`))
		_, rest, _ := strings.Cut(set["authorization"], "Credential=")
		id, _, _ := strings.Cut(rest, "/")
		return id
	}
	p := &rotatingProvider{}
	s := settings(t)
	s.creds = aws.NewCredentialsCache(p) // default window: reused while valid
	if a, b := keyOf(s), keyOf(s); a != "ROTATED1" || b != "ROTATED1" || p.calls != 1 {
		t.Errorf("keys %s, %s after %d fetches; want the cached one", a, b, p.calls)
	}
	p = &rotatingProvider{}
	s.creds = aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
	if a, b := keyOf(s), keyOf(s); a != "ROTATED1" || b != "ROTATED2" {
		t.Errorf("keys %s, %s; want a refresh before each signature", a, b)
	}
}

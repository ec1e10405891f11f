package bedrock_test

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/provider/bedrock"
)

func parse(t *testing.T, fields string) (*bedrock.Settings, error) {
	t.Helper()
	src := "version: 1\nproviders:\n  b:\n    type: bedrock\n" + fields + "routes:\n  r: {chain: [b]}\nkeys: []\n"
	env := map[string]string{"ID": "AKID", "SECRET": "sekrit", "TOKEN": "tok", "KEY": "bedrock-api-key"}
	p, err := policy.Parse("p.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		return nil, err
	}
	return p.Providers["b"].Settings.(*bedrock.Settings), nil
}

func TestSettings(t *testing.T) {
	s, err := parse(t, "    region: eu-west-1\n    access_key_id: ${ID}\n    secret_access_key: ${SECRET}\n    session_token: ${TOKEN}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Region != "eu-west-1" || s.BaseURL.String() != "https://bedrock-runtime.eu-west-1.amazonaws.com" ||
		s.AccessKeyID.Reveal() != "AKID" || s.SecretAccessKey.Reveal() != "sekrit" || s.SessionToken.Reveal() != "tok" {
		t.Errorf("settings %+v", s)
	}
	s, err = parse(t, "    region: us-east-1\n    base_url: http://127.0.0.1:9/vpc/\n    api_key: ${KEY}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.BaseURL.String() != "http://127.0.0.1:9/vpc" || s.APIKey.Reveal() != "bedrock-api-key" {
		t.Errorf("settings %+v", s)
	}
}

func TestSettingsRefused(t *testing.T) {
	for _, c := range []struct{ fields, want string }{
		{"    api_key: ${KEY}\n", "region is required"},
		{"    region: mars\n    api_key: ${KEY}\n", "AWS region"},
		{"    region: us-east-1\n    api_key: ${KEY}\n    access_key_id: ${ID}\n    secret_access_key: ${SECRET}\n", "mutually exclusive"},
		{"    region: us-east-1\n    access_key_id: ${ID}\n", "go together"},
		{"    region: us-east-1\n    access_key_id: ${ID}\n    access_key_id_file: /x\n    secret_access_key: ${SECRET}\n", "mutually exclusive"},
		{"    region: us-east-1\n    api_key: ${MISSING}\n", "MISSING"},
		{"    region: us-east-1\n    base_url: ftp://x\n    api_key: ${KEY}\n", "http or https"},
	} {
		if _, err := parse(t, c.fields); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v; want %q", c.fields, err, c.want)
		}
	}
}

package envoyrender_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// A chain that falls back from Anthropic to Bedrock renders Bedrock's
// cluster at its regional runtime host, over TLS with SNI and the host's
// certificate name, or at its base_url. Rendering resolves no credentials:
// neither the ${VAR} keys of one provider nor the AWS SDK's default chain of
// the other, whose credential_process would leave a marker file if it ran.
func TestBedrockChain(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "credentials-were-fetched")
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(config, []byte("[default]\ncredential_process = touch "+marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", config)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	p := load(t, `providers:
  anthropic: {type: anthropic, api_key: "${K}"}
  bedrock: {type: bedrock, region: eu-west-1}
  vpc:
    type: bedrock
    region: us-east-1
    base_url: https://vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com
    access_key_id: ${AWS_ID}
    secret_access_key: ${AWS_SECRET}
routes:
  claude: {chain: [anthropic, bedrock, vpc]}
`)
	m := check(t, render(t, p))
	chain := m.Cluster("chain_claude")
	if chain == nil || !slices.Equal(chain.Aggregate.GetClusters(), []string{"prov_anthropic", "prov_bedrock", "prov_vpc"}) {
		t.Fatalf("chain cluster %v", chain)
	}
	if n := route(t, m, "chain_claude").GetRoute().GetRetryPolicy().GetNumRetries().GetValue(); n != 2 {
		t.Errorf("num_retries %d; want 2", n)
	}
	for name, host := range map[string]string{
		"prov_bedrock": "bedrock-runtime.eu-west-1.amazonaws.com",
		"prov_vpc":     "vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com",
	} {
		c := m.Cluster(name)
		if c == nil || c.Proto.GetType() != clusterv3.Cluster_LOGICAL_DNS || len(c.Endpoints) != 1 ||
			c.Endpoints[0].Address != host || c.Endpoints[0].Port != 443 {
			t.Fatalf("%s %+v", name, c)
		}
		san := c.TLS.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
		if c.TLS.GetSni() != host || len(san) != 1 || san[0].GetMatcher().GetExact() != host {
			t.Errorf("%s TLS %v", name, c.TLS)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("rendering fetched AWS credentials")
	}
}

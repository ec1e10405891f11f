package envoyrender_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"

	"github.com/tollgate-dev/tollgate/envoyrender"
	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
	"github.com/tollgate-dev/tollgate/policy"
)

const baseFile = "../envoy.base.yaml"

// load parses a policy whose secrets need not resolve, as the command does.
func load(t *testing.T, src string) *policy.Policy {
	t.Helper()
	if strings.Count(src, "chain:") > 1 {
		src += "default_route: " + defaultRoute(src) + "\n"
	}
	src = "version: 1\n" + src + "keys: [{id: k, sha256: " + policy.HashKey("k") + "}]\n"
	p, err := policy.Parse("p.yaml", []byte(src), policy.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// defaultRoute returns the first route of the routes section of src.
func defaultRoute(src string) string {
	rest := src[strings.Index(src, "routes:\n")+len("routes:\n"):]
	return strings.TrimSpace(rest[:strings.Index(rest, ":")])
}

func render(t *testing.T, p *policy.Policy) []byte {
	t.Helper()
	base, err := os.ReadFile(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := envoyrender.Render(p, base, envoyrender.Options{PolicyFile: "p.yaml", BaseFile: "envoy.base.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// check runs the strict config test on out (parse, validate, lint) and
// returns its model.
func check(t *testing.T, out []byte) *envoyconfig.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := envoyconfig.Check(path); err != nil {
		t.Fatalf("strict config test: %v\n%s", err, out)
	}
	bs, err := envoyconfig.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := envoyconfig.NewModel(bs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// route returns the rendered route to cluster.
func route(t *testing.T, m *envoyconfig.Model, cluster string) *routev3.Route {
	t.Helper()
	for _, r := range m.Listener("llm").HCMs[0].Routes {
		if r.Action().GetCluster() == cluster {
			return r.Proto
		}
	}
	t.Fatalf("no route to %s", cluster)
	return nil
}

const twoProviders = `providers:
  primary: {type: anthropic, base_url: "https://api.example.com", api_key: "${K}"}
  backup: {type: anthropic, base_url: "http://backup.internal:8080/v1", api_key: "${K}"}
  unused: {type: anthropic, base_url: "http://10.1.2.3:9000", api_key: "${K}"}
`

func TestTwoProviderChain(t *testing.T) {
	p := load(t, twoProviders+`routes:
  team:
    chain: [primary, backup]
    fallback_on: [529, 503, connect-failure, reset, stall]
    per_try_timeout: 30s
    per_try_idle_timeout: 90s
`)
	out := render(t, p)
	m := check(t, out)

	r := route(t, m, "chain_team")
	hm := r.GetMatch().GetHeaders()
	if r.GetMatch().GetPrefix() != "/" || len(hm) != 1 || hm[0].GetName() != envoyrender.ClusterHeader || hm[0].GetStringMatch().GetExact() != "chain_team" {
		t.Errorf("match %v", r.GetMatch())
	}
	a := r.GetRoute()
	if a.GetTimeout().AsDuration() != 0 || a.GetIdleTimeout().AsDuration() != 300*time.Second || r.GetRequestBodyBufferLimit().GetValue() != envoyconfig.MinBodyBufferBytes {
		t.Errorf("route timeouts %v %v, buffer limit %v", a.GetTimeout(), a.GetIdleTimeout(), r.GetRequestBodyBufferLimit())
	}
	rp := a.GetRetryPolicy()
	if rp.GetRetryOn() != "connect-failure,reset,retriable-status-codes" || !slices.Equal(rp.GetRetriableStatusCodes(), []uint32{503, 529}) ||
		rp.GetNumRetries().GetValue() != 1 || rp.GetPerTryTimeout().AsDuration() != 30*time.Second || rp.GetPerTryIdleTimeout().AsDuration() != 90*time.Second {
		t.Errorf("retry policy %v", rp)
	}
	pp := &previousprioritiesv3.PreviousPrioritiesConfig{}
	if rp.GetRetryPriority().GetName() != "envoy.retry_priorities.previous_priorities" || rp.GetRetryPriority().GetTypedConfig().UnmarshalTo(pp) != nil || pp.GetUpdateFrequency() != 1 {
		t.Errorf("retry priority %v", rp.GetRetryPriority())
	}
	if len(rp.GetRetryHostPredicate()) != 1 || rp.GetRetryHostPredicate()[0].GetName() != "envoy.retry_host_predicates.previous_hosts" {
		t.Errorf("retry host predicate %v", rp.GetRetryHostPredicate())
	}

	chain := m.Cluster("chain_team")
	if chain == nil || !chain.IsAggregate() || !slices.Equal(chain.Aggregate.GetClusters(), []string{"prov_primary", "prov_backup"}) {
		t.Fatalf("chain cluster %v", chain)
	}
	if n := len(chain.UpstreamFilters); n != 2 || chain.UpstreamFilters[0].Name() != "tollgate.adapter" {
		t.Errorf("chain upstream filters: %d", n)
	}
	th := chain.Proto.GetCircuitBreakers().GetThresholds()
	if len(th) != 1 || th[0].GetRetryBudget().GetMinRetryConcurrency().GetValue() == 0 {
		t.Errorf("chain circuit breakers %v: want a retry budget", th)
	}

	prim := m.Cluster("prov_primary")
	if prim == nil || prim.Proto.GetType() != clusterv3.Cluster_LOGICAL_DNS || len(prim.Endpoints) != 1 ||
		prim.Endpoints[0].Address != "api.example.com" || prim.Endpoints[0].Port != 443 || prim.Endpoints[0].Provider() != "primary" {
		t.Fatalf("prov_primary %+v", prim)
	}
	san := prim.TLS.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
	if prim.TLS.GetSni() != "api.example.com" || len(san) != 1 || san[0].GetMatcher().GetExact() != "api.example.com" ||
		prim.TLS.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() == "" {
		t.Errorf("prov_primary TLS %v", prim.TLS)
	}
	backup := m.Cluster("prov_backup")
	if backup == nil || backup.Proto.GetType() != clusterv3.Cluster_STRICT_DNS || backup.TLS != nil ||
		backup.Endpoints[0].Address != "backup.internal" || backup.Endpoints[0].Port != 8080 || backup.Endpoints[0].Provider() != "backup" {
		t.Errorf("prov_backup %+v", backup)
	}
	for _, c := range []*envoyconfig.Cluster{prim, backup} {
		od := c.Proto.GetOutlierDetection()
		if od.GetMaxEjectionPercent().GetValue() != 100 || od.GetEnforcingConsecutiveGatewayFailure().GetValue() != 100 ||
			od.GetConsecutiveGatewayFailure() == nil || od.GetConsecutive_5Xx() == nil || od.GetBaseEjectionTime() == nil {
			t.Errorf("%s outlier detection %v", c.Proto.GetName(), od)
		}
	}
	if m.Cluster("prov_unused") != nil {
		t.Error("a provider no chain uses got a cluster")
	}
	// The catch-all route stays last.
	routes := m.Listener("llm").HCMs[0].Routes
	if last := routes[len(routes)-1]; last.Action().GetClusterHeader() != envoyrender.ClusterHeader {
		t.Errorf("last route %v", last.Proto)
	}
	if !bytes.HasPrefix(out, []byte("# GENERATED by `tollgate envoy render --policy p.yaml --base envoy.base.yaml`.\n# Do not edit by hand")) {
		t.Errorf("header:\n%s", out[:200])
	}
	if bytes.Contains(out, []byte("render_templates")) {
		t.Error("the templates section reached the output")
	}
	if !bytes.Equal(out, render(t, p)) {
		t.Error("two renderings differ")
	}
}

// A chain of one provider retries that provider (max_attempts), without
// previous_priorities, which has nothing to exclude there.
func TestOneProviderChain(t *testing.T) {
	p := load(t, twoProviders+`routes:
  solo: {chain: [backup], max_attempts: 3}
`)
	m := check(t, render(t, p))
	rp := route(t, m, "chain_solo").GetRoute().GetRetryPolicy()
	if rp.GetNumRetries().GetValue() != 2 || rp.GetRetryPriority() != nil || rp.GetPerTryIdleTimeout().AsDuration() != policy.DefaultPerTryIdleTimeout ||
		!slices.Equal(rp.GetRetriableStatusCodes(), []uint32{429, 500, 502, 503, 504, 529}) || rp.GetPerTryTimeout() != nil {
		t.Errorf("retry policy %v", rp)
	}
	if c := m.Cluster("chain_solo"); !slices.Equal(c.Aggregate.GetClusters(), []string{"prov_backup"}) {
		t.Errorf("children %v", c.Aggregate.GetClusters())
	}
}

// fallback_on [] never retries: no retry policy at all, unless a per-try
// timeout still bounds the one attempt.
func TestNoFallback(t *testing.T) {
	p := load(t, twoProviders+`routes:
  never: {chain: [primary, backup], fallback_on: []}
  bounded: {chain: [primary, backup], fallback_on: [], per_try_timeout: 20s}
`)
	m := check(t, render(t, p))
	if rp := route(t, m, "chain_never").GetRoute().GetRetryPolicy(); rp != nil {
		t.Errorf("fallback_on [] rendered retry policy %v", rp)
	}
	rp := route(t, m, "chain_bounded").GetRoute().GetRetryPolicy()
	if rp.GetRetryOn() != "" || rp.GetNumRetries().GetValue() != 0 || rp.GetPerTryTimeout().AsDuration() != 20*time.Second || rp.GetRetryPriority() != nil {
		t.Errorf("retry policy %v", rp)
	}
}

// The adapter's upstream filters are written once and shared by every
// chain cluster through a YAML alias.
func TestAdapterFiltersWrittenOnce(t *testing.T) {
	p := load(t, twoProviders+`routes:
  a: {chain: [primary]}
  b: {chain: [backup]}
  c: {chain: [primary, backup]}
`)
	out := render(t, p)
	m := check(t, out)
	for _, name := range []string{"chain_a", "chain_b", "chain_c"} {
		if c := m.Cluster(name); c == nil || len(c.UpstreamFilters) != 2 {
			t.Errorf("%s has no adapter filter", name)
		}
	}
	if n := bytes.Count(out, []byte("name: tollgate.adapter")); n != 1 {
		t.Errorf("adapter filter written %d times", n)
	}
	if n := bytes.Count(out, []byte("http_filters: *adapter_filters")); n != 2 {
		t.Errorf("%d aliases of the adapter filters, want 2", n)
	}
	// Routes and chain clusters in cluster order, provider clusters by name.
	var names []string
	for _, c := range m.Clusters {
		names = append(names, c.Proto.GetName())
	}
	if want := []string{"tollgate", "chain_a", "chain_b", "chain_c", "prov_backup", "prov_primary"}; !slices.Equal(names, want) {
		t.Errorf("clusters %q, want %q", names, want)
	}
}

// Routes sharing a chain cluster get one route; with different chains they
// are an error.
func TestSharedCluster(t *testing.T) {
	p := load(t, twoProviders+`routes:
  a: {chain: [primary], cluster: shared}
  b: {chain: [primary], cluster: shared}
`)
	m := check(t, render(t, p))
	if n := len(m.Listener("llm").HCMs[0].Routes); n != 2 {
		t.Errorf("%d routes, want the shared one and the catch-all", n)
	}
	p = load(t, twoProviders+`routes:
  a: {chain: [primary], cluster: shared}
  b: {chain: [backup], cluster: shared}
`)
	base, _ := os.ReadFile(baseFile)
	if _, err := envoyrender.Render(p, base, envoyrender.Options{}); err == nil || !strings.Contains(err.Error(), `share cluster "shared"`) {
		t.Errorf("err = %v", err)
	}
}

// A chain cluster named like another cluster is refused.
func TestClusterNameCollision(t *testing.T) {
	base, _ := os.ReadFile(baseFile)
	for _, cluster := range []string{"tollgate", "prov_backup"} {
		p := load(t, twoProviders+`routes:
  r: {chain: [backup], cluster: `+cluster+`}
`)
		if _, err := envoyrender.Render(p, base, envoyrender.Options{}); err == nil || !strings.Contains(err.Error(), `"`+cluster+`"`) {
			t.Errorf("%s: err = %v", cluster, err)
		}
	}
}

// A provider whose settings cannot say where its endpoint is cannot be
// rendered; the error names it.
func TestProviderWithoutEndpoint(t *testing.T) {
	p := load(t, twoProviders+`routes:
  r: {chain: [primary]}
`)
	p.Providers["primary"] = &policy.Provider{Name: "primary", Type: "mystery", Settings: struct{}{}}
	base, _ := os.ReadFile(baseFile)
	_, err := envoyrender.Render(p, base, envoyrender.Options{})
	if err == nil || !strings.Contains(err.Error(), `provider "primary"`) {
		t.Errorf("err = %v", err)
	}
}

// https to an IP address has no name for SNI and the certificate check.
func TestHTTPSToAnIPAddress(t *testing.T) {
	p := load(t, `providers:
  ip: {type: anthropic, base_url: "https://192.0.2.1", api_key: "${K}"}
routes:
  r: {chain: [ip]}
`)
	base, _ := os.ReadFile(baseFile)
	if _, err := envoyrender.Render(p, base, envoyrender.Options{}); err == nil || !strings.Contains(err.Error(), `provider "ip"`) {
		t.Errorf("err = %v", err)
	}
	p = load(t, `providers:
  ip: {type: anthropic, base_url: "http://192.0.2.1:8080", api_key: "${K}"}
routes:
  r: {chain: [ip]}
`)
	if c := check(t, render(t, p)).Cluster("prov_ip"); c.Proto.GetType() != clusterv3.Cluster_STATIC || c.Proto.GetDnsLookupFamily() != clusterv3.Cluster_AUTO {
		t.Errorf("prov_ip %v", c.Proto)
	}
}

// A base without the catch-all route or the templates is refused.
func TestBaseProblems(t *testing.T) {
	p := load(t, twoProviders+`routes:
  r: {chain: [primary]}
`)
	base, err := os.ReadFile(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"no catch-all route": strings.Replace(string(base), "cluster_header: x-tollgate-internal-cluster", "cluster: tollgate", 1),
		"no templates":       string(base[:bytes.Index(base, []byte("\nrender_templates:"))]),
		"unknown template":   string(base) + "  extra: {}\n",
		"not YAML":           "{",
	} {
		if _, err := envoyrender.Render(p, []byte(b), envoyrender.Options{BaseFile: "b.yaml"}); err == nil || !strings.Contains(err.Error(), "b.yaml") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// An OpenAI-compatible provider (type openai) gets a cluster from its
// base_url like any other: TLS with SNI for https, the port of the URL.
func TestOpenAIProviderCluster(t *testing.T) {
	p := load(t, `providers:
  oai: {type: openai, api_key: "${K}"}
  local: {type: openai, base_url: "http://ollama.internal:11434/v1", auth: none}
routes:
  r: {chain: [oai, local]}
`)
	m := check(t, render(t, p))
	oai, local := m.Cluster("prov_oai"), m.Cluster("prov_local")
	if oai == nil || len(oai.Endpoints) != 1 || oai.Endpoints[0].Address != "api.openai.com" || oai.Endpoints[0].Port != 443 || oai.TLS.GetSni() != "api.openai.com" {
		t.Errorf("prov_oai %v", oai)
	}
	if local == nil || len(local.Endpoints) != 1 || local.Endpoints[0].Address != "ollama.internal" || local.Endpoints[0].Port != 11434 || local.TLS != nil {
		t.Errorf("prov_local %v", local)
	}
}

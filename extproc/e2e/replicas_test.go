package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// adapterCluster is the cluster withAdapterCluster sends the adapter
// filter's streams to.
const adapterCluster = "tollgate_adapter"

// adapterGRPCService matches an adapter filter's grpc_service cluster (every
// chain cluster's, if they are not one YAML anchor): the cluster_name
// followed, within its grpc_service, by the adapter's role.
var adapterGRPCService = regexp.MustCompile(`envoy_grpc: \{cluster_name: tollgate\}(\s+initial_metadata:\s+- \{key: x-tollgate-role, value: adapter\})`)

// withAdapterCluster rewrites the envoy.yaml at path so that the adapter
// filter's gRPC service is cluster tollgate_adapter, a second Tollgate
// cluster, while the policy filter keeps cluster tollgate: as in a
// deployment whose tollgate cluster has several replicas, the policy
// filter's stream of a request and each attempt's adapter stream reach
// different processes. It returns the new file's path.
func withAdapterCluster(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !adapterGRPCService.MatchString(s) {
		t.Fatal("envoy.yaml changed: no adapter grpc_service on cluster tollgate")
	}
	s = adapterGRPCService.ReplaceAllString(s, "envoy_grpc: {cluster_name: "+adapterCluster+"}$1")
	const clusters = "\n  clusters:\n"
	if strings.Count(s, clusters) != 1 {
		t.Fatal("envoy.yaml changed: no single top-level clusters list")
	}
	s = strings.Replace(s, clusters, clusters+`  - name: `+adapterCluster+`
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: `+adapterCluster+`
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: 50052}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
`, 1)
	out := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(out, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAdapterOnAnotherReplica: the policy filter's stream goes to one
// Tollgate process and both attempts' adapter streams to another, which
// shares nothing with the first but the policy file and Redis (the budget
// ledger). The adapter works from the dynamic metadata alone: the first
// provider's 529 moves the request to the second, the SDK gets its answer,
// and the record, written by the policy role's process, has both attempts
// and the second provider's cost, settled on the shared ledger.
func TestAdapterOnAnotherReplica(t *testing.T) {
	rdb := redistest.Start(t)
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "message", true: "stream"}[stream], func(t *testing.T) {
			c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-overloaded", split: true,
				ledger: redisLedgerOn(t, rdb.Addr()), keyBudgets: `[{usd: 10, per: day}, {concurrent: 4}]`})
			model, hdr, err := c.send(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			if model != "claude-sonnet-4-5" || hdr.Get("x-tollgate-provider") != "anthropic" || hdr.Get("x-tollgate-attempts") != "2" {
				t.Errorf("model %q served by %q on attempt %q", model, hdr.Get("x-tollgate-provider"), hdr.Get("x-tollgate-attempts"))
			}

			// Each process played one role only.
			for _, s := range []struct {
				name      string
				got, want float64
			}{
				{"policy process, policy streams", streamsOf(t, c.reg, "policy"), 1},
				{"policy process, adapter streams", streamsOf(t, c.reg, "adapter"), 0},
				{"adapter process, policy streams", streamsOf(t, c.regAdapter, "policy"), 0},
				{"adapter process, adapter streams", streamsOf(t, c.regAdapter, "adapter"), 2},
			} {
				if s.got != s.want {
					t.Errorf("%s: %v, want %v", s.name, s.got, s.want)
				}
			}

			rec := c.recs.wait(t, 1)[0]
			if as := rec.Attempts; len(as) != 2 || as[0].Provider != "demo" || as[0].Status != 529 || as[0].Model != "claude-sonnet-4-5-overloaded" ||
				as[1].Provider != "anthropic" || as[1].Status != 200 || as[1].Model != "claude-sonnet-4-5" {
				t.Errorf("attempts %+v", as)
			}
			price, err := c.pol.Catalog().Resolve(c.pol.ProviderType("anthropic"), "claude-sonnet-4-5", c.pol.Pricing.Unknown)
			if err != nil {
				t.Fatal(err)
			}
			if want := pricing.Cost(rec.Usage, price); rec.Provider != "anthropic" || rec.Outcome != "ok" || rec.CostPicoUSD != want || want <= 0 ||
				rec.Usage.InputTokens != map[bool]int64{false: 2095, true: 12}[stream] || rec.Usage.OutputTokens != map[bool]int64{false: 503, true: 15}[stream] {
				t.Errorf("record provider %q outcome %q cost %d (want %d) usage %+v", rec.Provider, rec.Outcome, rec.CostPicoUSD, want, rec.Usage)
			}
			if rec.ReservationID == "" {
				t.Error("no reservation: the budgets were not checked")
			}
			// The adapter's process writes no record of its own.
			c.recsAdapter.wait(t, 0)
		})
	}
}

// streamsOf is the number of ext_proc streams of role a Tollgate server with
// metrics reg was opened.
func streamsOf(t *testing.T, reg *prometheus.Registry, role string) float64 {
	t.Helper()
	return metricValue(t, reg, "tollgate_extproc_streams_total", map[string]string{"role": role})
}

// withAccessLogCluster rewrites the envoy.yaml at path so that the access
// log (tollgate.endings) goes to cluster instead of tollgate, and returns
// the new file's path.
func withAccessLogCluster(t *testing.T, path, cluster string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	const logName = "log_name: tollgate.endings\n"
	i := strings.Index(s, logName)
	const target = "envoy_grpc: {cluster_name: tollgate}"
	j := strings.Index(s[max(i, 0):], target)
	if i < 0 || j < 0 {
		t.Fatal("envoy.yaml changed: no access log tollgate.endings to cluster tollgate")
	}
	s = s[:i+j] + "envoy_grpc: {cluster_name: " + cluster + "}" + s[i+j+len(target):]
	out := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(out, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

package envoyconfig_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
)

// envoyYAML is the committed configuration every test starts from.
const envoyYAML = "../../envoy.yaml"

func readEnvoyYAML(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestCommittedEnvoyYAMLPasses(t *testing.T) {
	bs, err := envoyconfig.LoadFile(envoyYAML)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if err := envoyconfig.Validate(bs); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, p := range envoyconfig.Lint(bs) {
		t.Errorf("Lint: %v", p)
	}
	if err := envoyconfig.Check(envoyYAML); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// edit replaces old, which must occur exactly once in the text, by new.
type edit struct{ old, new string }

// apply performs the edits in order and fails the test if one does not match
// exactly once, so that a variant never silently tests the unmodified file.
func apply(t *testing.T, text string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if n := strings.Count(text, e.old); n != 1 {
			t.Fatalf("edit target occurs %d times, want exactly 1:\n%s", n, e.old)
		}
		text = strings.Replace(text, e.old, e.new, 1)
	}
	return text
}

// Text blocks of envoy.yaml that several variants move around.
const (
	routerFilter = `          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`
	codecFilter = `        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
`
	policyGRPC = `              grpc_service:
                envoy_grpc: {cluster_name: tollgate}
                initial_metadata:
                - {key: x-tollgate-role, value: policy}
`
	policyTimeout = `              # Long enough to ship a 32 MB body to the processor and back.
              message_timeout: 10s
`
	policyBodyMode = "                request_body_mode: BUFFERED\n"
	routeAction    = "                  cluster_header: x-tollgate-internal-cluster\n"
	routeTimeout   = routeAction + "                  timeout: 0s\n" // the catch-all route's
	listenerLimit  = "    per_connection_buffer_limit_bytes: 33554432\n    filter_chains:"
	// The catch-all route's buffer limit; the rendered chain routes before
	// it have their own.
	routeIdle    = routeTimeout + "                  idle_timeout: 300s\n"
	routeLimit   = routeIdle + "                request_body_buffer_limit: 33554432\n"
	demoChildren = "        clusters: [prov_demo]\n"
	// The rendered demo chain route's retry policy, and what turns it into a
	// two-provider chain that retries.
	demoRetry = "                  cluster: chain_demo\n                  timeout: 0s\n                  idle_timeout: 300s\n" +
		"                  retry_policy:\n                    retry_on: connect-failure,reset,retriable-status-codes\n" +
		"                    retriable_status_codes: [429, 500, 502, 503, 504, 529]\n                    num_retries: 0\n"
	demoRetrying          = "                    num_retries: 1\n"
	previousPrioritiesOne = `                    retry_priority:
                      name: envoy.retry_priorities.previous_priorities
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
                        update_frequency: 1
`
	policyMetadata = `              metadata_options:
                receiving_namespaces: {untyped: [tollgate]}
`
	policyAttributes = `              response_attributes:
              - "metadata.filter_metadata['tollgate']['attempts']"
`
	adapterMetadata = `            metadata_options:
              forwarding_namespaces: {untyped: [tollgate]}
              receiving_namespaces: {untyped: [tollgate]}
`
)

// Stages at which a broken variant must first fail.
const (
	stageParse    = "parse"
	stageValidate = "validate"
	stageLint     = "lint"
)

type variant struct {
	name  string
	edits []edit
	stage string
	// want is a substring of the error (parse, validate) or of one problem's
	// message (lint).
	want string
	// rules is the exact set of lint rules the variant must trigger (lint only);
	// the first one must carry want.
	rules []string
}

func brokenVariants() []variant {
	return []variant{
		// Strict decoding (protojson and YAMLToJSONStrict).
		{
			name:  "typo'd field inside an Any",
			edits: []edit{{"          stat_prefix: llm\n", "          stat_prefx: llm\n"}},
			stage: stageParse, want: `unknown field "stat_prefx"`,
		},
		{
			name:  "typo'd top-level field",
			edits: []edit{{"\nstatic_resources:\n", "\nstatic_resource:\n"}},
			stage: stageParse, want: `unknown field "static_resource"`,
		},
		{
			name:  "duration with a unit protojson rejects",
			edits: []edit{{policyTimeout, strings.Replace(policyTimeout, "10s", "200ms", 1)}},
			stage: stageParse, want: `Duration value "200ms"`,
		},
		{
			name:  "duplicate YAML key",
			edits: []edit{{"          stat_prefix: llm\n", "          stat_prefix: llm\n          stat_prefix: other\n"}},
			stage: stageParse, want: `"stat_prefix" already set in map`,
		},
		{
			name:  "unknown @type",
			edits: []edit{{"router.v3.Router\n", "router.v3.Routr\n"}},
			stage: stageParse, want: `unable to resolve "type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr"`,
		},
		{
			name:  "typo'd metadata_options field",
			edits: []edit{{policyMetadata, strings.Replace(policyMetadata, "receiving_namespaces", "receiving_namespace", 1)}},
			stage: stageParse, want: `unknown field "receiving_namespace"`,
		},
		{
			name:  "metadata namespaces given as a string, not a list",
			edits: []edit{{adapterMetadata, strings.Replace(adapterMetadata, "{untyped: [tollgate]}", "{untyped: tollgate}", 1)}},
			stage: stageParse, want: `unexpected token "tollgate"`,
		},
		{
			name:  "enum typo",
			edits: []edit{{policyBodyMode, strings.Replace(policyBodyMode, "BUFFERED", "BUFERED", 1)}},
			stage: stageParse, want: `enum field requestBodyMode: "BUFERED"`,
		},

		// protoc-gen-validate rules inside Anys, which Bootstrap.ValidateAll misses.
		{
			name:  "message_timeout above PGV's 1h inside the ext_proc Any",
			edits: []edit{{policyTimeout, strings.Replace(policyTimeout, "10s", "7200s", 1)}},
			stage: stageValidate, want: `http_filters["tollgate.policy"].typed_config: invalid ExternalProcessor.MessageTimeout`,
		},
		{
			name:  "aggregate cluster with no children",
			edits: []edit{{demoChildren, "        clusters: []\n"}},
			stage: stageValidate, want: `clusters["chain_demo"].cluster_type.typed_config: invalid ClusterConfig.Clusters`,
		},
		{
			name: "TypedStruct whose value has an unknown field",
			edits: []edit{{routerFilter, `          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              value: {dynamic_stat: true}
`}},
			stage: stageValidate, want: `unknown field "dynamic_stat"`,
		},

		// Filter chain structure.
		{
			name: "router not last",
			edits: []edit{{routerFilter, routerFilter + `          - name: envoy.filters.http.router.second
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`}},
			stage: stageLint, rules: []string{envoyconfig.RuleRouterLast}, want: "must be the last HTTP filter",
		},
		{
			name:  "no router at all",
			edits: []edit{{routerFilter, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleRouterLast}, want: `not "tollgate.policy"`,
		},
		{
			name: "ext_proc after the router",
			edits: []edit{
				{"          http_filters:\n          - name: tollgate.policy\n", "          http_filters:\n" + routerFilter + "          - name: tollgate.policy\n"},
				{routerFilter + "\n  clusters:", "\n  clusters:"},
			},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcOrder, envoyconfig.RuleRouterLast}, want: `"tollgate.policy" comes after the router`,
		},
		{
			name: "upstream_codec not last",
			edits: []edit{
				{"        http_filters: &adapter_filters\n", "        http_filters: &adapter_filters\n" + codecFilter},
				{codecFilter + "\n  - name: chain_claude", "\n  - name: chain_claude"},
			},
			stage: stageLint, rules: []string{envoyconfig.RuleUpstreamCodecLast}, want: "must be the last upstream HTTP filter",
		},
		{
			name:  "duplicate filter names",
			edits: []edit{{"          - name: envoy.filters.http.router\n", "          - name: tollgate.policy\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleFilterNames}, want: `duplicate filter name "tollgate.policy"`,
		},

		// Clusters.
		{
			name:  "missing gRPC cluster",
			edits: []edit{{policyGRPC, strings.Replace(policyGRPC, "cluster_name: tollgate", "cluster_name: tollgat", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleClusterExists}, want: `gRPC cluster "tollgat" is not a defined cluster`,
		},
		{
			name: "access log to a missing cluster",
			edits: []edit{{"                  envoy_grpc: {cluster_name: tollgate}\n                buffer_flush_interval: 0.2s\n",
				"                  envoy_grpc: {cluster_name: tollgat}\n                buffer_flush_interval: 0.2s\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleClusterExists}, want: `gRPC cluster "tollgat" is not a defined cluster`,
		},
		{
			name:  "tollgate cluster without HTTP/2",
			edits: []edit{{"          http2_protocol_options: {}\n", "          http_protocol_options: {}\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleGRPCCluster}, want: `gRPC cluster "tollgate" does not speak HTTP/2`,
		},
		{
			name:  "route to a missing cluster",
			edits: []edit{{routeAction, "                  cluster: chain_nope\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleClusterExists}, want: `route cluster "chain_nope"`,
		},
		{
			name:  "aggregate child missing",
			edits: []edit{{demoChildren, "        clusters: [prov_dem]\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleClusterExists}, want: `aggregate child "prov_dem"`,
		},
		{
			name:  "aggregate cluster not CLUSTER_PROVIDED",
			edits: []edit{{demoChildren + "    connect_timeout: 5s\n    lb_policy: CLUSTER_PROVIDED\n", demoChildren + "    connect_timeout: 5s\n    lb_policy: ROUND_ROBIN\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleAggregate}, want: "CLUSTER_PROVIDED, not ROUND_ROBIN",
		},
		{
			name:  "provider endpoint without tollgate.provider metadata",
			edits: []edit{{"              tollgate: {provider: demo}\n", "              tollgate: {name: demo}\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleProviderMetadata}, want: `endpoint of "prov_demo"`,
		},
		{
			name:  "TLS cluster without SNI",
			edits: []edit{{"        sni: api.anthropic.com\n", ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleTLS}, want: `TLS cluster "prov_anthropic" must set sni`,
		},
		{
			name: "TLS cluster that does not check the certificate name",
			edits: []edit{{`            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {exact: api.anthropic.com}
`, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleTLS}, want: "match_typed_subject_alt_names",
		},

		// Routes and limits.
		{
			name:  "route timeout not 0s",
			edits: []edit{{routeTimeout, routeAction + "                  timeout: 60s\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleRouteTimeout}, want: "has timeout 1m0s",
		},
		{
			name:  "route timeout unset",
			edits: []edit{{routeTimeout, routeAction}},
			stage: stageLint, rules: []string{envoyconfig.RuleRouteTimeout}, want: "15s default",
		},
		{
			name:  "route idle timeout 0s",
			edits: []edit{{routeIdle, routeTimeout + "                  idle_timeout: 0s\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleIdleTimeout}, want: "no idle timeout",
		},
		{
			name:  "listener buffer limit too small",
			edits: []edit{{listenerLimit, strings.Replace(listenerLimit, "33554432", "1048576", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleBufferLimit}, want: "per_connection_buffer_limit_bytes must be at least 33554432 (32 MiB), got 1048576",
		},
		{
			name:  "listener buffer limit unset",
			edits: []edit{{listenerLimit, "    filter_chains:"}},
			stage: stageLint, rules: []string{envoyconfig.RuleBufferLimit}, want: "got unset (1 MiB)",
		},
		{
			name:  "route buffer limit too small",
			edits: []edit{{routeLimit, routeIdle + "                request_body_buffer_limit: 1048576\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleBufferLimit}, want: "request_body_buffer_limit must be at least 33554432 (32 MiB), got 1048576",
		},
		{
			name:  "route buffer limit unset",
			edits: []edit{{routeLimit, routeIdle}},
			stage: stageLint, rules: []string{envoyconfig.RuleBufferLimit}, want: "must set request_body_buffer_limit",
		},
		{
			name:  "edge HCM trusting client x-envoy headers",
			edits: []edit{{"          use_remote_address: true\n", ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleEdge}, want: "use_remote_address: true",
		},
		{
			name: "typed_per_filter_config key that names no filter",
			edits: []edit{{routeLimit, routeLimit + `                typed_per_filter_config:
                  tollgate.polcy:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    disabled: true
`}},
			stage: stageLint, rules: []string{envoyconfig.RulePerFilterConfig}, want: `key "tollgate.polcy" names no HTTP filter`,
		},
		{
			name: "per-route override to a cluster without HTTP/2",
			edits: []edit{{routeLimit, routeLimit + `                typed_per_filter_config:
                  tollgate.policy:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    overrides: {grpc_service: {envoy_grpc: {cluster_name: prov_demo}}}
`}},
			stage: stageLint, rules: []string{envoyconfig.RuleGRPCCluster}, want: `gRPC cluster "prov_demo" does not speak HTTP/2`,
		},
		{
			name:  "deprecated field",
			edits: []edit{{routeLimit, routeLimit + "                per_request_buffer_limit_bytes: 33554432\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleDeprecated}, want: "per_request_buffer_limit_bytes is deprecated",
		},

		// ext_proc configs.
		{
			name:  "message_timeout 0s",
			edits: []edit{{policyTimeout, strings.Replace(policyTimeout, "10s", "0s", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleMessageTimeout}, want: "fires immediately",
		},
		{
			name:  "message_timeout too short for 32 MB",
			edits: []edit{{policyTimeout, strings.Replace(policyTimeout, "10s", "0.2s", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleMessageTimeout}, want: "message_timeout 200ms is too short",
		},
		{
			name:  "message_timeout unset",
			edits: []edit{{policyTimeout, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleMessageTimeout}, want: "200ms default",
		},
		{
			name:  "max_message_timeout set but unused",
			edits: []edit{{policyTimeout, policyTimeout + "              max_message_timeout: 20s\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleMaxMessageTimeout}, want: "override_message_timeout",
		},
		{
			name: "config.cc: both grpc_service and http_service",
			edits: []edit{{policyGRPC, policyGRPC + `              http_service:
                http_service:
                  http_uri: {uri: "http://tollgate:9090/", cluster: tollgate, timeout: 1s}
`}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcService, envoyconfig.RuleExtProcHTTPService}, want: "exactly one of grpc_service or http_service",
		},
		{
			name:  "config.cc: neither grpc_service nor http_service",
			edits: []edit{{policyGRPC, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcService}, want: "exactly one of grpc_service or http_service",
		},
		{
			name: "config.cc: http_service with a body mode",
			edits: []edit{{policyGRPC, `              http_service:
                http_service:
                  http_uri: {uri: "http://tollgate:9090/", cluster: tollgate, timeout: 1s}
`}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcHTTPService}, want: "http_service supports headers only",
		},
		{
			name:  "config.cc: disable_clear_route_cache with route_cache_action",
			edits: []edit{{policyTimeout, policyTimeout + "              disable_clear_route_cache: true\n              route_cache_action: CLEAR\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcRouteCache, envoyconfig.RuleClearRouteCache}, want: "disable_clear_route_cache cannot be combined with route_cache_action CLEAR",
		},
		{
			name:  "config.cc: FULL_DUPLEX_STREAMED without trailer SEND",
			edits: []edit{{policyBodyMode, "                request_body_mode: FULL_DUPLEX_STREAMED\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcFullDuplex, envoyconfig.RuleRole}, want: "FULL_DUPLEX_STREAMED requires request_trailer_mode SEND",
		},
		{
			name: "config.cc: FULL_DUPLEX_STREAMED failing open",
			edits: []edit{{policyBodyMode, "                request_body_mode: FULL_DUPLEX_STREAMED\n"},
				{"                request_trailer_mode: SKIP\n", "                request_trailer_mode: SEND\n"},
				{"              failure_mode_allow: false\n", "              failure_mode_allow: true\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleExtProcFullDuplex, envoyconfig.RuleRole}, want: "requires failure_mode_allow false",
		},
		{
			name:  "policy filter that cannot clear the route cache",
			edits: []edit{{policyTimeout, policyTimeout + "              route_cache_action: RETAIN\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleClearRouteCache}, want: "must be allowed to clear the route cache",
		},
		{
			name:  "policy filter with a STREAMED request body",
			edits: []edit{{policyBodyMode, "                request_body_mode: STREAMED\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleRole}, want: "policy filter's request body mode must be BUFFERED, not STREAMED",
		},
		{
			name:  "policy filter without role metadata",
			edits: []edit{{policyGRPC, "              grpc_service:\n                envoy_grpc: {cluster_name: tollgate}\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleRole}, want: "must send initial_metadata x-tollgate-role: policy",
		},
		{
			name:  "adapter filter playing the policy role",
			edits: []edit{{"- {key: x-tollgate-role, value: adapter}", "- {key: x-tollgate-role, value: policy}"}},
			stage: stageLint, rules: []string{envoyconfig.RuleRole}, want: `upstream ext_proc filter must play role "adapter", not "policy"`,
		},
		{
			name:  "adapter filter streaming response bodies",
			edits: []edit{{"              response_body_mode: NONE\n              response_trailer_mode: SKIP\n            allow_mode_override: true\n", "              response_body_mode: STREAMED\n              response_trailer_mode: SKIP\n            allow_mode_override: true\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleRole}, want: "adapter filter's response body mode must be NONE, not STREAMED",
		},
		{
			name:  "adapter forwards a namespace the policy filter does not receive",
			edits: []edit{{adapterMetadata, strings.Replace(adapterMetadata, "forwarding_namespaces: {untyped: [tollgate]}", "forwarding_namespaces: {untyped: [tollgate, tollgate.extra]}", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `forwards dynamic metadata namespace "tollgate.extra", but no downstream policy ext_proc filter receives it`,
		},
		{
			name:  "policy filter that does not receive the decision namespace",
			edits: []edit{{policyMetadata, strings.Replace(policyMetadata, "receiving_namespaces: {untyped: [tollgate]}", "receiving_namespaces: {untyped: [tollgat]}", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `forwards dynamic metadata namespace "tollgate", but no downstream policy ext_proc filter receives it`,
		},
		{
			name:  "policy filter without metadata_options",
			edits: []edit{{policyMetadata, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `no downstream policy ext_proc filter receives it`,
		},
		{
			name:  "policy filter forwarding the decision namespace",
			edits: []edit{{policyMetadata, policyMetadata + "                forwarding_namespaces: {untyped: [tollgate]}\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `each response body chunk included`,
		},
		{
			name:  "policy filter without the attempts attribute",
			edits: []edit{{policyAttributes, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `the policy filter must request the response attribute`,
		},
		{
			name:  "adapter filter not receiving the decision namespace",
			edits: []edit{{adapterMetadata, strings.Replace(adapterMetadata, "receiving_namespaces: {untyped: [tollgate]}", "receiving_namespaces: {untyped: [tollgate.trail]}", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `the adapter filter must receive dynamic metadata namespace "tollgate"`,
		},
		{
			name:  "adapter filter that does not forward the decision namespace",
			edits: []edit{{adapterMetadata, ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `the adapter filter must forward dynamic metadata namespace "tollgate"`,
		},
		{
			name: "per-route metadata_options for the policy filter",
			edits: []edit{{routeLimit, routeLimit + `                typed_per_filter_config:
                  tollgate.policy:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    overrides: {metadata_options: {receiving_namespaces: {untyped: [tollgate]}}}
`}},
			stage: stageLint, rules: []string{envoyconfig.RuleMetadataNamespaces}, want: `per-route metadata_options for Tollgate's filter "tollgate.policy"`,
		},
		{
			name: "chain of two providers retrying without previous_priorities",
			edits: []edit{
				{demoChildren, "        clusters: [prov_demo, prov_anthropic]\n"},
				{demoRetry, strings.Replace(demoRetry, "                    num_retries: 0\n", demoRetrying, 1)},
			},
			stage: stageLint, rules: []string{envoyconfig.RuleRetryPolicy}, want: `retries without previous_priorities with update_frequency: 1`,
		},
		{
			name: "chain of two providers retrying with previous_priorities every 2 attempts",
			edits: []edit{
				{demoChildren, "        clusters: [prov_demo, prov_anthropic]\n"},
				{demoRetry, strings.Replace(demoRetry, "                    num_retries: 0\n", demoRetrying+
					strings.Replace(previousPrioritiesOne, "update_frequency: 1", "update_frequency: 2", 1), 1)},
			},
			stage: stageLint, rules: []string{envoyconfig.RuleRetryPolicy}, want: `retries without previous_priorities with update_frequency: 1`,
		},
		{
			name:  "retrying a client error",
			edits: []edit{{demoRetry, strings.Replace(demoRetry, "[429, 500, 502, 503, 504, 529]", "[400, 429, 529]", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleRetryPolicy}, want: "status 400 is the client's error",
		},
		{
			name:  "retry_on retriable-4xx",
			edits: []edit{{demoRetry, strings.Replace(demoRetry, "retry_on: connect-failure,reset,", "retry_on: retriable-4xx,connect-failure,reset,", 1)}},
			stage: stageLint, rules: []string{envoyconfig.RuleRetryPolicy}, want: "retriable-4xx retries 409",
		},
		{
			name:  "chain route sending its requests to another chain",
			edits: []edit{{"                  cluster: chain_demo\n", "                  cluster: chain_anthropic\n"}},
			stage: stageLint, rules: []string{envoyconfig.RuleChainRoute}, want: `matches x-tollgate-internal-cluster "chain_demo" but sends the request to "chain_anthropic"`,
		},
		{
			name:  "adapter filter without the provider attribute",
			edits: []edit{{"            - \"xds.upstream_host_metadata.filter_metadata['tollgate']['provider']\"\n", ""}},
			stage: stageLint, rules: []string{envoyconfig.RuleRole}, want: "must request the attribute",
		},
	}
}

func TestBrokenVariantsFail(t *testing.T) {
	orig := readEnvoyYAML(t)
	for _, v := range brokenVariants() {
		t.Run(v.name, func(t *testing.T) {
			text := apply(t, orig, v.edits)
			bs, err := envoyconfig.Parse([]byte(text))
			if v.stage == stageParse {
				if err == nil {
					t.Fatalf("Parse succeeded, want an error containing %q", v.want)
				}
				if !strings.Contains(err.Error(), v.want) {
					t.Fatalf("Parse error %q does not contain %q", err, v.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = envoyconfig.Validate(bs)
			if v.stage == stageValidate {
				if err == nil {
					t.Fatalf("Validate succeeded, want an error containing %q", v.want)
				}
				if !strings.Contains(err.Error(), v.want) {
					t.Fatalf("Validate error does not contain %q:\n%v", v.want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			ps := envoyconfig.Lint(bs)
			if got, want := ruleSet(ps), sorted(v.rules); !slices.Equal(got, want) {
				t.Fatalf("Lint rules = %v, want %v; problems:\n%v", got, want, ps.Err())
			}
			found := false
			for _, p := range ps {
				if p.Rule == v.rules[0] && strings.Contains(p.Message, v.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s problem contains %q; problems:\n%v", v.rules[0], v.want, ps.Err())
			}
		})
	}
}

func ruleSet(ps envoyconfig.Problems) []string {
	var rules []string
	for _, p := range ps {
		if !slices.Contains(rules, p.Rule) {
			rules = append(rules, p.Rule)
		}
	}
	return sorted(rules)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// TestValidVariantsPass guards against false positives: equivalent or harmless
// rewrites of envoy.yaml must keep passing.
func TestValidVariantsPass(t *testing.T) {
	orig := readEnvoyYAML(t)
	variants := []struct {
		name  string
		edits []edit
	}{
		{
			name: "router given as a TypedStruct",
			edits: []edit{{routerFilter, `          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              value: {suppress_envoy_headers: true}
`}},
		},
		{
			name: "chain of two providers retrying with previous_priorities",
			edits: []edit{
				{demoChildren, "        clusters: [prov_demo, prov_anthropic]\n"},
				{demoRetry, strings.Replace(demoRetry, "                    num_retries: 0\n", demoRetrying+previousPrioritiesOne, 1)},
			},
		},
		{
			name: "per-route ext_proc override under the filter's name",
			edits: []edit{{routeLimit, routeLimit + `                typed_per_filter_config:
                  tollgate.policy:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    overrides: {grpc_service: {envoy_grpc: {cluster_name: tollgate}}}
`}},
		},
		{
			name:  "buffer limit on the virtual host instead of the route",
			edits: []edit{{routeLimit, routeIdle}, {`              domains: ["*"]` + "\n", `              domains: ["*"]` + "\n              request_body_buffer_limit: 33554432\n"}},
		},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			bs, err := envoyconfig.Parse([]byte(apply(t, orig, v.edits)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := envoyconfig.Validate(bs); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if err := envoyconfig.Lint(bs).Err(); err != nil {
				t.Errorf("Lint: %v", err)
			}
		})
	}
}

// TestValidateDescendsIntoAny pins the reason Validate exists: the generated
// Bootstrap.ValidateAll does not see inside an Any.
func TestValidateDescendsIntoAny(t *testing.T) {
	text := apply(t, readEnvoyYAML(t), []edit{{policyTimeout, strings.Replace(policyTimeout, "10s", "7200s", 1)}})
	bs, err := envoyconfig.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("Bootstrap.ValidateAll found the violation itself (%v); the premise of Validate changed", err)
	}
	err = envoyconfig.Validate(bs)
	if err == nil {
		t.Fatal("Validate missed message_timeout 7200s inside the ext_proc Any")
	}
	want := `static_resources.listeners["llm"].filter_chains[0].filters["envoy.filters.network.http_connection_manager"].typed_config.http_filters["tollgate.policy"].typed_config: `
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error path:\n got %v\nwant prefix %s", err, want)
	}
}

func TestValidateCollectsEveryViolation(t *testing.T) {
	text := apply(t, readEnvoyYAML(t), []edit{
		{policyTimeout, strings.Replace(policyTimeout, "10s", "7200s", 1)},
		{demoChildren, "        clusters: []\n"},
	})
	bs, err := envoyconfig.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	err = envoyconfig.Validate(bs)
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate returned %T, want joined errors", err)
	}
	if n := len(u.Unwrap()); n != 2 {
		t.Errorf("Validate returned %d errors, want 2:\n%v", n, err)
	}
	for _, e := range u.Unwrap() {
		if _, ok := e.(*envoyconfig.FieldError); !ok {
			t.Errorf("error %v is %T, want *FieldError", e, e)
		}
	}
}

func TestCheckReportsFileAndStage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "envoy.yaml")
	text := apply(t, readEnvoyYAML(t), []edit{{routeTimeout, routeAction + "                  timeout: 60s\n"}})
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	err := envoyconfig.Check(path)
	if err == nil {
		t.Fatal("Check accepted a route timeout of 60s")
	}
	for _, want := range []string{path + ": lint: ", "[route-timeout]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not contain %q", err, want)
		}
	}
	if err := envoyconfig.Check(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Check accepted a missing file")
	}
}

func TestModel(t *testing.T) {
	bs, err := envoyconfig.LoadFile(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	m, err := envoyconfig.NewModel(bs)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.AdminPort(); got != 9901 {
		t.Errorf("AdminPort = %d, want 9901", got)
	}
	l := m.Listener("llm")
	if l == nil || l.Port() != 10000 || len(l.HCMs) != 1 {
		t.Fatalf("listener llm = %+v, want port 10000 and one HCM", l)
	}
	h := l.HCMs[0]
	if f := h.Filter("tollgate.policy"); f == nil || f.ExtProc() == nil {
		t.Error("HCM has no ext_proc filter tollgate.policy")
	}
	// The rendered chain routes, then the catch-all route.
	var routes []string
	for _, r := range h.Routes {
		routes = append(routes, r.Action().GetCluster()+r.Action().GetClusterHeader())
		if limit, ok := r.BodyBufferLimit(); !ok || limit != envoyconfig.MinBodyBufferBytes {
			t.Errorf("BodyBufferLimit = %d, %v", limit, ok)
		}
	}
	if want := []string{"chain_anthropic", "chain_claude", "chain_claude-or-openrouter", "chain_demo", "chain_ollama", "chain_openrouter",
		"x-tollgate-internal-cluster"}; !slices.Equal(routes, want) {
		t.Fatalf("routes to %q, want %q", routes, want)
	}

	var roles []string
	for _, f := range m.ExtProcFilters() {
		where := "downstream"
		if f.Upstream {
			where = "upstream:" + f.Cluster.Proto.GetName()
		}
		roles = append(roles, f.Name()+"/"+f.Role()+"/"+where+"/"+f.GRPCCluster())
	}
	wantRoles := []string{
		"tollgate.policy/policy/downstream/tollgate",
		"tollgate.adapter/adapter/upstream:chain_anthropic/tollgate",
		"tollgate.adapter/adapter/upstream:chain_claude/tollgate",
		"tollgate.adapter/adapter/upstream:chain_claude-or-openrouter/tollgate",
		"tollgate.adapter/adapter/upstream:chain_demo/tollgate",
		"tollgate.adapter/adapter/upstream:chain_ollama/tollgate",
		"tollgate.adapter/adapter/upstream:chain_openrouter/tollgate",
	}
	if !slices.Equal(roles, wantRoles) {
		t.Errorf("ext_proc filters:\n got %q\nwant %q", roles, wantRoles)
	}

	tg := m.Cluster("tollgate")
	if tg == nil || !tg.HTTP2() || len(tg.Endpoints) != 1 || tg.Endpoints[0].Address != "tollgate" || tg.Endpoints[0].Port != 50051 {
		t.Errorf("cluster tollgate = %+v", tg)
	}
	chain := m.Cluster("chain_demo")
	if chain == nil || !chain.IsAggregate() || !slices.Equal(chain.Aggregate.GetClusters(), []string{"prov_demo"}) {
		t.Fatalf("cluster chain_demo = %+v", chain)
	}
	if n := len(chain.UpstreamFilters); n != 2 || !chain.UpstreamFilters[1].IsUpstreamCodec() {
		t.Errorf("chain_demo upstream filters = %d, want adapter then upstream_codec", n)
	}
	for name, want := range map[string]string{"prov_demo": "demo", "prov_anthropic": "anthropic"} {
		c := m.Cluster(name)
		if c == nil || len(c.Endpoints) != 1 || c.Endpoints[0].Provider() != want {
			t.Errorf("cluster %s provider = %+v, want %q", name, c, want)
		}
	}
	if m.Cluster("prov_anthropic").TLS.GetSni() != "api.anthropic.com" {
		t.Error("prov_anthropic has no SNI in the model")
	}
	if m.Cluster("nope") != nil {
		t.Error("Cluster(nope) is not nil")
	}
}

package envoyconfig

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MinBodyBufferBytes is the smallest buffer limit that admits Anthropic's 32 MB
// request maximum: 32 MiB.
const MinBodyBufferBytes = 32 << 20

// MinMessageTimeout is the smallest ext_proc message_timeout Lint accepts. A
// BUFFERED message carries the whole request body (up to 32 MB) and the
// processor's reply must arrive within message_timeout, so Envoy's default of
// 200 ms, or anything under a second, is too tight (Envoy AI Gateway #1428).
const MinMessageTimeout = time.Second

// Rule names reported in Problem.Rule. They are stable so that tests and callers
// can match on them.
const (
	RuleTypedConfig        = "typed-config"         // a typed config could not be unpacked
	RuleExtProcService     = "extproc-service"      // config.cc: exactly one of grpc_service, http_service
	RuleExtProcRouteCache  = "extproc-route-cache"  // config.cc: disable_clear_route_cache with a route_cache_action
	RuleExtProcHTTPService = "extproc-http-service" // config.cc: http_service with a body mode or trailers
	RuleExtProcFullDuplex  = "extproc-full-duplex"  // config.cc: FULL_DUPLEX_STREAMED without trailer SEND
	RuleGRPCCluster        = "grpc-cluster"         // envoy_grpc cluster_name missing or not HTTP/2
	RuleMessageTimeout     = "message-timeout"      // message_timeout unset, 0s, or under MinMessageTimeout
	RuleMaxMessageTimeout  = "max-message-timeout"  // max_message_timeout set although unused
	RuleRole               = "tollgate-role"        // Tollgate's role metadata and role requirements
	RuleClearRouteCache    = "clear-route-cache"    // the policy filter cannot re-route
	RuleFilterNames        = "filter-names"         // duplicate filter names in a chain
	RuleRouterLast         = "router-last"          // the HCM chain does not end with the router
	RuleExtProcOrder       = "extproc-before-router"
	RuleUpstreamCodecLast  = "upstream-codec-last"
	RuleClusterExists      = "cluster-exists"
	RuleClusterNames       = "cluster-names" // duplicate cluster names
	RuleAggregate          = "aggregate-cluster"
	RuleProviderMetadata   = "provider-metadata"
	RuleRouteTimeout       = "route-timeout"
	RuleIdleTimeout        = "idle-timeout"
	RuleBufferLimit        = "buffer-limit"
	RulePerFilterConfig    = "per-filter-config"
	RuleTLS                = "tls"
	RuleDeprecated         = "deprecated"
	RuleEdge               = "edge"                // client-sent x-envoy-* control headers are trusted
	RuleMetadataNamespaces = "metadata-namespaces" // the decision's dynamic metadata namespace does not line up
	RuleRetryPolicy        = "retry-policy"        // a route's retries would repeat a provider of the chain or retry a client error
	RuleChainRoute         = "chain-route"         // a route selected by the cluster header for one cluster sends the request to another
)

// Problem is one semantic violation found by Lint.
type Problem struct {
	// Path locates the offending element, in Validate's path notation.
	Path string
	// Rule is one of the Rule* constants.
	Rule string
	// Message says what is wrong and, where useful, why it matters.
	Message string
}

// Error implements the error interface.
func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s [%s]", p.Path, p.Message, p.Rule)
}

// Problems is the result of Lint.
type Problems []Problem

// Err returns the problems joined into one error, or nil if there are none.
func (ps Problems) Err() error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Lint performs the semantic checks that neither protojson nor protoc-gen-validate
// can express: the checks Envoy's ext_proc config.cc makes at load time, the
// structure Envoy requires of filter chains and cluster references, and the
// properties Tollgate relies on (ENVOY-EXTPROC sections 3, 6, 7, 8, 11 and 13).
//
// Lint does not repeat Validate's checks; run both (see Check). It only sees
// static resources: clusters, listeners or routes from xDS cannot be checked.
// Clusters named at run time by a route's cluster_header cannot be checked
// either; Lint checks instead that every aggregate (chain) cluster, which is what
// Tollgate writes into that header, is well formed.
func Lint(bs *bootstrapv3.Bootstrap) Problems {
	m, err := NewModel(bs)
	if err != nil {
		var ps Problems
		for _, e := range flatten(err) {
			p := Problem{Rule: RuleTypedConfig, Message: e.Error()}
			var fe *FieldError
			if errors.As(e, &fe) {
				p.Path, p.Message = fe.Path, fe.Err.Error()
			}
			ps = append(ps, p)
		}
		return ps
	}
	l := &linter{m: m}
	l.clusterNames()
	l.extProcs()
	l.metadataNamespaces()
	for _, ml := range m.Listeners {
		for _, h := range ml.HCMs {
			l.downstreamChain(h)
			if len(h.RouterUpstreamFilters) > 0 {
				l.upstreamChain(h.RouterUpstreamFilters)
			}
			l.routes(h)
			l.bufferLimits(h)
			l.accessLogs(h)
		}
	}
	for _, c := range m.Clusters {
		if c.HTTPOptions != nil && len(c.HTTPOptions.GetHttpFilters()) > 0 {
			l.upstreamChain(c.UpstreamFilters)
		}
		l.aggregate(c)
		l.tls(c)
	}
	l.deprecated()
	return l.ps
}

// flatten undoes errors.Join.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

type linter struct {
	m  *Model
	ps Problems
}

func (l *linter) add(path, rule, format string, args ...any) {
	l.ps = append(l.ps, Problem{Path: path, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// clusterExists reports a reference to a cluster that is not defined statically.
func (l *linter) clusterExists(path, what, name string) bool {
	if l.m.Cluster(name) != nil {
		return true
	}
	l.add(path, RuleClusterExists, "%s %q is not a defined cluster", what, name)
	return false
}

func (l *linter) clusterNames() {
	seen := map[string]bool{}
	for _, c := range l.m.Clusters {
		if seen[c.Proto.GetName()] {
			l.add(c.Path, RuleClusterNames, "duplicate cluster name %q", c.Proto.GetName())
		}
		seen[c.Proto.GetName()] = true
	}
}

// extProcs checks every ext_proc config, downstream and upstream.
func (l *linter) extProcs() {
	for _, f := range l.m.ExtProcFilters() {
		l.extProc(f)
	}
}

func (l *linter) extProc(f *ExtProcFilter) {
	cfg, path := f.Config, pathString(f.Path, "typed_config")
	pm := cfg.GetProcessingMode()

	// The four checks of ext_proc config.cc (ENVOY-EXTPROC section 3), which
	// Envoy makes when it loads the filter and PGV cannot express.
	hasGRPC, hasHTTP := cfg.GetGrpcService() != nil, cfg.GetHttpService() != nil
	if hasGRPC == hasHTTP {
		l.add(path, RuleExtProcService, "exactly one of grpc_service or http_service must be set")
	}
	if cfg.GetDisableClearRouteCache() && cfg.GetRouteCacheAction() != extprocv3.ExternalProcessor_DEFAULT {
		l.add(path, RuleExtProcRouteCache, "disable_clear_route_cache cannot be combined with route_cache_action %s", cfg.GetRouteCacheAction())
	}
	if hasHTTP && (pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE ||
		pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
		pm.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND ||
		pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND) {
		l.add(path, RuleExtProcHTTPService, "http_service supports headers only: body modes must be NONE and trailer modes not SEND")
	}
	if pm.GetRequestBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED && pm.GetRequestTrailerMode() != extprocv3.ProcessingMode_SEND {
		l.add(path, RuleExtProcFullDuplex, "request_body_mode FULL_DUPLEX_STREAMED requires request_trailer_mode SEND")
	}
	if pm.GetResponseBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED && pm.GetResponseTrailerMode() != extprocv3.ProcessingMode_SEND {
		l.add(path, RuleExtProcFullDuplex, "response_body_mode FULL_DUPLEX_STREAMED requires response_trailer_mode SEND")
	}
	if cfg.GetFailureModeAllow() && (pm.GetRequestBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		pm.GetResponseBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED) {
		// config.cc verifyProcessingModeConfig: no fail open in that mode.
		l.add(path, RuleExtProcFullDuplex, "a FULL_DUPLEX_STREAMED body mode requires failure_mode_allow false")
	}

	// The gRPC target must exist and speak HTTP/2. A google_grpc target is a
	// URI that cannot be checked here.
	if g := cfg.GetGrpcService().GetEnvoyGrpc(); g != nil {
		l.grpcCluster(pathString(path, "grpc_service", "envoy_grpc", "cluster_name"), g.GetClusterName())
	}

	// message_timeout: unset means Envoy's 200 ms; 0s fires at once (section 3).
	// Neither applies in observability mode or FULL_DUPLEX_STREAMED, where no
	// timer runs, so the rule is skipped there.
	if !cfg.GetObservabilityMode() && !fullDuplex(pm) {
		l.messageTimeout(pathString(path, "message_timeout"), cfg.GetMessageTimeout())
	}

	// max_message_timeout only enables override_message_timeout, which Tollgate's
	// processor never sends. Setting it suggests a misunderstanding, so it is
	// reported; when Tollgate starts to send overrides, this rule should instead
	// require max_message_timeout >= message_timeout.
	if mmt := cfg.GetMaxMessageTimeout(); mmt != nil && mmt.AsDuration() != 0 {
		l.add(pathString(path, "max_message_timeout"), RuleMaxMessageTimeout,
			"max_message_timeout only enables override_message_timeout, which Tollgate never sends; remove it")
	}

	l.role(f, path)
}

// metadataNamespaces checks that the routing decision can travel in dynamic
// metadata (ENVOY-EXTPROC section 13): the adapter filter forwards
// DecisionMetadataNamespace, and every namespace an adapter forwards is one a
// downstream policy filter receives (when there is one); each attempt adds
// itself to the trail in the same namespace, which the adapter therefore also
// receives, and the policy filter reads the trail as AttemptsAttribute, never
// by forwarding the namespace (a forwarded namespace rides on every message). ext_proc's Filter::setDynamicMetadata
// writes only the namespaces a filter receives, so the adapter would read
// nothing the policy filter wrote in any other.
func (l *linter) metadataNamespaces() {
	var policies []*ExtProcFilter
	for _, f := range l.m.ExtProcFilters() {
		if !f.Upstream && f.Role() == RolePolicy {
			policies = append(policies, f)
		}
	}
	received := func(ns string) bool {
		for _, p := range policies {
			if slices.Contains(p.Config.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), ns) {
				return true
			}
		}
		return false
	}
	for _, p := range policies {
		path := pathString(p.Path, "typed_config", "metadata_options", "forwarding_namespaces", "untyped")
		fwd := p.Config.GetMetadataOptions().GetForwardingNamespaces().GetUntyped()
		if slices.Contains(fwd, DecisionMetadataNamespace) {
			l.add(path, RuleMetadataNamespaces, "the policy filter forwards dynamic metadata namespace %q: Envoy copies a forwarded namespace into every message of the filter, each response body chunk included, and the policy role never reads the decision back; it reads the attempt trail through the response attribute %q", DecisionMetadataNamespace, AttemptsAttribute)
		}
		if !slices.Contains(p.Config.GetResponseAttributes(), AttemptsAttribute) {
			l.add(pathString(p.Path, "typed_config", "response_attributes"), RuleMetadataNamespaces, "the policy filter must request the response attribute %q: the policy role reads the attempt trail of the cost record there", AttemptsAttribute)
		}
	}
	for _, f := range l.m.ExtProcFilters() {
		if !f.Upstream || f.Role() != RoleAdapter {
			continue
		}
		if rcv := f.Config.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(); !slices.Contains(rcv, DecisionMetadataNamespace) {
			l.add(pathString(f.Path, "typed_config", "metadata_options", "receiving_namespaces", "untyped"), RuleMetadataNamespaces,
				"the adapter filter must receive dynamic metadata namespace %q: each attempt adds itself to the attempt trail there, for the cost record", DecisionMetadataNamespace)
		}
		path := pathString(f.Path, "typed_config", "metadata_options", "forwarding_namespaces", "untyped")
		fwd := f.Config.GetMetadataOptions().GetForwardingNamespaces().GetUntyped()
		if !slices.Contains(fwd, DecisionMetadataNamespace) {
			l.add(path, RuleMetadataNamespaces, "the adapter filter must forward dynamic metadata namespace %q (metadata_options.forwarding_namespaces.untyped): it reads the routing decision there on every attempt", DecisionMetadataNamespace)
		}
		for _, ns := range fwd {
			// Without a policy filter (no role metadata, say) the role rules
			// report the problem; comparing against nothing would repeat it.
			if len(policies) > 0 && !received(ns) {
				l.add(path, RuleMetadataNamespaces, "the adapter filter forwards dynamic metadata namespace %q, but no downstream policy ext_proc filter receives it (metadata_options.receiving_namespaces.untyped), so the policy filter's replies cannot write it and Envoy drops what they carry there", ns)
			}
		}
	}
}

func fullDuplex(pm *extprocv3.ProcessingMode) bool {
	return pm.GetRequestBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		pm.GetResponseBodyMode() == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
}

func (l *linter) messageTimeout(path string, d *durationpb.Duration) {
	switch {
	case d == nil:
		l.add(path, RuleMessageTimeout, "message_timeout is unset, so Envoy's 200ms default applies; set it to at least %s for 32 MB bodies", MinMessageTimeout)
	case d.AsDuration() <= 0:
		l.add(path, RuleMessageTimeout, "message_timeout is 0s, which fires immediately; set it to at least %s", MinMessageTimeout)
	case d.AsDuration() < MinMessageTimeout:
		l.add(path, RuleMessageTimeout, "message_timeout %s is too short to carry a 32 MB body; use at least %s", d.AsDuration(), MinMessageTimeout)
	}
}

func (l *linter) grpcCluster(path, name string) {
	if !l.clusterExists(path, "gRPC cluster", name) {
		return
	}
	if !l.m.Cluster(name).HTTP2() {
		l.add(path, RuleGRPCCluster, "gRPC cluster %q does not speak HTTP/2: set typed_extension_protocol_options[%q].explicit_http_config.http2_protocol_options", name, HTTPProtocolOptionsKey)
	}
}

// role checks what Tollgate's two roles need (DESIGN "Two ext_proc filters";
// ENVOY-EXTPROC sections 6 and 11). It applies to ext_proc filters that carry
// the x-tollgate-role metadata, and requires that metadata on downstream and
// cluster-level filters talking to the same cluster as one that does.
func (l *linter) role(f *ExtProcFilter, path string) {
	role := f.Role()
	mdPath := pathString(path, "grpc_service", "initial_metadata")
	want := RolePolicy
	if f.Upstream {
		want = RoleAdapter
	}
	if role == "" {
		if l.isTollgateTarget(f.GRPCCluster()) {
			l.add(mdPath, RuleRole, "ext_proc to Tollgate's cluster %q must send initial_metadata %s: %s", f.GRPCCluster(), RoleMetadataKey, want)
		}
		return
	}
	if role != want {
		where := "a downstream"
		if f.Upstream {
			where = "an upstream"
		}
		l.add(mdPath, RuleRole, "%s ext_proc filter must play role %q, not %q", where, want, role)
		return
	}
	pm := f.Config.GetProcessingMode()
	switch role {
	case RolePolicy:
		// Section 11: STREAMED or FULL_DUPLEX request bodies are sent upstream
		// twice on a retry; the policy role also needs the whole body.
		if pm.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED {
			l.add(pathString(path, "processing_mode", "request_body_mode"), RuleRole, "the policy filter's request body mode must be BUFFERED, not %s", pm.GetRequestBodyMode())
		}
	case RoleAdapter:
		if pm.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED {
			l.add(pathString(path, "processing_mode", "request_body_mode"), RuleRole, "the adapter filter's request body mode must be BUFFERED, not %s", pm.GetRequestBodyMode())
		}
		// The adapter's mode_override turns the request body off and echoes
		// the response body mode as NONE; any other configured response body
		// mode would be switched off by it, or sent to a role that ignores it.
		// Its translated attempts switch the response body to
		// FULL_DUPLEX_STREAMED by mode_override for pings; configured, that
		// mode would disable mode_override (ext_proc.cc Filter::onReceiveMessage).
		if pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE {
			l.add(pathString(path, "processing_mode", "response_body_mode"), RuleRole, "the adapter filter's response body mode must be NONE, not %s", pm.GetResponseBodyMode())
		}
		if !slices.Contains(f.Config.GetRequestAttributes(), ProviderAttribute) {
			l.add(pathString(path, "request_attributes"), RuleRole, "the adapter filter must request the attribute %s", ProviderAttribute)
		}
		if !f.Config.GetMutationRules().GetAllowAllRouting().GetValue() {
			l.add(pathString(path, "mutation_rules"), RuleRole, "the adapter filter sets :authority and :path, which needs mutation_rules.allow_all_routing")
		}
	}
}

// isTollgateTarget reports whether some ext_proc filter with role metadata
// talks to the named cluster.
func (l *linter) isTollgateTarget(cluster string) bool {
	if cluster == "" {
		return false
	}
	for _, f := range l.m.ExtProcFilters() {
		if f.Role() != "" && f.GRPCCluster() == cluster {
			return true
		}
	}
	return false
}

// uniqueNames reports filters that share a name. Envoy looks per-route configs up
// by filter name, so a duplicate makes typed_per_filter_config ambiguous.
func (l *linter) uniqueNames(fs []*HTTPFilter) {
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Name()] {
			l.add(f.Path, RuleFilterNames, "duplicate filter name %q in one chain", f.Name())
		}
		seen[f.Name()] = true
	}
}

// downstreamChain checks that the HCM chain ends with the router, that no
// router appears before the end, and that every ext_proc runs before it.
func (l *linter) downstreamChain(h *HCM) {
	fs := h.Filters
	l.uniqueNames(fs)
	path := pathString(h.Path, "http_filters")
	if len(fs) == 0 {
		l.add(path, RuleRouterLast, "the HTTP filter chain is empty; it must end with envoy.filters.http.router")
		return
	}
	firstRouter := -1
	for i, f := range fs {
		if f.IsRouter() && firstRouter < 0 {
			firstRouter = i
		}
		if f.IsRouter() && i != len(fs)-1 {
			l.add(f.Path, RuleRouterLast, "the router is a terminal filter and must be the last HTTP filter, but %d filter(s) follow it", len(fs)-1-i)
		}
		if f.IsUpstreamCodec() {
			l.add(f.Path, RuleUpstreamCodecLast, "upstream_codec is an upstream filter; it cannot run in the HCM chain")
		}
	}
	if last := fs[len(fs)-1]; !last.IsRouter() {
		l.add(last.Path, RuleRouterLast, "the last HTTP filter must be envoy.filters.http.router, not %q", last.Name())
	}
	if firstRouter >= 0 {
		for _, f := range fs[firstRouter+1:] {
			if f.ExtProc() != nil {
				l.add(f.Path, RuleExtProcOrder, "ext_proc filter %q comes after the router and would never run; it must come before the router", f.Name())
			}
		}
	}
}

// upstreamChain checks that an upstream filter list ends with upstream_codec
// and holds no router (ENVOY-EXTPROC section 6).
func (l *linter) upstreamChain(fs []*HTTPFilter) {
	l.uniqueNames(fs)
	if len(fs) == 0 {
		return
	}
	for i, f := range fs {
		if f.IsUpstreamCodec() && i != len(fs)-1 {
			l.add(f.Path, RuleUpstreamCodecLast, "upstream_codec is a terminal filter and must be the last upstream HTTP filter")
		}
		if f.IsRouter() {
			l.add(f.Path, RuleUpstreamCodecLast, "the router cannot be an upstream HTTP filter")
		}
	}
	if last := fs[len(fs)-1]; !last.IsUpstreamCodec() {
		l.add(last.Path, RuleUpstreamCodecLast, "the last upstream HTTP filter must be envoy.filters.http.upstream_codec, not %q", last.Name())
	}
}

// routes checks the inline routes of an HCM: cluster references, per-filter
// configs, timeouts, and whether the policy filter can re-route.
func (l *linter) routes(h *HCM) {
	routesByHeader := false
	for _, r := range h.Routes {
		if r.Action().GetClusterHeader() != "" {
			routesByHeader = true
		}
	}
	// The policy filter re-routes by setting the cluster header and clearing the
	// route cache (section 4). With clearing disabled the route picked before
	// the header was set stays in force.
	if routesByHeader {
		for _, f := range h.Filters {
			ep := f.ExtProc()
			if ep == nil || (&ExtProcFilter{HTTPFilter: f, Config: ep}).Role() != RolePolicy {
				continue
			}
			if ep.GetDisableClearRouteCache() || ep.GetRouteCacheAction() == extprocv3.ExternalProcessor_RETAIN {
				l.add(pathString(f.Path, "typed_config"), RuleClearRouteCache, "routes select their cluster from a header the policy filter sets, so the filter must be allowed to clear the route cache")
			}
		}
	}

	filterNames := map[string]*HTTPFilter{}
	for _, f := range h.Filters {
		filterNames[f.Name()] = f
	}
	l.perFilterConfigs(h.Proto.GetRouteConfig().GetTypedPerFilterConfig(), pathString(h.Path, "route_config", "typed_per_filter_config"), filterNames)
	toLLM := false
	for _, r := range h.Routes {
		if l.route(h, r, filterNames) {
			toLLM = true
		}
	}
	// Clients of an HCM that routes to LLM clusters are external. Unless Envoy
	// treats them so (use_remote_address), it keeps client-sent control headers
	// such as x-envoy-retry-on and x-envoy-max-retries, which change retries
	// across the provider chain, and trusts a client-sent x-forwarded-for.
	if toLLM && !h.Proto.GetUseRemoteAddress().GetValue() {
		l.add(pathString(h.Path, "use_remote_address"), RuleEdge, "the HCM routes clients to LLM clusters, so it must set use_remote_address: true; otherwise Envoy honours client-sent x-envoy-* retry and timeout headers")
	}
	for vi, vh := range h.Proto.GetRouteConfig().GetVirtualHosts() {
		vpath := pathString(h.Path, "route_config", "virtual_hosts", nameOrIndex(vh.GetName(), vi), "typed_per_filter_config")
		l.perFilterConfigs(vh.GetTypedPerFilterConfig(), vpath, filterNames)
	}
}

// route checks one route and reports whether it leads to an LLM cluster.
func (l *linter) route(h *HCM, r *Route, filterNames map[string]*HTTPFilter) bool {
	l.perFilterConfigs(r.Proto.GetTypedPerFilterConfig(), pathString(r.Path, "typed_per_filter_config"), filterNames)
	a := r.Action()
	if a == nil {
		return false
	}
	apath := pathString(r.Path, "route")
	llm := a.GetClusterHeader() != ""
	if c := a.GetCluster(); c != "" {
		if l.clusterExists(pathString(apath, "cluster"), "route cluster", c) && l.isLLMCluster(c) {
			llm = true
		}
	}
	for i, wc := range a.GetWeightedClusters().GetClusters() {
		wpath := pathString(apath, "weighted_clusters", "clusters", nameOrIndex(wc.GetName(), i))
		l.perFilterConfigs(wc.GetTypedPerFilterConfig(), pathString(wpath, "typed_per_filter_config"), filterNames)
		if wc.GetClusterHeader() != "" {
			llm = true
			continue
		}
		if l.clusterExists(pathString(wpath, "name"), "weighted cluster", wc.GetName()) && l.isLLMCluster(wc.GetName()) {
			llm = true
		}
	}
	for i, mp := range a.GetRequestMirrorPolicies() {
		if mp.GetCluster() != "" {
			l.clusterExists(pathString(apath, "request_mirror_policies", index(i), "cluster"), "mirror cluster", mp.GetCluster())
		}
	}
	if !llm {
		return false
	}
	l.chainRoute(r, apath)
	l.retryPolicy(a, apath)
	// Streamed completions run for minutes; the route timeout (default 15s)
	// covers the whole response, so it must be explicitly 0s, and silence is
	// bounded by idle timeouts instead (section 7).
	switch t := a.GetTimeout(); {
	case t == nil:
		l.add(pathString(apath, "timeout"), RuleRouteTimeout, "route to an LLM cluster has no timeout, so Envoy's 15s default cuts long completions; set timeout: 0s")
	case t.AsDuration() != 0:
		l.add(pathString(apath, "timeout"), RuleRouteTimeout, "route to an LLM cluster has timeout %s, which cuts long completions; set timeout: 0s and bound silence with idle_timeout", t.AsDuration())
	}
	idle := a.GetIdleTimeout()
	hcmIdle := h.Proto.GetStreamIdleTimeout()
	if (idle != nil && idle.AsDuration() == 0) || (idle == nil && hcmIdle != nil && hcmIdle.AsDuration() == 0) {
		l.add(pathString(apath, "idle_timeout"), RuleIdleTimeout, "route to an LLM cluster has no idle timeout (route idle_timeout or HCM stream_idle_timeout), so a silent upstream holds the stream forever")
	}
	return true
}

// chainRoute checks that a route chosen by ClusterHeader for one cluster (an
// exact header match, as `tollgate envoy render` writes) sends the request to
// that cluster: anything else sends one route's requests down another
// route's chain.
func (l *linter) chainRoute(r *Route, apath string) {
	for _, hm := range r.Proto.GetMatch().GetHeaders() {
		if !strings.EqualFold(hm.GetName(), ClusterHeader) || hm.GetInvertMatch() {
			continue
		}
		want := hm.GetExactMatch()
		if e := hm.GetStringMatch().GetExact(); e != "" && !hm.GetStringMatch().GetIgnoreCase() {
			want = e
		}
		if want == "" {
			continue
		}
		if got := r.Action().GetCluster(); got != want {
			l.add(pathString(apath, "cluster"), RuleChainRoute, "the route matches %s %q but sends the request to %q; a chain route must send it to the cluster it matches", ClusterHeader, want, got+r.Action().GetClusterHeader())
		}
	}
}

// retryPolicy checks the retry policy of a route to an LLM cluster (ENVOY-EXTPROC
// section 12): a 4xx other than 429 is the client's error and never retried,
// and the retries of a route to a chain of several providers must move from
// provider to provider. Without previous_priorities (update_frequency 1) the
// aggregate load balancer sends a retry to the first healthy child again
// (AggregateClusterLoadBalancer::LoadBalancerImpl::chooseHost); a larger
// update_frequency keeps the original load for that many attempts
// (PreviousPrioritiesRetryPriority::determinePriorityLoad,
// source/extensions/retry/priority/previous_priorities/previous_priorities.cc).
func (l *linter) retryPolicy(a *routev3.RouteAction, apath string) {
	rp := a.GetRetryPolicy()
	if rp == nil {
		return
	}
	rpath := pathString(apath, "retry_policy")
	for _, code := range rp.GetRetriableStatusCodes() {
		if code < 500 && code != 429 {
			l.add(pathString(rpath, "retriable_status_codes"), RuleRetryPolicy, "status %d is the client's error: retrying it on another provider cannot help (only 429 and 5xx may be retried)", code)
		}
	}
	on := strings.Split(rp.GetRetryOn(), ",")
	for i := range on {
		on[i] = strings.TrimSpace(on[i])
	}
	if slices.Contains(on, "retriable-4xx") {
		l.add(pathString(rpath, "retry_on"), RuleRetryPolicy, "retriable-4xx retries 409, the client's error")
	}
	c := l.m.Cluster(a.GetCluster())
	retries := uint32(1) // route_components.proto: num_retries defaults to 1
	if v := rp.GetNumRetries(); v != nil {
		retries = v.GetValue()
	}
	if c == nil || !c.IsAggregate() || len(c.Aggregate.GetClusters()) < 2 || retries == 0 || rp.GetRetryOn() == "" {
		return
	}
	pr := rp.GetRetryPriority()
	var freq uint32
	if pr.GetName() == "envoy.retry_priorities.previous_priorities" {
		if inner, err := UnpackAny(pr.GetTypedConfig()); err == nil {
			if pp, ok := inner.(*previousprioritiesv3.PreviousPrioritiesConfig); ok {
				freq = uint32(pp.GetUpdateFrequency())
			}
		}
	}
	if freq != 1 {
		l.add(pathString(rpath, "retry_priority"), RuleRetryPolicy, "route to chain %q retries without previous_priorities with update_frequency: 1, so a retry can go to a provider the request already tried instead of the chain's next one", a.GetCluster())
	}
}

// isLLMCluster reports whether name is a chain (aggregate) cluster or a provider
// cluster (one whose endpoints carry the provider metadata).
func (l *linter) isLLMCluster(name string) bool {
	c := l.m.Cluster(name)
	if c == nil {
		return false
	}
	if c.IsAggregate() {
		return true
	}
	for _, e := range c.Endpoints {
		if e.Provider() != "" {
			return true
		}
	}
	return false
}

// perFilterConfigs checks that every typed_per_filter_config key names a filter
// of the chain and, for ext_proc filters, carries an ExtProcPerRoute whose gRPC
// override targets an HTTP/2 cluster. Envoy would silently ignore a config under
// a key that names no filter.
func (l *linter) perFilterConfigs(cfgs map[string]*anypb.Any, path string, filters map[string]*HTTPFilter) {
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kpath := pathString(path, key(k))
		f, ok := filters[k]
		if !ok {
			f = l.upstreamFilterNamed(k)
		}
		if f == nil {
			l.add(kpath, RulePerFilterConfig, "typed_per_filter_config key %q names no HTTP filter", k)
			continue
		}
		if f.ExtProc() == nil {
			continue
		}
		inner, err := UnpackAny(cfgs[k])
		if err != nil {
			l.add(kpath, RuleTypedConfig, "%v", err)
			continue
		}
		per, ok := inner.(*extprocv3.ExtProcPerRoute)
		if !ok {
			l.add(kpath, RulePerFilterConfig, "per-route config for ext_proc filter %q must be an ExtProcPerRoute, not %s", k, cfgs[k].GetTypeUrl())
			continue
		}
		if g := per.GetOverrides().GetGrpcService().GetEnvoyGrpc(); g != nil {
			l.grpcCluster(pathString(kpath, "overrides", "grpc_service", "envoy_grpc", "cluster_name"), g.GetClusterName())
		}
		// A per-route metadata_options replaces the filter's namespace lists
		// in their entirety (ExtProcOverrides), so the decision would travel
		// differently on some routes, unchecked by metadataNamespaces.
		if per.GetOverrides().GetMetadataOptions() != nil && (&ExtProcFilter{HTTPFilter: f, Config: f.ExtProc()}).Role() != "" {
			l.add(pathString(kpath, "overrides", "metadata_options"), RuleMetadataNamespaces,
				"per-route metadata_options for Tollgate's filter %q would replace the namespaces that carry the routing decision on this route only; set metadata_options on the filter itself", k)
		}
	}
}

// upstreamFilterNamed finds an upstream filter (on any cluster or router) by
// name; upstream filters read per-route configs too.
func (l *linter) upstreamFilterNamed(name string) *HTTPFilter {
	for _, c := range l.m.Clusters {
		for _, f := range c.UpstreamFilters {
			if f.Name() == name {
				return f
			}
		}
	}
	for _, ml := range l.m.Listeners {
		for _, h := range ml.HCMs {
			for _, f := range h.RouterUpstreamFilters {
				if f.Name() == name {
					return f
				}
			}
		}
	}
	return nil
}

// bufferLimits checks the limits that cap BUFFERED request bodies.
//
// The stream's buffer limit starts as the listener's
// per_connection_buffer_limit_bytes (default 1 MiB) and, since Envoy 1.36, a
// route's or virtual host's request_body_buffer_limit can raise it (section 2).
// The upstream filter manager inherits that same downstream limit (Envoy's
// upstream_request.cc passes decoderBufferLimit()), so an upstream BUFFERED
// ext_proc is bound by it too, and so is the router's copy of the body for
// retries (section 11); a cluster's own per_connection_buffer_limit_bytes does
// not govern either.
//
// Envoy only needs the larger of the two limits to admit 32 MB. Lint requires
// both, on purpose: an Envoy older than 1.36 ignores the route field, and a
// later edit that lowers either one should not go unnoticed.
func (l *linter) bufferLimits(h *HCM) {
	var buffered *HTTPFilter
	for _, f := range h.Filters {
		if f.ExtProc().GetProcessingMode().GetRequestBodyMode() == extprocv3.ProcessingMode_BUFFERED {
			buffered = f
			break
		}
	}
	if buffered == nil {
		// Which clusters a cluster_header route reaches is decided at run time,
		// so any upstream BUFFERED ext_proc counts for every HCM.
		for _, f := range l.m.ExtProcFilters() {
			if f.Upstream && f.Config.GetProcessingMode().GetRequestBodyMode() == extprocv3.ProcessingMode_BUFFERED {
				buffered = f.HTTPFilter
				break
			}
		}
	}
	if buffered == nil {
		return
	}
	lp := h.Listener.Proto
	if v := lp.GetPerConnectionBufferLimitBytes(); v == nil || v.GetValue() < MinBodyBufferBytes {
		got := "unset (1 MiB)"
		if v != nil {
			got = fmt.Sprint(v.GetValue())
		}
		l.add(pathString(h.Listener.Path, "per_connection_buffer_limit_bytes"), RuleBufferLimit,
			"ext_proc filter %q buffers request bodies, so per_connection_buffer_limit_bytes must be at least %d (32 MiB), got %s", buffered.Name(), MinBodyBufferBytes, got)
	}
	for _, r := range h.Routes {
		if r.Action() == nil {
			continue
		}
		limit, ok := r.BodyBufferLimit()
		switch {
		case !ok:
			l.add(pathString(r.Path, "request_body_buffer_limit"), RuleBufferLimit,
				"ext_proc filter %q buffers request bodies, so the route or its virtual host must set request_body_buffer_limit to at least %d (32 MiB)", buffered.Name(), MinBodyBufferBytes)
		case limit < MinBodyBufferBytes:
			l.add(pathString(r.Path, "request_body_buffer_limit"), RuleBufferLimit,
				"ext_proc filter %q buffers request bodies, so request_body_buffer_limit must be at least %d (32 MiB), got %d", buffered.Name(), MinBodyBufferBytes, limit)
		}
	}
}

// aggregate checks an aggregate cluster and its children.
func (l *linter) aggregate(c *Cluster) {
	if !c.IsAggregate() {
		return
	}
	if c.Proto.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
		l.add(pathString(c.Path, "lb_policy"), RuleAggregate, "an aggregate cluster must use lb_policy CLUSTER_PROVIDED, not %s", c.Proto.GetLbPolicy())
	}
	for i, name := range c.Aggregate.GetClusters() {
		cpath := pathString(c.Path, "cluster_type", "typed_config", "clusters", index(i))
		if !l.clusterExists(cpath, "aggregate child", name) {
			continue
		}
		child := l.m.Cluster(name)
		if child.IsAggregate() {
			continue
		}
		// The adapter learns the provider from this metadata (section 6); an
		// endpoint without it cannot be served.
		if len(child.Endpoints) == 0 {
			l.add(child.Path, RuleProviderMetadata, "cluster %q is a child of aggregate %q but has no static endpoints to carry filter_metadata.%s.%s", name, c.Proto.GetName(), ProviderMetadataNamespace, ProviderMetadataKey)
		}
		for _, e := range child.Endpoints {
			if e.Provider() == "" {
				l.add(pathString(e.Path, "metadata"), RuleProviderMetadata, "endpoint of %q (child of aggregate %q) must carry filter_metadata.%s.%s, which the adapter reads to pick the provider", name, c.Proto.GetName(), ProviderMetadataNamespace, ProviderMetadataKey)
			}
		}
	}
}

// tls checks every UpstreamTlsContext of a cluster: SNI must be set (providers
// behind shared front ends need it) and the server certificate must be checked
// against a CA and a name.
func (l *linter) tls(c *Cluster) {
	check := func(path string, t *tlsv3.UpstreamTlsContext) {
		if t.GetSni() == "" && !c.HTTPOptions.GetUpstreamHttpProtocolOptions().GetAutoSni() {
			l.add(pathString(path, "sni"), RuleTLS, "TLS cluster %q must set sni", c.Proto.GetName())
		}
		ctx := t.GetCommonTlsContext()
		if ctx.GetValidationContextType() == nil {
			l.add(pathString(path, "common_tls_context"), RuleTLS, "TLS cluster %q does not verify the server certificate: set validation_context.trusted_ca", c.Proto.GetName())
			return
		}
		if vc := ctx.GetValidationContext(); vc != nil {
			if vc.GetTrustedCa() == nil && vc.GetCaCertificateProviderInstance() == nil && vc.GetSystemRootCerts() == nil {
				l.add(pathString(path, "common_tls_context", "validation_context"), RuleTLS, "TLS cluster %q has no trusted CA, so the server certificate is not verified", c.Proto.GetName())
			}
			if len(vc.GetMatchTypedSubjectAltNames()) == 0 && !c.HTTPOptions.GetUpstreamHttpProtocolOptions().GetAutoSanValidation() {
				l.add(pathString(path, "common_tls_context", "validation_context"), RuleTLS, "TLS cluster %q does not check the certificate's name: set match_typed_subject_alt_names", c.Proto.GetName())
			}
		}
	}
	if c.TLS != nil {
		check(pathString(c.Path, "transport_socket", "typed_config"), c.TLS)
	}
	for i, tsm := range c.Proto.GetTransportSocketMatches() {
		path := pathString(c.Path, "transport_socket_matches", nameOrIndex(tsm.GetName(), i), "transport_socket", "typed_config")
		inner, err := UnpackAny(tsm.GetTransportSocket().GetTypedConfig())
		if err != nil {
			continue // Validate reports it.
		}
		if t, ok := inner.(*tlsv3.UpstreamTlsContext); ok {
			check(path, t)
		}
	}
}

// accessLogs checks the HCM's gRPC access logs (envoy.access_loggers.http_grpc,
// which carries the request endings to Tollgate): each one's envoy_grpc
// cluster is defined and speaks HTTP/2, as an ext_proc filter's must.
func (l *linter) accessLogs(h *HCM) {
	for i, al := range h.Proto.GetAccessLog() {
		cfg := &grpcalsv3.HttpGrpcAccessLogConfig{}
		if !al.GetTypedConfig().MessageIs(cfg) || al.GetTypedConfig().UnmarshalTo(cfg) != nil {
			continue
		}
		if eg := cfg.GetCommonConfig().GetGrpcService().GetEnvoyGrpc(); eg != nil {
			l.grpcCluster(fmt.Sprintf("%s.access_log[%d].typed_config.common_config.grpc_service.envoy_grpc", h.Path, i), eg.GetClusterName())
		}
	}
}

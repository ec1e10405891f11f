package envoytest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
)

// Well-known names from Envoy.
const (
	extProcAttributesKey  = "envoy.filters.http.ext_proc"
	httpProtocolOptionKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	aggregateClusterType  = "envoy.clusters.aggregate"
	defaultBufferLimit    = 1 << 20
	defaultMessageTimeout = 200 * time.Millisecond
	defaultRouteTimeout   = 15 * time.Second
	defaultIdleTimeout    = 5 * time.Minute
	envoyHeaderPrefix     = "x-envoy-"
)

// config is the part of an Envoy bootstrap the harness implements, resolved
// once at Start. It is immutable afterwards and shared by every request.
type config struct {
	bufferLimit       uint64 // listener per_connection_buffer_limit_bytes
	generateRequestID bool
	streamIdleTimeout time.Duration // 0 disables
	maxHeadersBytes   int
	routes            *routeTable
	localReply        *localReplyConfig
	filters           []*extProcConfig   // downstream ext_proc filters, in order; the router follows
	accessLogs        []*accessLogConfig // the HTTP connection manager's access_log
	clusters          map[string]*cluster
}

// extProcConfig is one ext_proc filter (downstream or upstream).
type extProcConfig struct {
	name                     string
	upstream                 bool
	grpc                     grpcTarget
	mode                     *extprocv3.ProcessingMode // normalized: no DEFAULT header/trailer modes
	allowModeOverride        bool
	allowedOverrideModes     []*extprocv3.ProcessingMode
	messageTimeout           time.Duration
	maxMessageTimeout        time.Duration
	failureModeAllow         bool
	rules                    *mutationRules
	requestAttributes        []string
	responseAttributes       []string
	statusOnError            int
	routeCacheAction         extprocv3.ExternalProcessor_RouteCacheAction
	disableImmediateResponse bool
	allowContentLengthHeader bool
	forwardingNamespaces     []string // metadata_options.forwarding_namespaces.untyped
	receivingNamespaces      []string // metadata_options.receiving_namespaces.untyped
}

// grpcTarget is an envoy_grpc service: the cluster, the :authority and the
// initial metadata sent as gRPC headers.
type grpcTarget struct {
	cluster   string
	authority string
	metadata  [][2]string
}

// cluster is a static cluster from the bootstrap.
type cluster struct {
	name            string
	aggregate       []string // child clusters in priority order, for envoy.clusters.aggregate
	addr            string   // "host:port" or "unix:/path"
	overridden      bool
	tls             *tls.Config // nil for plaintext
	http2           bool
	metadata        *corev3.Metadata // the endpoint's metadata
	upstreamFilters []*extProcConfig // ext_proc filters before upstream_codec
	connectTimeout  time.Duration
	retryLimit      retryLimit     // circuit_breakers: the retries resource
	outlier         *outlierConfig // outlier_detection; nil when not configured
}

// loadConfig reads the bootstrap at path and resolves everything the harness
// implements. Settings it cannot reproduce are errors rather than silently
// ignored.
func loadConfig(path string, overrides map[string]string) (*config, error) {
	bs, err := envoyconfig.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("envoytest: load %s: %w", path, err)
	}
	c, err := buildConfig(bs, overrides)
	if err != nil {
		return nil, fmt.Errorf("envoytest: %s: %w", path, err)
	}
	return c, nil
}

func buildConfig(bs *bootstrapv3.Bootstrap, overrides map[string]string) (*config, error) {
	if err := onlyFields("bootstrap", bs, "admin", "static_resources", "node", "layered_runtime", "stats_config", "overload_manager"); err != nil {
		return nil, err
	}
	sr := bs.GetStaticResources()
	if err := onlyFields("static_resources", sr, "listeners", "clusters"); err != nil {
		return nil, err
	}
	if len(sr.GetListeners()) != 1 {
		return nil, fmt.Errorf("exactly one listener is supported, found %d", len(sr.GetListeners()))
	}
	c := &config{clusters: map[string]*cluster{}}
	for _, pc := range sr.GetClusters() {
		cl, err := buildCluster(pc)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", pc.GetName(), err)
		}
		if _, dup := c.clusters[cl.name]; dup {
			return nil, fmt.Errorf("duplicate cluster %q", cl.name)
		}
		c.clusters[cl.name] = cl
	}
	for name, addr := range overrides {
		cl, ok := c.clusters[name]
		if !ok {
			return nil, fmt.Errorf("Config.Clusters names cluster %q, which envoy.yaml does not define", name)
		}
		if cl.aggregate != nil {
			return nil, fmt.Errorf("Config.Clusters: %q is an aggregate cluster; override its children", name)
		}
		cl.addr, cl.overridden, cl.tls = addr, true, nil
	}
	for _, cl := range c.clusters {
		for _, child := range cl.aggregate {
			ch, ok := c.clusters[child]
			if !ok {
				return nil, fmt.Errorf("aggregate cluster %q names unknown cluster %q", cl.name, child)
			}
			if ch.aggregate != nil {
				return nil, fmt.Errorf("aggregate cluster %q: nested aggregate %q is not supported", cl.name, child)
			}
		}
		for _, f := range cl.upstreamFilters {
			if err := c.checkGRPCCluster(f); err != nil {
				return nil, err
			}
		}
	}
	if err := c.buildListener(sr.GetListeners()[0]); err != nil {
		return nil, fmt.Errorf("listener %q: %w", sr.GetListeners()[0].GetName(), err)
	}
	return c, nil
}

func (c *config) checkGRPCCluster(f *extProcConfig) error {
	cl, ok := c.clusters[f.grpc.cluster]
	if !ok {
		return fmt.Errorf("filter %q: grpc_service names unknown cluster %q", f.name, f.grpc.cluster)
	}
	if cl.aggregate != nil {
		return fmt.Errorf("filter %q: grpc_service cluster %q is an aggregate cluster", f.name, f.grpc.cluster)
	}
	return nil
}

func (c *config) buildListener(l *listenerv3.Listener) error {
	if err := onlyFields("listener", l, "name", "address", "per_connection_buffer_limit_bytes", "filter_chains", "stat_prefix"); err != nil {
		return err
	}
	c.bufferLimit = defaultBufferLimit
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		c.bufferLimit = uint64(v.GetValue())
	}
	if len(l.GetFilterChains()) != 1 {
		return fmt.Errorf("exactly one filter chain is supported")
	}
	fc := l.GetFilterChains()[0]
	if err := onlyFields("filter chain", fc, "filters", "name"); err != nil {
		return err
	}
	if len(fc.GetFilters()) != 1 {
		return fmt.Errorf("the filter chain must hold exactly one network filter (the HTTP connection manager)")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := unmarshalAny(fc.GetFilters()[0].GetTypedConfig(), hcm); err != nil {
		return fmt.Errorf("network filter: %w", err)
	}
	return c.buildHCM(hcm)
}

func (c *config) buildHCM(hcm *hcmv3.HttpConnectionManager) error {
	if err := onlyFields("http_connection_manager", hcm,
		"stat_prefix", "codec_type", "stream_idle_timeout", "request_timeout", "max_request_headers_kb",
		"route_config", "local_reply_config", "http_filters", "generate_request_id", "access_log",
		"use_remote_address", "server_name", "common_http_protocol_options", "http_protocol_options",
		"http2_protocol_options"); err != nil {
		return err
	}
	c.generateRequestID = hcm.GetGenerateRequestId() == nil || hcm.GetGenerateRequestId().GetValue()
	c.streamIdleTimeout = defaultIdleTimeout
	if d := hcm.GetStreamIdleTimeout(); d != nil {
		c.streamIdleTimeout = d.AsDuration()
	}
	if d := hcm.GetRequestTimeout(); d != nil && d.AsDuration() != 0 {
		return fmt.Errorf("request_timeout other than 0s is not supported by envoytest")
	}
	c.maxHeadersBytes = 60 * 1024
	if v := hcm.GetMaxRequestHeadersKb(); v != nil {
		c.maxHeadersBytes = int(v.GetValue()) * 1024
	}
	rt, err := buildRoutes(hcm.GetRouteConfig())
	if err != nil {
		return fmt.Errorf("route_config: %w", err)
	}
	c.routes = rt
	if c.localReply, err = buildLocalReply(hcm.GetLocalReplyConfig()); err != nil {
		return fmt.Errorf("local_reply_config: %w", err)
	}
	for _, al := range hcm.GetAccessLog() {
		a, err := buildAccessLog(al)
		if err != nil {
			return err
		}
		if cl, ok := c.clusters[a.grpc.cluster]; !ok || cl.aggregate != nil {
			return fmt.Errorf("access_log %q: grpc_service names unknown or aggregate cluster %q", a.name, a.grpc.cluster)
		}
		c.accessLogs = append(c.accessLogs, a)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		return fmt.Errorf("http_filters must end with envoy.filters.http.router")
	}
	names := map[string]bool{}
	for i, hf := range filters {
		if err := onlyFields("http filter "+hf.GetName(), hf, "name", "typed_config"); err != nil {
			return err
		}
		if names[hf.GetName()] {
			return fmt.Errorf("duplicate http filter name %q", hf.GetName())
		}
		names[hf.GetName()] = true
		if i == len(filters)-1 {
			r := &routerv3.Router{}
			if err := unmarshalAny(hf.GetTypedConfig(), r); err != nil {
				return fmt.Errorf("router: %w", err)
			}
			if err := onlyFields("router", r, "dynamic_stats", "start_child_span", "suppress_envoy_headers"); err != nil {
				return err
			}
			continue
		}
		ep := &extprocv3.ExternalProcessor{}
		if err := unmarshalAny(hf.GetTypedConfig(), ep); err != nil {
			return fmt.Errorf("http filter %q: only ext_proc filters and the router are supported: %w", hf.GetName(), err)
		}
		f, err := buildExtProc(hf.GetName(), ep, false)
		if err != nil {
			return err
		}
		if err := c.checkGRPCCluster(f); err != nil {
			return err
		}
		c.filters = append(c.filters, f)
	}
	return c.routes.checkPerFilter(names)
}

// buildExtProc resolves one ExternalProcessor config.
func buildExtProc(name string, ep *extprocv3.ExternalProcessor, upstream bool) (*extProcConfig, error) {
	what := "ext_proc filter " + strconv.Quote(name)
	if err := onlyFields(what, ep,
		"grpc_service", "failure_mode_allow", "processing_mode", "request_attributes", "response_attributes",
		"message_timeout", "stat_prefix", "mutation_rules", "max_message_timeout", "allow_mode_override",
		"disable_immediate_response", "disable_clear_route_cache", "route_cache_action", "allowed_override_modes",
		"status_on_error", "allow_content_length_header", "emit_client_span", "metadata_options"); err != nil {
		return nil, err
	}
	f := &extProcConfig{
		name:                     name,
		upstream:                 upstream,
		allowModeOverride:        ep.GetAllowModeOverride(),
		allowedOverrideModes:     ep.GetAllowedOverrideModes(),
		failureModeAllow:         ep.GetFailureModeAllow(),
		requestAttributes:        ep.GetRequestAttributes(),
		responseAttributes:       ep.GetResponseAttributes(),
		statusOnError:            500,
		routeCacheAction:         ep.GetRouteCacheAction(),
		disableImmediateResponse: ep.GetDisableImmediateResponse(),
		allowContentLengthHeader: ep.GetAllowContentLengthHeader(),
		messageTimeout:           defaultMessageTimeout,
	}
	var err error
	if f.forwardingNamespaces, f.receivingNamespaces, err = buildMetadataOptions(what, ep.GetMetadataOptions()); err != nil {
		return nil, err
	}
	gt, err := buildGRPCTarget(what, ep.GetGrpcService())
	if err != nil {
		return nil, err
	}
	f.grpc = gt
	if f.mode, err = normalizeMode(what, ep.GetProcessingMode()); err != nil {
		return nil, err
	}
	if ep.GetFailureModeAllow() && (f.mode.RequestBodyMode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		f.mode.ResponseBodyMode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED) {
		// config.cc verifyProcessingModeConfig.
		return nil, fmt.Errorf("%s: a FULL_DUPLEX_STREAMED body mode requires failure_mode_allow false (Envoy's config.cc)", what)
	}
	if d := ep.GetMessageTimeout(); d != nil {
		f.messageTimeout = d.AsDuration()
	}
	if d := ep.GetMaxMessageTimeout(); d != nil {
		f.maxMessageTimeout = d.AsDuration()
	}
	if s := ep.GetStatusOnError(); s != nil {
		if code := int(s.GetCode()); code >= 400 && code <= 599 {
			f.statusOnError = code
		}
	}
	// config.cc: disable_clear_route_cache with a non-DEFAULT action is rejected,
	// and disable_clear_route_cache alone means RETAIN.
	if ep.GetDisableClearRouteCache() {
		if f.routeCacheAction != extprocv3.ExternalProcessor_DEFAULT {
			return nil, fmt.Errorf("%s: disable_clear_route_cache and a non-DEFAULT route_cache_action are mutually exclusive", what)
		}
		f.routeCacheAction = extprocv3.ExternalProcessor_RETAIN
	}
	if f.rules, err = buildMutationRules(ep.GetMutationRules()); err != nil {
		return nil, fmt.Errorf("%s: mutation_rules: %w", what, err)
	}
	for _, a := range append(slices.Clone(f.requestAttributes), f.responseAttributes...) {
		if !knownAttribute(a) {
			return nil, fmt.Errorf("%s: attribute %q is not computed by envoytest", what, a)
		}
	}
	return f, nil
}

// buildMetadataOptions reads the untyped forwarding and receiving
// namespaces. Typed namespaces and cluster metadata forwarding are not
// implemented: Start fails on them.
func buildMetadataOptions(what string, mo *extprocv3.MetadataOptions) (forwarding, receiving []string, err error) {
	if mo == nil {
		return nil, nil, nil
	}
	what += " metadata_options"
	if err := onlyFields(what, mo, "forwarding_namespaces", "receiving_namespaces"); err != nil {
		return nil, nil, err
	}
	if err := onlyFields(what+" forwarding_namespaces", mo.GetForwardingNamespaces(), "untyped"); err != nil {
		return nil, nil, err
	}
	if err := onlyFields(what+" receiving_namespaces", mo.GetReceivingNamespaces(), "untyped"); err != nil {
		return nil, nil, err
	}
	return mo.GetForwardingNamespaces().GetUntyped(), mo.GetReceivingNamespaces().GetUntyped(), nil
}

func buildGRPCTarget(what string, gs *corev3.GrpcService) (grpcTarget, error) {
	if gs == nil {
		return grpcTarget{}, fmt.Errorf("%s: grpc_service is required (http_service is not supported by envoytest)", what)
	}
	if err := onlyFields(what+" grpc_service", gs, "envoy_grpc", "initial_metadata", "timeout"); err != nil {
		return grpcTarget{}, err
	}
	eg := gs.GetEnvoyGrpc()
	if eg == nil {
		return grpcTarget{}, fmt.Errorf("%s: only envoy_grpc is supported", what)
	}
	if err := onlyFields(what+" envoy_grpc", eg, "cluster_name", "authority", "max_receive_message_length"); err != nil {
		return grpcTarget{}, err
	}
	t := grpcTarget{cluster: eg.GetClusterName(), authority: eg.GetAuthority()}
	if t.authority == "" {
		t.authority = t.cluster // Envoy's default :authority for envoy_grpc
	}
	for _, hv := range gs.GetInitialMetadata() {
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		t.metadata = append(t.metadata, [2]string{strings.ToLower(hv.GetKey()), v})
	}
	return t, nil
}

// normalizeMode returns a copy of m with Envoy's defaults applied: DEFAULT
// header modes become SEND and DEFAULT trailer modes SKIP. Modes the harness
// cannot run are errors.
func normalizeMode(what string, m *extprocv3.ProcessingMode) (*extprocv3.ProcessingMode, error) {
	n := &extprocv3.ProcessingMode{}
	if m != nil {
		n = proto.Clone(m).(*extprocv3.ProcessingMode)
	}
	if n.RequestHeaderMode == extprocv3.ProcessingMode_DEFAULT {
		n.RequestHeaderMode = extprocv3.ProcessingMode_SEND
	}
	if n.ResponseHeaderMode == extprocv3.ProcessingMode_DEFAULT {
		n.ResponseHeaderMode = extprocv3.ProcessingMode_SEND
	}
	if n.RequestTrailerMode == extprocv3.ProcessingMode_DEFAULT {
		n.RequestTrailerMode = extprocv3.ProcessingMode_SKIP
	}
	if n.ResponseTrailerMode == extprocv3.ProcessingMode_DEFAULT {
		n.ResponseTrailerMode = extprocv3.ProcessingMode_SKIP
	}
	if err := checkModeSupported(what, n); err != nil {
		return nil, err
	}
	return n, nil
}

func checkModeSupported(what string, m *extprocv3.ProcessingMode) error {
	return checkMode(what, m, true)
}

// checkMode returns why the harness cannot run m. FULL_DUPLEX_STREAMED is
// run (rule 3); in a static config it requires that direction's trailer
// mode SEND, as Envoy's config.cc checks, while a mode_override is not
// checked for it (ext_proc.cc Filter::onReceiveMessage merges and applies
// it as it is). Trailer SEND is accepted only beside FULL_DUPLEX_STREAMED:
// the harness forwards no trailers, so no trailers message is ever sent.
func checkMode(what string, m *extprocv3.ProcessingMode, static bool) error {
	for _, d := range []struct {
		dir     string
		body    extprocv3.ProcessingMode_BodySendMode
		trailer extprocv3.ProcessingMode_HeaderSendMode
	}{{"request", m.RequestBodyMode, m.RequestTrailerMode}, {"response", m.ResponseBodyMode, m.ResponseTrailerMode}} {
		switch {
		case d.body == extprocv3.ProcessingMode_GRPC:
			return fmt.Errorf("%s: body mode GRPC is not implemented by Envoy", what)
		case d.body == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED:
			if static && d.trailer != extprocv3.ProcessingMode_SEND {
				return fmt.Errorf("%s: %s_body_mode FULL_DUPLEX_STREAMED requires %s_trailer_mode SEND (Envoy's config.cc)", what, d.dir, d.dir)
			}
		case d.trailer == extprocv3.ProcessingMode_SEND:
			return fmt.Errorf("%s: trailer mode SEND is supported by envoytest only with FULL_DUPLEX_STREAMED (it forwards no trailers)", what)
		}
	}
	return nil
}

func buildMutationRules(r *mutationrulesv3.HeaderMutationRules) (*mutationRules, error) {
	mr := &mutationRules{
		allowAllRouting: r.GetAllowAllRouting().GetValue(),
		allowEnvoy:      r.GetAllowEnvoy().GetValue(),
		disallowSystem:  r.GetDisallowSystem().GetValue(),
		disallowAll:     r.GetDisallowAll().GetValue(),
		disallowIsError: r.GetDisallowIsError().GetValue(),
	}
	var err error
	if re := r.GetAllowExpression(); re != nil {
		if mr.allowExpr, err = regexp.Compile("^(?:" + re.GetRegex() + ")$"); err != nil {
			return nil, fmt.Errorf("allow_expression: %w", err)
		}
	}
	if re := r.GetDisallowExpression(); re != nil {
		if mr.disallowExpr, err = regexp.Compile("^(?:" + re.GetRegex() + ")$"); err != nil {
			return nil, fmt.Errorf("disallow_expression: %w", err)
		}
	}
	return mr, nil
}

func buildCluster(pc *clusterv3.Cluster) (*cluster, error) {
	if err := onlyFields("cluster", pc,
		"name", "type", "cluster_type", "connect_timeout", "lb_policy", "load_assignment", "transport_socket",
		"typed_extension_protocol_options", "per_connection_buffer_limit_bytes", "dns_lookup_family",
		"dns_refresh_rate", "respect_dns_ttl", "http2_protocol_options", "circuit_breakers", "upstream_connection_options",
		"outlier_detection"); err != nil {
		return nil, err
	}
	cl := &cluster{name: pc.GetName(), connectTimeout: 5 * time.Second, http2: pc.GetHttp2ProtocolOptions() != nil}
	var err error
	if cl.retryLimit, err = buildCircuitBreakers(pc.GetCircuitBreakers()); err != nil {
		return nil, err
	}
	if cl.outlier, err = buildOutlierDetection(pc.GetOutlierDetection()); err != nil {
		return nil, err
	}
	if d := pc.GetConnectTimeout(); d != nil {
		cl.connectTimeout = d.AsDuration()
	}
	if ct := pc.GetClusterType(); ct != nil {
		if ct.GetName() != aggregateClusterType {
			return nil, fmt.Errorf("cluster_type %q is not supported", ct.GetName())
		}
		agg := &aggregatev3.ClusterConfig{}
		if err := unmarshalAny(ct.GetTypedConfig(), agg); err != nil {
			return nil, err
		}
		if len(agg.GetClusters()) == 0 {
			return nil, fmt.Errorf("aggregate cluster without children")
		}
		cl.aggregate = agg.GetClusters()
	} else {
		switch pc.GetType() {
		case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		default:
			return nil, fmt.Errorf("discovery type %v is not supported", pc.GetType())
		}
		if err := cl.readEndpoint(pc); err != nil {
			return nil, err
		}
		if ts := pc.GetTransportSocket(); ts != nil {
			tc, err := buildTLS(ts)
			if err != nil {
				return nil, err
			}
			cl.tls = tc
		}
	}
	if any, ok := pc.GetTypedExtensionProtocolOptions()[httpProtocolOptionKey]; ok {
		hpo := &httpv3.HttpProtocolOptions{}
		if err := unmarshalAny(any, hpo); err != nil {
			return nil, err
		}
		if err := onlyFields("HttpProtocolOptions", hpo, "explicit_http_config", "http_filters", "common_http_protocol_options"); err != nil {
			return nil, err
		}
		if hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			cl.http2 = true
		}
		if err := cl.readUpstreamFilters(hpo); err != nil {
			return nil, err
		}
	}
	for k := range pc.GetTypedExtensionProtocolOptions() {
		if k != httpProtocolOptionKey {
			return nil, fmt.Errorf("typed_extension_protocol_options %q is not supported", k)
		}
	}
	return cl, nil
}

func (cl *cluster) readEndpoint(pc *clusterv3.Cluster) error {
	if err := checkLoadAssignment(pc.GetLoadAssignment()); err != nil {
		return err
	}
	for _, lle := range pc.GetLoadAssignment().GetEndpoints() {
		for _, lbe := range lle.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa != nil {
				cl.addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
			} else if p := lbe.GetEndpoint().GetAddress().GetPipe(); p != nil {
				cl.addr = "unix:" + p.GetPath()
			} else {
				return fmt.Errorf("endpoint without a socket address or pipe")
			}
			cl.metadata = lbe.GetMetadata()
			// Only the first endpoint is used (see the package doc).
			return nil
		}
	}
	return fmt.Errorf("load_assignment has no endpoint")
}

func buildTLS(ts *corev3.TransportSocket) (*tls.Config, error) {
	if ts.GetName() != "envoy.transport_sockets.tls" {
		return nil, fmt.Errorf("transport socket %q is not supported", ts.GetName())
	}
	utc := &tlsv3.UpstreamTlsContext{}
	if err := unmarshalAny(ts.GetTypedConfig(), utc); err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: utc.GetSni(), MinVersion: tls.VersionTLS12}
	if f := utc.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename(); f != "" {
		// A missing CA file is not fatal here: such a cluster is normally
		// overridden in tests, and connecting without the file fails anyway.
		if pem, err := os.ReadFile(f); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			tc.RootCAs = pool
		}
	}
	return tc, nil
}

func (cl *cluster) readUpstreamFilters(hpo *httpv3.HttpProtocolOptions) error {
	hfs := hpo.GetHttpFilters()
	if len(hfs) == 0 {
		return nil
	}
	last := hfs[len(hfs)-1]
	codec := &upstreamcodecv3.UpstreamCodec{}
	if err := unmarshalAny(last.GetTypedConfig(), codec); err != nil {
		return fmt.Errorf("upstream http_filters must end with envoy.filters.http.upstream_codec: %w", err)
	}
	for _, hf := range hfs[:len(hfs)-1] {
		ep := &extprocv3.ExternalProcessor{}
		if err := unmarshalAny(hf.GetTypedConfig(), ep); err != nil {
			return fmt.Errorf("upstream http filter %q: only ext_proc is supported: %w", hf.GetName(), err)
		}
		f, err := buildExtProc(hf.GetName(), ep, true)
		if err != nil {
			return err
		}
		cl.upstreamFilters = append(cl.upstreamFilters, f)
	}
	return nil
}

// onlyFields fails when m has a populated field outside allowed, so config the
// harness would silently ignore makes Start fail instead.
func onlyFields(what string, m proto.Message, allowed ...string) error {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	var bad []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s: field(s) %s not supported by envoytest", what, strings.Join(bad, ", "))
	}
	return nil
}

func unmarshalAny(a *anypb.Any, m proto.Message) error {
	if a == nil {
		return errors.New("typed_config is missing")
	}
	if err := a.UnmarshalTo(m); err != nil {
		return fmt.Errorf("typed_config %s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// routeTable is the HCM route configuration.
type routeTable struct {
	vhosts []*virtualHost
}

type virtualHost struct {
	name        string
	domains     []string
	routes      []*route
	perFilter   map[string]*extprocv3.ExtProcPerRoute
	bufferLimit uint64
}

type route struct {
	name            string
	vhost           *virtualHost
	match           pathMatcher
	headers         []headerMatcher
	cluster         string
	clusterHeader   string
	notFoundCode    int
	timeout         time.Duration // 0 disables
	idleTimeout     *time.Duration
	headersToRemove []string
	headersToAdd    []*corev3.HeaderValueOption
	perFilter       map[string]*extprocv3.ExtProcPerRoute
	bufferLimit     uint64
	retry           *retryPolicy
}

type pathMatcher struct {
	kind          string // "prefix", "path", "regex"
	value         string
	re            *regexp.Regexp
	caseSensitive bool
}

type headerMatcher struct {
	name    string
	present *bool
	match   func(string) bool
	invert  bool
}

// retryPolicy is the part of a route retry policy the router implements.
type retryPolicy struct {
	retryOn           map[string]bool
	numRetries        int
	retriableCodes    []int
	updateFrequency   int           // previous_priorities update_frequency; 0 when not configured
	perTryTimeout     time.Duration // 0 disables; also 0 when not below the route timeout
	perTryIdleTimeout time.Duration // 0 disables
	backOffBase       time.Duration
	backOffMax        time.Duration
}

func buildRoutes(rc *routev3.RouteConfiguration) (*routeTable, error) {
	if rc == nil {
		return nil, fmt.Errorf("an inline route_config is required (rds is not supported)")
	}
	if err := onlyFields("route_config", rc, "name", "virtual_hosts"); err != nil {
		return nil, err
	}
	rt := &routeTable{}
	for _, pv := range rc.GetVirtualHosts() {
		if err := onlyFields("virtual host "+pv.GetName(), pv, "name", "domains", "routes", "typed_per_filter_config", "request_body_buffer_limit"); err != nil {
			return nil, err
		}
		vh := &virtualHost{name: pv.GetName(), domains: pv.GetDomains(), bufferLimit: pv.GetRequestBodyBufferLimit().GetValue()}
		var err error
		if vh.perFilter, err = buildPerFilter(pv.GetTypedPerFilterConfig()); err != nil {
			return nil, fmt.Errorf("virtual host %q: %w", vh.name, err)
		}
		for i, pr := range pv.GetRoutes() {
			r, err := buildRoute(pr)
			if err != nil {
				return nil, fmt.Errorf("virtual host %q route %d: %w", vh.name, i, err)
			}
			r.vhost = vh
			vh.routes = append(vh.routes, r)
		}
		rt.vhosts = append(rt.vhosts, vh)
	}
	return rt, nil
}

func (rt *routeTable) checkPerFilter(names map[string]bool) error {
	for _, vh := range rt.vhosts {
		for k := range vh.perFilter {
			if !names[k] {
				return fmt.Errorf("virtual host %q: typed_per_filter_config key %q names no http filter", vh.name, k)
			}
		}
		for _, r := range vh.routes {
			for k := range r.perFilter {
				if !names[k] {
					return fmt.Errorf("route %q: typed_per_filter_config key %q names no http filter", r.name, k)
				}
			}
		}
	}
	return nil
}

func buildPerFilter(m map[string]*anypb.Any) (map[string]*extprocv3.ExtProcPerRoute, error) {
	out := map[string]*extprocv3.ExtProcPerRoute{}
	for k, a := range m {
		pr := &extprocv3.ExtProcPerRoute{}
		if err := unmarshalAny(a, pr); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config %q: only ExtProcPerRoute is supported: %w", k, err)
		}
		if o := pr.GetOverrides(); o != nil {
			if err := onlyFields("ExtProcPerRoute overrides", o, "processing_mode", "grpc_service", "grpc_initial_metadata", "failure_mode_allow"); err != nil {
				return nil, err
			}
			if o.GetProcessingMode() != nil {
				if _, err := normalizeMode("ExtProcPerRoute "+k, o.GetProcessingMode()); err != nil {
					return nil, err
				}
			}
		}
		out[k] = pr
	}
	return out, nil
}

func buildRoute(pr *routev3.Route) (*route, error) {
	if err := onlyFields("route", pr, "name", "match", "route", "request_headers_to_remove", "request_headers_to_add", "typed_per_filter_config", "request_body_buffer_limit"); err != nil {
		return nil, err
	}
	r := &route{name: pr.GetName(), headersToRemove: pr.GetRequestHeadersToRemove(), headersToAdd: pr.GetRequestHeadersToAdd(),
		bufferLimit: pr.GetRequestBodyBufferLimit().GetValue()}
	m := pr.GetMatch()
	if err := onlyFields("route match", m, "prefix", "path", "safe_regex", "case_sensitive", "headers"); err != nil {
		return nil, err
	}
	r.match.caseSensitive = m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		r.match.kind, r.match.value = "prefix", ps.Prefix
	case *routev3.RouteMatch_Path:
		r.match.kind, r.match.value = "path", ps.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + ps.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, err
		}
		r.match.kind, r.match.re = "regex", re
	default:
		return nil, fmt.Errorf("unsupported path specifier %T", ps)
	}
	for _, hm := range m.GetHeaders() {
		h, err := buildHeaderMatcher(hm)
		if err != nil {
			return nil, err
		}
		r.headers = append(r.headers, h)
	}
	ra := pr.GetRoute()
	if ra == nil {
		return nil, fmt.Errorf("only route actions are supported (no redirect or direct_response)")
	}
	if err := onlyFields("route action", ra, "cluster", "cluster_header", "cluster_not_found_response_code", "timeout", "idle_timeout", "retry_policy"); err != nil {
		return nil, err
	}
	r.cluster, r.clusterHeader = ra.GetCluster(), strings.ToLower(ra.GetClusterHeader())
	r.notFoundCode = 503
	switch ra.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_NOT_FOUND:
		r.notFoundCode = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		r.notFoundCode = 500
	}
	r.timeout = durationOr(ra.GetTimeout(), defaultRouteTimeout)
	if d := ra.GetIdleTimeout(); d != nil {
		v := d.AsDuration()
		r.idleTimeout = &v
	}
	var err error
	if r.retry, err = buildRetry(ra.GetRetryPolicy()); err != nil {
		return nil, fmt.Errorf("retry_policy: %w", err)
	}
	// A per-try timeout not below the route timeout is ignored
	// (FilterUtility::finalTimeout, source/common/router/router.cc).
	if r.retry != nil && r.timeout > 0 && r.retry.perTryTimeout >= r.timeout {
		r.retry.perTryTimeout = 0
	}
	if r.perFilter, err = buildPerFilter(pr.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	return r, nil
}

func buildHeaderMatcher(hm *routev3.HeaderMatcher) (headerMatcher, error) {
	if err := onlyFields("header matcher", hm, "name", "string_match", "present_match", "exact_match", "prefix_match", "suffix_match", "invert_match"); err != nil {
		return headerMatcher{}, err
	}
	h := headerMatcher{name: strings.ToLower(hm.GetName()), invert: hm.GetInvertMatch()}
	switch s := hm.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		v := s.PresentMatch
		h.present = &v
	case *routev3.HeaderMatcher_ExactMatch:
		want := s.ExactMatch
		h.match = func(v string) bool { return v == want }
	case *routev3.HeaderMatcher_PrefixMatch:
		want := s.PrefixMatch
		h.match = func(v string) bool { return strings.HasPrefix(v, want) }
	case *routev3.HeaderMatcher_SuffixMatch:
		want := s.SuffixMatch
		h.match = func(v string) bool { return strings.HasSuffix(v, want) }
	case *routev3.HeaderMatcher_StringMatch:
		fn, err := stringMatcher(s.StringMatch)
		if err != nil {
			return headerMatcher{}, err
		}
		h.match = fn
	default:
		t := true
		h.present = &t
	}
	return h, nil
}

func stringMatcher(sm *matcherv3.StringMatcher) (func(string) bool, error) {
	fold := func(s string) string { return s }
	if sm.GetIgnoreCase() {
		fold = strings.ToLower
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		want := fold(p.Exact)
		return func(v string) bool { return fold(v) == want }, nil
	case *matcherv3.StringMatcher_Prefix:
		want := fold(p.Prefix)
		return func(v string) bool { return strings.HasPrefix(fold(v), want) }, nil
	case *matcherv3.StringMatcher_Suffix:
		want := fold(p.Suffix)
		return func(v string) bool { return strings.HasSuffix(fold(v), want) }, nil
	case *matcherv3.StringMatcher_Contains:
		want := fold(p.Contains)
		return func(v string) bool { return strings.Contains(fold(v), want) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("unsupported string matcher %T", sm.GetMatchPattern())
}

func buildRetry(rp *routev3.RetryPolicy) (*retryPolicy, error) {
	if rp == nil {
		return nil, nil
	}
	if err := onlyFields("retry_policy", rp, "retry_on", "num_retries", "retriable_status_codes", "retry_priority", "retry_host_predicate", "host_selection_retry_max_attempts", "retry_back_off",
		"per_try_timeout", "per_try_idle_timeout"); err != nil {
		return nil, err
	}
	p := &retryPolicy{retryOn: map[string]bool{}, numRetries: 1,
		perTryTimeout: durationOr(rp.GetPerTryTimeout(), 0), perTryIdleTimeout: durationOr(rp.GetPerTryIdleTimeout(), 0)}
	var err error
	if p.backOffBase, p.backOffMax, err = retryBackOff(rp.GetRetryBackOff()); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(rp.GetRetryOn(), ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "":
		case "5xx", "gateway-error", "connect-failure", "reset", "retriable-status-codes", "refused-stream":
			p.retryOn[s] = true
		default:
			return nil, fmt.Errorf("retry_on %q is not supported by envoytest", s)
		}
	}
	if v := rp.GetNumRetries(); v != nil {
		p.numRetries = int(v.GetValue())
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.retriableCodes = append(p.retriableCodes, int(c))
	}
	if pr := rp.GetRetryPriority(); pr != nil {
		if pr.GetName() != "envoy.retry_priorities.previous_priorities" {
			return nil, fmt.Errorf("retry_priority %q is not supported", pr.GetName())
		}
		pp := &previousprioritiesv3.PreviousPrioritiesConfig{}
		if err := unmarshalAny(pr.GetTypedConfig(), pp); err != nil {
			return nil, err
		}
		p.updateFrequency = int(pp.GetUpdateFrequency())
	}
	for _, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != "envoy.retry_host_predicates.previous_hosts" {
			return nil, fmt.Errorf("retry_host_predicate %q is not supported", hp.GetName())
		}
	}
	return p, nil
}

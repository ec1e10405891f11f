package envoyconfig

import (
	"errors"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Names Envoy and Tollgate give meaning to.
const (
	// HTTPProtocolOptionsKey is the typed_extension_protocol_options key under which
	// a cluster's upstream HTTP options (protocol, upstream http_filters) live.
	HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// AggregateClusterType is the cluster_type name of an aggregate cluster.
	AggregateClusterType = "envoy.clusters.aggregate"
	// ProviderMetadataNamespace and ProviderMetadataKey locate the provider name
	// in a provider cluster's endpoint metadata:
	// filter_metadata.tollgate.provider. The adapter role reads it through the
	// request attribute ProviderAttribute.
	ProviderMetadataNamespace = "tollgate"
	ProviderMetadataKey       = "provider"
	// ProviderAttribute is the ext_proc request attribute that carries the
	// provider of the endpoint chosen for an attempt.
	ProviderAttribute = "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"
	// DecisionMetadataNamespace is the Envoy dynamic metadata namespace that
	// carries the routing decision: the policy filter's reply writes it (the
	// filter receives it) and the adapter filter reads it on every attempt (it
	// forwards it). Upstream filters share the downstream request's StreamInfo,
	// so both see the same namespace (ENVOY-EXTPROC section 13).
	DecisionMetadataNamespace = "tollgate"
	// AttemptsAttribute is the response attribute through which the policy
	// filter reads the attempt trail that each attempt's adapter writes into
	// DecisionMetadataNamespace (key "attempts"): a CEL expression over the
	// request's dynamic metadata, evaluated once, for the response headers.
	AttemptsAttribute = "metadata.filter_metadata['tollgate']['attempts']"
	// RoleMetadataKey is the gRPC initial metadata key that tells Tollgate which
	// role an ext_proc stream plays; its values are RolePolicy and RoleAdapter.
	RoleMetadataKey = "x-tollgate-role"
	RolePolicy      = "policy"
	RoleAdapter     = "adapter"
	// ClusterHeader is the request header the policy filter sets to the chain
	// cluster of the request's route; routes select their cluster by it.
	ClusterHeader = "x-tollgate-internal-cluster"
)

// Model is an indexed, read-only view of a Bootstrap with every typed config that
// Tollgate's rules (and the envoytest harness) need already unpacked. It holds
// pointers into the Bootstrap; do not modify either after NewModel.
//
// Only static resources are modelled: a listener or route table delivered by
// xDS (RDS, scoped routes, EDS, ECDS) has no content here to look at.
type Model struct {
	Bootstrap *bootstrapv3.Bootstrap
	Listeners []*Listener
	Clusters  []*Cluster
	byName    map[string]*Cluster
}

// Listener is a static listener and the HTTP connection managers in its filter
// chains.
type Listener struct {
	Path  string
	Proto *listenerv3.Listener
	HCMs  []*HCM
}

// HCM is one HTTP connection manager network filter.
type HCM struct {
	Path     string
	Listener *Listener
	Proto    *hcmv3.HttpConnectionManager
	// Filters is the downstream HTTP filter chain, in order.
	Filters []*HTTPFilter
	// RouterUpstreamFilters is the router's upstream_http_filters list, the
	// fallback chain for clusters that configure none (ENVOY-EXTPROC section 6).
	RouterUpstreamFilters []*HTTPFilter
	// Routes lists every route of the inline route_config, in match order. It is
	// empty when routes come from RDS or scoped RDS.
	Routes []*Route
}

// Route is one route of an inline route configuration.
type Route struct {
	Path        string
	HCM         *HCM
	VirtualHost *routev3.VirtualHost
	Proto       *routev3.Route
}

// HTTPFilter is one entry of an HTTP filter chain, downstream or upstream.
type HTTPFilter struct {
	Path  string
	Proto *hcmv3.HttpFilter
	// Config is the unpacked typed_config, or nil when the filter has none or
	// uses config_discovery.
	Config proto.Message
}

// Cluster is a static cluster with its typed configs unpacked.
type Cluster struct {
	Path  string
	Proto *clusterv3.Cluster
	// Aggregate is the aggregate cluster config, or nil for other cluster types.
	Aggregate *aggregatev3.ClusterConfig
	// HTTPOptions is the HttpProtocolOptions extension, or nil when absent.
	HTTPOptions *upstreamhttpv3.HttpProtocolOptions
	// UpstreamFilters is HTTPOptions.http_filters, unpacked.
	UpstreamFilters []*HTTPFilter
	// TLS is the UpstreamTlsContext of transport_socket, or nil when the cluster
	// talks plaintext (or uses another transport socket).
	TLS *tlsv3.UpstreamTlsContext
	// Endpoints lists load_assignment's endpoints (empty for EDS clusters).
	Endpoints []*Endpoint
}

// Endpoint is one static lb_endpoint of a cluster.
type Endpoint struct {
	Path     string
	Address  string
	Port     uint32
	Priority uint32
	Metadata *corev3.Metadata
}

// ExtProcFilter is an ext_proc filter found anywhere in the bootstrap.
type ExtProcFilter struct {
	*HTTPFilter
	Config *extprocv3.ExternalProcessor
	// Upstream reports whether the filter runs as an upstream (per-attempt)
	// filter, on Cluster or on a router's upstream_http_filters.
	Upstream bool
	// Cluster is the cluster whose upstream chain holds the filter, or nil.
	Cluster *Cluster
	// HCM is the connection manager whose chain (downstream, or its router's
	// upstream list) holds the filter, or nil.
	HCM *HCM
}

// NewModel indexes bs. It fails if a typed config that the model unpacks cannot
// be resolved; the error joins one *FieldError per such config.
func NewModel(bs *bootstrapv3.Bootstrap) (*Model, error) {
	if bs == nil {
		return nil, errors.New("nil bootstrap")
	}
	b := &modelBuilder{m: &Model{Bootstrap: bs, byName: map[string]*Cluster{}}}
	sr := bs.GetStaticResources()
	for i, l := range sr.GetListeners() {
		b.listener(l, pathString("static_resources", "listeners", nameOrIndex(l.GetName(), i)))
	}
	for i, c := range sr.GetClusters() {
		b.cluster(c, pathString("static_resources", "clusters", nameOrIndex(c.GetName(), i)))
	}
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return b.m, nil
}

// Cluster returns the static cluster named name, or nil.
func (m *Model) Cluster(name string) *Cluster { return m.byName[name] }

// Listener returns the static listener named name, or nil.
func (m *Model) Listener(name string) *Listener {
	for _, l := range m.Listeners {
		if l.Proto.GetName() == name {
			return l
		}
	}
	return nil
}

// AdminPort returns the port of the admin interface's socket address, or 0.
func (m *Model) AdminPort() uint32 {
	return m.Bootstrap.GetAdmin().GetAddress().GetSocketAddress().GetPortValue()
}

// ExtProcFilters returns every ext_proc filter: downstream ones first (in
// listener and chain order), then the router-level upstream ones, then those on
// clusters (in cluster order).
func (m *Model) ExtProcFilters() []*ExtProcFilter {
	var out []*ExtProcFilter
	for _, l := range m.Listeners {
		for _, h := range l.HCMs {
			for _, f := range h.Filters {
				if ep := f.ExtProc(); ep != nil {
					out = append(out, &ExtProcFilter{HTTPFilter: f, Config: ep, HCM: h})
				}
			}
		}
	}
	for _, l := range m.Listeners {
		for _, h := range l.HCMs {
			for _, f := range h.RouterUpstreamFilters {
				if ep := f.ExtProc(); ep != nil {
					out = append(out, &ExtProcFilter{HTTPFilter: f, Config: ep, HCM: h, Upstream: true})
				}
			}
		}
	}
	for _, c := range m.Clusters {
		for _, f := range c.UpstreamFilters {
			if ep := f.ExtProc(); ep != nil {
				out = append(out, &ExtProcFilter{HTTPFilter: f, Config: ep, Cluster: c, Upstream: true})
			}
		}
	}
	return out
}

// Port returns the port of the listener's socket address, or 0.
func (l *Listener) Port() uint32 {
	return l.Proto.GetAddress().GetSocketAddress().GetPortValue()
}

// Filter returns the downstream HTTP filter named name, or nil.
func (h *HCM) Filter(name string) *HTTPFilter {
	for _, f := range h.Filters {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// Action returns the route's forwarding action, or nil for a redirect, direct
// response or filter action.
func (r *Route) Action() *routev3.RouteAction { return r.Proto.GetRoute() }

// BodyBufferLimit returns the request_body_buffer_limit in effect for the route:
// the route's own value, else its virtual host's. ok is false when neither sets
// one, in which case the listener's per_connection_buffer_limit_bytes applies.
func (r *Route) BodyBufferLimit() (limit uint64, ok bool) {
	if v := r.Proto.GetRequestBodyBufferLimit(); v != nil {
		return v.GetValue(), true
	}
	if v := r.VirtualHost.GetRequestBodyBufferLimit(); v != nil {
		return v.GetValue(), true
	}
	return 0, false
}

// TypedPerFilterConfig returns the per-filter config for filterName that
// applies to the route, following Envoy's "most specific wins" (route over
// virtual host over route configuration). It returns nil when none is set.
func (r *Route) TypedPerFilterConfig(filterName string) *anypb.Any {
	if a := r.Proto.GetTypedPerFilterConfig()[filterName]; a != nil {
		return a
	}
	if a := r.VirtualHost.GetTypedPerFilterConfig()[filterName]; a != nil {
		return a
	}
	return r.HCM.Proto.GetRouteConfig().GetTypedPerFilterConfig()[filterName]
}

// Name returns the filter's name.
func (f *HTTPFilter) Name() string { return f.Proto.GetName() }

// ExtProc returns the filter's ext_proc config, or nil if it is another filter.
func (f *HTTPFilter) ExtProc() *extprocv3.ExternalProcessor {
	ep, _ := f.Config.(*extprocv3.ExternalProcessor)
	return ep
}

// IsRouter reports whether the filter is the router, the terminal downstream
// filter.
func (f *HTTPFilter) IsRouter() bool {
	_, ok := f.Config.(*routerv3.Router)
	return ok
}

// IsUpstreamCodec reports whether the filter is upstream_codec, the terminal
// upstream filter.
func (f *HTTPFilter) IsUpstreamCodec() bool {
	_, ok := f.Config.(*upstreamcodecv3.UpstreamCodec)
	return ok
}

// Role returns the value of the x-tollgate-role initial metadata the ext_proc
// config sends, or "".
func (f *ExtProcFilter) Role() string {
	for _, hv := range f.Config.GetGrpcService().GetInitialMetadata() {
		if hv.GetKey() == RoleMetadataKey {
			if hv.GetValue() != "" {
				return hv.GetValue()
			}
			return string(hv.GetRawValue())
		}
	}
	return ""
}

// GRPCCluster returns the envoy_grpc cluster_name the filter talks to, or "".
func (f *ExtProcFilter) GRPCCluster() string {
	return f.Config.GetGrpcService().GetEnvoyGrpc().GetClusterName()
}

// IsAggregate reports whether the cluster is an envoy.clusters.aggregate
// cluster.
func (c *Cluster) IsAggregate() bool {
	return c.Proto.GetClusterType().GetName() == AggregateClusterType || c.Aggregate != nil
}

// HTTP2 reports whether Envoy speaks HTTP/2 to the cluster: explicit HTTP/2, or
// auto_config (ALPN) over TLS. The deprecated Cluster.http2_protocol_options
// field counts too, since Envoy still honours it; Lint reports its use.
func (c *Cluster) HTTP2() bool {
	o := c.HTTPOptions
	if o == nil {
		return c.Proto.GetHttp2ProtocolOptions() != nil
	}
	if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
		return true
	}
	// auto_config negotiates h2 through ALPN, which only TLS carries; Envoy
	// rejects auto_config on a cluster without an ALPN-capable transport socket.
	return o.GetAutoConfig() != nil && c.TLS != nil
}

// Provider returns the endpoint's filter_metadata.tollgate.provider string, or
// "" when it is absent or not a string.
func (e *Endpoint) Provider() string {
	s := e.Metadata.GetFilterMetadata()[ProviderMetadataNamespace]
	return s.GetFields()[ProviderMetadataKey].GetStringValue()
}

// modelBuilder collects the model and every unpacking error.
type modelBuilder struct {
	m    *Model
	errs []error
}

func (b *modelBuilder) unpack(a *anypb.Any, path string) proto.Message {
	if a == nil {
		return nil
	}
	msg, err := UnpackAny(a)
	if err != nil {
		b.errs = append(b.errs, &FieldError{Path: path, Err: err})
		return nil
	}
	return msg
}

func (b *modelBuilder) listener(l *listenerv3.Listener, path string) {
	ml := &Listener{Path: path, Proto: l}
	b.m.Listeners = append(b.m.Listeners, ml)
	chains := l.GetFilterChains()
	chainPaths := make([]string, 0, len(chains)+1)
	for i, fc := range chains {
		chainPaths = append(chainPaths, pathString(path, "filter_chains", nameOrIndex(fc.GetName(), i)))
	}
	if dfc := l.GetDefaultFilterChain(); dfc != nil {
		chains = append(chains, dfc)
		chainPaths = append(chainPaths, pathString(path, "default_filter_chain"))
	}
	for ci, fc := range chains {
		for fi, f := range fc.GetFilters() {
			fpath := pathString(chainPaths[ci], "filters", nameOrIndex(f.GetName(), fi), "typed_config")
			hcm, ok := b.unpack(f.GetTypedConfig(), fpath).(*hcmv3.HttpConnectionManager)
			if !ok {
				continue
			}
			b.hcm(ml, hcm, fpath)
		}
	}
}

func (b *modelBuilder) hcm(l *Listener, p *hcmv3.HttpConnectionManager, path string) {
	h := &HCM{Path: path, Listener: l, Proto: p}
	l.HCMs = append(l.HCMs, h)
	h.Filters = b.filters(p.GetHttpFilters(), pathString(path, "http_filters"))
	for _, f := range h.Filters {
		if r, ok := f.Config.(*routerv3.Router); ok {
			h.RouterUpstreamFilters = append(h.RouterUpstreamFilters,
				b.filters(r.GetUpstreamHttpFilters(), pathString(f.Path, "typed_config", "upstream_http_filters"))...)
		}
	}
	rc := p.GetRouteConfig()
	for vi, vh := range rc.GetVirtualHosts() {
		vpath := pathString(path, "route_config", "virtual_hosts", nameOrIndex(vh.GetName(), vi))
		for ri, r := range vh.GetRoutes() {
			h.Routes = append(h.Routes, &Route{
				Path:        pathString(vpath, "routes", nameOrIndex(r.GetName(), ri)),
				HCM:         h,
				VirtualHost: vh,
				Proto:       r,
			})
		}
	}
}

func (b *modelBuilder) filters(list []*hcmv3.HttpFilter, path string) []*HTTPFilter {
	out := make([]*HTTPFilter, 0, len(list))
	for i, f := range list {
		fpath := pathString(path, nameOrIndex(f.GetName(), i))
		out = append(out, &HTTPFilter{
			Path:   fpath,
			Proto:  f,
			Config: b.unpack(f.GetTypedConfig(), pathString(fpath, "typed_config")),
		})
	}
	return out
}

func (b *modelBuilder) cluster(c *clusterv3.Cluster, path string) {
	mc := &Cluster{Path: path, Proto: c}
	b.m.Clusters = append(b.m.Clusters, mc)
	if _, dup := b.m.byName[c.GetName()]; !dup {
		b.m.byName[c.GetName()] = mc
	}
	if ct := c.GetClusterType(); ct != nil {
		if agg, ok := b.unpack(ct.GetTypedConfig(), pathString(path, "cluster_type", "typed_config")).(*aggregatev3.ClusterConfig); ok {
			mc.Aggregate = agg
		}
	}
	if a := c.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey]; a != nil {
		opath := pathString(path, "typed_extension_protocol_options", key(HTTPProtocolOptionsKey))
		if o, ok := b.unpack(a, opath).(*upstreamhttpv3.HttpProtocolOptions); ok {
			mc.HTTPOptions = o
			mc.UpstreamFilters = b.filters(o.GetHttpFilters(), pathString(opath, "http_filters"))
		}
	}
	if ts := c.GetTransportSocket(); ts != nil {
		if tls, ok := b.unpack(ts.GetTypedConfig(), pathString(path, "transport_socket", "typed_config")).(*tlsv3.UpstreamTlsContext); ok {
			mc.TLS = tls
		}
	}
	for li, lep := range c.GetLoadAssignment().GetEndpoints() {
		for ei, ep := range lep.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			mc.Endpoints = append(mc.Endpoints, &Endpoint{
				Path:     pathString(path, "load_assignment", "endpoints", index(li), "lb_endpoints", index(ei)),
				Address:  sa.GetAddress(),
				Port:     sa.GetPortValue(),
				Priority: lep.GetPriority(),
				Metadata: ep.GetMetadata(),
			})
		}
	}
}

// nameOrIndex formats a list element the way Validate's paths do.
func nameOrIndex(name string, i int) string {
	if name != "" {
		return key(name)
	}
	return index(i)
}

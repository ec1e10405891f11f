// Package envoyrender writes Tollgate's Envoy configuration from a policy:
// what `tollgate envoy render` prints. The hand-written part (admin, the
// listener with its HTTP connection manager, both ext_proc filters, the local
// reply mappers, the tollgate cluster) comes from a base file, envoy.base.yaml,
// whose comments survive; the renderer adds what the policy's routes need:
//
//   - one route per chain cluster, matching the cluster header the policy
//     filter sets (ClusterHeader), with the route's retry policy
//     (policy.Fallback), inserted before the base's catch-all route;
//   - one aggregate cluster per chain, children in chain order, carrying the
//     adapter upstream filter;
//   - one cluster per provider a chain uses, with the provider's endpoint,
//     its name as endpoint metadata, TLS when its URL is https, and outlier
//     detection.
//
// The base's top-level render_templates section is not Envoy configuration:
// it holds the parts shared by every chain cluster, provider cluster and chain
// route, and is removed from the output. The output is deterministic: chain
// routes and clusters sorted by cluster name, provider clusters by provider
// name, children in chain order.
package envoyrender

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/policy"
)

// ClusterHeader is the request header the policy filter sets to the chain
// cluster of the request's route; each chain route matches it.
const ClusterHeader = "x-tollgate-internal-cluster"

// ProviderClusterPrefix starts the name of a provider's cluster:
// "prov_" + provider name.
const ProviderClusterPrefix = "prov_"

// Endpointer is what the renderer needs of a provider's settings
// (policy.Provider.Settings): where attempts connect. host is a DNS name or
// an IP address (without brackets), tls says https. A provider type whose
// settings lack it cannot be rendered.
type Endpointer interface {
	Endpoint() (host string, port int, tls bool)
}

// Options names the inputs in the generated file's header comment.
type Options struct {
	// PolicyFile and BaseFile are the paths the output says it was rendered
	// from, as given on the command line.
	PolicyFile, BaseFile string
}

// Template keys of the base's render_templates section.
const (
	templatesKey      = "render_templates"
	tmplChainCluster  = "chain_cluster"
	tmplProvider      = "provider_cluster"
	tmplProviderTLS   = "provider_tls"
	tmplChainRoute    = "chain_route"
	aggregateType     = "envoy.clusters.aggregate"
	previousPriority  = "envoy.retry_priorities.previous_priorities"
	previousHosts     = "envoy.retry_host_predicates.previous_hosts"
	metadataNamespace = "tollgate"
	metadataKey       = "provider"
)

// Render returns the Envoy configuration for p: base (the contents of
// envoy.base.yaml) with the chain routes, chain clusters and provider clusters
// of p's routes added.
func Render(p *policy.Policy, base []byte, o Options) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("base %s: %w", o.BaseFile, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("base %s: not a YAML mapping", o.BaseFile)
	}
	root := doc.Content[0]
	tm := remove(root, templatesKey)
	if tm == nil {
		return nil, fmt.Errorf("base %s: no %s section", o.BaseFile, templatesKey)
	}
	t := map[string]*yaml.Node{}
	for _, k := range []string{tmplChainCluster, tmplProvider, tmplProviderTLS, tmplChainRoute} {
		v := get(tm, k)
		if v == nil || v.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("base %s: %s.%s must be a mapping", o.BaseFile, templatesKey, k)
		}
		t[k] = v
	}
	for i := 0; i < len(tm.Content); i += 2 {
		if _, ok := t[tm.Content[i].Value]; !ok {
			return nil, fmt.Errorf("base %s: unknown template %s.%s", o.BaseFile, templatesKey, tm.Content[i].Value)
		}
	}
	routes, err := catchAllRoutes(root)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", o.BaseFile, err)
	}
	clusters := path(root, "static_resources", "clusters")
	if clusters == nil || clusters.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("base %s: static_resources.clusters must be a list", o.BaseFile)
	}

	chains, err := chainsOf(p)
	if err != nil {
		return nil, err
	}
	c := newCopier()
	var newRoutes, newClusters []*yaml.Node
	used := map[string]bool{}
	for i, ch := range chains {
		r, err := chainRoute(c.template(t[tmplChainRoute]), ch)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", o.BaseFile, err)
		}
		if i == 0 {
			r.HeadComment = "Rendered: one route per chain cluster, selected by the " + ClusterHeader + "\nheader the policy filter sets, with the route's fallback as its retry policy.\n" + r.HeadComment
		}
		newRoutes = append(newRoutes, r)
		cl := chainCluster(c.template(t[tmplChainCluster]), ch)
		if i == 0 {
			cl.HeadComment = "Rendered: chain clusters, one per policy route, children in fallback order.\nThe adapter runs here as an upstream filter, once per attempt."
		}
		newClusters = append(newClusters, cl)
		for _, name := range ch.route.Chain {
			used[name] = true
		}
	}
	names := make([]string, 0, len(used))
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if p.Providers[name] == nil {
			return nil, fmt.Errorf("a chain names provider %q, which the policy lacks", name)
		}
		cl, err := providerCluster(c, t[tmplProvider], t[tmplProviderTLS], p.Providers[name])
		if err != nil {
			return nil, err
		}
		if i == 0 {
			cl.HeadComment = "Rendered: provider clusters, one per provider a chain uses. The endpoint's\nmetadata names the policy provider; the adapter reads it on every attempt."
		}
		newClusters = append(newClusters, cl)
	}
	seen := map[string]bool{}
	for _, cl := range append(slices.Clone(clusters.Content), newClusters...) {
		name := get(cl, "name").Value
		if seen[name] {
			return nil, fmt.Errorf("two clusters would be named %q: a route's cluster must not be the name of a cluster of %s or of a provider cluster (%s<provider>)", name, o.BaseFile, ProviderClusterPrefix)
		}
		seen[name] = true
	}
	routes.list.Content = slices.Insert(routes.list.Content, routes.at, newRoutes...)
	clusters.Content = append(clusters.Content, newClusters...)

	out, err := encode(&doc)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# GENERATED by `tollgate envoy render --policy %s --base %s`.\n"+
		"# Do not edit by hand: edit %s or %s and run that command again.\n\n",
		o.PolicyFile, o.BaseFile, o.BaseFile, o.PolicyFile)
	return append([]byte(head), out...), nil
}

// chain is one chain cluster and the route that defines it.
type chain struct {
	cluster string
	route   *policy.Route
	slugs   []string // every route using the cluster, sorted
}

// chainsOf groups p's routes by chain cluster, sorted by cluster name. Routes
// that share a cluster must agree on the chain and the fallback, since Envoy
// sees one route per cluster.
func chainsOf(p *policy.Policy) ([]*chain, error) {
	by := map[string]*chain{}
	slugs := make([]string, 0, len(p.Routes))
	for slug := range p.Routes {
		slugs = append(slugs, slug)
	}
	sort.Strings(slugs)
	for _, slug := range slugs {
		r := p.Routes[slug]
		if len(r.Chain) == 0 {
			return nil, fmt.Errorf("route %q has an empty chain", slug)
		}
		if ch, ok := by[r.Cluster]; ok {
			if !slices.Equal(ch.route.Chain, r.Chain) || !sameFallback(ch.route.Fallback, r.Fallback) {
				return nil, fmt.Errorf("routes %q and %q share cluster %q with different chains or fallback settings; Envoy has one route per cluster: give them different clusters",
					ch.slugs[0], slug, r.Cluster)
			}
			ch.slugs = append(ch.slugs, slug)
			continue
		}
		by[r.Cluster] = &chain{cluster: r.Cluster, route: r, slugs: []string{slug}}
	}
	out := make([]*chain, 0, len(by))
	for _, ch := range by {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cluster < out[j].cluster })
	return out, nil
}

func sameFallback(a, b policy.Fallback) bool {
	return slices.Equal(a.On, b.On) && a.OnConnectFailure == b.OnConnectFailure && a.OnReset == b.OnReset &&
		a.OnStall == b.OnStall && a.MaxAttempts == b.MaxAttempts && a.PerTryTimeout == b.PerTryTimeout &&
		a.PerTryIdleTimeout == b.PerTryIdleTimeout
}

// routeSlot is where chain routes go: before the catch-all route.
type routeSlot struct {
	list *yaml.Node
	at   int
}

// catchAllRoutes finds the base's route that selects its cluster from
// ClusterHeader; exactly one must exist.
func catchAllRoutes(root *yaml.Node) (routeSlot, error) {
	var found []routeSlot
	for _, l := range nodes(path(root, "static_resources", "listeners")) {
		for _, fc := range nodes(get(l, "filter_chains")) {
			for _, f := range nodes(get(fc, "filters")) {
				for _, vh := range nodes(path(f, "typed_config", "route_config", "virtual_hosts")) {
					rs := get(vh, "routes")
					for i, r := range nodes(rs) {
						if h := path(r, "route", "cluster_header"); h != nil && strings.EqualFold(h.Value, ClusterHeader) {
							found = append(found, routeSlot{list: rs, at: i})
						}
					}
				}
			}
		}
	}
	if len(found) != 1 {
		return routeSlot{}, fmt.Errorf("want exactly one route with cluster_header %s (chain routes go before it), found %d", ClusterHeader, len(found))
	}
	return found[0], nil
}

func nodes(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// chainRoute returns the route of ch from the template: the header match,
// and the cluster and the retry policy in the route action.
func chainRoute(tmpl *yaml.Node, ch *chain) (*yaml.Node, error) {
	action := get(tmpl, "route")
	if action == nil || action.Kind != yaml.MappingNode {
		return nil, errors.New("render_templates.chain_route needs a route action (route:)")
	}
	match := mapping(
		"prefix", str("/"),
		"headers", seq(mapping("name", str(ClusterHeader), "string_match", flow(mapping("exact", str(ch.cluster))))),
	)
	action.Content = append([]*yaml.Node{str("cluster"), str(ch.cluster)}, action.Content...)
	if rp := retryPolicy(ch.route.Fallback, len(ch.route.Chain)); rp != nil {
		set(action, "retry_policy", rp)
	}
	r := mapping("match", match)
	r.Content = append(r.Content, tmpl.Content...)
	r.HeadComment = "@" + strings.Join(ch.slugs, ", @") + ": " + strings.Join(ch.route.Chain, " -> ")
	return r, nil
}

// retryPolicy renders a route's fallback (see the README, "Envoy
// configuration"), or returns nil when there is nothing to retry or time.
//
//   - retry_on names the conditions fallback_on lists: retriable-status-codes
//     with exactly those codes, connect-failure, reset. Never 5xx or
//     gateway-error, which would retry codes the policy does not list. A stall
//     is a per_try_idle_timeout, which Envoy retries as a reset.
//   - num_retries is max_attempts - 1.
//   - previous_priorities (update_frequency 1) sends retry N to the chain's
//     next provider. With one provider it would do nothing: excluding the
//     only priority leaves no availability, and the plugin falls back to the
//     original load (PreviousPrioritiesRetryPriority::adjustForAttemptedPriorities).
//   - previous_hosts avoids a host already tried when a provider's name
//     resolves to several.
func retryPolicy(f policy.Fallback, chainLen int) *yaml.Node {
	retries := max(f.MaxAttempts-1, 0)
	var on []string
	if f.OnConnectFailure {
		on = append(on, "connect-failure")
	}
	if f.OnReset {
		on = append(on, "reset")
	}
	if len(f.On) > 0 {
		on = append(on, "retriable-status-codes")
	}
	if len(on) == 0 {
		retries = 0
	}
	if retries == 0 && f.PerTryTimeout == 0 && f.PerTryIdleTimeout == 0 {
		return nil
	}
	rp := mapping()
	if len(on) > 0 {
		set(rp, "retry_on", str(strings.Join(on, ",")))
	}
	if len(f.On) > 0 {
		codes := seq()
		for _, c := range f.On {
			codes.Content = append(codes.Content, num(c))
		}
		set(rp, "retriable_status_codes", flow(codes))
	}
	set(rp, "num_retries", num(retries))
	if f.PerTryTimeout > 0 {
		set(rp, "per_try_timeout", duration(f.PerTryTimeout))
	}
	if f.PerTryIdleTimeout > 0 {
		set(rp, "per_try_idle_timeout", duration(f.PerTryIdleTimeout))
	}
	if retries > 0 && chainLen > 1 {
		set(rp, "retry_priority", mapping(
			"name", str(previousPriority),
			"typed_config", typed("envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
				"update_frequency", num(1)),
		))
	}
	if retries > 0 {
		set(rp, "retry_host_predicate", seq(mapping(
			"name", str(previousHosts),
			"typed_config", flow(typed("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate")),
		)))
		set(rp, "host_selection_retry_max_attempts", num(3))
	}
	return rp
}

// chainCluster returns the aggregate cluster of ch from the template.
func chainCluster(tmpl *yaml.Node, ch *chain) *yaml.Node {
	children := seq()
	for _, name := range ch.route.Chain {
		children.Content = append(children.Content, str(ProviderClusterPrefix+name))
	}
	cl := mapping("name", str(ch.cluster), "cluster_type", mapping(
		"name", str(aggregateType),
		"typed_config", typed("envoy.extensions.clusters.aggregate.v3.ClusterConfig", "clusters", flow(children)),
	))
	cl.Content = append(cl.Content, tmpl.Content...)
	return cl
}

// providerCluster returns the cluster of provider pr: its endpoint and
// metadata, TLS for https, and the template's settings (timeouts, buffer
// limit, outlier detection).
//
// The discovery type: STATIC for an IP address; LOGICAL_DNS for a name over
// https, a public API whose name resolves to many rotating addresses
// (Envoy connects to the first address of the latest answer, as the Envoy
// docs advise for large web services); STRICT_DNS for a name over plain
// http, an internal service (a compose or Kubernetes service), whose every
// address becomes a host.
func providerCluster(c *copier, tmpl, tlsTmpl *yaml.Node, pr *policy.Provider) (*yaml.Node, error) {
	ep, ok := pr.Settings.(Endpointer)
	if !ok {
		return nil, fmt.Errorf("provider %q: type %q does not say where its endpoint is (its settings, %T, lack Endpoint()), so no Envoy cluster can be rendered for it", pr.Name, pr.Type, pr.Settings)
	}
	host, port, tls := ep.Endpoint()
	if host == "" || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("provider %q: invalid endpoint %q port %d", pr.Name, host, port)
	}
	_, ipErr := netip.ParseAddr(host)
	isIP := ipErr == nil
	name := ProviderClusterPrefix + pr.Name
	cl := mapping("name", str(name))
	switch {
	case isIP:
		set(cl, "type", str("STATIC"))
	case tls:
		set(cl, "type", str("LOGICAL_DNS"))
		set(cl, "dns_lookup_family", str("V4_PREFERRED"))
	default:
		set(cl, "type", str("STRICT_DNS"))
		set(cl, "dns_lookup_family", str("V4_PREFERRED"))
	}
	cl.Content = append(cl.Content, c.template(tmpl).Content...)
	lbEndpoint := mapping(
		"endpoint", mapping("address", mapping("socket_address",
			flow(mapping("address", str(host), "port_value", num(port))))),
		"metadata", mapping("filter_metadata", mapping(metadataNamespace, flow(mapping(metadataKey, str(pr.Name))))),
	)
	set(cl, "load_assignment", mapping(
		"cluster_name", str(name),
		"endpoints", seq(mapping("lb_endpoints", seq(lbEndpoint))),
	))
	if tls {
		if isIP {
			return nil, fmt.Errorf("provider %q: an https base URL needs a host name, not the IP address %s: TLS sends it as SNI and checks the certificate against it", pr.Name, host)
		}
		ctx := c.template(tlsTmpl)
		ctx.Content = append([]*yaml.Node{str("sni"), str(host)}, ctx.Content...)
		vc := path(ctx, "common_tls_context", "validation_context")
		if vc == nil || vc.Kind != yaml.MappingNode {
			return nil, errors.New("base: render_templates.provider_tls needs common_tls_context.validation_context (the trusted CA)")
		}
		set(vc, "match_typed_subject_alt_names", seq(mapping(
			"san_type", str("DNS"),
			"matcher", flow(mapping("exact", str(host))),
		)))
		key := str("@type")
		key.Style = yaml.DoubleQuotedStyle
		ctx.Content = append([]*yaml.Node{key, str("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext")}, ctx.Content...)
		set(cl, "transport_socket", mapping("name", str("envoy.transport_sockets.tls"), "typed_config", ctx))
	}
	return cl, nil
}

package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// embeddedPrefix starts the Source of a policy that was compiled in.
const embeddedPrefix = "embedded:"

// DefaultSource is the Source of the embedded default policy.
const DefaultSource = embeddedPrefix + "default"

// defaultPolicy is the embedded demo policy used when no file is given.
//
//go:embed default.yaml
var defaultPolicy []byte

// Policy is an immutable, validated snapshot of a policy file. It is safe for
// concurrent use. Callers must not modify it or anything it points to.
type Policy struct {
	// Version is the policy format version; always 1 for now.
	Version int
	// Source is the file path the policy was read from, or "embedded:default".
	Source string
	// Providers holds the providers by name.
	Providers map[string]*Provider
	// Routes holds the routes by slug, without the leading '@'.
	Routes map[string]*Route
	// DefaultRoute is the slug of the route used when a client names none.
	DefaultRoute string
	// Keys lists the gateway keys in file order.
	Keys []*Key
	// Pricing is the pricing section: what to do with models the catalog
	// cannot price, and the policy's own prices.
	Pricing PricingPolicy
	// Teams holds the teams section by team name. Their budgets are in
	// Budgets, with every other budget.
	Teams map[string]*Team
	// Viewers lists the read-only viewer tokens of the admin port, each of
	// one team (teams.<team>.viewers), in file order.
	Viewers []Viewer
	// Budgets holds every budget and rate limit of the policy by scope
	// (keys, users, teams, projects, providers, sessions, global), with the
	// timezone of calendar windows, the fail mode and the session TTL. It is
	// never nil in a loaded policy.
	Budgets *budget.Config
	// BudgetExempt lists the endpoints that no budget counts: by default
	// count_tokens and models.
	BudgetExempt []string
	// Warnings lists non-fatal problems, such as the unresolved secret of a
	// provider that no route uses.
	Warnings []Problem

	// catalog is the embedded price catalog with Pricing.Models added, built
	// once at load.
	catalog *pricing.Catalog

	// keyIndex maps the SHA-256 of a gateway key to its entry.
	keyIndex map[[sha256.Size]byte]keyEntry
}

// keyEntry is a key together with the digest it was indexed under.
type keyEntry struct {
	digest [sha256.Size]byte
	key    *Key
}

// PricingPolicy is the pricing section of a policy.
type PricingPolicy struct {
	// Unknown says what happens to a model neither the catalog nor Models
	// prices: a family estimate (the default) or a denial.
	Unknown pricing.UnknownModels
	// Models holds the policy's prices, keyed by pricing.NormalizeModel of the
	// model id. They add to and override the embedded catalog under every
	// provider.
	Models map[string]pricing.Price
}

// Provider is an upstream LLM API and the credentials to call it.
type Provider struct {
	// Name is the provider's name in the policy; Envoy's provider clusters
	// carry it as endpoint metadata tollgate.provider.
	Name string
	// Type is the API the provider speaks, the name of a registered
	// ProviderType: "anthropic".
	Type string
	// Settings holds the fields of the provider's type, decoded and with
	// their secrets resolved: the value the type's NewSettings returned, such
	// as *anthropic.Settings (package provider/anthropic) for type anthropic,
	// with the base URL and the API key. A secret that could not be resolved
	// is empty, in which case Policy.Warnings says why. Settings also carries
	// what the adapter needs to send an attempt to the provider (see extproc's
	// Upstream).
	Settings any
	// Models maps a requested model id to the id this provider knows it by.
	Models map[string]string
}

// Route is a named chain of providers that a client selects with a slug.
type Route struct {
	// Slug names the route, without the leading '@'.
	Slug string
	// Chain lists provider names in fallback order. Each names a provider of
	// the policy.
	Chain []string
	// Cluster is the Envoy aggregate cluster that implements the chain; it
	// defaults to "chain_" + Slug.
	Cluster string
	// Models maps a model id a client sends to the id sent on, before the
	// provider's own mapping applies.
	Models map[string]string
	// CaptureBodies is the size cap, in bytes, of the request and response
	// bodies captured in cost records of this route; 0 captures none. See
	// Policy.CaptureLimit.
	CaptureBodies int
	// Cache is the route's response cache; nil caches nothing. See
	// Policy.CacheFor.
	Cache *Cache
	// Fallback says when a request moves on to the next provider of Chain
	// and how long each attempt may take. Envoy carries it out (the route's
	// retry policy); it is filled with its defaults when the file says
	// nothing.
	Fallback Fallback
}

// Fallback is the retry policy of a route: the failures of an attempt that
// send the request on to the next provider of the chain, how many attempts a
// request may make, and the limits of each. Envoy implements it with a retry
// policy over the route's aggregate cluster (previous_priorities, so that
// each retry goes to the next provider), rendered from it by `tollgate envoy
// render`. A failure after the response headers went to the client is never
// retried.
type Fallback struct {
	// On lists the response status codes that fall back, in ascending order:
	// 429 and codes from 500 to 599. Default 429, 500, 502, 503, 504, 529.
	// Envoy's retriable_status_codes.
	On []int
	// OnConnectFailure falls back when no connection to the provider could
	// be made (Envoy's connect-failure). Default true.
	OnConnectFailure bool
	// OnReset falls back when the provider's connection or stream was reset
	// before response headers (Envoy's reset). Default true. It implies
	// OnConnectFailure, and a per-try timeout or stall is retried with it,
	// because Envoy retries every reset, its own included.
	OnReset bool
	// OnStall falls back when the provider sent nothing for
	// PerTryIdleTimeout. Default true; it implies OnReset.
	OnStall bool
	// MaxAttempts is the number of attempts a request may make, the first
	// included: Envoy's num_retries is MaxAttempts-1. Default the chain's
	// length; at most the chain's length, or MaxSameProviderAttempts on a
	// chain of one provider, where retries go to that provider again.
	MaxAttempts int
	// PerTryTimeout bounds the time an attempt may take until its response
	// starts; 0 (the default) means no bound. Envoy ignores it once the
	// response has started towards the client.
	PerTryTimeout time.Duration
	// PerTryIdleTimeout is how long an attempt may go without a byte from
	// the provider, headers or body, before Envoy cuts it (a stall); 0 means
	// never. Default DefaultPerTryIdleTimeout when OnStall, else 0. Before
	// the response headers went to the client, a stall falls back (OnStall);
	// after, the client's stream is cut.
	PerTryIdleTimeout time.Duration
}

// Team is an entry of the teams section.
type Team struct {
	Name string
	// CaptureBodies is the body capture cap of the team's requests, in bytes;
	// 0 captures none. See Policy.CaptureLimit.
	CaptureBodies int
	// Cache is the team's response cache setting, which replaces the
	// route's when CacheSet (a nil Cache then caches nothing for the team).
	Cache    *Cache
	CacheSet bool
}

// LoadOptions carries what loading a policy needs from the outside world.
// The zero value uses the process environment and file system.
type LoadOptions struct {
	// LookupEnv resolves ${VAR} references. It defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads the policy file and api_key_file secrets. It defaults to
	// os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// RequireSecrets makes an unresolvable secret of a provider in use (named
	// in some route's chain) a load error; otherwise it is a warning. `serve`
	// sets it, `policy check` does not.
	RequireSecrets bool
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	return o
}

// LoadFile reads and parses the policy file at path. See Parse.
func LoadFile(path string, opts LoadOptions) (*Policy, error) {
	opts = opts.withDefaults()
	data, err := opts.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(path, data, opts)
}

// Default returns the embedded default policy, whose Source is
// "embedded:default". It is meant for the demo only: it accepts the published
// gateway key tg-demo-key and sends requests to the fake provider.
func Default(opts LoadOptions) (*Policy, error) {
	return Parse(DefaultSource, defaultPolicy, opts)
}

// Parse parses and validates a policy. name is used as the file in problems
// and as the Source; relative api_key_file paths are resolved against its
// directory. On failure the error is a *LoadError listing every problem.
func Parse(name string, data []byte, opts LoadOptions) (*Policy, error) {
	opts = opts.withDefaults()
	d := &decoder{file: name, opts: opts}
	p := d.parse(data)
	sortProblems(d.errs)
	sortProblems(d.warns)
	if len(d.errs) > 0 {
		return nil, &LoadError{Problems: d.errs}
	}
	p.Warnings = d.warns
	p.catalog = pricing.Embedded().With(p.Pricing.Models)
	return p, nil
}

// Catalog returns the price catalog of the policy: the embedded catalog with
// the policy's prices added. It is built once, when the policy is loaded. A
// Policy that was not loaded (the zero value) has the embedded catalog.
func (p *Policy) Catalog() *pricing.Catalog {
	if p.catalog == nil {
		return pricing.Embedded()
	}
	return p.catalog
}

// Authenticate returns the key whose SHA-256 matches that of key. The digest
// is found by a map lookup and then compared in constant time. An empty key
// never authenticates.
func (p *Policy) Authenticate(key string) (*Key, bool) {
	if key == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(key))
	e, ok := p.keyIndex[sum]
	if !ok || subtle.ConstantTimeCompare(e.digest[:], sum[:]) != 1 {
		return nil, false
	}
	return e.key, true
}

// Route returns the route named by slug, written "@slug" or "slug". An empty
// slug selects the default route.
func (p *Policy) Route(slug string) (*Route, bool) {
	if slug == "" {
		slug = p.DefaultRoute
	} else {
		slug = strings.TrimPrefix(slug, "@")
	}
	r, ok := p.Routes[slug]
	return r, ok
}

// ProviderType returns the type of the provider named name ("anthropic",
// ...), or "" when the policy has no such provider.
func (p *Policy) ProviderType(name string) string {
	if prov, ok := p.Providers[name]; ok {
		return prov.Type
	}
	return ""
}

// PriceAt resolves in the policy's catalog what a client's model costs when
// route r sends it to provider: the model id after MapModel, and its price,
// or an error wrapping pricing.ErrUnpriced when unknown refuses it.
func (p *Policy) PriceAt(r *Route, provider, model string, unknown pricing.UnknownModels) (string, pricing.Price, error) {
	model = p.MapModel(r, provider, model)
	price, err := p.Catalog().Resolve(p.ProviderType(provider), model, unknown)
	return model, price, err
}

// MapModel returns the model id to send to provider for a client's model on
// route r: the route's mapping applies first, then the provider's mapping to
// the result; when the provider's models field does not name that id, the
// provider type's default mapping (ModelMapper, as Bedrock's from Anthropic
// ids to inference profile ids) applies instead. A model that none maps is
// returned unchanged. r may be nil.
func (p *Policy) MapModel(r *Route, provider, model string) string {
	if r != nil {
		if m, ok := r.Models[model]; ok {
			model = m
		}
	}
	if prov, ok := p.Providers[provider]; ok {
		if m, ok := prov.Models[model]; ok {
			return m
		}
		if mm, ok := prov.Settings.(ModelMapper); ok {
			if m, ok := mm.DefaultModel(model); ok {
				return m
			}
		}
	}
	return model
}

// MapsModels reports whether MapModel may change a model id sent to provider
// on route r: the route or the provider has a models field, or the
// provider's type maps ids by default (ModelMapper).
func (p *Policy) MapsModels(r *Route, provider string) bool {
	if r != nil && len(r.Models) > 0 {
		return true
	}
	prov, ok := p.Providers[provider]
	if !ok {
		return false
	}
	_, mapper := prov.Settings.(ModelMapper)
	return len(prov.Models) > 0 || mapper
}

// PriceServed resolves in the policy's catalog what a request served by
// provider costs, and returns the model id it priced. sent is the id the
// request was sent with (MapModel's), reported the id the response named
// ("" when it named none).
//
// A provider whose type maps models to ids of its own (ModelMapper: Bedrock,
// Vertex) is priced by the id sent when the catalog prices it under the
// provider's type: that id names the inference profile or region the
// provider bills, while its responses name the Anthropic model
// ("claude-sonnet-4-5-20250929" for a request sent to
// "us.anthropic.claude-sonnet-4-5-20250929-v1:0", which costs 10% more than
// the global profile). Otherwise, and for other providers, the id reported
// is priced (it names the snapshot that served), or the id sent when the
// response named none, by Catalog().Resolve under the policy's
// unknown_models. The error wraps pricing.ErrUnpriced.
func (p *Policy) PriceServed(provider, sent, reported string) (string, pricing.Price, error) {
	typ := p.ProviderType(provider)
	if prov, ok := p.Providers[provider]; ok && sent != "" {
		if _, mapper := prov.Settings.(ModelMapper); mapper {
			if price, ok := p.Catalog().Lookup(typ, sent); ok {
				return sent, price, nil
			}
		}
	}
	model := reported
	if model == "" {
		model = sent
	}
	price, err := p.Catalog().Resolve(typ, model, p.Pricing.Unknown)
	return model, price, err
}

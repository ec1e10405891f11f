package pricing

import (
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/catalogfile"
	"github.com/tollgate-dev/tollgate/policy/pricing/internal/modelid"
)

// catalogData is the generated catalog (see generate.go). It is read once, by
// Embedded, and never written.
//
//go:embed catalog.json.gz
var catalogData []byte

// embedded parses catalogData on first use. The catalog is immutable, so one
// parsed copy serves the whole process.
var embedded = sync.OnceValue(func() *Catalog {
	c, err := parseCatalog(catalogData)
	if err != nil {
		// The package tests parse the same bytes, so this cannot happen in a
		// tested build.
		panic("pricing: embedded catalog: " + err.Error())
	}
	return c
})

// Catalog is an immutable set of model prices, safe for concurrent use. The
// zero value is not usable: start from Embedded.
//
// Model ids are looked up per provider after normalisation (see Lookup), and a
// model the catalog lacks can be priced by its family (see Resolve).
type Catalog struct {
	version string
	notes   []string
	// models is sorted by provider, then model.
	models []Price
	index  *modelid.Index
	// providers lists the catalog's providers in the order an empty provider
	// searches them; isProvider holds the same names.
	providers  []string
	isProvider map[string]bool
	// families maps provider, then family, to the family's estimate: the
	// price of its newest member (see Resolve). The provider "" holds the
	// families of policy prices, which apply to every provider.
	families map[string]map[string]Price
	// overrides holds policy prices by neutral model id (see modelid.Neutral).
	overrides map[string]Price
}

// Embedded returns the catalog compiled into the binary, generated from
// LiteLLM's and Portkey's price tables (see THIRD_PARTY_NOTICES.md), with
// the Claude API rates of the current Claude models taken from Anthropic's
// published pricing (see Notes).
func Embedded() *Catalog { return embedded() }

// parseCatalog builds a catalog from the generated file.
func parseCatalog(gz []byte) (*Catalog, error) {
	f, raw, err := catalogfile.Decode(gz)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	c := &Catalog{
		version:    f.Sources + "+" + hex.EncodeToString(sum[:6]),
		notes:      f.Notes,
		models:     make([]Price, len(f.Models)),
		isProvider: map[string]bool{},
	}
	for i, m := range f.Models {
		if m.Provider == "" || m.Model == "" || modelid.Provider(m.Provider) != m.Provider || modelid.Key(m.Provider, m.Model) != m.Model {
			return nil, fmt.Errorf("catalog: entry %d (%s %s) is not normalised", i, m.Provider, m.Model)
		}
		p := Price{
			Model:                m.Model,
			Provider:             m.Provider,
			Rates:                rates(m.Rates),
			LongContextThreshold: m.LongContextThreshold,
			WebSearchPerRequest:  m.WebSearch,
			Estimated:            m.Estimated,
			Source:               m.Source,
			Note:                 m.Note,
		}
		if m.LongContext != nil {
			lc := rates(*m.LongContext)
			p.LongContext = &lc
		}
		c.models[i] = p
		c.isProvider[m.Provider] = true
	}
	if !slices.IsSortedFunc(c.models, comparePrices) {
		return nil, fmt.Errorf("catalog: entries are not sorted")
	}
	c.index = modelid.NewIndex(len(c.models),
		func(i int) (string, string) { return c.models[i].Provider, c.models[i].Model },
		func(i, j int) bool { return samePrice(c.models[i], c.models[j]) })
	c.providers = providerOrder(c.isProvider)
	fams := map[string]map[string]member{}
	for _, p := range c.models {
		addToFamily(fams, p.Provider, p)
	}
	c.families = finishFamilies(fams)
	return c, nil
}

func rates(r catalogfile.Rates) Rates {
	return Rates{Input: r[0], Output: r[1], CacheRead: r[2], CacheWrite5m: r[3], CacheWrite1h: r[4]}
}

func comparePrices(a, b Price) int {
	return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.Model, b.Model))
}

// samePrice reports whether a and b charge the same for every usage.
func samePrice(a, b Price) bool {
	if a.Rates != b.Rates || a.WebSearchPerRequest != b.WebSearchPerRequest || a.LongContextThreshold != b.LongContextThreshold {
		return false
	}
	if (a.LongContext == nil) != (b.LongContext == nil) {
		return false
	}
	return a.LongContext == nil || *a.LongContext == *b.LongContext
}

// preferredProviders are searched first, in this order, by an empty provider.
var preferredProviders = [...]string{modelid.Anthropic, modelid.Bedrock, modelid.Vertex, modelid.OpenAI}

func providerOrder(set map[string]bool) []string {
	var out, rest []string
	for _, p := range preferredProviders {
		if set[p] {
			out = append(out, p)
		}
	}
	for p := range set {
		if !slices.Contains(preferredProviders[:], p) {
			rest = append(rest, p)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// Version identifies the catalog's content, for cost records: the source
// tables and their versions, then a prefix of the SHA-256 of the generated
// data, and for a catalog with policy prices a hash of those, as in
// "litellm-2026-03-03+portkey-f654307+anthropic-2026-12-03+1a2b3c4d5e6f+policy-0a1b2c3d4e5f",
// where anthropic-<date> is the day Anthropic's published prices were read
// (see Notes).
func (c *Catalog) Version() string { return c.version }

// Notes returns the catalog's notes on where rates that are not the source
// tables' come from: Anthropic's published pricing page and the date it was
// read. The slice is the caller's.
func (c *Catalog) Notes() []string { return slices.Clone(c.notes) }

// Lookup returns the price of a model under a provider, if the catalog or the
// policy has one. It never estimates.
//
// provider is a Tollgate provider type or a catalog provider: "anthropic",
// "bedrock", "vertex" (or "vertex_ai"), "openai", or any other of LiteLLM's
// provider keys. An empty provider searches anthropic, bedrock, vertex_ai and
// openai, then every other provider by name, first for the id exactly and
// then for its looser forms below, unless the model starts with a provider
// ("vertex_ai/…"), which is then searched alone.
//
// The model id is normalised: lower-cased, an AWS ARN reduced to its model or
// inference profile id (the part after the last '/'), a leading
// "<provider>/" removed. A policy price for the id's NormalizeModel form (see
// With) wins. Otherwise the first
// of these the catalog knows is returned:
//
//  1. the id itself, such as "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
//     whose regional price may differ from the global one;
//  2. the id without snapshot suffixes: a Vertex "@version", "-latest", a
//     Bedrock "-v1:0" or a date, so "claude-sonnet-4-latest" finds
//     claude-sonnet-4-20250514 (when the undated id is not ambiguous);
//  3. the id without a Bedrock regional prefix ("us.", "eu.", "apac.",
//     "global.", …), then also without suffixes.
//
// Lookup does not allocate unless the id has upper-case letters.
func (c *Catalog) Lookup(provider, model string) (Price, bool) {
	if provider == "" {
		return c.lookupAny(model)
	}
	prov := modelid.Provider(provider)
	key := modelid.Key(prov, model)
	if len(c.overrides) > 0 {
		if p, ok := c.overrides[modelid.Neutral(key)]; ok {
			p.Provider = prov
			return p, true
		}
	}
	if i, ok := c.index.Lookup(prov, key); ok {
		return c.models[i], true
	}
	return Price{}, false
}

// lookupAny is Lookup for an empty provider.
func (c *Catalog) lookupAny(model string) (Price, bool) {
	if prov, ok := c.prefixProvider(model); ok {
		return c.Lookup(prov, model)
	}
	// First the providers that know the id exactly, then the looser forms.
	for _, prov := range c.providers {
		if i, ok := c.index.LookupExact(prov, modelid.Key(prov, model)); ok {
			return c.Lookup(prov, c.models[i].Model)
		}
	}
	for _, prov := range c.providers {
		if p, ok := c.Lookup(prov, model); ok {
			return p, true
		}
	}
	return Price{}, false
}

// prefixProvider returns the provider that model starts with, as in
// "vertex_ai/claude-…", when the catalog has that provider.
func (c *Catalog) prefixProvider(model string) (string, bool) {
	seg, _, ok := strings.Cut(model, "/")
	if !ok {
		return "", false
	}
	prov := modelid.Provider(strings.ToLower(seg))
	return prov, c.isProvider[prov]
}

// Resolve returns the price of a model under a provider, or an error wrapping
// ErrUnpriced that names the model. It returns, in order of preference:
//
//  1. the policy's or the catalog's price, as Lookup finds it;
//  2. with EstimateByFamily, the family estimate: for a model of a known
//     family, the price of the family's newest priced member under that
//     provider (the policy's prices of the family included), with Estimated
//     set, Source "family:<family>", EstimatedFrom the member's id and Note
//     saying so. Newest is the order of modelid.Release: by the version in
//     the id (claude-opus-4-5 > claude-opus-4-1 > claude-opus-4 >
//     claude-3-opus), then by snapshot date, an undated alias ranking above
//     the dated snapshots of its version; Bedrock regions, vendor
//     qualifiers, "-v1:0", "@…" and "-latest" are ignored. Of several prices
//     of the newest release (a model's Bedrock regional profiles, some of
//     which cost 10% more), the dearest is taken. The member's long-context
//     tier comes with it; its web search price, if it has none, is the
//     family's highest. Price.Model is the id asked for;
//  3. an error.
//
// With Deny, a model the catalog and the policy lack is an error.
//
// The family of a model is read from its NormalizeModel form, looking at the
// last '/'-separated segment:
//
//   - a Claude id ("claude-…") belongs to "claude-" followed by its first
//     dash-separated word made of letters only: claude-opus-4-8,
//     claude-opus-5-5 and claude-3-opus are "claude-opus", claude-sonnet-4-7
//     and claude-3-5-sonnet-v2 are "claude-sonnet", claude-haiku-4-9 is
//     "claude-haiku"; claude-2.1 has no family;
//   - a GPT id ("gpt-<version>[-<words>]") belongs to "gpt-", the major
//     version (up to the first '.') and the words that contain a letter,
//     except "latest" and "preview": gpt-5.9 is "gpt-5", gpt-5.4-mini is
//     "gpt-5-mini", gpt-4.1 is "gpt-4", gpt-4o-mini is "gpt-4o-mini";
//   - no other id has a family.
//
// So on the day a new model ships, it costs what its family's latest model
// costs (claude-opus-6 what claude-opus-5-5 costs), not what the dearest
// model of the family ever cost, until the catalog or the policy knows its
// price. A new model priced above its predecessor is under-estimated until
// then; the record says the price was estimated.
func (c *Catalog) Resolve(provider, model string, unknown UnknownModels) (Price, error) {
	if p, ok := c.Lookup(provider, model); ok {
		return p, nil
	}
	if unknown == Deny {
		return Price{}, fmt.Errorf("%w %q%s; the policy denies unknown models (pricing.unknown_models: deny)", ErrUnpriced, model, under(provider))
	}
	if p, ok := c.estimate(provider, model); ok {
		return p, nil
	}
	return Price{}, fmt.Errorf("%w %q%s, and it belongs to no known model family; add its price to the policy (pricing.models)", ErrUnpriced, model, under(provider))
}

func under(provider string) string {
	if provider == "" {
		return ""
	}
	return " under provider " + provider
}

// estimate returns the family estimate for a model. It does not allocate.
func (c *Catalog) estimate(provider, model string) (Price, bool) {
	var providers []string
	var key string
	if provider == "" {
		if prov, ok := c.prefixProvider(model); ok {
			providers = []string{prov}
		} else {
			providers = c.providers
		}
	} else {
		providers = []string{modelid.Provider(provider)}
	}
	var buf [64]byte
	for _, prov := range providers {
		key = modelid.Key(prov, model)
		fam := modelid.AppendFamily(buf[:0], modelid.Neutral(key))
		if len(fam) == 0 {
			continue
		}
		p, ok := c.families[prov][string(fam)]
		if !ok {
			p, ok = c.families[""][string(fam)]
		}
		if ok {
			p.Model, p.Provider = model, prov
			return p, true
		}
	}
	return Price{}, false
}

// Models returns every price of the catalog, sorted by provider and model,
// followed by the policy's prices (whose Provider is "", for any provider)
// sorted by model. The slice is the caller's.
func (c *Catalog) Models() []Price {
	out := make([]Price, 0, len(c.overrides)+len(c.models))
	for _, p := range c.overrides {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrices)
	return append(out, c.models...)
}

// ProviderName returns the catalog's name for a provider as Tollgate, LiteLLM
// or Portkey spells it: "vertex" is "vertex_ai", "bedrock_converse" is
// "bedrock"; other names are returned as they are. Price.Provider holds these
// names.
func ProviderName(name string) string { return modelid.Provider(name) }

// NormalizeModel returns the provider-neutral form of a model id under which
// With keys a policy price: lower-cased, an AWS ARN reduced to its model id,
// without a Bedrock region ("us.", "global.", …), an "anthropic." or "openai."
// qualifier, or a snapshot suffix (a date, "-latest", "@version", "-v1:0").
// "us.anthropic.claude-opus-4-8-v1:0", "claude-opus-4-8@20260101" and
// "claude-opus-4-8" are all "claude-opus-4-8".
func NormalizeModel(id string) string {
	return modelid.Neutral(modelid.Key("", id))
}

// With returns a catalog with the policy's prices added, keyed by model id.
// Each id is normalised by NormalizeModel, and its price then applies to that
// model under every provider, ahead of the catalog's own prices. Later calls to With override earlier ones. The prices' Source is set
// to "policy" and their Provider to ""; they also take part in the family
// estimates. With(nil) returns c.
func (c *Catalog) With(overrides map[string]Price) *Catalog {
	if len(overrides) == 0 {
		return c
	}
	n := *c
	n.overrides = make(map[string]Price, len(c.overrides)+len(overrides))
	for k, p := range c.overrides {
		n.overrides[k] = p
	}
	// In key order, so that of two ids with the same normal form the later
	// one wins every time.
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		p := overrides[k]
		key := NormalizeModel(k)
		p.Model, p.Provider, p.Source, p.Estimated = key, "", "policy", false
		n.overrides[key] = p
	}
	// Families: the catalog's, less the prices the policy overrides, with the
	// policy's prices added under every provider that has the family, and
	// under "" for the others.
	fams := map[string]map[string]member{}
	for _, p := range c.models {
		if _, ok := n.overrides[modelid.Neutral(p.Model)]; !ok {
			addToFamily(fams, p.Provider, p)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.overrides)) {
		p := n.overrides[k]
		addToFamily(fams, "", p)
		f := modelid.Family(p.Model)
		for prov, byFam := range fams {
			if _, ok := byFam[f]; ok && prov != "" {
				addToFamily(fams, prov, p)
			}
		}
	}
	n.families = finishFamilies(fams)
	n.version = c.version + "+policy-" + hashOverrides(n.overrides)
	return &n
}

// hashOverrides returns a short hash of the policy's prices, for Version.
func hashOverrides(m map[string]Price) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		p := m[k]
		fmt.Fprintf(h, "%q %v %d %d", k, p.Rates, p.LongContextThreshold, p.WebSearchPerRequest)
		if p.LongContext != nil {
			fmt.Fprintf(h, " %v", *p.LongContext)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// member is the member of a family that its estimate copies, while the
// family is being collected, and the highest web search price of the family.
type member struct {
	p   Price
	rel modelid.Release
	web int64
}

// addToFamily offers p as the member of its model's family under provider
// prov that the family's estimate copies (see Resolve): the newest release
// wins, and of the same release the dearest price, then the smallest key, so
// that the choice does not depend on the order of the calls.
func addToFamily(fams map[string]map[string]member, prov string, p Price) {
	f := modelid.Family(modelid.Neutral(p.Model))
	if f == "" {
		return
	}
	byFam := fams[prov]
	if byFam == nil {
		byFam = map[string]member{}
		fams[prov] = byFam
	}
	rel := modelid.ReleaseOf(p.Model)
	cur, ok := byFam[f]
	if !ok || cmp.Or(rel.Compare(cur.rel), compareDearer(p, cur.p), strings.Compare(cur.p.Model, p.Model)) > 0 {
		cur.p, cur.rel = p, rel
	}
	cur.web = max(cur.web, p.WebSearchPerRequest)
	byFam[f] = cur
}

// compareDearer orders prices of the same release: +1 when a costs more than
// b, by output, input, 1-hour and 5-minute cache write, cache read, then the
// long-context tier.
func compareDearer(a, b Price) int {
	return cmp.Or(
		cmp.Compare(a.Output, b.Output),
		cmp.Compare(a.Input, b.Input),
		cmp.Compare(a.CacheWrite1h, b.CacheWrite1h),
		cmp.Compare(a.CacheWrite5m, b.CacheWrite5m),
		cmp.Compare(a.CacheRead, b.CacheRead),
		cmp.Compare(longOutput(a), longOutput(b)),
	)
}

func longOutput(p Price) int64 {
	if p.LongContext == nil {
		return 0
	}
	return p.LongContext.Output
}

// finishFamilies turns the members chosen by addToFamily into the family
// estimates: the member's price, flagged Estimated, with Source
// "family:<family>", EstimatedFrom the member's id, and the highest web
// search price of the family when the member has none.
func finishFamilies(fams map[string]map[string]member) map[string]map[string]Price {
	out := make(map[string]map[string]Price, len(fams))
	for prov, byFam := range fams {
		est := make(map[string]Price, len(byFam))
		for f, m := range byFam {
			p := m.p
			p.EstimatedFrom = p.Model
			from := p.Model
			if p.Provider != "" {
				from += " (" + p.Provider + ")"
			} else {
				from += " (policy)"
			}
			p.Note = "estimated from " + from + ", the newest priced " + f + " model"
			p.Source, p.Estimated = "family:"+f, true
			if p.WebSearchPerRequest == 0 {
				p.WebSearchPerRequest = m.web
			}
			est[f] = p
		}
		out[prov] = est
	}
	return out
}

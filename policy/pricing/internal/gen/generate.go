package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/catalogfile"
	"github.com/tollgate-dev/tollgate/policy/pricing/internal/decimal"
	"github.com/tollgate-dev/tollgate/policy/pricing/internal/modelid"
)

// The rates of an entry, in catalogfile.Rates order.
const (
	fieldInput = iota
	fieldOutput
	fieldCacheRead
	fieldWrite5m
	fieldWrite1h
	numFields
)

var fieldNames = [numFields]string{"input", "output", "cache_read", "cache_write_5m", "cache_write_1h"}

const (
	picoPerUSD  = 1_000_000_000_000
	picoPerCent = 10_000_000_000
	picoPerMTok = 1_000_000 // pico-USD per token in 1 USD per million tokens
	sourceLite  = "litellm"
	sourcePort  = "portkey"
	// sourceAnthropic marks a model that only Anthropic's published prices
	// (anthropic.go) have.
	sourceAnthropic = "anthropic"
)

// rates is one tier of an entry's rates, with which of them the source gave.
type rates struct {
	v   [numFields]int64
	has [numFields]bool
}

// entry is a catalog entry under construction.
type entry struct {
	provider, key string // catalog provider and key
	name          string // the source's own key
	group         string // LiteLLM's provider group, or Portkey's file
	source        string
	base          rates
	lcThreshold   int64
	lc            *rates
	web           int64
	estimated     bool
	notes         []string
	// corrected and derived mark base rates that are not the source's.
	corrected, derived [numFields]bool
}

// gen holds the inputs, the catalog being built and what the report says.
type gen struct {
	cfg         config
	corrections []correction
	published   []string // what anthropic.go applied
	prices      []published
	entries     []*entry

	// Statistics and report sections.
	liteTotal       int
	liteModes       map[string]int
	liteCovered     int
	liteCoveredChat int
	notTokenPriced  []string // chat entries without token prices
	duplicates      []string
	applied         []string
	derived         []string
	lcFromBase      []string
	rounded         []string
	tiered          []string
	portkeyChecked  int
	portkeyMatched  int
	portkeySkipped  []string
	portkeyAdded    []string
	disagreements   []disagreement
}

// disagreement is a rate on which the catalog and Portkey differ.
type disagreement struct {
	provider, portkeyName, key string
	field                      string
	ours, theirs               int64
	note                       string
}

// generate reads the sources and builds the catalog, applying corrs, then
// Anthropic's published prices.
func generate(cfg config, corrs []correction, prices []published) (*gen, error) {
	g := &gen{cfg: cfg, corrections: corrs, prices: prices, liteModes: map[string]int{}}
	if err := g.readLiteLLM(cfg.litellm); err != nil {
		return nil, err
	}
	g.dedupe()
	if err := g.correct(); err != nil {
		return nil, err
	}
	for _, e := range g.entries {
		g.derive(e)
	}
	if err := g.crossCheck(cfg.portkey); err != nil {
		return nil, err
	}
	if err := g.applyPublished(prices); err != nil {
		return nil, err
	}
	slices.SortFunc(g.entries, func(a, b *entry) int {
		return cmp.Or(strings.Compare(a.provider, b.provider), strings.Compare(a.key, b.key))
	})
	return g, nil
}

// textModes are the LiteLLM modes of models that generate text and are priced
// per token; "" is an entry without a mode.
var textModes = map[string]bool{"chat": true, "responses": true, "completion": true, "": true}

// readLiteLLM reads the LiteLLM table and converts its text-generation
// entries.
func (g *gen) readLiteLLM(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var table map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&table); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, name := range slices.Sorted(maps.Keys(table)) {
		if name == "sample_spec" {
			continue
		}
		v := table[name]
		g.liteTotal++
		mode, _ := v["mode"].(string)
		g.liteModes[mode]++
		if !textModes[mode] {
			continue
		}
		group, _ := v["litellm_provider"].(string)
		if group == "" {
			return fmt.Errorf("%s: %s has no litellm_provider", path, name)
		}
		e := &entry{name: name, group: group, source: sourceLite, provider: modelid.Provider(group)}
		e.key = modelid.Key(e.provider, name)
		ok, err := g.liteRates(e, v)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
		if !ok {
			if mode == "chat" {
				g.notTokenPriced = append(g.notTokenPriced, name)
			}
			continue
		}
		g.liteCovered++
		if mode == "chat" {
			g.liteCoveredChat++
		}
		g.entries = append(g.entries, e)
	}
	return nil
}

// liteFields are LiteLLM's names of the rates, in field order.
var liteFields = [numFields]string{
	"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
	"cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr",
}

// liteTiers are LiteLLM's long-context tiers: the suffix of their field names
// and the threshold in input tokens.
var liteTiers = []struct {
	suffix    string
	threshold int64
}{{"_above_200k_tokens", 200_000}, {"_above_128k_tokens", 128_000}}

// liteRates fills e from a LiteLLM entry. It returns false for an entry that
// is not priced per token.
func (g *gen) liteRates(e *entry, v map[string]any) (bool, error) {
	if tiers, ok := v["tiered_pricing"].([]any); ok && !has(v, liteFields[fieldInput]) {
		return g.liteTiered(e, tiers)
	}
	if !has(v, liteFields[fieldInput]) || !has(v, liteFields[fieldOutput]) {
		return false, nil
	}
	var err error
	if e.base, err = g.liteTier(e, v, ""); err != nil {
		return false, err
	}
	for _, t := range liteTiers {
		if !has(v, liteFields[fieldInput]+t.suffix) {
			continue
		}
		if e.lc != nil {
			return false, fmt.Errorf("more than one long-context tier")
		}
		lc, err := g.liteTier(e, v, t.suffix)
		if err != nil {
			return false, err
		}
		e.lc, e.lcThreshold = &lc, t.threshold
	}
	if sc, ok := v["search_context_cost_per_query"].(map[string]any); ok {
		if n, ok := sc["search_context_size_medium"].(json.Number); ok {
			if e.web, err = g.pico(e, "search_context_size_medium", n, picoPerUSD); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// liteTier reads the rates whose field names end in suffix.
func (g *gen) liteTier(e *entry, v map[string]any, suffix string) (rates, error) {
	var r rates
	for f, name := range liteFields {
		// The 1h long-context field is …_above_1hr_above_200k_tokens.
		name += suffix
		x, ok := v[name]
		if !ok {
			continue
		}
		n, ok := x.(json.Number)
		if !ok {
			return r, fmt.Errorf("%s is not a number", name)
		}
		p, err := g.pico(e, name, n, picoPerUSD)
		if err != nil {
			return r, err
		}
		r.v[f], r.has[f] = p, true
	}
	return r, nil
}

// liteTiered fills e from LiteLLM's tiered_pricing: the first tier is the
// base, and the last applies above the start of the second. With two tiers
// this is exact; with more, the middle tiers are charged at the last tier's
// rates and the entry is marked estimated.
func (g *gen) liteTiered(e *entry, tiers []any) (bool, error) {
	var rs []rates
	var starts []int64
	for i, t := range tiers {
		m, ok := t.(map[string]any)
		if !ok {
			return false, fmt.Errorf("tiered_pricing[%d] is not an object", i)
		}
		if !has(m, liteFields[fieldInput]) || !has(m, liteFields[fieldOutput]) {
			return false, nil
		}
		r, err := g.liteTier(e, m, "")
		if err != nil {
			return false, err
		}
		rng, _ := m["range"].([]any)
		if len(rng) != 2 {
			return false, fmt.Errorf("tiered_pricing[%d] has no range", i)
		}
		n, _ := rng[0].(json.Number)
		start, exact, err := decimal.Scale(string(n), 1)
		if err != nil || !exact {
			return false, fmt.Errorf("tiered_pricing[%d]: bad range start %q", i, n)
		}
		rs, starts = append(rs, r), append(starts, start)
	}
	if len(rs) < 2 || starts[0] != 0 {
		return false, fmt.Errorf("tiered_pricing: want at least two tiers starting at 0")
	}
	e.base = rs[0]
	last := rs[len(rs)-1]
	e.lc, e.lcThreshold = &last, starts[1]
	what := fmt.Sprintf("%d tiers: base up to %d input tokens, the top tier above", len(rs), starts[1])
	if len(rs) > 2 {
		e.estimated = true
		what += " (the middle tiers are charged at the top tier's rates: estimated)"
	}
	e.notes = append(e.notes, "tiered pricing, "+what)
	g.tiered = append(g.tiered, fmt.Sprintf("%s %s: %s", e.provider, e.key, what))
	return true, nil
}

func has(v map[string]any, field string) bool {
	_, ok := v[field].(json.Number)
	return ok
}

// pico converts a source number to pico-USD with mult pico-USD per source
// unit, rounding (and reporting) what is not a whole number.
func (g *gen) pico(e *entry, field string, n json.Number, mult int64) (int64, error) {
	p, exact, err := decimal.Scale(string(n), mult)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if p < 0 {
		return 0, fmt.Errorf("%s: negative price %s", field, n)
	}
	if !exact {
		g.rounded = append(g.rounded, fmt.Sprintf("%s %s %s: %s × %d rounded to %d pico-USD",
			e.source, e.name, field, n, mult, p))
	}
	return p, nil
}

// dedupe keeps one entry per provider and key. The entry whose own name is
// the key (no provider prefix) wins, else the first by name; the others are
// reported.
func (g *gen) dedupe() {
	byKey := map[[2]string][]*entry{}
	for _, e := range g.entries {
		k := [2]string{e.provider, e.key}
		byKey[k] = append(byKey[k], e)
	}
	var out []*entry
	for _, e := range g.entries {
		group := byKey[[2]string{e.provider, e.key}]
		if len(group) == 1 {
			out = append(out, e)
			continue
		}
		if e != group[0] {
			continue
		}
		keep := group[0]
		for _, o := range group {
			if strings.ToLower(o.name) == o.key {
				keep = o
				break
			}
		}
		out = append(out, keep)
		for _, o := range group {
			if o == keep {
				continue
			}
			same := "same price"
			if o.base != keep.base || o.web != keep.web || (o.lc == nil) != (keep.lc == nil) || o.lc != nil && *o.lc != *keep.lc {
				same = "DIFFERENT price: " + fmtRates(o.base) + " vs " + fmtRates(keep.base)
			}
			g.duplicates = append(g.duplicates, fmt.Sprintf("%s %s: kept %q, dropped %q (%s)", e.provider, e.key, keep.name, o.name, same))
		}
	}
	g.entries = out
}

// correct applies the corrections table.
func (g *gen) correct() error {
	byName := map[[2]string]*entry{}
	for _, e := range g.entries {
		byName[[2]string{e.group, e.name}] = e
	}
	for _, c := range g.corrections {
		e := byName[[2]string{c.provider, c.name}]
		if e == nil {
			return fmt.Errorf("correction of %s %s: no such LiteLLM entry; review corrections.go", c.provider, c.name)
		}
		cur := "absent"
		if e.base.has[c.field] {
			cur = usd(e.base.v[c.field])
		}
		want := "absent"
		if c.was != "" {
			w, err := parseMTok(c.was)
			if err != nil {
				return err
			}
			want = usd(w)
		}
		if cur != want {
			return fmt.Errorf("correction of %s %s %s: the source now has %s, not %s; review corrections.go",
				c.provider, c.name, fieldNames[c.field], cur, want)
		}
		now, err := parseMTok(c.now)
		if err != nil {
			return err
		}
		e.base.v[c.field], e.base.has[c.field] = now, true
		e.corrected[c.field] = true
		e.notes = append(e.notes, fmt.Sprintf("%s corrected from %s to %s USD/MTok (%s)", fieldNames[c.field], cur, usd(now), c.source))
		g.applied = append(g.applied, fmt.Sprintf("%s %s %s: %s -> %s USD/MTok. Source: %s",
			c.provider, c.name, fieldNames[c.field], cur, usd(now), c.source))
	}
	return nil
}

// parseMTok parses a rate in USD per million tokens.
func parseMTok(s string) (int64, error) {
	v, exact, err := decimal.Scale(s, picoPerMTok)
	if err != nil || !exact {
		return 0, fmt.Errorf("bad rate %q in corrections.go", s)
	}
	return v, nil
}

// claudeProviders are the providers whose Claude models follow Anthropic's
// cache multipliers.
var claudeProviders = map[string]bool{modelid.Anthropic: true, modelid.Bedrock: true, modelid.Vertex: true}

// cachingClaude are the Claude families that have prompt caching (Claude 3
// and later); older Claude models are left as the source prices them.
var cachingClaude = map[string]bool{"claude-opus": true, "claude-sonnet": true, "claude-haiku": true}

// cacheMultipliers are Anthropic's published cache prices relative to input
// (WIRE-FORMATS 7): read 0.1×, 5-minute write 1.25×, 1-hour write 2×.
var cacheMultipliers = []struct {
	field    int
	num, den int64
}{{fieldCacheRead, 1, 10}, {fieldWrite5m, 5, 4}, {fieldWrite1h, 2, 1}}

// derive fills the rates an entry's source lacks: for Claude models, cache
// rates from the input rate by Anthropic's multipliers; for other models, a
// long-context tier's missing rates from the base tier.
func (g *gen) derive(e *entry) {
	claude := claudeProviders[e.provider] && cachingClaude[modelid.Family(modelid.Neutral(e.key))]
	var did, fromBase []string
	tiers := []*rates{&e.base}
	if e.lc != nil {
		tiers = append(tiers, e.lc)
	}
	for t, r := range tiers {
		tier := ""
		if t == 1 {
			tier = "long-context "
		}
		if !r.has[fieldOutput] && t == 1 {
			r.v[fieldOutput], r.has[fieldOutput] = e.base.v[fieldOutput], true
			did = append(did, tier+"output from the base tier")
		}
		for _, m := range cacheMultipliers {
			if r.has[m.field] {
				continue
			}
			switch {
			case claude:
				// Rounded half up; all of today's inputs divide exactly.
				p := (2*r.v[fieldInput]*m.num + m.den) / (2 * m.den)
				r.v[m.field], r.has[m.field] = p, true
				if t == 0 {
					e.derived[m.field] = true
				}
				did = append(did, fmt.Sprintf("%s%s = %s × input = %s", tier, fieldNames[m.field], v2s(m.num, m.den), usd(p)))
			case t == 1 && e.base.has[m.field]:
				r.v[m.field], r.has[m.field] = e.base.v[m.field], true
				fromBase = append(fromBase, fieldNames[m.field])
			}
		}
	}
	if len(fromBase) > 0 {
		e.notes = append(e.notes, "long-context "+strings.Join(fromBase, ", ")+" from the base tier")
		g.lcFromBase = append(g.lcFromBase, fmt.Sprintf("%s %s: %s", e.provider, e.key, strings.Join(fromBase, ", ")))
	}
	if claude && len(did) > 0 {
		e.notes = append(e.notes, "derived by Anthropic's cache multipliers: "+strings.Join(did, ", "))
		g.derived = append(g.derived, fmt.Sprintf("%s %s (%s): %s", e.provider, e.key, e.source, strings.Join(did, ", ")))
	}
}

// v2s formats the multiplier num/den: "2", "0.10", "1.25".
func v2s(num, den int64) string {
	if den == 1 {
		return fmt.Sprint(num)
	}
	return decimal.Format(num*100/den, 2, 2)
}

// usd formats a rate in pico-USD per token as USD per million tokens.
func usd(p int64) string {
	if p%picoPerMTok == 0 {
		return fmt.Sprint(p / picoPerMTok)
	}
	return decimal.Format(p, 6, 2)
}

func fmtRates(r rates) string {
	var parts []string
	for f := range numFields {
		if r.has[f] {
			parts = append(parts, usd(r.v[f]))
		} else {
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, "/")
}

// writeCatalog encodes the catalog file.
func (g *gen) writeCatalog(w io.Writer) error {
	f := &catalogfile.File{
		Sources: "litellm-" + g.cfg.litellmVer + "+portkey-" + g.cfg.portkeyVer,
		Unit:    catalogfile.Unit,
		Notes:   catalogNotes(g.prices),
	}
	if len(g.prices) > 0 {
		f.Sources += "+anthropic-" + anthropicReadOn
	}
	for _, e := range g.entries {
		m := catalogfile.Model{
			Provider:  e.provider,
			Model:     e.key,
			Rates:     e.base.v,
			WebSearch: e.web,
			Source:    e.source,
			Estimated: e.estimated,
			Note:      strings.Join(e.notes, "; "),
		}
		if e.lc != nil {
			lc := catalogfile.Rates(e.lc.v)
			m.LongContext, m.LongContextThreshold = &lc, e.lcThreshold
		}
		f.Models = append(f.Models, m)
	}
	return catalogfile.Encode(w, f)
}

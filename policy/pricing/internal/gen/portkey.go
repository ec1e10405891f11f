package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/modelid"
)

// portkeyFiles maps Portkey's provider files to catalog providers.
var portkeyFiles = []struct{ file, provider string }{
	{"anthropic", modelid.Anthropic},
	{"bedrock", modelid.Bedrock},
	{"vertex-ai", modelid.Vertex},
	{"openai", modelid.OpenAI},
}

// portkeyTypes are the general/ model types that are priced per token and
// generate text.
var portkeyTypes = map[string]bool{"chat": true, "text": true, "responses": true}

// pkPrice is one Portkey model's pay-as-you-go prices, converted from cents to
// pico-USD per token (web search: per search). A nil rate is one Portkey does
// not give.
type pkPrice struct {
	rates     [numFields]*int64
	webSearch *int64
	formula   bool   // a custom "calculate" formula, not plain rates
	kind      string // general/ type.primary, if listed
}

// crossCheck compares the catalog with Portkey's files and adds the
// token-priced chat models that LiteLLM lacks.
func (g *gen) crossCheck(dir string) error {
	ix := g.index()
	var added []*entry
	seen := map[[2]string]bool{}
	for _, pf := range portkeyFiles {
		prices, err := g.readPortkey(dir, pf.file)
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(prices)) {
			if name == "default" {
				continue
			}
			p := prices[name]
			g.portkeyChecked++
			key := modelid.Key(pf.provider, name)
			// A regional id is compared only with the same region: LiteLLM
			// prices some regions differently, so another region's price is
			// no check, and Portkey's regional price is worth adding.
			if i, ok := ix.LookupSameRegion(pf.provider, key); ok {
				g.portkeyMatched++
				g.compare(pf.provider, name, g.entries[i], p)
				continue
			}
			why := p.unusable(name)
			if why == "" && seen[[2]string{pf.provider, key}] {
				why = "duplicate key " + key
			}
			if why != "" {
				g.portkeySkipped = append(g.portkeySkipped, fmt.Sprintf("%s %s: %s", pf.file, name, why))
				continue
			}
			seen[[2]string{pf.provider, key}] = true
			e := &entry{provider: pf.provider, key: key, name: name, group: pf.file, source: sourcePort}
			for f, r := range p.rates {
				if r != nil {
					e.base.v[f], e.base.has[f] = *r, true
				}
			}
			if p.webSearch != nil {
				e.web = *p.webSearch
			}
			g.derive(e)
			added = append(added, e)
			g.portkeyAdded = append(g.portkeyAdded, fmt.Sprintf("%s %s: %s", e.provider, e.key, fmtRates(e.base)))
		}
	}
	g.entries = append(g.entries, added...)
	return nil
}

// unusable says why a Portkey model cannot be added to the catalog, or "".
// Besides models that are not priced per token, it turns away embedding
// models that Portkey lists as text and prices that cannot be right, where a
// cache read costs more than an uncached input token.
func (p *pkPrice) unusable(name string) string {
	switch {
	case p.formula:
		return "priced by a formula, not per token"
	case p.kind != "" && !portkeyTypes[p.kind]:
		return "type " + p.kind
	case strings.Contains(name, "embed"):
		return "an embedding model"
	case p.rates[fieldInput] == nil || p.rates[fieldOutput] == nil:
		return "no token prices"
	case *p.rates[fieldOutput] == 0:
		return "no output price (not a text-generation model)"
	case p.rates[fieldCacheRead] != nil && *p.rates[fieldCacheRead] > *p.rates[fieldInput]:
		return fmt.Sprintf("cache read (%s) above input (%s): inconsistent", usd(*p.rates[fieldCacheRead]), usd(*p.rates[fieldInput]))
	}
	return ""
}

// index indexes the entries built so far.
func (g *gen) index() *modelid.Index {
	return modelid.NewIndex(len(g.entries),
		func(i int) (string, string) { return g.entries[i].provider, g.entries[i].key },
		func(i, j int) bool {
			a, b := g.entries[i], g.entries[j]
			return a.base.v == b.base.v && a.web == b.web && a.lcThreshold == b.lcThreshold &&
				(a.lc == nil) == (b.lc == nil) && (a.lc == nil || a.lc.v == b.lc.v)
		})
}

// compare records the rates on which e and Portkey's p differ. Rates Portkey
// does not give are not compared, nor is a web search price the catalog
// lacks.
func (g *gen) compare(provider, name string, e *entry, p pkPrice) {
	note := ""
	for f, r := range p.rates {
		if r == nil || *r == e.base.v[f] {
			continue
		}
		g.disagreements = append(g.disagreements, disagreement{
			provider: provider, portkeyName: name, key: e.key, field: fieldNames[f],
			ours: e.base.v[f], theirs: *r, note: joinNote(note, e.fieldNote(f)),
		})
	}
	if p.webSearch != nil && e.web != 0 && *p.webSearch != e.web {
		g.disagreements = append(g.disagreements, disagreement{
			provider: provider, portkeyName: name, key: e.key, field: "web_search",
			ours: e.web, theirs: *p.webSearch, note: note,
		})
	}
}

// fieldNote says whether the catalog's rate f of e is not LiteLLM's own.
func (e *entry) fieldNote(f int) string {
	switch {
	case e.corrected[f]:
		return "ours corrected"
	case e.derived[f]:
		return "ours derived"
	}
	return ""
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// readPortkey reads pricing/<file>.json and the model types of
// general/<file>.json.
func (g *gen) readPortkey(dir, file string) (map[string]pkPrice, error) {
	path := filepath.Join(dir, "pricing", file+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]struct {
		PricingConfig struct {
			PayAsYouGo map[string]json.RawMessage `json:"pay_as_you_go"`
			Calculate  json.RawMessage            `json:"calculate"`
		} `json:"pricing_config"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	kinds, err := readPortkeyTypes(filepath.Join(dir, "general", file+".json"))
	if err != nil {
		return nil, err
	}
	out := map[string]pkPrice{}
	for name, m := range raw {
		p := pkPrice{formula: len(m.PricingConfig.Calculate) > 0, kind: kinds[name]}
		e := &entry{source: sourcePort, name: file + "/" + name}
		for field, v := range m.PricingConfig.PayAsYouGo {
			f := -1
			switch field {
			case "request_token":
				f = fieldInput
			case "response_token":
				f = fieldOutput
			case "cache_read_input_token":
				f = fieldCacheRead
			case "cache_write_input_token":
				f = fieldWrite5m
			case "additional_units":
				var units map[string]json.RawMessage
				if err := json.Unmarshal(v, &units); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, name, err)
				}
				if u, ok := units["cache_write_1h"]; ok {
					if p.rates[fieldWrite1h], err = g.portkeyPrice(e, "cache_write_1h", u); err != nil {
						return nil, fmt.Errorf("%s: %s: %w", path, name, err)
					}
				}
				if u, ok := units["web_search"]; ok {
					if p.webSearch, err = g.portkeyPrice(e, "web_search", u); err != nil {
						return nil, fmt.Errorf("%s: %s: %w", path, name, err)
					}
				}
				continue
			}
			if f < 0 {
				continue
			}
			if p.rates[f], err = g.portkeyPrice(e, field, v); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, name, err)
			}
		}
		out[name] = p
	}
	return out, nil
}

// portkeyPrice converts {"price": cents} to pico-USD, or nil for a null or
// absent price.
func (g *gen) portkeyPrice(e *entry, field string, v json.RawMessage) (*int64, error) {
	var pr struct {
		Price *json.Number `json:"price"`
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&pr); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if pr.Price == nil {
		return nil, nil
	}
	p, err := g.pico(e, field, *pr.Price, picoPerCent)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// readPortkeyTypes reads the primary type of each model of a general/ file.
func readPortkeyTypes(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for name, v := range raw {
		var m struct {
			Type struct {
				Primary string `json:"primary"`
			} `json:"type"`
		}
		if json.Unmarshal(v, &m) == nil {
			out[name] = m.Type.Primary
		}
	}
	return out, nil
}

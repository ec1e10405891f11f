package main

import (
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/modelid"
)

// published is one row of Anthropic's published price list: the rates of a
// model on the Claude API, as the page writes them. The generator applies
// them over LiteLLM's and Portkey's rates for the model under provider
// anthropic (every catalog key whose neutral form is id: the alias, its
// dated snapshots and "-latest"), and adds the model when neither table has
// it. Long-context tiers are left as the tables give them.
type published struct {
	id     string // Claude API model id, as modelid.Neutral writes it
	rates  string // "input/output/cache read/5m write/1h write", USD per million tokens
	source string // the page the row was read on
}

// Where and when Anthropic's published prices were read. The rows were read
// through the search index's stored copies of Anthropic's documentation
// pages on anthropicReadOn; each names its page. The pricing page's model
// table (pricingPage) was read down to Claude Opus 4.1: its stored copy
// predates Claude Opus 5.5 and Sonnet 5.5, whose rows come from their model
// overview pages on the same site (their "Pricing" section lists the same
// five rates). The older stored copy of the pricing page (pricingPageOld)
// gives the rows of the older models below Opus 4.1.
const (
	anthropicReadOn = "2026-12-03"
	pricingPage     = "https://platform.claude.com/docs/en/about-claude/pricing"
	pricingPageOld  = "https://platform.claude.com/docs/en/docs/about-claude/pricing (older copy)"
	opus55Page      = "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview"
	sonnet55Page    = "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview"
	sonnet5Page     = "https://platform.claude.com/docs/zh-CN/models/sonnet-5/overview"
)

// anthropicPrices is every Claude model whose five rates were read on one of
// Anthropic's pages. Keep it in the pages' order; update it (and
// anthropicReadOn) from the pages only.
var anthropicPrices = []published{
	// The pricing page's "Model pricing" table. The cache-hit rate of the 5.1
	// models carries a footnote the stored copy does not include.
	{"claude-fable-5-1", "10/50/0.25/12.50/20", pricingPage},
	{"claude-mythos-5-1", "10/50/0.25/12.50/20", pricingPage},
	{"claude-fable-5", "10/50/1/12.50/20", pricingPage},
	{"claude-mythos-5", "10/50/1/12.50/20", pricingPage},
	{"claude-opus-5", "5/25/0.50/6.25/10", pricingPage},
	{"claude-opus-4-8", "5/25/0.50/6.25/10", pricingPage},
	{"claude-opus-4-7", "5/25/0.50/6.25/10", pricingPage},
	{"claude-opus-4-6", "5/25/0.50/6.25/10", pricingPage},
	{"claude-opus-4-5", "5/25/0.50/6.25/10", pricingPage},
	{"claude-opus-4-1", "15/75/1.50/18.75/30", pricingPage},

	// Model overview pages ("Pricing": input, output, 5m cache write, 1h
	// cache write, cache read).
	{"claude-opus-5-5", "4/20/0.20/5/8", opus55Page},
	{"claude-sonnet-5-5", "2/10/0.20/2.50/4", sonnet55Page},
	{"claude-sonnet-5", "2/10/0.20/2.50/4", sonnet5Page},

	// The older copy of the pricing page, for the models below Opus 4.1.
	{"claude-opus-4", "15/75/1.50/18.75/30", pricingPageOld},
	{"claude-4-opus", "15/75/1.50/18.75/30", pricingPageOld},
	{"claude-opus-4-0", "15/75/1.50/18.75/30", pricingPageOld},
	{"claude-sonnet-4-6", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-sonnet-4-5", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-sonnet-4", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-4-sonnet", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-sonnet-4-0", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-3-7-sonnet", "3/15/0.30/3.75/6", pricingPageOld},
	{"claude-haiku-4-5", "1/5/0.10/1.25/2", pricingPageOld},
	{"claude-3-5-haiku", "0.80/4/0.08/1/1.60", pricingPageOld},
	{"claude-3-opus", "15/75/1.50/18.75/30", pricingPageOld},
	{"claude-3-haiku", "0.25/1.25/0.03/0.30/0.50", pricingPageOld},
}

// catalogNotes returns the catalog file's notes on the published prices.
func catalogNotes(rows []published) []string {
	if len(rows) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("The base rates of %d Claude models under provider anthropic are Anthropic's published prices, "+
		"read on %s from %s and the model overview pages (policy/pricing/internal/gen/anthropic.go names each page); "+
		"they replace LiteLLM's and Portkey's rates for those models.", len(rows), anthropicReadOn, pricingPage)}
}

// parseRates parses "in/out/read/5m/1h" in USD per million tokens.
func parseRates(s string) (rates, error) {
	var r rates
	parts := strings.Split(s, "/")
	if len(parts) != numFields {
		return r, fmt.Errorf("bad rates %q", s)
	}
	for f, p := range parts {
		v, err := parseMTok(p)
		if err != nil {
			return r, err
		}
		r.v[f], r.has[f] = v, true
	}
	return r, nil
}

// applyPublished applies Anthropic's published prices to the entries of
// provider anthropic, adding the models the tables lack, and records in the
// report every rate it changed.
func (g *gen) applyPublished(rows []published) error {
	byID := map[string][]*entry{}
	for _, e := range g.entries {
		if e.provider == modelid.Anthropic {
			id := modelid.Neutral(e.key)
			byID[id] = append(byID[id], e)
		}
	}
	seen := map[string]bool{}
	for _, row := range rows {
		if seen[row.id] || modelid.Neutral(row.id) != row.id {
			return fmt.Errorf("anthropic.go: %s is repeated or not a neutral model id", row.id)
		}
		seen[row.id] = true
		r, err := parseRates(row.rates)
		if err != nil {
			return fmt.Errorf("anthropic.go: %s: %w", row.id, err)
		}
		src := fmt.Sprintf("Anthropic's published price, %s, read %s", row.source, anthropicReadOn)
		es := byID[row.id]
		if len(es) == 0 {
			e := &entry{provider: modelid.Anthropic, key: row.id, name: row.id, group: "anthropic", source: sourceAnthropic, base: r}
			e.notes = append(e.notes, src)
			g.entries = append(g.entries, e)
			g.published = append(g.published, fmt.Sprintf("anthropic %s: added %s (%s)", row.id, fmtRates(r), row.source))
			continue
		}
		for _, e := range es {
			if e.base == r {
				g.published = append(g.published, fmt.Sprintf("anthropic %s: %s unchanged (%s)", e.key, fmtRates(r), row.source))
				continue
			}
			was := fmtRates(e.base)
			for f := range numFields {
				if e.base.v[f] != r.v[f] || !e.base.has[f] {
					e.corrected[f], e.derived[f] = true, false
				}
			}
			e.base = r
			e.notes = append(e.notes, fmt.Sprintf("rates %s replaced by %s (%s)", was, fmtRates(r), src))
			g.published = append(g.published, fmt.Sprintf("anthropic %s: %s -> %s (%s)", e.key, was, fmtRates(r), row.source))
		}
	}
	return nil
}

package pricing

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/catalogfile"
)

// testCatalog builds a catalog from rows of provider, model and rates
// ("in/out/read/5m/1h" in USD per million tokens, then optionally
// ">threshold:in/out/read/5m/1h" for a long-context tier).
func testCatalog(t *testing.T, rows [][3]string) *Catalog {
	t.Helper()
	f := &catalogfile.File{Sources: "test", Unit: catalogfile.Unit}
	for _, r := range rows {
		rates, long, _ := strings.Cut(r[2], " >")
		m := catalogfile.Model{Provider: r[0], Model: r[1], Source: "test", Rates: catalogfile.Rates(fileRates(t, rates))}
		if long != "" {
			th, lr, _ := strings.Cut(long, ":")
			lc := catalogfile.Rates(fileRates(t, lr))
			m.LongContext = &lc
			switch th {
			case "200k":
				m.LongContextThreshold = 200_000
			default:
				t.Fatalf("bad threshold %q", th)
			}
		}
		f.Models = append(f.Models, m)
	}
	var buf bytes.Buffer
	if err := catalogfile.Encode(&buf, f); err != nil {
		t.Fatal(err)
	}
	c, err := parseCatalog(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fileRates(t *testing.T, s string) [5]int64 {
	r := mtok(t, s)
	return [5]int64{r.Input, r.Output, r.CacheRead, r.CacheWrite5m, r.CacheWrite1h}
}

// familyRows is a catalog in which the dearest member of each family is not
// its newest, as in the real one: Opus 4.1 costs three times Opus 4.5, and
// Sonnet 5 less than Sonnet 4.5. Rows are sorted by provider and model.
var familyRows = [][3]string{
	{"anthropic", "claude-3-5-haiku-20241022", "0.80/4/0.08/1/1.60"},
	{"anthropic", "claude-3-opus-20240229", "15/75/1.50/18.75/30"},
	{"anthropic", "claude-haiku-4-5", "1/5/0.10/1.25/2"},
	{"anthropic", "claude-haiku-4-5-20251001", "1/5/0.10/1.25/2"},
	{"anthropic", "claude-opus-4-1", "15/75/1.50/18.75/30"},
	{"anthropic", "claude-opus-4-1-20250805", "15/75/1.50/18.75/30"},
	{"anthropic", "claude-opus-4-20250514", "15/75/1.50/18.75/30"},
	{"anthropic", "claude-opus-4-5", "5/25/0.50/6.25/10"},
	{"anthropic", "claude-opus-4-5-20251101", "5/25/0.50/6.25/10"},
	{"anthropic", "claude-sonnet-4-5", "3/15/0.30/3.75/6 >200k:6/22.50/0.60/7.50/12"},
	{"anthropic", "claude-sonnet-4-5-20250929", "3/15/0.30/3.75/6 >200k:6/22.50/0.60/7.50/12"},
	{"anthropic", "claude-sonnet-5", "2/10/0.20/2.50/4"},
	{"bedrock", "anthropic.claude-opus-4-1-20250805-v1:0", "15/75/1.50/18.75/30"},
	{"bedrock", "anthropic.claude-opus-4-5-20251101-v1:0", "5/25/0.50/6.25/10"},
	{"bedrock", "global.anthropic.claude-opus-4-5-20251101-v1:0", "5/25/0.50/6.25/10"},
	{"bedrock", "us.anthropic.claude-opus-4-1-20250805-v1:0", "15/75/1.50/18.75/30"},
	{"bedrock", "us.anthropic.claude-opus-4-5-20251101-v1:0", "5.50/27.50/0.55/6.875/11"},
	{"openai", "gpt-4", "30/60/0/0/0"},
	{"openai", "gpt-4-0613", "30/60/0/0/0"},
	{"openai", "gpt-4.1", "2/8/0.50/0/0"},
	{"openai", "gpt-4.1-2025-04-14", "2/8/0.50/0/0"},
	{"openai", "gpt-4o", "2.50/10/1.25/0/0"},
	{"openai", "gpt-4o-2024-05-13", "5/15/0/0/0"},
	{"openai", "gpt-4o-2024-11-20", "2.50/10/1.25/0/0"},
	{"openai", "gpt-5", "1.25/10/0.125/0/0"},
	{"openai", "gpt-5-mini", "0.25/2/0.025/0/0"},
	{"openai", "gpt-5.4-mini", "0.75/4.50/0.075/0/0"},
	{"vertex_ai", "claude-opus-4-1@20250805", "15/75/1.50/18.75/30"},
	{"vertex_ai", "claude-opus-4-5@20251101", "5/25/0.50/6.25/10"},
}

// TestFamilyEstimateNewestMember is the regression test of issue 9, item 10:
// claude-opus-5-5, unknown, was estimated at the dearest Opus ever (Opus
// 4.1's $15/$75) although the newest Opus costs $5/$25. An unknown model is
// now priced as its family's newest member, named in EstimatedFrom.
func TestFamilyEstimateNewestMember(t *testing.T) {
	c := testCatalog(t, familyRows)
	for _, tt := range []struct {
		provider, model, family, from, rates, long string
	}{
		{"anthropic", "claude-opus-5-5", "claude-opus", "claude-opus-4-5", "5/25/0.50/6.25/10", ""},
		{"anthropic", "claude-opus-5-5-20270101", "claude-opus", "claude-opus-4-5", "5/25/0.50/6.25/10", ""},
		{"", "claude-opus-5-5", "claude-opus", "claude-opus-4-5", "5/25/0.50/6.25/10", ""},
		// Sonnet 5 is newer and cheaper than Sonnet 4.5, and has no
		// long-context tier.
		{"anthropic", "claude-sonnet-5-5", "claude-sonnet", "claude-sonnet-5", "2/10/0.20/2.50/4", ""},
		{"anthropic", "claude-haiku-5-5", "claude-haiku", "claude-haiku-4-5", "1/5/0.10/1.25/2", ""},
		// Of the newest Bedrock release, the dearest regional price.
		{"bedrock", "us.anthropic.claude-opus-5-5-v1:0", "claude-opus", "us.anthropic.claude-opus-4-5-20251101-v1:0", "5.50/27.50/0.55/6.875/11", ""},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-5-5-v1:0", "claude-opus", "us.anthropic.claude-opus-4-5-20251101-v1:0", "5.50/27.50/0.55/6.875/11", ""},
		{"vertex", "claude-opus-5-5@20270101", "claude-opus", "claude-opus-4-5@20251101", "5/25/0.50/6.25/10", ""},
		// GPT families: gpt-4.1 is newer than gpt-4 and gpt-4-0613.
		{"openai", "gpt-4.9", "gpt-4", "gpt-4.1", "2/8/0.50/0/0", ""},
		{"openai", "gpt-5.9", "gpt-5", "gpt-5", "1.25/10/0.125/0/0", ""},
		{"openai", "gpt-5.9-mini", "gpt-5-mini", "gpt-5.4-mini", "0.75/4.50/0.075/0/0", ""},
	} {
		p, err := c.Resolve(tt.provider, tt.model, EstimateByFamily)
		if err != nil {
			t.Errorf("Resolve(%q, %q): %v", tt.provider, tt.model, err)
			continue
		}
		if got, want := fmtRates(p.Rates), fmtRates(mtok(t, tt.rates)); got != want {
			t.Errorf("Resolve(%q, %q) = %s, want %s (the newest %s, %s)", tt.provider, tt.model, got, want, tt.family, tt.from)
		}
		if !p.Estimated || p.Source != "family:"+tt.family || p.EstimatedFrom != tt.from || p.Model != tt.model ||
			!strings.Contains(p.Note, tt.from) {
			t.Errorf("Resolve(%q, %q) = estimated %v, source %q, from %q, model %q, note %q; want an estimate of %s from %s",
				tt.provider, tt.model, p.Estimated, p.Source, p.EstimatedFrom, p.Model, p.Note, tt.family, tt.from)
		}
		if p.LongContext != nil {
			t.Errorf("Resolve(%q, %q) has a long-context tier %s", tt.provider, tt.model, fmtRates(*p.LongContext))
		}
	}

	// The newest member's long-context tier comes with its price.
	c = testCatalog(t, familyRows[:11])
	p, err := c.Resolve("anthropic", "claude-sonnet-4-7", EstimateByFamily)
	if err != nil || p.EstimatedFrom != "claude-sonnet-4-5" || p.LongContext == nil || p.LongContextThreshold != 200_000 ||
		fmtRates(*p.LongContext) != fmtRates(mtok(t, "6/22.50/0.60/7.50/12")) {
		t.Errorf("Resolve(claude-sonnet-4-7) = %+v, %v; want Sonnet 4.5 with its long-context tier", p, err)
	}
}

// TestFamilyEstimatePolicy checks that the policy's prices take part: a newer
// policy price becomes the estimate, and a policy price that overrides the
// newest catalog member replaces it in the estimate too.
func TestFamilyEstimatePolicy(t *testing.T) {
	c := testCatalog(t, familyRows)
	over := c.With(map[string]Price{"claude-opus-6": {Rates: mtok(t, "4/20/0.20/5/8")}})
	p, err := over.Resolve("anthropic", "claude-opus-7", EstimateByFamily)
	if err != nil || p.EstimatedFrom != "claude-opus-6" || fmtRates(p.Rates) != fmtRates(mtok(t, "4/20/0.20/5/8")) ||
		!strings.Contains(p.Note, "claude-opus-6 (policy)") {
		t.Errorf("estimate with a newer policy price = %+v, %v", p, err)
	}
	// An older policy price does not change the estimate.
	older := c.With(map[string]Price{"claude-opus-3-9": {Rates: mtok(t, "1/1/0.10/1.25/2")}})
	if p, _ := older.Resolve("anthropic", "claude-opus-7", EstimateByFamily); p.EstimatedFrom != "claude-opus-4-5" {
		t.Errorf("estimate with an older policy price = %+v", p)
	}
	// The policy's price of claude-opus-4-5 replaces the catalog's.
	repriced := c.With(map[string]Price{"claude-opus-4-5": {Rates: mtok(t, "3/15/0.30/3.75/6")}})
	p, _ = repriced.Resolve("anthropic", "claude-opus-7", EstimateByFamily)
	if p.EstimatedFrom != "claude-opus-4-5" || fmtRates(p.Rates) != fmtRates(mtok(t, "3/15/0.30/3.75/6")) {
		t.Errorf("estimate with the newest member repriced by the policy = %+v", p)
	}
	// Under a provider without the family, the policy's families apply.
	p, err = over.Resolve("openrouter", "claude-opus-7", EstimateByFamily)
	if err != nil || p.EstimatedFrom != "claude-opus-6" {
		t.Errorf("estimate under openrouter = %+v, %v", p, err)
	}
}

// TestAnthropicPublishedPrices pins the rates of every model refreshed from
// Anthropic's published pricing (internal/gen/anthropic.go) under provider
// anthropic, for its alias and its dated snapshots, and checks that the
// catalog's notes name the page and the date it was read.
func TestAnthropicPublishedPrices(t *testing.T) {
	c := Embedded()
	for _, tt := range []struct {
		rates string
		ids   []string
	}{
		{"10/50/0.25/12.50/20", []string{"claude-fable-5-1", "claude-mythos-5-1"}},
		{"10/50/1/12.50/20", []string{"claude-fable-5", "claude-mythos-5"}},
		{"4/20/0.20/5/8", []string{"claude-opus-5-5"}},
		{"5/25/0.50/6.25/10", []string{"claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6",
			"claude-opus-4-6-20260205", "claude-opus-4-5", "claude-opus-4-5-20251101"}},
		{"15/75/1.50/18.75/30", []string{"claude-opus-4-1", "claude-opus-4-1-20250805", "claude-opus-4-20250514",
			"claude-4-opus-20250514", "claude-opus-4-0", "claude-3-opus-20240229", "claude-3-opus-latest"}},
		{"2/10/0.20/2.50/4", []string{"claude-sonnet-5-5", "claude-sonnet-5"}},
		{"3/15/0.30/3.75/6", []string{"claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929",
			"claude-sonnet-4-20250514", "claude-4-sonnet-20250514", "claude-sonnet-4-0", "claude-3-7-sonnet-20250219",
			"claude-3-7-sonnet-latest"}},
		{"1/5/0.10/1.25/2", []string{"claude-haiku-4-5", "claude-haiku-4-5-20251001"}},
		{"0.80/4/0.08/1/1.60", []string{"claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"}},
		{"0.25/1.25/0.03/0.30/0.50", []string{"claude-3-haiku-20240307"}},
	} {
		for _, id := range tt.ids {
			p, ok := c.Lookup("anthropic", id)
			if !ok || p.Model != id || p.Estimated {
				t.Errorf("Lookup(anthropic, %q) = %+v, %v; want the model's own price", id, p, ok)
				continue
			}
			if got, want := fmtRates(p.Rates), fmtRates(mtok(t, tt.rates)); got != want {
				t.Errorf("%s = %s, want %s (Anthropic's published price)", id, got, want)
			}
		}
	}
	notes := strings.Join(c.Notes(), "\n")
	if !strings.Contains(notes, "https://platform.claude.com/docs/en/about-claude/pricing") || !strings.Contains(notes, "2026-12-03") {
		t.Errorf("Notes() = %q; want the pricing page and the date it was read", notes)
	}
}

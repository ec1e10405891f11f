package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/catalogfile"
)

// pricingDir is policy/pricing, where go generate runs the generator.
const pricingDir = "../.."

// generateArgs returns the arguments of the //go:generate line in
// policy/pricing/generate.go, with paths made relative to this directory and
// the outputs sent to dir.
func generateArgs(t *testing.T, dir string) (args []string, litellm string) {
	t.Helper()
	f, err := os.Open(filepath.Join(pricingDir, "generate.go"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "//go:generate go run ./internal/gen ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		for i := 0; i+1 < len(fields); i += 2 {
			flag, val := fields[i], fields[i+1]
			switch flag {
			case "-litellm", "-portkey":
				val = filepath.Join(pricingDir, val)
			case "-out", "-report":
				val = filepath.Join(dir, val)
			}
			if flag == "-litellm" {
				litellm = val
			}
			args = append(args, flag, val)
		}
		return args, litellm
	}
	t.Fatal("no //go:generate line in generate.go")
	return nil, ""
}

// TestGenerateReproducesCommittedFiles runs the generator as go generate does
// and compares its output with the committed catalog and report, byte for
// byte. It is skipped where ../shared, which holds the source tables, is not
// checked out.
func TestGenerateReproducesCommittedFiles(t *testing.T) {
	dir := t.TempDir()
	args, litellm := generateArgs(t, dir)
	if _, err := os.Stat(litellm); err != nil {
		t.Skipf("the source tables are not here (%v); the committed catalog cannot be regenerated", err)
	}
	if err := run(args, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"catalog.json.gz", "disagreements.txt"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(pricingDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh run of the generator; run go generate ./policy/pricing and commit the result", name)
		}
	}
	// A second run gives the same bytes: nothing depends on map order or time.
	dir2 := t.TempDir()
	args2, _ := generateArgs(t, dir2)
	if err := run(args2, io.Discard); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "catalog.json.gz"))
	b, _ := os.ReadFile(filepath.Join(dir2, "catalog.json.gz"))
	if !bytes.Equal(a, b) {
		t.Error("two runs gave different catalogs")
	}
}

// fixture writes a small LiteLLM table and Portkey directory.
func fixture(t *testing.T, litellm string, portkey map[string]string) config {
	t.Helper()
	dir := t.TempDir()
	lp := filepath.Join(dir, "litellm.json")
	if err := os.WriteFile(lp, []byte(litellm), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"pricing", "general"} {
		if err := os.MkdirAll(filepath.Join(dir, "portkey", sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range portkeyFiles {
		for _, sub := range []string{"pricing", "general"} {
			body := portkey[sub+"/"+f.file]
			if body == "" {
				body = "{}"
			}
			if err := os.WriteFile(filepath.Join(dir, "portkey", sub, f.file+".json"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return config{litellm: lp, portkey: filepath.Join(dir, "portkey"), litellmVer: "v1", portkeyVer: "p1",
		out: filepath.Join(dir, "catalog.json.gz"), report: filepath.Join(dir, "report.txt")}
}

const fixtureLiteLLM = `{
  "sample_spec": {"mode": "chat", "input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "x"},
  "claude-3-5-haiku-20241022": {"litellm_provider": "anthropic", "mode": "chat",
    "input_cost_per_token": 8e-07, "output_cost_per_token": 4e-06, "cache_read_input_token_cost": 8e-08,
    "cache_creation_input_token_cost": 1e-06, "cache_creation_input_token_cost_above_1hr": 6e-06},
  "claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat",
    "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 3e-07,
    "cache_creation_input_token_cost": 3.75e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_medium": 0.01}},
  "vertex_ai/claude-3-haiku@20240307": {"litellm_provider": "vertex_ai-anthropic_models", "mode": "chat",
    "input_cost_per_token": 2.5e-07, "output_cost_per_token": 1.25e-06},
  "gemini-x": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
    "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-07,
    "input_cost_per_token_above_200k_tokens": 2.5e-06, "output_cost_per_token_above_200k_tokens": 1.5e-05},
  "vertex_ai/gemini-x": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
    "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1.1e-05},
  "odd/model": {"litellm_provider": "odd", "mode": "responses",
    "input_cost_per_token": 0.0000029999900000000002, "output_cost_per_token": 1e-05},
  "tiers/two": {"litellm_provider": "tiers", "mode": "chat", "tiered_pricing": [
    {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "range": [0, 256000.0]},
    {"input_cost_per_token": 2e-06, "output_cost_per_token": 4e-06, "range": [256000.0, 1000000.0]}]},
  "tiers/three": {"litellm_provider": "tiers", "mode": "chat", "tiered_pricing": [
    {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "range": [0, 32000.0]},
    {"input_cost_per_token": 2e-06, "output_cost_per_token": 4e-06, "range": [32000.0, 128000.0]},
    {"input_cost_per_token": 3e-06, "output_cost_per_token": 6e-06, "range": [128000.0, 256000.0]}]},
  "no-mode-model": {"litellm_provider": "fw", "input_cost_per_token": 2e-07, "output_cost_per_token": 2e-07},
  "per-second": {"litellm_provider": "bedrock", "mode": "chat", "input_cost_per_second": 0.01, "output_cost_per_second": 0.01},
  "an-embedding": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 1e-07, "output_cost_per_token": 0},
  "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
    "cache_read_input_token_cost": 1.25e-06}
}`

var fixturePortkey = map[string]string{
	"pricing/anthropic": `{
	  "default": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 0}}, "calculate": {}}},
	  "claude-3-5-haiku-20241022": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 8e-05},
	    "response_token": {"price": 0.0004}, "cache_read_input_token": {"price": 8e-06},
	    "cache_write_input_token": {"price": 0.0001}, "additional_units": {"cache_write_1h": {"price": 0.00016}}}}},
	  "claude-opus-4-8": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 0.0005},
	    "response_token": {"price": 0.0025}, "cache_read_input_token": {"price": 5e-05},
	    "cache_write_input_token": {"price": 0.000625}}}},
	  "claude-bad": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 0.0003},
	    "response_token": {"price": 0.0015}, "cache_read_input_token": {"price": 0.000375}}}}
	}`,
	"pricing/openai": `{
	  "gpt-4o": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 0.00025},
	    "response_token": {"price": 0.001}, "cache_read_input_token": {"price": 0.0001}}}},
	  "text-embedding-3-small": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 2e-06},
	    "response_token": {"price": 0}}}},
	  "dall-e-3": {"pricing_config": {"pay_as_you_go": {}, "calculate": {"request": {}}}}
	}`,
	"general/openai": `{"text-embedding-3-small": {"type": {"primary": "embedding"}}}`,
}

func TestGenerateFixture(t *testing.T) {
	cfg := fixture(t, fixtureLiteLLM, fixturePortkey)
	g, err := generate(cfg, corrections[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*entry{}
	for _, e := range g.entries {
		got[e.provider+" "+e.key] = e
	}
	want := map[string]string{
		// Corrected 1h write.
		"anthropic claude-3-5-haiku-20241022": "0.80/4/0.08/1/1.60",
		// Derived 1h write, long-context cache rates derived from the tier's input.
		"anthropic claude-sonnet-4-5": "3/15/0.30/3.75/6",
		// Every cache rate derived.
		"vertex_ai claude-3-haiku@20240307": "0.25/1.25/0.025/0.3125/0.50",
		// Not Claude: nothing derived.
		"vertex_ai gemini-x":        "1.25/10/0.125/-/-",
		"odd model":                 "2.99999/10/-/-/-",
		"tiers two":                 "1/2/-/-/-",
		"tiers three":               "1/2/-/-/-",
		"fw no-mode-model":          "0.20/0.20/-/-/-",
		"openai gpt-4o":             "2.50/10/1.25/-/-",
		"anthropic claude-opus-4-8": "5/25/0.50/6.25/10",
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff(slices.Sorted(mapsKeys(want)), keys); diff != "" {
		t.Errorf("catalog keys (-want +got):\n%s", diff)
	}
	for k, w := range want {
		if e := got[k]; e != nil && fmtRates(e.base) != w {
			t.Errorf("%s = %s, want %s", k, fmtRates(e.base), w)
		}
	}
	if e := got["anthropic claude-sonnet-4-5"]; e.lc == nil || fmtRates(*e.lc) != "6/22.50/0.60/7.50/12" || e.lcThreshold != 200_000 || e.web != 10_000_000_000 {
		t.Errorf("sonnet long context = %+v above %d, web %d", e.lc, e.lcThreshold, e.web)
	}
	if e := got["vertex_ai gemini-x"]; e.lc == nil || fmtRates(*e.lc) != "2.50/15/0.125/-/-" {
		t.Errorf("gemini long context = %+v", e.lc)
	}
	if e := got["tiers two"]; e.estimated || e.lcThreshold != 256_000 || fmtRates(*e.lc) != "2/4/-/-/-" {
		t.Errorf("two tiers = %+v", e)
	}
	if e := got["tiers three"]; !e.estimated || e.lcThreshold != 32_000 || fmtRates(*e.lc) != "3/6/-/-/-" {
		t.Errorf("three tiers = %+v", e)
	}
	if e := got["odd model"]; e.base.v[fieldInput] != 2_999_990 {
		t.Errorf("rounded input = %d", e.base.v[fieldInput])
	}
	if len(g.rounded) != 1 || !strings.Contains(g.rounded[0], "odd/model input_cost_per_token") {
		t.Errorf("rounded = %q", g.rounded)
	}
	if g.liteTotal != 12 || g.liteCovered != 10 || !slices.Equal(g.notTokenPriced, []string{"per-second"}) {
		t.Errorf("total %d, covered %d, not token-priced %q", g.liteTotal, g.liteCovered, g.notTokenPriced)
	}
	if len(g.duplicates) != 1 || !strings.Contains(g.duplicates[0], `kept "gemini-x", dropped "vertex_ai/gemini-x" (DIFFERENT price`) {
		t.Errorf("duplicates = %q", g.duplicates)
	}
	if len(g.applied) != 1 || len(g.portkeyAdded) != 1 || g.portkeyMatched != 2 {
		t.Errorf("applied %q, added %q, matched %d", g.applied, g.portkeyAdded, g.portkeyMatched)
	}
	wantSkipped := []string{
		"anthropic claude-bad: cache read (3.75) above input (3): inconsistent",
		"openai dall-e-3: priced by a formula, not per token",
		"openai text-embedding-3-small: type embedding",
	}
	if diff := cmp.Diff(wantSkipped, g.portkeySkipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"openai gpt-4o: cache_read 1.25 vs 1"}, g.disagreementLines()); diff != "" {
		t.Errorf("disagreements (-want +got):\n%s", diff)
	}

	// The catalog file round-trips, sorted.
	var buf bytes.Buffer
	if err := g.writeCatalog(&buf); err != nil {
		t.Fatal(err)
	}
	f, _, err := catalogfile.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Sources != "litellm-v1+portkey-p1" || len(f.Models) != len(want) || f.Models[0].Provider != "anthropic" {
		t.Errorf("file: %s, %d models, first %+v", f.Sources, len(f.Models), f.Models[0])
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestCorrectionsMustMatchTheSource(t *testing.T) {
	// The source no longer has the value the correction expects.
	changed := strings.Replace(fixtureLiteLLM, `"cache_creation_input_token_cost_above_1hr": 6e-06`, `"cache_creation_input_token_cost_above_1hr": 1.6e-06`, 1)
	_, err := generate(fixture(t, changed, fixturePortkey), corrections[:1], nil)
	if err == nil || !strings.Contains(err.Error(), "the source now has 1.60, not 6; review corrections.go") {
		t.Errorf("err = %v", err)
	}
	// The corrected entry is gone.
	_, err = generate(fixture(t, fixtureLiteLLM, fixturePortkey), []correction{{"anthropic", "claude-9", fieldInput, "1", "2", "test"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no such LiteLLM entry") {
		t.Errorf("err = %v", err)
	}
}

// TestCorrectionsTable checks that every correction parses and names its
// source, and that the example is there.
func TestCorrectionsTable(t *testing.T) {
	found := false
	for _, c := range corrections {
		if _, err := parseMTok(c.now); err != nil {
			t.Error(err)
		}
		if c.was != "" {
			if _, err := parseMTok(c.was); err != nil {
				t.Error(err)
			}
		}
		if len(c.source) < 20 {
			t.Errorf("%s %s: the source %q says too little", c.provider, c.name, c.source)
		}
		if c.provider == "anthropic" && c.name == "claude-3-5-haiku-20241022" && c.field == fieldWrite1h && c.was == "6" && c.now == "1.60" {
			found = true
		}
	}
	if !found {
		t.Error("the Haiku 3.5 1h write correction is missing")
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-litellm", "x"}, io.Discard); err == nil {
		t.Error("missing flags accepted")
	}
	if err := run([]string{"-litellm", "/nonexistent", "-portkey", "/nonexistent", "-litellm-version", "a", "-portkey-version", "b"}, io.Discard); err == nil {
		t.Error("missing input accepted")
	}
}

// TestApplyPublished checks that Anthropic's published prices replace the
// tables' base rates under provider anthropic, add the models the tables
// lack, leave long-context tiers alone, and are all listed in the report.
func TestApplyPublished(t *testing.T) {
	cfg := fixture(t, fixtureLiteLLM, fixturePortkey)
	g, err := generate(cfg, corrections[:1], []published{
		{"claude-3-5-haiku", "0.80/4/0.08/1/1.60", "page-a"},
		{"claude-sonnet-4-5", "2/10/0.20/2.50/4", "page-b"},
		{"claude-new-1", "1/2/0.10/1.25/2", "page-c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*entry{}
	for _, e := range g.entries {
		got[e.provider+" "+e.key] = e
	}
	if e := got["anthropic claude-3-5-haiku-20241022"]; fmtRates(e.base) != "0.80/4/0.08/1/1.60" || e.source != sourceLite {
		t.Errorf("haiku = %s from %s", fmtRates(e.base), e.source)
	}
	if e := got["anthropic claude-sonnet-4-5"]; fmtRates(e.base) != "2/10/0.20/2.50/4" || e.lc == nil ||
		fmtRates(*e.lc) != "6/22.50/0.60/7.50/12" || !strings.Contains(strings.Join(e.notes, ";"), "page-b") {
		t.Errorf("sonnet = %s, long context %v, notes %q", fmtRates(e.base), e.lc, e.notes)
	}
	if e := got["anthropic claude-new-1"]; e == nil || fmtRates(e.base) != "1/2/0.10/1.25/2" || e.source != sourceAnthropic {
		t.Errorf("added model = %+v", e)
	}
	want := []string{
		"anthropic claude-3-5-haiku-20241022: 0.80/4/0.08/1/1.60 unchanged (page-a)",
		"anthropic claude-sonnet-4-5: 3/15/0.30/3.75/6 -> 2/10/0.20/2.50/4 (page-b)",
		"anthropic claude-new-1: added 1/2/0.10/1.25/2 (page-c)",
	}
	if diff := cmp.Diff(want, g.published); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	var buf bytes.Buffer
	if err := g.writeCatalog(&buf); err != nil {
		t.Fatal(err)
	}
	f, _, err := catalogfile.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Sources != "litellm-v1+portkey-p1+anthropic-"+anthropicReadOn || len(f.Notes) != 1 || !strings.Contains(f.Notes[0], anthropicReadOn) {
		t.Errorf("sources %q, notes %q", f.Sources, f.Notes)
	}

	// A repeated id, or one that is not neutral, stops the generator.
	for _, bad := range []published{{"claude-new-1", "1/2/0.10/1.25/2", "x"}, {"claude-new-2-20260101", "1/2/0.10/1.25/2", "x"}} {
		if _, err := generate(cfg, nil, []published{{"claude-new-1", "1/2/0.10/1.25/2", "x"}, bad}); err == nil {
			t.Errorf("%s: no error", bad.id)
		}
	}
}

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

func runPricing(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = pricingCommand(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestPricingShow(t *testing.T) {
	out, _, err := runPricing(t, "show", "claude-sonnet-4-5-20250929")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"model:      claude-sonnet-4-5-20250929\n",
		"provider:   anthropic\n",
		"source:     litellm\n",
		"estimated:  no\n",
		"catalog:    " + pricing.Embedded().Version() + "\n",
		"USD per million tokens:",
		// input / output / cache read / 5m write / 1h write.
		"  base                       3      15      0.30        3.75            6\n",
		"  above 200000 input tokens  6      22.50   0.60        7.50            12\n",
		"web search: 0.01 USD per search",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Flags go before or after the model; the provider takes Tollgate's
	// names; an id the catalog knows under another key says so.
	out, _, err = runPricing(t, "show", "--provider", "bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0")
	if err != nil || !strings.Contains(out, "priced as:  us.anthropic.claude-3-5-haiku-20241022-v1:0") ||
		!strings.Contains(out, "  base  0.80   4       0.08        1               1.60") {
		t.Errorf("bedrock ARN: %v\n%s", err, out)
	}
	out, _, err = runPricing(t, "show", "claude-haiku-4-5@20251001", "--provider", "vertex")
	if err != nil || !strings.Contains(out, "provider:   vertex_ai") || !strings.Contains(out, "  base  1      5       0.10        1.25            2") {
		t.Errorf("vertex: %v\n%s", err, out)
	}
}

func TestPricingShowUnknownModels(t *testing.T) {
	// A family estimate is flagged, and names the model it was priced as:
	// the newest Opus, not the dearest.
	out, _, err := runPricing(t, "show", "claude-opus-6")
	if err != nil || !strings.Contains(out, "source:     family:claude-opus (priced as claude-opus-5-5, its newest priced model)") ||
		!strings.Contains(out, "estimated:  yes") || !strings.Contains(out, "  base  4      20      0.20        5               8") {
		t.Errorf("estimate: %v\n%s", err, out)
	}
	// Opus 5.5 has its own price now, from Anthropic's pricing, which the
	// catalog's notes name.
	out, _, err = runPricing(t, "show", "claude-opus-5-5")
	if err != nil || !strings.Contains(out, "estimated:  no") || !strings.Contains(out, "platform.claude.com") {
		t.Errorf("claude-opus-5-5: %v\n%s", err, out)
	}
	// A model of no family is an error naming it.
	_, _, err = runPricing(t, "show", "mystery-model")
	if !errors.Is(err, pricing.ErrUnpriced) || !strings.Contains(err.Error(), "mystery-model") {
		t.Errorf("unknown model: %v", err)
	}

	// With a policy: its prices, and its deny rule.
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	os.WriteFile(path, []byte(`version: 1
providers: {a: {type: anthropic, api_key: '${TOLLGATE_TEST_UNSET_KEY}'}}
routes: {r: {chain: [a]}}
pricing:
  unknown_models: deny
  models:
    claude-opus-5-5: {input: 5, output: 25}
`), 0o600)
	out, _, err = runPricing(t, "show", "claude-opus-5-5", "--policy", path)
	if err != nil || !strings.Contains(out, "source:     policy") || !strings.Contains(out, "+policy-") ||
		!strings.Contains(out, "  base  5      25      0.50        6.25            10") {
		t.Errorf("policy price: %v\n%s", err, out)
	}
	if _, _, err = runPricing(t, "show", "claude-opus-6", "--policy", path); !errors.Is(err, pricing.ErrUnpriced) {
		t.Errorf("deny: %v", err)
	}
	out, _, err = runPricing(t, "list", "--policy", path)
	if err != nil || !containsLine(strings.Split(out, "\n"), "*", "claude-opus-5-5", "5", "25", "0.50", "6.25", "10", "-", "policy") {
		t.Errorf("list with a policy: %v\n%s", err, firstLines(out, 3))
	}

	os.WriteFile(path, []byte("version: 1\npricing: {unknown_models: maybe}\n"), 0o600)
	_, errOut, err := runPricing(t, "show", "claude-opus-5-5", "--policy", path)
	if err == nil || !strings.Contains(errOut, path+":2:") {
		t.Errorf("bad policy: %v\n%s", err, errOut)
	}
}

func TestPricingList(t *testing.T) {
	out, _, err := runPricing(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// A header, then one line per priced model.
	if got, want := len(lines)-1, len(pricing.Embedded().Models()); got != want || want < 2000 {
		t.Errorf("%d model lines, want %d", got, want)
	}
	if !strings.HasPrefix(lines[0], "PROVIDER") {
		t.Errorf("header = %q", lines[0])
	}
	if !containsLine(lines, "anthropic", "claude-3-5-haiku-20241022", "0.80", "4", "0.08", "1", "1.60", "-", "litellm") {
		t.Error("no line for claude-3-5-haiku-20241022 with its corrected rates")
	}
	if !containsLine(lines, "anthropic", "claude-sonnet-4-5", "3", "15", "0.30", "3.75", "6", ">200000:", "6/22.50/0.60/7.50/12", "litellm") {
		t.Error("no line for claude-sonnet-4-5 with its long-context tier")
	}

	out, _, err = runPricing(t, "list", "--provider", "vertex")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if !strings.HasPrefix(l, "vertex_ai ") {
			t.Fatalf("--provider vertex listed %q", l)
		}
	}
	if _, _, err := runPricing(t, "list", "--provider", "nowhere"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("unknown provider: %v", err)
	}
}

func TestPricingUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"show"},
		{"show", "a", "b"},
		{"list", "extra"},
		{"price", "claude-sonnet-4-5"},
		{"show", "--nope", "claude-sonnet-4-5"},
		{"show", "claude-sonnet-4-5", "--provider"},
	} {
		if _, errOut, err := runPricing(t, args...); !errors.Is(err, errUsage) || !strings.Contains(errOut, "usage: tollgate pricing") {
			t.Errorf("%q: err = %v, stderr %q", args, err, errOut)
		}
	}
	// Through the main dispatcher.
	if out, err := runCmd(t, "", "pricing", "show", "claude-haiku-4-5"); err != nil || !strings.Contains(out, "claude-haiku-4-5") {
		t.Errorf("tollgate pricing show: %v\n%s", err, out)
	}
	if out, _ := runCmd(t, "", "help"); !strings.Contains(out, "pricing show MODEL|list") {
		t.Errorf("usage lacks pricing:\n%s", out)
	}
}

// containsLine reports whether some line has exactly these fields.
func containsLine(lines []string, fields ...string) bool {
	for _, l := range lines {
		if strings.Join(strings.Fields(l), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

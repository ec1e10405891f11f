package pricing

import (
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// sonnet45 returns the catalog's price of Claude Sonnet 4.5.
func sonnet45(t testing.TB) Price {
	p, ok := Embedded().Lookup("anthropic", "claude-sonnet-4-5-20250929")
	if !ok {
		t.Fatal("no claude-sonnet-4-5-20250929")
	}
	return p
}

// TestCostByKind prices each kind of token alone, so that a cache read, a
// 5-minute write and a 1-hour write are each seen at their own rate.
func TestCostByKind(t *testing.T) {
	p := sonnet45(t)
	for _, tt := range []struct {
		name string
		u    Usage
		usd  string
	}{
		// 100K tokens of each kind (below the long-context threshold) cost a
		// tenth of the rate per million tokens.
		{"input", Usage{InputTokens: 100_000}, "0.30"},
		{"output", Usage{OutputTokens: 100_000}, "1.50"},
		{"cache read", Usage{CacheReadTokens: 100_000}, "0.03"},
		{"cache write 5m", Usage{CacheWrite5mTokens: 100_000}, "0.375"},
		{"cache write 1h", Usage{CacheWrite1hTokens: 100_000}, "0.60"},
		{"reasoning is inside output", Usage{OutputTokens: 1_000, ReasoningTokens: 800}, "0.015"},
		{"web search", Usage{WebSearchRequests: 3}, "0.03"},
		{"web fetch is free", Usage{WebFetchRequests: 3}, "0.00"},
		// A Claude Code turn: a little new input, a large cached prefix,
		// a cache write of both lifetimes and some output.
		{"mixed", Usage{InputTokens: 1_000, CacheReadTokens: 2_000, CacheWrite5mTokens: 3_000, CacheWrite1hTokens: 4_000, OutputTokens: 500}, "0.04635"},
	} {
		if got := FormatUSD(Cost(tt.u, p)); got != tt.usd {
			t.Errorf("%s: cost = %s USD, want %s", tt.name, got, tt.usd)
		}
	}
}

// TestCostLongContext checks the switch to the long-context tier: at exactly
// 200,000 input tokens the base rates apply; one more token moves the whole
// request, output included, to the long-context rates. Cached tokens count
// towards the threshold.
func TestCostLongContext(t *testing.T) {
	p := sonnet45(t)
	for _, tt := range []struct {
		name string
		u    Usage
		usd  string
	}{
		{"at the threshold", Usage{InputTokens: 200_000, OutputTokens: 1_000}, "0.615"},          // 200000×3 + 1000×15, per MTok
		{"one above", Usage{InputTokens: 200_001, OutputTokens: 1_000}, "1.222506"},              // 200001×6 + 1000×22.5
		{"cache at the threshold", Usage{InputTokens: 1, CacheReadTokens: 199_999}, "0.0600027"}, // 1×3 + 199999×0.30
		{"cache one above", Usage{InputTokens: 2, CacheReadTokens: 199_999}, "0.1200114"},        // 2×6 + 199999×0.60
		{"writes one above", Usage{CacheWrite5mTokens: 100_000, CacheWrite1hTokens: 100_001}, "1.950012"},
	} {
		if got := FormatUSD(Cost(tt.u, p)); got != tt.usd {
			t.Errorf("%s: cost = %s USD, want %s", tt.name, got, tt.usd)
		}
	}
	// A price without a tier never switches.
	flat := p
	flat.LongContext, flat.LongContextThreshold = nil, 0
	if got := FormatUSD(Cost(Usage{InputTokens: 1_000_000}, flat)); got != "3.00" {
		t.Errorf("flat price above 200K = %s", got)
	}
}

// TestCostIsExact compares Cost with arbitrary-precision arithmetic on usages
// and rates where float64 would round (sums above 2^53 pico-USD).
func TestCostIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	models := Embedded().Models()
	for range 2000 {
		p := models[rng.IntN(len(models))]
		u := Usage{
			InputTokens:        rng.Int64N(2_000_000),
			CacheReadTokens:    rng.Int64N(2_000_000),
			CacheWrite5mTokens: rng.Int64N(500_000),
			CacheWrite1hTokens: rng.Int64N(500_000),
			OutputTokens:       rng.Int64N(200_000),
			WebSearchRequests:  rng.Int64N(20),
		}
		r := p.Rates
		if p.LongContext != nil && u.TotalInputTokens() > p.LongContextThreshold {
			r = *p.LongContext
		}
		want := new(big.Int)
		for _, term := range [][2]int64{
			{u.InputTokens, r.Input}, {u.CacheReadTokens, r.CacheRead}, {u.CacheWrite5mTokens, r.CacheWrite5m},
			{u.CacheWrite1hTokens, r.CacheWrite1h}, {u.OutputTokens, r.Output}, {u.WebSearchRequests, p.WebSearchPerRequest},
		} {
			want.Add(want, new(big.Int).Mul(big.NewInt(term[0]), big.NewInt(term[1])))
		}
		if got := Cost(u, p); !want.IsInt64() || got != want.Int64() {
			t.Fatalf("Cost(%+v, %s) = %d, want %s", u, p.Model, got, want)
		}
	}
	// 123,456,789 tokens at $3/MTok is exactly $370.370367.
	if got := FormatUSD(Cost(Usage{InputTokens: 123_456_789}, Price{Rates: Rates{Input: 3_000_000}})); got != "370.370367" {
		t.Errorf("got %s", got)
	}
}

func TestFormatUSD(t *testing.T) {
	for pico, want := range map[int64]string{
		0:                         "0.00",
		1:                         "0.000000000001",
		10_000_000_000:            "0.01",
		12_345_000_000:            "0.012345",
		1_500_000_000_000:         "1.50",
		1_000_000_000_000_000:     "1000.00",
		-2_250_000_000_000:        "-2.25",
		370_370_367_000_000:       "370.370367",
		9_223_372_036_854_775_807: "9223372.036854775807",
	} {
		if got := FormatUSD(pico); got != want {
			t.Errorf("FormatUSD(%d) = %q, want %q", pico, got, want)
		}
	}
}

func TestFormatUSDPerMTok(t *testing.T) {
	for rate, want := range map[int64]string{
		3_000_000:  "3",
		15_000_000: "15",
		300_000:    "0.30",
		3_750_000:  "3.75",
		22_500_000: "22.50",
		1_600_000:  "1.60",
		75_000:     "0.075",
		1:          "0.000001",
		0:          "0",
	} {
		if got := FormatUSDPerMTok(rate); got != want {
			t.Errorf("FormatUSDPerMTok(%d) = %q, want %q", rate, got, want)
		}
	}
}

func TestParseUSDPerMTok(t *testing.T) {
	for in, want := range map[string]int64{
		"3":        3_000_000,
		"0.30":     300_000,
		"3.75":     3_750_000,
		"22.50":    22_500_000,
		"0.000001": 1,
		"0":        0,
		".5":       500_000,
		"1e3":      1_000_000_000,
		"1000000":  PicoUSDPerUSD,
	} {
		got, err := ParseUSDPerMTok(in)
		if err != nil || got != want {
			t.Errorf("ParseUSDPerMTok(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"0.0000001": "more precise",
		"3.1234567": "more precise",
		"-1":        "negative",
		"1000001":   "too large",
		"abc":       "not a decimal",
		"1/3":       "not a decimal",
		"":          "not a decimal",
	} {
		if _, err := ParseUSDPerMTok(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseUSDPerMTok(%q): err = %v, want %q", in, err, msg)
		}
	}
}

func TestUnknownModels(t *testing.T) {
	for _, u := range []UnknownModels{EstimateByFamily, Deny} {
		got, err := ParseUnknownModels(u.String())
		if err != nil || got != u {
			t.Errorf("round trip of %v: %v, %v", u, got, err)
		}
	}
	if _, err := ParseUnknownModels("allow"); err == nil {
		t.Error("allow accepted")
	}
	if EstimateByFamily != 0 {
		t.Error("the zero value must be the default, EstimateByFamily")
	}
}

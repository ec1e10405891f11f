package pricing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/decimal"
)

// Money in this package is integer pico-USD: 1 USD is PicoUSDPerUSD. Rates are
// pico-USD per token, so that $3 per million tokens is 3,000,000 pico-USD per
// token and every published rate down to $0.000001 per million tokens is a
// whole number. Costs are pico-USD too, in an int64, which holds about
// 9.2 million USD: far above any single request.
const (
	// PicoUSDPerUSD is the number of pico-USD in one US dollar.
	PicoUSDPerUSD = 1_000_000_000_000
	// picoPerUSDPerMTok converts a rate in USD per million tokens to pico-USD
	// per token.
	picoPerUSDPerMTok = PicoUSDPerUSD / 1_000_000
	// MaxRate is the largest rate ParseUSDPerMTok accepts, 1 USD per token,
	// so that a cost stays far from overflowing an int64.
	MaxRate = PicoUSDPerUSD
)

// Rates are the prices of the kinds of tokens, in pico-USD per token.
type Rates struct {
	// Input is the price of an uncached input token.
	Input int64
	// Output is the price of an output token, reasoning included.
	Output int64
	// CacheRead is the price of an input token read from the prompt cache.
	CacheRead int64
	// CacheWrite5m and CacheWrite1h are the prices of an input token written
	// to the prompt cache with a 5-minute or a 1-hour lifetime.
	CacheWrite5m int64
	CacheWrite1h int64
}

// Price is what one model costs under one provider.
type Price struct {
	// Model is the catalog key of the model: the source's id, lower-cased and
	// without a provider prefix ("claude-sonnet-4@20250514" for LiteLLM's
	// "vertex_ai/claude-sonnet-4@20250514"). For a policy price it is the
	// normalised id of the policy entry; for a family estimate it is the id
	// that was asked for.
	Model string
	// Provider is the catalog's provider name: "anthropic", "bedrock",
	// "vertex_ai", "openai", or another of LiteLLM's provider keys.
	Provider string
	Rates
	// LongContextThreshold is the number of input tokens (TotalInputTokens)
	// above which LongContext applies to the whole request; 0 means none.
	LongContextThreshold int64
	// LongContext holds the rates above LongContextThreshold, or nil. It
	// points into the catalog and must not be modified.
	LongContext *Rates
	// WebSearchPerRequest is the price of one server-side web search in
	// pico-USD, or 0 when unknown.
	WebSearchPerRequest int64
	// Estimated is set when the price is not the model's own: a family rule
	// priced it, or the source's pricing could only be approximated.
	Estimated bool
	// Source says where the price comes from: "litellm", "portkey",
	// "anthropic" (a model only Anthropic's published prices have; prices of
	// the tables they replaced keep their source and say so in Note),
	// "policy", or "family:<family>" for a family estimate such as
	// "family:claude-opus". A family estimate's Source names no model, so
	// that it can label metrics; EstimatedFrom does.
	Source string
	// EstimatedFrom is, for a family estimate, the catalog key (or policy id)
	// of the family member whose price was taken, such as "claude-opus-4-8";
	// it is empty otherwise.
	EstimatedFrom string
	// Note says why a rate differs from the source table (a correction, or a
	// rate derived by Anthropic's published multipliers), if one does; for a
	// family estimate, which member it was taken from.
	Note string
}

// Cost returns the cost of a request's usage at price p, in pico-USD. All of
// its tokens are priced at the long-context rates when the request's total
// input (uncached, cache reads and cache writes) is above the threshold; at
// exactly the threshold the base rates apply. Server web searches are priced
// when p knows their price; web fetches are free apart from their tokens.
// Reasoning tokens are part of the output and not priced again.
func Cost(u Usage, p Price) int64 {
	r := &p.Rates
	if p.LongContext != nil && p.LongContextThreshold > 0 && u.TotalInputTokens() > p.LongContextThreshold {
		r = p.LongContext
	}
	return u.InputTokens*r.Input +
		u.CacheReadTokens*r.CacheRead +
		u.CacheWrite5mTokens*r.CacheWrite5m +
		u.CacheWrite1hTokens*r.CacheWrite1h +
		u.OutputTokens*r.Output +
		u.WebSearchRequests*p.WebSearchPerRequest
}

// FormatUSD formats an amount of pico-USD as an exact decimal number of US
// dollars, with at least two decimals and no trailing zeros beyond them:
// "0.00", "1.50", "0.012345", "0.000000000001", "-2.25".
func FormatUSD(pico int64) string {
	return decimal.Format(pico, 12, 2)
}

// FormatUSDPerMTok formats a rate in pico-USD per token as USD per million
// tokens, exactly: a whole number without decimals ("3", "15"), otherwise with
// at least two decimals ("0.30", "3.75", "22.50", "0.075").
func FormatUSDPerMTok(rate int64) string {
	if rate%picoPerUSDPerMTok == 0 {
		return strconv.FormatInt(rate/picoPerUSDPerMTok, 10)
	}
	return decimal.Format(rate, 6, 2)
}

// ParseUSDPerMTok parses a non-negative decimal number of USD per million
// tokens, such as "3", "0.30" or "3.75", into pico-USD per token. The text is
// converted exactly, never through a float: a rate that is not a whole number
// of pico-USD per token (more than six decimals of USD per million tokens) is
// an error, and so is one above MaxRate.
func ParseUSDPerMTok(s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%s: a price must not be negative", s)
	}
	v, exact, err := decimal.Scale(s, picoPerUSDPerMTok)
	switch {
	case err != nil:
		return 0, err
	case !exact:
		return 0, fmt.Errorf("%s USD per million tokens is more precise than the catalog's unit, 1 pico-USD per token (0.000001 USD per million tokens)", s)
	case v > MaxRate:
		return 0, fmt.Errorf("%s USD per million tokens is too large; the limit is 1 USD per token", s)
	}
	return v, nil
}

// UnknownModels says what Catalog.Resolve does with a model the catalog has no
// price for.
type UnknownModels int

const (
	// EstimateByFamily prices an unknown model of a known family (such as
	// claude-opus-*) at the price of the family's newest priced member,
	// flagged Estimated (see Catalog.Resolve). It is the default.
	EstimateByFamily UnknownModels = iota
	// Deny makes every unknown model an error.
	Deny
)

// String returns "estimate" or "deny", the policy file's spelling.
func (u UnknownModels) String() string {
	switch u {
	case EstimateByFamily:
		return "estimate"
	case Deny:
		return "deny"
	}
	return "UnknownModels(" + strconv.Itoa(int(u)) + ")"
}

// ParseUnknownModels parses the policy file's spelling of an UnknownModels.
func ParseUnknownModels(s string) (UnknownModels, error) {
	switch s {
	case "estimate":
		return EstimateByFamily, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf("unknown_models must be estimate or deny, not %q", s)
}

// ErrUnpriced is the error of Resolve for a model it cannot price. The error
// returned wraps it and names the model.
var ErrUnpriced = errors.New("no price for model")

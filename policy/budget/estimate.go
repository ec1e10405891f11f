package budget

import "github.com/tollgate-dev/tollgate/policy/pricing"

// BytesPerToken is the divisor of EstimateInputTokens.
const BytesPerToken = 3

// MaxEstimatedInputTokens caps EstimateInputTokens: no model Tollgate serves
// accepts more input than a million tokens (Anthropic's largest context
// window), so a larger estimate could only be refused by the provider.
const MaxEstimatedInputTokens = 1_000_000

// MaxEstimatedOutputTokens caps the max_tokens that WorstCaseCost reserves:
// no model produces more output than this, and larger values would only
// risk overflowing the cost.
const MaxEstimatedOutputTokens = 1_000_000

// UnknownMaxTokens is the output reserved for a request that sends no
// max_tokens: the largest output of current Claude models. Anthropic refuses
// such a request anyway, and it then settles at zero.
const UnknownMaxTokens = 128_000

// EstimateInputTokens returns a conservative estimate of the input tokens of a
// request whose body is bodyLen bytes: one token per three bytes, rounded up,
// capped at MaxEstimatedInputTokens.
//
// Why three: Anthropic's tokenizers average about 3.5 characters per token on
// English prose, and code, JSON and tool schemas come out close to that, while
// a request body spends bytes that are no tokens at all (the JSON framing of
// messages, escapes, base64 images that are billed by their size in pixels,
// about 1,600 tokens for a large image). So bytes/3 over-estimates typical
// requests, by a wide margin for those with images. It can under-estimate
// text that tokenizes densely (long runs of digits or punctuation, some
// non-Latin scripts); then the settled cost is larger than the reservation,
// the overshoot is recorded as spent, and later requests are denied. The
// guarantee "never above the ceiling" holds exactly when reservations are not
// under-estimates, which bytes/3 makes the common case without a tokenizer in
// the request path.
func EstimateInputTokens(bodyLen int) int64 {
	if bodyLen <= 0 {
		return 0
	}
	n := (int64(bodyLen) + BytesPerToken - 1) / BytesPerToken
	return min(n, MaxEstimatedInputTokens)
}

// WorstCaseCost is the most a request with inputTokens of input and up to
// maxTokens of output can cost at price p, in pico-USD: every input token at
// the dearest input rate (uncached input, or a 5-minute or 1-hour cache write,
// which cost 1.25 and 2 times input on Anthropic), every output token at the
// output rate, all at the long-context rates when inputTokens is above the
// price's threshold, as pricing.Cost would choose them. Server tool fees (web
// searches) cannot be known in advance and are not included. inputTokens and
// maxTokens are capped at MaxEstimatedInputTokens and
// MaxEstimatedOutputTokens.
func WorstCaseCost(p pricing.Price, inputTokens, maxTokens int64) int64 {
	inputTokens = min(max(inputTokens, 0), MaxEstimatedInputTokens)
	maxTokens = min(max(maxTokens, 0), MaxEstimatedOutputTokens)
	r := p.Rates
	if p.LongContext != nil && p.LongContextThreshold > 0 && inputTokens > p.LongContextThreshold {
		r = *p.LongContext
	}
	u := pricing.Usage{OutputTokens: maxTokens}
	switch {
	case r.CacheWrite1h >= r.Input && r.CacheWrite1h >= r.CacheWrite5m:
		u.CacheWrite1hTokens = inputTokens
	case r.CacheWrite5m >= r.Input:
		u.CacheWrite5mTokens = inputTokens
	default:
		u.InputTokens = inputTokens
	}
	p.WebSearchPerRequest = 0
	return pricing.Cost(u, p)
}

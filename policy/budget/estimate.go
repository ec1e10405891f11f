package budget

import "github.com/tollgate-dev/tollgate/policy/pricing"

// MaxEstimatedInputTokens caps InputBound: no model Tollgate serves
// accepts more input than a million tokens (Anthropic's largest context
// window), and a request whose input exceeds its model's context window is
// refused unbilled, so a billed request never has more input than this.
const MaxEstimatedInputTokens = 1_000_000

// MaxEstimatedOutputTokens caps the max_tokens that WorstCaseCost reserves:
// no model produces more output than this, and larger values would only
// risk overflowing the cost.
const MaxEstimatedOutputTokens = 1_000_000

// UnknownMaxTokens is the output reserved for a request that sends no
// max_tokens: the largest output of current Claude models. Anthropic refuses
// such a request anyway, and it then settles at zero.
const UnknownMaxTokens = 128_000

// Input bound constants, in tokens, from Anthropic's published sizing.
const (
	// MaxImageTokens is the most an image costs, whatever its bytes. Anthropic's
	// vision guide (platform.claude.com/docs/en/build-with-claude/vision): an
	// image costs about width*height/750 tokens, or ⌈width/28⌉×⌈height/28⌉
	// visual tokens of 28×28 pixels, and larger images are first scaled down
	// to the model's native resolution: a 1568-pixel long edge and about 1.15
	// megapixels (about 1,600 tokens) up to Claude Opus 4.6, a 2576-pixel long
	// edge and about 3.75 megapixels since Opus 4.7 (as reported at its
	// launch), which with the padding to 28 pixels is at most
	// 3.75e6/784 + 2576*2/28 + 1 < 4,970 visual tokens.
	MaxImageTokens = 5_000
	// ToolPromptTokens is the system prompt Anthropic adds to a request that
	// declares tools: at most 530 tokens in Anthropic's published table (tool
	// use pricing: Claude 3 Opus, tool_choice auto; 346 for Claude 4 models),
	// doubled for what the table does not list.
	ToolPromptTokens = 1_000
	// TypedToolTokens is the definition of a tool that Anthropic supplies
	// (a tools entry with a type other than custom, such as bash_20250124):
	// the published figures are 245 tokens for bash, 700 for the text editor,
	// and 735 plus a 466-499 token system prompt for computer use.
	TypedToolTokens = 2_000
)

// Media is what a request body holds that costs input tokens out of
// proportion to its bytes (see reqbody.ScanMedia, which fills it).
type Media struct {
	// Images and Documents count the image and document blocks.
	Images, Documents int
	// Base64Bytes is the size of the images' base64 data, which is billed
	// by pixels, not as text.
	Base64Bytes int
	// Tools counts the tools; TypedTools the Anthropic-defined ones.
	Tools, TypedTools int
}

// InputBound returns an upper bound of the input tokens of a request whose
// body is bodyBytes long and holds media m, capped at
// MaxEstimatedInputTokens:
//
//   - text: one token per byte of the body other than base64 image data. A
//     token of Claude's tokenizers covers at least one byte of UTF-8, and
//     JSON only adds bytes (quotes, escapes, keys) around the text it
//     carries, so a body's text never has more tokens than bytes;
//   - images: MaxImageTokens each, whatever their source (base64, URL or
//     file id) or size in bytes;
//   - documents: a PDF is billed per page as text plus an image
//     (platform.claude.com/docs/en/build-with-claude/pdf-support: typically
//     1,500 to 3,000 text tokens a page, up to 100 pages per request), and
//     neither its pages nor its text can be known without reading it; so a
//     request with a document block is bounded by MaxEstimatedInputTokens
//     alone;
//   - tools: ToolPromptTokens once, and TypedToolTokens for each
//     Anthropic-defined tool.
//
// What the bound does not cover: input that server tools (web search, web
// fetch, code execution, MCP connectors) fetch while the request runs, which
// is not in the body.
func InputBound(bodyBytes int, m Media) int64 {
	if bodyBytes <= 0 {
		return 0
	}
	if m.Documents > 0 {
		return MaxEstimatedInputTokens
	}
	n := int64(max(bodyBytes-m.Base64Bytes, 0))
	n += int64(m.Images) * MaxImageTokens
	if m.Tools > 0 {
		n += ToolPromptTokens
	}
	n += int64(m.TypedTools) * TypedToolTokens
	return min(n, MaxEstimatedInputTokens)
}

// FitOutput returns the largest max_tokens, at most want, whose worst case
// at price p with inputTokens of input costs at most roomPicoUSD; -1 when
// even no output fits.
func FitOutput(p pricing.Price, inputTokens, want, roomPicoUSD int64) int64 {
	base := WorstCaseCost(p, inputTokens, 0)
	if base > roomPicoUSD {
		return -1
	}
	want = min(max(want, 0), MaxEstimatedOutputTokens)
	// The worst case is base plus max_tokens at the output rate.
	r := worstCaseRates(p, min(max(inputTokens, 0), MaxEstimatedInputTokens))
	if r.Output <= 0 {
		return want
	}
	return min((roomPicoUSD-base)/r.Output, want)
}

// worstCaseRates are the rates of a request with inputTokens of input at
// price p: the long-context tier's above its threshold.
func worstCaseRates(p pricing.Price, inputTokens int64) pricing.Rates {
	if p.LongContext != nil && p.LongContextThreshold > 0 && inputTokens > p.LongContextThreshold {
		return *p.LongContext
	}
	return p.Rates
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
	r := worstCaseRates(p, inputTokens)
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

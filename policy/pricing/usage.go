// Package pricing holds the embedded model price catalog and computes the cost of
// a request from its token usage, in integers.
package pricing

// Usage is the provider-neutral token usage of one request. Every provider's
// parser fills it, and everything downstream (cost, budgets, records, metrics)
// reads only this type.
//
// Input is split by how it is billed. Anthropic's input_tokens excludes cached
// tokens, so InputTokens here is the uncached part for every provider (an OpenAI
// parser subtracts cached_tokens from prompt_tokens).
type Usage struct {
	// InputTokens are uncached input tokens, billed at the input rate.
	InputTokens int64 `json:"input_tokens"`
	// CacheReadTokens are input tokens read from the prompt cache.
	CacheReadTokens int64 `json:"cache_read_tokens"`
	// CacheWrite5mTokens and CacheWrite1hTokens are input tokens written to the
	// prompt cache with a 5-minute or 1-hour lifetime.
	CacheWrite5mTokens int64 `json:"cache_write_5m_tokens"`
	CacheWrite1hTokens int64 `json:"cache_write_1h_tokens"`
	// OutputTokens are all generated tokens, reasoning included.
	OutputTokens int64 `json:"output_tokens"`
	// ReasoningTokens is the part of OutputTokens spent on thinking, when the
	// provider reports it. It is informational and never billed twice.
	ReasoningTokens int64 `json:"reasoning_tokens,omitempty"`
	// WebSearchRequests and WebFetchRequests count server tool uses.
	WebSearchRequests int64 `json:"web_search_requests,omitempty"`
	WebFetchRequests  int64 `json:"web_fetch_requests,omitempty"`
}

// TotalInputTokens is every input token of the request, cached or not. Long
// context pricing tiers are chosen by it.
func (u Usage) TotalInputTokens() int64 {
	return u.InputTokens + u.CacheReadTokens + u.CacheWrite5mTokens + u.CacheWrite1hTokens
}

// TotalTokens is every billed token, input and output.
func (u Usage) TotalTokens() int64 { return u.TotalInputTokens() + u.OutputTokens }

// Package records defines Tollgate's cost record, one per client request, and the
// machinery that stores it durably and reads it back.
//
// The request path hands each Record to a [Writer] (Emit never waits for a
// sink). The Writer batches records to its sinks: [NewLogSink] (a zap line per
// record), [NewFileSink] (JSON lines rotated by size), [NewRedisSink] (a Redis
// stream, idempotent by record id) and [MemoryStore] (a ring for a single
// instance without Redis). A sink that fails has its records spooled to disk,
// one JSON-lines file per sink, and replayed until it stores them; spools
// outlive the process. A record a sink refuses for good goes to its
// dead-letter file instead, so it never holds up the others.
//
// A [Store] reads records back ([MemoryStore], or [NewRedisStore] over the
// sink's stream), and [NewAPIHandler] serves them on the admin port as
// GET /v1/records and GET /v1/traces/{id}.
package records

import (
	"time"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Outcome says how a request ended.
type Outcome string

const (
	OutcomeOK            Outcome = "ok"             // the provider answered 2xx and the response completed
	OutcomeProviderError Outcome = "provider_error" // the provider (or Envoy on its behalf) answered with an error
	OutcomeDenied        Outcome = "denied"         // Tollgate refused it: auth, budget, rate limit
	OutcomeInvalid       Outcome = "invalid"        // Tollgate refused a malformed request
	OutcomeCancelled     Outcome = "cancelled"      // the client went away before the response completed
	OutcomeIncomplete    Outcome = "incomplete"     // the upstream stream was cut before its end, or Tollgate died before it (error type gateway_crashed)
	OutcomeUnavailable   Outcome = "unavailable"    // Tollgate could not check budgets (ledger down, fail_mode closed) and refused
)

// Record is the cost record of one client request, written once when the request
// ends, however it ends. Money is in integer pico-USD (1e-12 USD); Cost repeats it
// as a decimal USD string for people and spreadsheets.
type Record struct {
	// ID is Tollgate's own id of the request (see [NewID]), never the client's:
	// unique, it makes sink replays idempotent, and error bodies name it as
	// request_id.
	ID string `json:"id"`
	// ClientRequestID is the x-request-id header the request arrived with (the
	// client's, or the one Envoy generated), at most 128 bytes; informational
	// only, as clients may send none, the same one twice, or anything.
	ClientRequestID string `json:"client_request_id,omitempty"`

	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	TraceID string    `json:"trace_id"`
	// SessionID, AgentID and ParentAgentID are Claude Code's
	// x-claude-code-session-id, -agent-id and -parent-agent-id headers, when
	// sent: at most 128 printable ASCII bytes each (a longer one is refused).
	SessionID     string `json:"session_id,omitempty"`
	AgentID       string `json:"agent_id,omitempty"`
	ParentAgentID string `json:"parent_agent_id,omitempty"`
	// RequestClass is Claude Code's x-claude-code-request-class hint (main,
	// subagent, workflow, compaction, auxiliary), which it sends only with
	// CLAUDE_CODE_GATEWAY_HINT_HEADERS=1: up to 32 bytes of lowercase
	// letters, digits, '_' and '-', else dropped (never refused).
	RequestClass string `json:"request_class,omitempty"`

	KeyID    string            `json:"key_id,omitempty"`
	User     string            `json:"user,omitempty"`
	Team     string            `json:"team,omitempty"`
	Project  string            `json:"project,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`

	Route    string `json:"route,omitempty"`
	Provider string `json:"provider,omitempty"`
	// Attempts lists the upstream attempts in order, as each attempt's
	// adapter wrote it: the provider it went to and the model id it sent.
	// Empty when no attempt started (a refusal, a client that left first).
	Attempts []Attempt `json:"attempts,omitempty"`
	Endpoint string    `json:"endpoint"`
	Method   string    `json:"method"` // as the client sent it, cut to 32 bytes
	Path     string    `json:"path"`   // as the client sent it, cut to 512 bytes

	RequestedModel string `json:"requested_model,omitempty"` // as the client sent it
	// Model is the model id sent to the provider that answered, after the
	// "@route/" prefix was removed and the route's and provider's model
	// mappings applied; for a request no provider answered, the id its
	// route's first provider is sent.
	Model         string `json:"model,omitempty"`
	ResponseModel string `json:"response_model,omitempty"` // as the provider reported it
	Stream        bool   `json:"stream"`

	Status    int     `json:"status"`
	ErrorType string  `json:"error_type,omitempty"`
	Outcome   Outcome `json:"outcome"`

	Usage          pricing.Usage `json:"usage"`
	CostPicoUSD    int64         `json:"cost_pico_usd"`
	Cost           string        `json:"cost_usd"`
	PriceEstimated bool          `json:"price_estimated,omitempty"`
	// UsageEstimated says that Usage.OutputTokens is Tollgate's floor
	// estimate, not the provider's count: the stream ended (the client left,
	// or the provider cut it) before a message_delta reported the output, so
	// the output relayed so far is billed at one token per four characters
	// of its text, thinking and tool input, rounded up.
	UsageEstimated bool   `json:"usage_estimated,omitempty"`
	PriceCatalog   string `json:"price_catalog,omitempty"`

	LatencyMS float64 `json:"latency_ms"`
	TTFTMS    float64 `json:"ttft_ms,omitempty"` // time to the first response body byte
	// CacheStatus is what the response cache did: HIT, MISS, REFRESH or
	// BYPASS; empty when the request's route and team do not cache.
	CacheStatus string `json:"cache_status,omitempty"`
	// CostSavedPicoUSD is, for a cache hit, what the cached response would
	// cost now: its usage priced at today's prices (CostSaved as decimal
	// USD). A hit itself costs nothing.
	CostSavedPicoUSD int64  `json:"cost_saved_pico_usd,omitempty"`
	CostSaved        string `json:"cost_saved_usd,omitempty"`
	BudgetOutcome    string `json:"budget_outcome,omitempty"`
	// ReservationID is the budget ledger's id of the request's reservation,
	// and ReservedPicoUSD the worst-case cost it held, when budgets apply.
	ReservationID   string `json:"reservation_id,omitempty"`
	ReservedPicoUSD int64  `json:"reserved_pico_usd,omitempty"`
	// MaxTokensFitted is the max_tokens Tollgate sent instead of the
	// client's, lowered so that the request's worst case fits a budget
	// (when_short: fit); ThinkingBudgetFitted the thinking budget_tokens it
	// lowered with it. Zero when the request went as sent.
	MaxTokensFitted      int64 `json:"max_tokens_fitted,omitempty"`
	ThinkingBudgetFitted int64 `json:"thinking_budget_fitted,omitempty"`

	// Bodies are captured only when the policy opts in, size-capped and redacted.
	RequestBody  string `json:"request_body,omitempty"`
	ResponseBody string `json:"response_body,omitempty"`
}

// Attempt is one upstream attempt of a request.
type Attempt struct {
	// N is the attempt's number, from 1 (Envoy's upstream.request_attempt_count).
	N        int    `json:"n"`
	Provider string `json:"provider"`
	// Model is the model id the attempt sent; empty for a request without a
	// body (the models endpoint).
	Model string `json:"model,omitempty"`
	// Status is the HTTP status of the attempt's response headers; 0 when
	// the attempt got none (connect failure, reset, timeout).
	Status int `json:"status"`
	// TimeToHeadersMS is the time from the attempt's request headers to its
	// response headers, as the adapter saw them; absent without response
	// headers.
	TimeToHeadersMS float64 `json:"time_to_headers_ms,omitempty"`
}

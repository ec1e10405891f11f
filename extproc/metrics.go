package extproc

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors of the ext_proc service. Labels have low
// cardinality: no key ids, trace ids or request ids (those belong in records).
// Names follow DESIGN.md "Metrics and traces".
type Metrics struct {
	streams    *prometheus.CounterVec
	requests   *prometheus.CounterVec
	rejections *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	cost       *prometheus.CounterVec
	unpriced   *prometheus.CounterVec
	estimated  *prometheus.CounterVec
	phase      *prometheus.HistogramVec
	duration   *prometheus.HistogramVec
	ttft       *prometheus.HistogramVec

	budgetRejections *prometheus.CounterVec
	ledgerErrors     *prometheus.CounterVec
	earlyVec         *prometheus.CounterVec
	// early holds earlyVec's counters by outcome, resolved once.
	early map[string]prometheus.Counter
	// aboveReserved counts requests that settled above their reservation,
	// by unit (usd, tokens); aboveReservedUSD sums the excess.
	aboveReserved    *prometheus.CounterVec
	aboveReservedUSD prometheus.Counter
	// fitted counts requests whose max_tokens was lowered to fit a budget.
	fitted prometheus.Counter
	// translationWarnings counts what response translations noticed, by
	// provider and kind.
	translationWarnings *prometheus.CounterVec
	// streamPings counts the pings the adapter sent on silent translated
	// streams, by provider (ping.go).
	streamPings *prometheus.CounterVec
	// accessLogEntries counts Envoy's access-log entries by what the
	// receiver did with them; endingWaits counts the ambiguous endings the
	// policy role waited for, by result (endings.go).
	accessLogEntries *prometheus.CounterVec
	endingWaits      *prometheus.CounterVec
	// compatActions counts the betas and body fields a provider's
	// compatibility table adapted or dropped, by provider type, key and
	// action.
	compatActions *prometheus.CounterVec

	// phaseByRole holds the phase histogram's observers, resolved once so that
	// no message pays for a label lookup.
	phaseByRole map[string]map[string]prometheus.Observer
}

// phases are the values of the phase label, as phaseOf names them.
var phases = []string{"request_headers", "request_body", "request_trailers", "response_headers", "response_body", "response_trailers"}

// phaseObservers returns the phase histogram's observers of one role.
func (m *Metrics) phaseObservers(role string) map[string]prometheus.Observer {
	return m.phaseByRole[role]
}

// latencyBuckets suit LLM calls: from a cached 50 ms answer to a 10-minute stream.
var latencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640}

// NewMetrics creates the collectors and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_extproc_streams_total",
			Help: "ext_proc streams opened by Envoy, by role.",
		}, []string{"role"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_total",
			Help: "Client requests by route, serving provider, model and final HTTP status (499: the client went away first).",
		}, []string{"route", "provider", "model", "status"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_rejections_total",
			Help: "Requests Tollgate answered itself with an error, by role and error type.",
		}, []string{"role", "type"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_tokens_total",
			Help: "Billed tokens by provider, model and type (input, output, cache_read, cache_write_5m, cache_write_1h, reasoning).",
		}, []string{"provider", "model", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_cost_usd_total",
			Help: "Cost in USD by provider, model and team. Records carry the exact integer amounts.",
		}, []string{"provider", "model", "team"}),
		unpriced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_price_estimated_total",
			Help: "Requests priced by a family estimate or not priced at all, by provider, model and kind (estimated, unpriced).",
		}, []string{"provider", "model", "kind"}),
		estimated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_usage_estimated_total",
			Help: "Streams that ended before the provider reported their output tokens, billed by Tollgate's floor estimate of the output relayed, by provider and model.",
		}, []string{"provider", "model"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_phase_duration_seconds",
			Help:    "Time Tollgate spends on one ext_proc message, by role and phase.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2},
		}, []string{"role", "phase"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_request_duration_seconds",
			Help:    "Total request latency seen by the policy role, from request headers to the end of the response.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_upstream_ttft_seconds",
			Help:    "Time from the request leaving the gateway to the first response body byte, by serving provider.",
			Buckets: latencyBuckets,
		}, []string{"provider"}),
		budgetRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_budget_rejections_total",
			Help: "Requests refused by a budget or rate limit, by scope kind (key, user, team, project, provider, session, global) and limit kind (usd, tokens, requests, concurrent).",
		}, []string{"scope", "kind"}),
		ledgerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_budget_ledger_errors_total",
			Help: "Budget ledger failures by operation (reserve, settle, renew, cancel) and, for reserve, the fail mode applied (open, closed).",
		}, []string{"op", "fail_mode"}),
		earlyVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_budget_early_reservations_total",
			Help: "Budget reservations made at the request headers from the key's previous request, by outcome: kept (the request was the guess), replaced, retried (the guess was refused), cancelled (unused), failed (ledger error), timed_out (no body within the body timeout; given back).",
		}, []string{"outcome"}),
		aboveReserved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_budget_settled_above_reserved_total",
			Help: "Requests whose actual cost (unit usd) or billed tokens (unit tokens) exceeded what their budget reservation held, so a ceiling could be overshot by the difference.",
		}, []string{"unit"}),
		aboveReservedUSD: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_budget_settled_above_reserved_usd_total",
			Help: "Sum of what requests cost above their budget reservation, in USD.",
		}),
		fitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_budget_fitted_total",
			Help: "Requests whose max_tokens was lowered so that their worst case fits a budget (when_short: fit).",
		}),
		translationWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_translation_warnings_total",
			Help: "What a response translation noticed and did not act on, by provider and kind (usage_mismatch: Bedrock's invocation metrics disagree with the usage of the Anthropic events, which is what is billed).",
		}, []string{"provider", "kind"}),
		streamPings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_stream_pings_total",
			Help: "Pings the adapter sent to clients on translated streams whose provider stayed silent for --stream-ping-interval (Bedrock and OpenAI-compatible providers send none), by provider.",
		}, []string{"provider"}),
		accessLogEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_access_log_entries_total",
			Help: "Envoy access-log entries received, by result: stored (an ending kept for the policy role), no_record (no Tollgate record id in its dynamic metadata), no_flags (no response flag worth keeping), error (the endings store failed).",
		}, []string{"result"}),
		endingWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_ending_waits_total",
			Help: "Response streams reset after their headers, whose ending the policy role waited for in Envoy's access log, by result: found, missed (no entry within --ending-wait: the timing heuristic decided), error (the endings store failed: likewise).",
		}, []string{"result"}),
		compatActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_compat_actions_total",
			Help: "Betas and body fields a cloud provider's compatibility table adapted or dropped in requests sent to it, by provider type, key (a beta, a body field such as context_management, or unlisted_betas) and action (adapt, drop).",
		}, []string{"provider_type", "key", "action"}),
	}
	for _, r := range []string{alStored, alNoRecord, alNoFlags, alError} {
		m.accessLogEntries.WithLabelValues(r)
	}
	for _, r := range []string{waitFound, waitMissed, waitError} {
		m.endingWaits.WithLabelValues(r)
	}
	m.phaseByRole = map[string]map[string]prometheus.Observer{}
	for _, role := range []string{rolePolicy, roleAdapter} {
		m.phaseByRole[role] = map[string]prometheus.Observer{}
		for _, ph := range phases {
			m.phaseByRole[role][ph] = m.phase.WithLabelValues(role, ph)
		}
	}
	m.early = map[string]prometheus.Counter{}
	for _, o := range []string{earlyKept, earlyReplaced, earlyRetried, earlyCancelled, earlyFailed, earlyTimedOut} {
		m.early[o] = m.earlyVec.WithLabelValues(o)
	}
	for _, u := range []string{"usd", "tokens"} {
		m.aboveReserved.WithLabelValues(u) // series exist from the start
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.requests, m.rejections, m.tokens, m.cost, m.unpriced, m.estimated, m.phase, m.duration, m.ttft,
			m.budgetRejections, m.ledgerErrors, m.earlyVec, m.aboveReserved, m.aboveReservedUSD, m.fitted, m.translationWarnings,
			m.accessLogEntries, m.endingWaits)
		reg.MustRegister(m.compatActions, m.streamPings)
	}
	return m
}

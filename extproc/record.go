package extproc

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// Recorder receives the cost record of every request. *records.Writer
// implements it; neither method may block the request path.
type Recorder interface {
	// Admit receives the record of a request as known when it is admitted
	// and goes on to the provider, so that a crash before Emit still leaves
	// a record of it (see records.Writer.Admit).
	Admit(records.Record)
	// Emit receives the final record of every request, admitted or not.
	Emit(records.Record)
}

type discardRecorder struct{}

func (discardRecorder) Admit(records.Record) {}
func (discardRecorder) Emit(records.Record)  {}

// statusClientGone is the status recorded when the client went away before the
// response began (nginx's convention).
const statusClientGone = 499

// Caps on what a client sends that a record keeps verbatim. Every other field
// of a record is bounded elsewhere: the trace, session and agent ids by
// readTrace (a longer one is refused with a 400), metadata by parseMetadata,
// the model by maxModelLen, bodies by the capture limit. These three are cut
// instead, since they do not decide anything: Envoy may pass a long
// x-request-id on, a long query string is the provider's business, and an
// unknown method is refused anyway.
const (
	maxClientRequestIDBytes = 128
	maxRecordMethodBytes    = 32
	maxRecordPathBytes      = 512
)

// clip cuts s to at most n bytes, and drops what is not valid UTF-8 (a rune
// the cut split included), so that a record stays readable JSON.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "")
}

// buildRecord assembles the cost record of the request from what the stream saw,
// and the model label its metrics carry (see metricModel).
func (p *policyProcessor) buildRecord(end time.Time) (records.Record, string) {
	r := p.baseRecord(end)
	// Nothing is billed for a request that got no usage; the cost is a known
	// zero (only an unpriced model's cost is unknown, and left empty).
	r.Cost = pricing.FormatUSD(0)
	r.ResponseBody = p.meter.capture.String()
	switch {
	case p.rejected != nil:
		r.Status, r.ErrorType = p.rejected.Status, string(p.rejected.Code)
		r.Outcome = refusalOutcome(p.rejected.Status)
		return r, p.modelLabel("")
	case !p.respHeaders:
		r.Status, r.Outcome = statusClientGone, records.OutcomeCancelled
		return r, p.modelLabel("")
	}

	res := p.meter.result(p.status)
	r.Status, r.ErrorType = p.status, res.ErrorType
	r.Usage, r.UsageEstimated, r.ResponseModel = res.Usage, res.Estimated, res.Model
	// A response without the adapter's header is a local reply: Envoy's (no
	// provider could be reached, a body over the buffer limit) or the
	// adapter's own refusal. It is recorded against the first provider of
	// the route's chain, the one every request tries first, and has no
	// time to first token.
	fromProvider := p.servedBy != ""
	if !fromProvider && p.route != nil && len(p.route.Chain) > 0 {
		r.Provider = p.route.Chain[0]
	}
	r.Model = p.sentModel(r.Provider)
	if fromProvider && !p.meter.firstByte.IsZero() && !p.released.IsZero() {
		r.TTFTMS = ms(p.meter.firstByte.Sub(p.released))
	}
	switch {
	case !fromProvider && p.status >= 400 && p.status < 500:
		// Refused before any provider answered, as Envoy's 413 for a body over
		// the buffer limit.
		r.Outcome = refusalOutcome(p.status)
	case p.status >= 400 || res.ErrorType != "":
		r.Outcome = records.OutcomeProviderError
	case res.Complete, !p.endpoint.Metered:
		// Only message bodies are followed to their end; the other endpoints'
		// bodies skip the processor (mode_override), so their headers decide.
		r.Outcome = records.OutcomeOK
	case p.meter.bodyDone:
		r.Outcome = records.OutcomeIncomplete // the provider's stream ended early
	default:
		// The stream was reset after its headers: by the client, or by Envoy
		// for a provider that reset its connection or stalled, which looks
		// the same from here (Envoy resets the client's stream and, with it,
		// this one). finish asks Envoy's access log which (endings.go);
		// until it answers, timing decides.
		p.cut = true
		r.Outcome = records.OutcomeCancelled
		if p.stalled(end) {
			r.Outcome, r.ErrorType = records.OutcomeIncomplete, errorTypeStalled
		}
	}
	if res.Metered {
		return r, p.price(&r)
	}
	return r, p.modelLabel(r.Provider)
}

// errorTypeStalled is the error type of a response that started and then
// stalled until Envoy's per-try idle timer reset it (stalled).
const errorTypeStalled = "provider_stalled"

// stalled reports whether a response that started and never ended, whose
// stream ended at end, was cut by Envoy's per-try idle timer, judged by
// timing alone: the fallback when Envoy's access log does not say in time
// (waitEnding). The timer fires when the provider sent nothing for the
// route's per_try_idle_timeout. After the response headers went to the
// client Envoy no longer retries; the timer, re-armed by each chunk (UpstreamRequest::resetPerTryIdleTimer), still fires, and
// Router::Filter::onPerTryTimeoutCommon ends in a reset of the client's
// stream and of this one (source/common/router/router.cc,
// upstream_request.cc). A client that leaves does so before the timer
// fires, so the silence it leaves is shorter. Tollgate times the silence
// from when the latest chunk reached it, which may lag Envoy's timer by the
// time the chunk waited in this filter's queue; a quarter of the timeout is
// allowed for that. A client that left after three quarters of it in
// silence is counted as a stall, which the provider's silence then was.
func (p *policyProcessor) stalled(end time.Time) bool {
	if p.route == nil || p.lastResponse.IsZero() {
		return false
	}
	idle := p.route.Fallback.PerTryIdleTimeout
	return idle > 0 && end.Sub(p.lastResponse) >= idle-idle/4
}

// baseRecord is the part of the request's record known before its response:
// ids, principal, route, model, fitting and reservation. The admission
// journal gets it as it is (admit); buildRecord completes it.
func (p *policyProcessor) baseRecord(end time.Time) records.Record {
	r := records.Record{
		ID: p.requestID, ClientRequestID: clip(p.envoyRequestID, maxClientRequestIDBytes),
		Start: p.start, End: end,
		TraceID: p.trace.TraceID, SessionID: p.trace.SessionID,
		AgentID: p.trace.AgentID, ParentAgentID: p.trace.ParentAgentID, RequestClass: p.trace.RequestClass,
		Endpoint: p.endpoint.Name, Method: clip(p.method, maxRecordMethodBytes), Path: clip(p.path, maxRecordPathBytes),
		RequestedModel: p.requestedModel, Model: p.sentModel(p.servedBy), Stream: p.stream,
		Provider:             p.servedBy,
		Attempts:             p.attempts,
		LatencyMS:            ms(end.Sub(p.start)),
		BudgetOutcome:        p.budgetOutcome,
		CacheStatus:          p.cache.status,
		MaxTokensFitted:      p.fitted.maxTokens,
		ThinkingBudgetFitted: p.fitted.thinking,
		RequestBody:          p.requestCapture,
	}
	if p.key != nil {
		r.KeyID, r.User, r.Team, r.Project = p.key.ID, p.key.User, p.key.Team, p.key.Project
		r.Metadata = mergeMetadata(p.key.Metadata, p.trace.Metadata)
	} else {
		r.Metadata = p.trace.Metadata
	}
	if p.route != nil {
		r.Route = p.route.Slug
	}
	if p.reservation != nil {
		r.ReservationID, r.ReservedPicoUSD = p.reservation.ID(), p.reserved.costPicoUSD
	}
	return r
}

// refusalOutcome is the outcome of a request refused with status before any
// provider answered it.
func refusalOutcome(status int) records.Outcome {
	switch status {
	case 401, 403, 429:
		return records.OutcomeDenied
	case 503:
		// The budget ledger could not be reached and the policy fails closed.
		return records.OutcomeUnavailable
	}
	return records.OutcomeInvalid
}

// Model labels of metrics. Clients choose model names, so a metric label takes
// a client's model only when the catalog prices it exactly; otherwise the family
// rule's name or "unpriced" stands in, and the record keeps the real name. This
// bounds the number of series a client can create.
const (
	labelUnpriced = "unpriced"
	// labelNone labels a request refused before its model was read.
	labelNone = "none"
)

// sentModel is the model id the request's route sends to provider (the
// route's first provider when provider is empty): the client's model without
// its "@route/" prefix, after the route's and the provider's mappings, as the
// adapter sends it. It is empty before the body named a model.
func (p *policyProcessor) sentModel(provider string) string {
	if p.model == "" || p.route == nil {
		return p.model
	}
	if provider == "" && len(p.route.Chain) > 0 {
		provider = p.route.Chain[0]
	}
	return p.pol.MapModel(p.route, provider, p.model)
}

// modelLabel is the model label of a request that has no usage to price: the
// model the route sends to provider (the route's first provider when
// provider is empty), under the same rule as price's.
func (p *policyProcessor) modelLabel(provider string) string {
	if p.model == "" {
		return labelNone
	}
	if provider == "" && p.route != nil && len(p.route.Chain) > 0 {
		provider = p.route.Chain[0]
	}
	model, price, err := p.pol.PriceAt(p.route, provider, p.model, p.pol.Pricing.Unknown)
	return priceLabel(model, price, err)
}

// priceLabel is the metric label of model priced at price (err when it has
// none): the model itself only when the catalog prices it exactly.
func priceLabel(model string, price pricing.Price, err error) string {
	switch {
	case err != nil:
		return labelUnpriced
	case price.Estimated:
		return price.Source
	}
	return model
}

// price fills the record's cost from the policy's catalog and returns the model
// label for metrics. The model the provider reported is priced; failing that,
// the model sent; a provider with ids of its own (Bedrock) is priced by the
// id sent (policy.PriceServed).
func (p *policyProcessor) price(r *records.Record) (modelLabel string) {
	r.PriceCatalog = p.pol.Catalog().Version()
	model, price, err := p.pol.PriceServed(r.Provider, r.Model, r.ResponseModel)
	if err != nil {
		// Unpriced: the record says so and carries no cost. Budgets (issue 4)
		// refuse such models before they run when the policy says deny.
		r.PriceEstimated, r.Cost = true, ""
		p.s.log.Warn("unpriced model", zap.String("request_id", r.ID), zap.String("model", model), zap.Error(err))
		return labelUnpriced
	}
	r.PriceEstimated = price.Estimated
	r.CostPicoUSD = pricing.Cost(r.Usage, price)
	r.Cost = pricing.FormatUSD(r.CostPicoUSD)
	return priceLabel(model, price, nil)
}

func mergeMetadata(key, request map[string]string) map[string]string {
	if len(key) == 0 {
		return request
	}
	out := make(map[string]string, len(key)+len(request))
	for k, v := range request {
		out[k] = v
	}
	for k, v := range key { // the policy's metadata wins over the client's
		out[k] = v
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// admit hands the recorder the request's record as known now, when it goes on
// to the provider, for the admission journal.
func (p *policyProcessor) admit() {
	r := p.baseRecord(p.released)
	r.End, r.LatencyMS, r.Outcome = time.Time{}, 0, records.OutcomeIncomplete
	r.RequestBody = ""
	p.s.recorder.Admit(r)
}

// record emits r and updates the request metrics.
func (s *Server) record(r records.Record, model string) {
	s.recorder.Emit(r)
	m := s.metrics
	m.requests.WithLabelValues(r.Route, r.Provider, model, strconv.Itoa(r.Status)).Inc()
	m.duration.WithLabelValues(r.Route).Observe(r.LatencyMS / 1000)
	if r.TTFTMS > 0 {
		m.ttft.WithLabelValues(r.Provider).Observe(r.TTFTMS / 1000)
	}
	u := r.Usage
	for _, t := range []struct {
		typ string
		n   int64
	}{
		{"input", u.InputTokens}, {"output", u.OutputTokens}, {"cache_read", u.CacheReadTokens},
		{"cache_write_5m", u.CacheWrite5mTokens}, {"cache_write_1h", u.CacheWrite1hTokens}, {"reasoning", u.ReasoningTokens},
	} {
		if t.n > 0 {
			m.tokens.WithLabelValues(r.Provider, model, t.typ).Add(float64(t.n))
		}
	}
	if r.CostPicoUSD > 0 {
		m.cost.WithLabelValues(r.Provider, model, r.Team).Add(float64(r.CostPicoUSD) / 1e12)
	}
	if r.UsageEstimated {
		m.estimated.WithLabelValues(r.Provider, model).Inc()
	}
	if r.PriceEstimated {
		kind := "estimated"
		if r.Cost == "" {
			kind = "unpriced"
		}
		m.unpriced.WithLabelValues(r.Provider, model, kind).Inc()
	}
}

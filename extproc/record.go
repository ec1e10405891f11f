package extproc

import (
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// Recorder receives the cost record of every request. *records.Writer
// implements it; Emit must not block the request path.
type Recorder interface {
	Emit(records.Record)
}

type discardRecorder struct{}

func (discardRecorder) Emit(records.Record) {}

// statusClientGone is the status recorded when the client went away before the
// response began (nginx's convention).
const statusClientGone = 499

// buildRecord assembles the cost record of the request from what the stream saw,
// and the model label its metrics carry (see metricModel).
func (p *policyProcessor) buildRecord(end time.Time) (records.Record, string) {
	r := records.Record{
		ID: p.requestID, Start: p.start, End: end,
		TraceID: p.trace.TraceID, SessionID: p.trace.SessionID,
		AgentID: p.trace.AgentID, ParentAgentID: p.trace.ParentAgentID,
		Endpoint: string(p.endpoint), Method: p.method, Path: p.path,
		RequestedModel: p.requestedModel, Model: p.model, Stream: p.stream,
		Provider:             p.servedBy,
		LatencyMS:            ms(end.Sub(p.start)),
		BudgetOutcome:        p.budgetOutcome,
		MaxTokensFitted:      p.fitted.maxTokens,
		ThinkingBudgetFitted: p.fitted.thinking,
		RequestBody:          p.requestCapture,
		ResponseBody:         p.meter.capture.String(),
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

	switch {
	case p.rejected != nil:
		r.Status, r.ErrorType = p.rejected.Status, p.rejected.Type
		r.Outcome = records.OutcomeInvalid
		if s := p.rejected.Status; s == 401 || s == 403 || s == 429 {
			r.Outcome = records.OutcomeDenied
		}
		return r, ""
	case !p.respHeaders:
		r.Status, r.Outcome = statusClientGone, records.OutcomeCancelled
		return r, ""
	}

	res := p.meter.result(p.status)
	r.Status, r.ErrorType = p.status, res.errorType
	r.Usage, r.ResponseModel = res.usage, res.model
	if !p.meter.firstByte.IsZero() && !p.released.IsZero() {
		r.TTFTMS = ms(p.meter.firstByte.Sub(p.released))
	}
	switch {
	case p.status >= 400 || res.errorType != "":
		r.Outcome = records.OutcomeProviderError
	case res.complete, p.endpoint != epMessages:
		// Only message bodies are followed to their end; the other endpoints'
		// bodies skip the processor (mode_override), so their headers decide.
		r.Outcome = records.OutcomeOK
	case p.meter.bodyDone:
		r.Outcome = records.OutcomeIncomplete // the provider's stream ended early
	default:
		r.Outcome = records.OutcomeCancelled // the stream was reset: usually the client left
	}
	label := labelUnpriced
	if res.metered {
		label = p.price(&r)
	}
	return r, label
}

// Model labels of metrics. Clients choose model names, so a metric label takes
// a client's model only when the catalog prices it exactly; otherwise the family
// rule's name or "unpriced" stands in, and the record keeps the real name. This
// bounds the number of series a client can create.
const labelUnpriced = "unpriced"

// price fills the record's cost from the policy's catalog and returns the model
// label for metrics. The model the provider reported is priced; failing that,
// the model sent.
func (p *policyProcessor) price(r *records.Record) (modelLabel string) {
	model := r.ResponseModel
	if model == "" {
		model = r.Model
	}
	providerType := ""
	if prov, ok := p.pol.Providers[r.Provider]; ok {
		providerType = prov.Type
	}
	cat := p.pol.Catalog()
	r.PriceCatalog = cat.Version()
	price, err := cat.Resolve(providerType, model, p.pol.Pricing.Unknown)
	if err != nil {
		// Unpriced: the record says so and carries no cost. Budgets (issue 4)
		// refuse such models before they run when the policy says deny.
		r.PriceEstimated = true
		p.s.log.Warn("unpriced model", zap.String("request_id", r.ID), zap.String("model", model), zap.Error(err))
		return labelUnpriced
	}
	r.PriceEstimated = price.Estimated
	r.CostPicoUSD = pricing.Cost(r.Usage, price)
	r.Cost = pricing.FormatUSD(r.CostPicoUSD)
	if price.Estimated {
		return price.Source
	}
	return model
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
	if r.PriceEstimated {
		kind := "estimated"
		if r.Cost == "" {
			kind = "unpriced"
		}
		m.unpriced.WithLabelValues(r.Provider, model, kind).Inc()
	}
}

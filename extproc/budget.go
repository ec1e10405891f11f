package extproc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Budget outcomes recorded in cost records.
const (
	budgetAllowed   = "allowed"
	budgetDenied    = "denied"
	budgetExempt    = "exempt"
	budgetUnmetered = "unmetered" // the ledger was down and the policy fails open
)

// hdrBudgetRemaining tells the client what is left in its tightest limit.
const hdrBudgetRemaining = "x-tollgate-budget-remaining"

// settleTimeout bounds the settle of a finished request. It runs after the
// client has its response, off the request path.
const settleTimeout = 5 * time.Second

// reserve claims the request's worst case in every budget that applies, in one
// ledger round trip, before the request goes on. It returns a client error
// when a limit refuses the request, or when the ledger is down and the policy
// fails closed. When a USD or token limit that says when_short: fit refuses
// it, reserve lowers the request's max_tokens until the worst case fits (see
// fit). r is the request's body as its format read it, bodyBytes long; nil
// for a request without a body.
func (p *policyProcessor) reserve(ctx context.Context, r clientformat.Request, bodyBytes int) *ClientError {
	if !p.budgeted() {
		return nil
	}
	cfg := p.pol.Budgets
	in := policy.BudgetInput{
		RequestID: p.requestID, Key: p.key, Route: p.route, Session: p.trace.TraceID,
		Endpoint: p.endpoint.Name, Model: p.model, BodyBytes: bodyBytes,
	}
	hasMaxTokens := false
	if r != nil {
		in.MaxTokens, hasMaxTokens = r.MaxTokens()
		if c, ok := r.(choicer); ok {
			in.Choices = c.Choices()
		}
		if p.endpoint.Metered {
			in.Media = r.Media()
		}
	}
	req, err := p.pol.BudgetRequest(in)
	if p.cache.hit != nil {
		req, err = rateOnly(req), nil // a cache hit: request rates only (cache.go)
	}
	if err != nil {
		return invalidRequest("model %q has no price, so it cannot be held to a USD budget; add its price to the policy (pricing.models)", p.model)
	}
	if len(req.Scopes) == 0 {
		return nil
	}
	if p.endpoint.Metered {
		p.remember(in)
	}
	dec, err := p.reserveWith(ctx, in, req)
	fitNote := ""
	if err == nil && !dec.Allowed && hasMaxTokens && cfg.Fits(dec.Denial.Scope, dec.Denial.Limit) {
		dec, req, fitNote, err = p.fit(ctx, in, r, dec)
	}
	switch {
	case err != nil && errors.Is(err, budget.ErrUnavailable) && cfg.FailMode == budget.FailOpen:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "open").Inc()
		p.s.log.Warn("budget ledger unavailable; serving unmetered (fail_mode open)", zap.String("request_id", p.requestID), zap.Error(err))
		p.budgetOutcome = budgetUnmetered
		p.fitted = fitted{}
		return nil
	case err != nil:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "closed").Inc()
		p.s.log.Error("budget ledger unavailable; refusing (fail_mode closed)", zap.String("request_id", p.requestID), zap.Error(err))
		// envoy.yaml's local_reply_config reshapes only the 503s that carry an
		// Envoy response flag, so this body reaches the client as it is.
		return errorf(503, clientformat.CodeOverloaded, "the gateway cannot check budgets right now; retry shortly")
	case !dec.Allowed:
		d := dec.Denial
		p.s.metrics.budgetRejections.WithLabelValues(d.Scope.Kind.String(), d.Limit.Unit.String()).Inc()
		p.budgetOutcome = budgetDenied + ":" + d.Scope.String()
		p.fitted = fitted{}
		e := errorf(429, clientformat.CodeRateLimit, "%s%s", d.Message(), fitNote)
		if s := d.RetryAfterSeconds(); s > 0 {
			e.RetryAfter = strconv.Itoa(s)
		}
		e.Final = !retryHelps(d.RetryAfterSeconds())
		return e
	}
	p.reservation, p.remaining = dec.Reservation, dec.Remaining
	p.reserved = actualCost{costPicoUSD: req.CostPicoUSD, tokens: req.Tokens}
	p.budgetOutcome = budgetAllowed
	if req.Exempt {
		p.budgetOutcome = budgetExempt
	}
	if p.fitted.maxTokens > 0 {
		p.s.metrics.fitted.Inc()
	}
	return nil
}

// choicer is a request that asks for several answers (OpenAI's n), each up
// to its output limit: its reservation holds the output of every one.
type choicer interface {
	Choices() int64
}

// budgeted reports whether budgets apply to the request: a ledger and some
// limit in the policy.
func (p *policyProcessor) budgeted() bool {
	return p.s.ledger != nil && p.pol.Budgets != nil && len(p.pol.Budgets.Limits) > 0
}

// fitted is what fit changed in a request's body.
type fitted struct {
	maxTokens int64 // the new max_tokens; 0 when not fitted
	thinking  int64 // the new thinking budget_tokens; 0 when unchanged
}

// maxFitRounds bounds the reserves fit makes. A denial names one limit; the
// request fitted to it may be refused by another limit with less left, or by
// the same one when requests in flight took what was left meanwhile.
const maxFitRounds = 3

// fit reserves the request again with the largest max_tokens whose worst
// case fits what the denying limit has left, as long as each denial comes
// from a limit that says fit and the fitted max_tokens stays at or above the
// floor (budget_fit_floor, and the request's own MinMaxTokens, as an
// Anthropic request's with a thinking budget). For an allowed request it
// lowers r's max_tokens (and what its format keeps below it, as the thinking
// budget). It returns the last decision, the request reserved, and for a
// refused one a note for the client's message.
func (p *policyProcessor) fit(ctx context.Context, in policy.BudgetInput, r clientformat.Request, dec budget.Decision) (
	budget.Decision, budget.Request, string, error) {
	cfg := p.pol.Budgets
	floor := max(cfg.Floor(), r.MinMaxTokens())
	asked := in.MaxTokens
	var req budget.Request
	for round := 0; round < maxFitRounds && !dec.Allowed; round++ {
		d := dec.Denial
		if !cfg.Fits(d.Scope, d.Limit) {
			return dec, req, "", nil
		}
		m, err := p.pol.FitMaxTokens(in, d)
		if err != nil || m >= in.MaxTokens || m < floor {
			return dec, req, fmt.Sprintf("; lowering max_tokens to fit (when_short: fit) would leave fewer than %d output tokens", floor), nil
		}
		in.MaxTokens = m
		if req, err = p.pol.BudgetRequest(in); err != nil {
			return dec, req, "", nil
		}
		if dec, err = p.s.ledger.Reserve(ledgerContext(ctx), req, p.s.now()); err != nil {
			return dec, req, "", err
		}
	}
	if !dec.Allowed {
		return dec, req, "", nil
	}
	m := in.MaxTokens
	p.fitted = fitted{maxTokens: m, thinking: r.SetMaxTokens(m)}
	p.s.log.Info("max_tokens lowered to fit a budget", zap.String("request_id", p.requestID),
		zap.Int64("max_tokens", asked), zap.Int64("max_tokens_fitted", m), zap.Int64("thinking_budget_fitted", p.fitted.thinking))
	return dec, req, "", nil
}

// settle replaces the reservation by what the request cost. It runs when the
// stream ends, with its own deadline since the stream's context is done.
func (p *policyProcessor) settle(ctx context.Context, r actualCost) {
	if p.reservation == nil {
		return
	}
	p.checkAboveReserved(r)
	ctx, cancel := context.WithTimeout(ledgerContext(ctx), settleTimeout)
	defer cancel()
	err := p.s.ledger.Settle(ctx, p.reservation, budget.Actual{
		CostPicoUSD: r.costPicoUSD, Tokens: r.tokens, Provider: r.provider,
	}, p.s.now())
	if err != nil {
		// The ledger retries it in the background until the lease expires;
		// until then the ledger over-counts.
		p.s.metrics.ledgerErrors.WithLabelValues("settle", "").Inc()
		p.s.log.Error("budget settle failed; the ledger retries it until its lease expires",
			zap.String("request_id", p.requestID), zap.Error(err))
	}
}

// checkAboveReserved counts a request that settles above its reservation:
// its input bound or its max_tokens was not an upper bound (server tools
// fetch input the body does not carry), so a ceiling may be overshot by the
// difference.
func (p *policyProcessor) checkAboveReserved(r actualCost) {
	if !p.endpoint.Metered || p.budgetOutcome != budgetAllowed {
		return // exempt and free endpoints reserve no cost
	}
	res := p.reserved
	if r.costPicoUSD > res.costPicoUSD {
		p.s.metrics.aboveReserved.WithLabelValues("usd").Inc()
		p.s.metrics.aboveReservedUSD.Add(float64(r.costPicoUSD-res.costPicoUSD) / pricing.PicoUSDPerUSD)
	}
	if r.tokens > res.tokens {
		p.s.metrics.aboveReserved.WithLabelValues("tokens").Inc()
	}
	if r.costPicoUSD > res.costPicoUSD || r.tokens > res.tokens {
		p.s.log.Warn("request settled above its budget reservation", zap.String("request_id", p.requestID),
			zap.Int64("reserved_pico_usd", res.costPicoUSD), zap.Int64("cost_pico_usd", r.costPicoUSD),
			zap.Int64("reserved_tokens", res.tokens), zap.Int64("tokens", r.tokens))
	}
}

type actualCost struct {
	costPicoUSD, tokens int64
	provider            string
}

// ledgerContext is the context of a ledger call made for a stream: it keeps
// the stream's values (spans, later) but never its cancellation. A client that
// goes away, or the stream's end (settles run after it), must not cut a ledger
// write in half; the ledger's own timeouts and the deadlines set here bound
// every call.
func ledgerContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// renewIfDue extends the reservation's lease during a long stream, so that a
// request that outlives the lease TTL keeps its concurrency slot. It runs in
// the background; chunks are never held for it.
func (p *policyProcessor) renewIfDue(ctx context.Context, now time.Time) {
	r := p.reservation
	if r == nil || p.renewing.Load() {
		return
	}
	if !r.RenewDue(now) {
		return
	}
	p.renewing.Store(true)
	go func() {
		defer p.renewing.Store(false)
		ctx, cancel := context.WithTimeout(ledgerContext(ctx), settleTimeout)
		defer cancel()
		if err := p.s.ledger.Renew(ctx, r, p.s.now()); err != nil {
			p.s.metrics.ledgerErrors.WithLabelValues("renew", "").Inc()
			p.s.log.Warn("budget lease renewal failed", zap.String("request_id", p.requestID), zap.Error(err))
		}
	}()
}

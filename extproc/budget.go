package extproc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/extproc/reqbody"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
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
// fails closed.
func (p *policyProcessor) reserve(f reqbody.Fields, bodyLen int) *ClientError {
	if p.s.ledger == nil || p.pol.Budgets == nil || len(p.pol.Budgets.Limits) == 0 {
		return nil
	}
	cfg := p.pol.Budgets
	in := policy.BudgetInput{
		RequestID: p.requestID, Key: p.key, Route: p.route, Session: p.trace.TraceID,
		Endpoint: string(p.endpoint), Model: p.model, BodyBytes: bodyLen, MaxTokens: f.MaxTokens,
	}
	req, err := p.pol.BudgetRequest(in)
	if err != nil {
		return invalidRequest("model %q has no price, so it cannot be held to a USD budget; add its price to the policy (pricing.models)", p.model)
	}
	if len(req.Scopes) == 0 {
		return nil
	}
	if p.endpoint == epMessages {
		p.remember(in)
	}
	dec, err := p.reserveWith(in, req)
	switch {
	case err != nil && errors.Is(err, budget.ErrUnavailable) && cfg.FailMode == budget.FailOpen:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "open").Inc()
		p.s.log.Warn("budget ledger unavailable; serving unmetered (fail_mode open)", zap.String("request_id", p.requestID), zap.Error(err))
		p.budgetOutcome = budgetUnmetered
		return nil
	case err != nil:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "closed").Inc()
		p.s.log.Error("budget ledger unavailable; refusing (fail_mode closed)", zap.String("request_id", p.requestID), zap.Error(err))
		// envoy.yaml's local_reply_config reshapes only the 503s that carry an
		// Envoy response flag, so this body reaches the client as it is.
		return errorf(503, "overloaded_error", "the gateway cannot check budgets right now; retry shortly")
	case !dec.Allowed:
		d := dec.Denial
		p.s.metrics.budgetRejections.WithLabelValues(d.Scope.Kind.String(), d.Limit.Unit.String()).Inc()
		p.budgetOutcome = budgetDenied + ":" + d.Scope.String()
		e := errorf(429, "rate_limit_error", "%s", d.Message())
		if s := d.RetryAfterSeconds(); s > 0 {
			e.RetryAfter = strconv.Itoa(s)
		}
		e.Final = !retryHelps(d.RetryAfterSeconds())
		return e
	}
	p.reservation, p.remaining = dec.Reservation, dec.Remaining
	p.reservedPicoUSD = req.CostPicoUSD
	p.budgetOutcome = budgetAllowed
	if req.Exempt {
		p.budgetOutcome = budgetExempt
	}
	return nil
}

// settle replaces the reservation by what the request cost. It runs when the
// stream ends, with its own deadline since the stream's context is done.
func (p *policyProcessor) settle(r actualCost) {
	if p.reservation == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
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

type actualCost struct {
	costPicoUSD, tokens int64
	provider            string
}

// renewIfDue extends the reservation's lease during a long stream, so that a
// request that outlives the lease TTL keeps its concurrency slot. It runs in
// the background; chunks are never held for it.
func (p *policyProcessor) renewIfDue(now time.Time) {
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
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		if err := p.s.ledger.Renew(ctx, r, p.s.now()); err != nil {
			p.s.metrics.ledgerErrors.WithLabelValues("renew", "").Inc()
			p.s.log.Warn("budget lease renewal failed", zap.String("request_id", p.requestID), zap.Error(err))
		}
	}()
}

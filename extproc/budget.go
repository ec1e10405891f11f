package extproc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/extproc/reqbody"
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
// it, reserve lowers max_tokens until the worst case fits (see fit) and
// returns the body edits that say so.
func (p *policyProcessor) reserve(ctx context.Context, f reqbody.Fields, body []byte, m reqbody.Media) ([]reqbody.Edit, *ClientError) {
	if !p.budgeted() {
		return nil, nil
	}
	cfg := p.pol.Budgets
	in := policy.BudgetInput{
		RequestID: p.requestID, Key: p.key, Route: p.route, Session: p.trace.TraceID,
		Endpoint: string(p.endpoint), Model: p.model, BodyBytes: len(body), MaxTokens: f.MaxTokens,
	}
	if p.endpoint == epMessages {
		in.Media = budget.Media{Images: m.Images, Documents: m.Documents, Base64Bytes: m.Base64Bytes,
			Tools: m.Tools, TypedTools: m.TypedTools}
	}
	req, err := p.pol.BudgetRequest(in)
	if err != nil {
		return nil, invalidRequest("model %q has no price, so it cannot be held to a USD budget; add its price to the policy (pricing.models)", p.model)
	}
	if len(req.Scopes) == 0 {
		return nil, nil
	}
	if p.endpoint == epMessages {
		p.remember(in)
	}
	dec, err := p.reserveWith(ctx, in, req)
	var edits []reqbody.Edit
	fitNote := ""
	if err == nil && !dec.Allowed && f.HasMaxTokens && cfg.Fits(dec.Denial.Scope, dec.Denial.Limit) {
		dec, req, edits, fitNote, err = p.fit(ctx, in, f, body, dec)
	}
	switch {
	case err != nil && errors.Is(err, budget.ErrUnavailable) && cfg.FailMode == budget.FailOpen:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "open").Inc()
		p.s.log.Warn("budget ledger unavailable; serving unmetered (fail_mode open)", zap.String("request_id", p.requestID), zap.Error(err))
		p.budgetOutcome = budgetUnmetered
		p.fitted = fitted{}
		return nil, nil
	case err != nil:
		p.s.metrics.ledgerErrors.WithLabelValues("reserve", "closed").Inc()
		p.s.log.Error("budget ledger unavailable; refusing (fail_mode closed)", zap.String("request_id", p.requestID), zap.Error(err))
		// envoy.yaml's local_reply_config reshapes only the 503s that carry an
		// Envoy response flag, so this body reaches the client as it is.
		return nil, errorf(503, "overloaded_error", "the gateway cannot check budgets right now; retry shortly")
	case !dec.Allowed:
		d := dec.Denial
		p.s.metrics.budgetRejections.WithLabelValues(d.Scope.Kind.String(), d.Limit.Unit.String()).Inc()
		p.budgetOutcome = budgetDenied + ":" + d.Scope.String()
		p.fitted = fitted{}
		e := errorf(429, "rate_limit_error", "%s%s", d.Message(), fitNote)
		if s := d.RetryAfterSeconds(); s > 0 {
			e.RetryAfter = strconv.Itoa(s)
		}
		e.Final = !retryHelps(d.RetryAfterSeconds())
		return nil, e
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
	return edits, nil
}

// fitThinking returns the thinking budget of a request whose max_tokens was
// lowered from asked to m (m > minThinkingBudget): the share of max_tokens
// the client gave thinking, at least minThinkingBudget and below m.
func fitThinking(think, asked, m int64) int64 {
	return max(minThinkingBudget, min(m*think/max(asked, 1), m-1))
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

// minThinkingBudget is Anthropic's smallest thinking budget_tokens; it must
// also be below max_tokens.
const minThinkingBudget = 1024

// fit reserves the request again with the largest max_tokens whose worst
// case fits what the denying limit has left, as long as each denial comes
// from a limit that says fit and the fitted max_tokens stays at or above the
// floor (budget_fit_floor, and minThinkingBudget+1 when thinking has a
// budget). A thinking budget that would not stay below the new max_tokens is
// lowered in the same proportion of max_tokens as the client asked, at least
// to minThinkingBudget. It returns the last decision, the request reserved,
// the body edits for an allowed request, and for a refused one a note for
// the client's message.
func (p *policyProcessor) fit(ctx context.Context, in policy.BudgetInput, f reqbody.Fields, body []byte, dec budget.Decision) (
	budget.Decision, budget.Request, []reqbody.Edit, string, error) {
	cfg := p.pol.Budgets
	floor := cfg.Floor()
	think, thinkAt, thinking := reqbody.ThinkingBudget(body, f)
	if thinking {
		floor = max(floor, minThinkingBudget+1)
	}
	asked := in.MaxTokens
	var req budget.Request
	for round := 0; round < maxFitRounds && !dec.Allowed; round++ {
		d := dec.Denial
		if !cfg.Fits(d.Scope, d.Limit) {
			return dec, req, nil, "", nil
		}
		m, err := p.pol.FitMaxTokens(in, d)
		if err != nil || m >= in.MaxTokens || m < floor {
			return dec, req, nil, fmt.Sprintf("; lowering max_tokens to fit (when_short: fit) would leave fewer than %d output tokens", floor), nil
		}
		in.MaxTokens = m
		if req, err = p.pol.BudgetRequest(in); err != nil {
			return dec, req, nil, "", nil
		}
		if dec, err = p.s.ledger.Reserve(ledgerContext(ctx), req, p.s.now()); err != nil {
			return dec, req, nil, "", err
		}
	}
	if !dec.Allowed {
		return dec, req, nil, "", nil
	}
	m := in.MaxTokens
	edits := []reqbody.Edit{reqbody.IntEdit(reqbody.Span{Start: f.MaxTokensStart, End: f.MaxTokensEnd}, m)}
	p.fitted = fitted{maxTokens: m}
	if thinking && think >= m {
		b := fitThinking(think, asked, m)
		edits = append(edits, reqbody.IntEdit(thinkAt, b))
		p.fitted.thinking = b
	}
	p.s.log.Info("max_tokens lowered to fit a budget", zap.String("request_id", p.requestID),
		zap.Int64("max_tokens", asked), zap.Int64("max_tokens_fitted", m), zap.Int64("thinking_budget_fitted", p.fitted.thinking))
	return dec, req, edits, "", nil
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
	if p.endpoint != epMessages || p.budgetOutcome != budgetAllowed {
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

package extproc

import (
	"context"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// Early reservations take the budget ledger's round trip off the request path.
// The reserve needs the model and max_tokens, which come with the body, but
// Envoy sends the request headers first and buffers the body meanwhile. So at
// the request headers the policy role reserves what the request will most
// likely need: its key's previous request of about the same size (route,
// model, max_tokens) at the content-length the client announced. Coding agents send run after run of
// requests with one model and one max_tokens, so the guess is usually the
// request itself. At the body:
//
//   - the request is what was guessed: the early decision is the decision,
//     allowed or denied, and no round trip is left;
//   - it is not, and the guess was admitted: one Replace gives the guess back
//     and reserves the request, the round trip there would have been anyway;
//   - it is not, and the guess was refused: a plain Reserve.
//
// A request that never uses its early reservation (refused for its body, or
// gone before it) has it cancelled when its stream ends, request counts
// included, so a guess never costs anyone quota. The ledger sees one extra
// operation per miss, never a decision that differs from a reserve at the body.
//
// The client's content-length is not trusted for the size: a client that
// announces 32 MB and sends no body would otherwise hold the worst case of a
// 32 MB request for as long as Envoy waits for the body, and a few such
// connections would exhaust a team's budget for its other keys (issue 9,
// item 6). So the size reserved early is bounded by the size class of the
// guess (a request the key actually sent) and by earlyMaxBodyBytes; a bigger
// body is reserved for what it is at the body, by a Replace. And an early
// reservation whose body has not come within the body timeout is cancelled;
// if the body comes later after all, the request is reserved at the body.

// guess is what a key's last message request needed from the ledger.
type guess struct {
	route     string // the route's slug
	model     string
	maxTokens int64
	class     uint8        // the size class of its body
	media     budget.Media // what the body held beyond text: conversations keep their images and tools
}

// earlyMaxBodyBytes bounds the body size an early reservation assumes,
// whatever the content-length: 1 MiB, above most coding agents' requests.
const earlyMaxBodyBytes = 1 << 20

// DefaultEarlyBodyTimeout is how long an early reservation waits for its
// request's body before it is given back.
const DefaultEarlyBodyTimeout = 10 * time.Second

// earlyBodyBytes is the body size an early reservation from g assumes for a
// request announcing size bytes: size, but no more than the largest body of
// g's size class, nor earlyMaxBodyBytes.
func earlyBodyBytes(size int, g guess) int {
	top := 1<<g.class - 1
	return min(size, top, earlyMaxBodyBytes)
}

// guessKey files a guess under its key and the size class of its body (the
// bit length of its size), because an agent's runs interleave: Claude Code
// sends background tasks to its Haiku model beside the main conversation. Each
// key's last guess of any size is also kept, under class anySize, for a size
// not seen yet.
type guessKey struct {
	keyID string
	class uint8
}

const anySize = 255 // above any bit length

func sizeClass(bodyBytes int) uint8 { return uint8(bits.Len(uint(bodyBytes))) }

// earlyReserve is a reservation started at the request headers.
type earlyReserve struct {
	in   policy.BudgetInput
	done chan struct{} // closed when dec and err are set
	dec  budget.Decision
	err  error

	// claimed is set by the first of the body (reserveWith), the end of the
	// stream (cancelEarly) and the body timeout (expireEarly): that one
	// alone uses or gives back the reservation.
	claimed atomic.Bool
	timer   *time.Timer // the body timeout
}

// claim reports whether the caller is the first to claim e; it stops the
// body timeout.
func (e *earlyReserve) claim() bool {
	if !e.claimed.CompareAndSwap(false, true) {
		return false
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	return true
}

// Outcomes of early reservations: the outcome label of
// tollgate_budget_early_reservations_total.
const (
	earlyKept      = "kept"      // the request was the guess
	earlyReplaced  = "replaced"  // admitted guess given back, request reserved in one round trip
	earlyRetried   = "retried"   // refused guess, request reserved at the body
	earlyCancelled = "cancelled" // the request never used it
	earlyFailed    = "failed"    // the ledger failed; the fail mode applied
	earlyTimedOut  = "timed_out" // the body did not come in time; given back
)

// startEarlyReserve reserves the guessed budget of a message request whose
// body is still to come. It does nothing without a ledger, budgets, a
// content-length, or a previous request of the key to guess from.
func (p *policyProcessor) startEarlyReserve(ctx context.Context, h headers) {
	if p.s.noEarlyReserve || p.s.ledger == nil || !p.endpoint.Metered || p.key == nil ||
		p.pol.Budgets == nil || len(p.pol.Budgets.Limits) == 0 {
		return
	}
	size, err := strconv.Atoi(h.get("content-length"))
	if err != nil || size <= 0 {
		return
	}
	v, ok := p.s.guesses.Load(guessKey{p.key.ID, sizeClass(size)})
	if !ok {
		if v, ok = p.s.guesses.Load(guessKey{p.key.ID, anySize}); !ok {
			return
		}
	}
	g := v.(guess)
	slug := g.route
	if p.slug != "" {
		slug = p.slug
	}
	route, ok := p.pol.Route(slug)
	if !ok {
		return
	}
	in := policy.BudgetInput{
		RequestID: p.requestID, Key: p.key, Route: route, Session: p.trace.TraceID,
		Endpoint: p.endpoint.Name, Model: g.model, BodyBytes: earlyBodyBytes(size, g), MaxTokens: g.maxTokens, Media: g.media,
	}
	req, err := p.pol.BudgetRequest(in)
	if err != nil || req.Exempt || len(req.Scopes) == 0 {
		return
	}
	e := &earlyReserve{in: in, done: make(chan struct{})}
	p.early = e
	s, now, lctx := p.s, p.s.now(), ledgerContext(ctx)
	go func() {
		defer close(e.done)
		e.dec, e.err = s.ledger.Reserve(lctx, req, now)
	}()
	requestID := p.requestID
	e.timer = time.AfterFunc(s.earlyBodyTimeout, func() { s.expireEarly(lctx, e, requestID) })
}

// expireEarly gives back an early reservation whose body did not come within
// the body timeout. It runs on the timer's goroutine, so it touches e and s
// only.
func (s *Server) expireEarly(ctx context.Context, e *earlyReserve, requestID string) {
	// Not claim: e.timer is this timer, and may not even be stored yet.
	if !e.claimed.CompareAndSwap(false, true) {
		return
	}
	if s.giveBackEarly(ctx, e, earlyTimedOut, requestID) {
		s.log.Info("request body did not come within the body timeout; early budget reservation given back",
			zap.String("request_id", requestID), zap.Duration("timeout", s.earlyBodyTimeout))
	}
}

// giveBackEarly cancels the claimed early reservation e, once the ledger has
// answered it, when it was admitted; it counts it under outcome and reports
// whether there was anything to give back.
func (s *Server) giveBackEarly(ctx context.Context, e *earlyReserve, outcome, requestID string) bool {
	<-e.done
	if e.err != nil || !e.dec.Allowed {
		return false
	}
	s.metrics.early[outcome].Inc()
	ctx, cancel := context.WithTimeout(ledgerContext(ctx), settleTimeout)
	defer cancel()
	if err := s.ledger.Cancel(ctx, e.dec.Reservation, s.now()); err != nil {
		s.metrics.ledgerErrors.WithLabelValues("cancel", "").Inc()
		s.log.Error("cancelling an early budget reservation failed; the ledger retries it until its lease expires",
			zap.String("request_id", requestID), zap.Error(err))
	}
	return true
}

// remember keeps a message request's needs as its key's next guess.
func (p *policyProcessor) remember(in policy.BudgetInput) {
	if p.s.noEarlyReserve || in.Route == nil || p.key == nil {
		return
	}
	g := guess{route: in.Route.Slug, model: in.Model, maxTokens: in.MaxTokens, class: sizeClass(in.BodyBytes), media: in.Media}
	for _, k := range []guessKey{{p.key.ID, sizeClass(in.BodyBytes)}, {p.key.ID, anySize}} {
		if v, ok := p.s.guesses.Load(k); !ok || v.(guess) != g {
			p.s.guesses.Store(k, g)
		}
	}
}

// sameNeeds reports whether two budget inputs of one request ask the ledger
// for the same thing.
func sameNeeds(a, b policy.BudgetInput) bool {
	return a.Route.Slug == b.Route.Slug && a.Model == b.Model && a.MaxTokens == b.MaxTokens &&
		a.BodyBytes == b.BodyBytes && a.Media == b.Media && a.Endpoint == b.Endpoint && a.Session == b.Session
}

// reserveWith returns the ledger's decision on req (from in), using the early
// reservation when there is one.
func (p *policyProcessor) reserveWith(ctx context.Context, in policy.BudgetInput, req budget.Request) (budget.Decision, error) {
	ctx = ledgerContext(ctx)
	e := p.early
	p.early = nil
	if e == nil || !e.claim() {
		// No early reservation, or it timed out waiting for this body.
		return p.s.ledger.Reserve(ctx, req, p.s.now())
	}
	<-e.done
	switch {
	case e.err != nil:
		// The ledger is down or too slow: so it would be for the request.
		p.s.metrics.early[earlyFailed].Inc()
		return e.dec, e.err
	case sameNeeds(e.in, in) && p.cache.hit == nil: // a hit reserves request rates only
		p.s.metrics.early[earlyKept].Inc()
		return e.dec, nil
	case e.dec.Allowed:
		p.s.metrics.early[earlyReplaced].Inc()
		return p.s.ledger.Replace(ctx, e.dec.Reservation, req, p.s.now())
	}
	p.s.metrics.early[earlyRetried].Inc()
	return p.s.ledger.Reserve(ctx, req, p.s.now())
}

// cancelEarly gives back an early reservation the request did not use. It
// runs when the stream ends.
func (p *policyProcessor) cancelEarly(ctx context.Context) {
	e := p.early
	if e == nil {
		return
	}
	p.early = nil
	if !e.claim() {
		return // the body timeout gave it back
	}
	p.s.giveBackEarly(ctx, e, earlyCancelled, p.requestID)
}

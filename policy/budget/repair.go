package budget

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Operations the Redis ledger repeats after a failure: the op label of its
// repair metrics.
const (
	opSettle = "settle"
	opCancel = "cancel"
	// opReserve is the cancel of a reserve whose outcome is unknown: it timed
	// out, but Redis may have run it, or may run it later.
	opReserve = "reserve"
)

// Outcomes of a repair: the outcome label of its metrics.
const (
	repairDone      = "done"      // a retry succeeded
	repairExpired   = "expired"   // the lease ran out first; expiry gave the hold back
	repairAbandoned = "abandoned" // the ledger closed first, or too many repairs were pending
)

// MaxRepairs bounds the failed calls a Redis ledger retries at once. A repair
// beyond it is abandoned (counted and logged), and its reservation is held
// until its lease expires, as if it had never been retried.
const MaxRepairs = 10_000

// Backoff between the attempts of a repair: it doubles from the first to the
// last, each wait drawn between half and all of it.
const (
	repairFirstBackoff = 50 * time.Millisecond
	repairMaxBackoff   = 2 * time.Second
)

// repairs retries, in the background, the settles and cancels of a Redis
// ledger that failed, and cancels the reserves whose outcome is unknown,
// until each succeeds or its reservation's lease is gone (then the retry is
// pointless: the next script that purges gives the hold back). Each repair is
// one goroutine whose life ends with its lease, or with Close.
//
// A settle or cancel is idempotent (the settle script ends a hold once), and
// the cancel of a reservation never made leaves a tombstone that keeps its
// reserve from committing later (scripts.go), so a repair can be repeated,
// and can overtake the call it repairs, without counting anything twice.
type repairs struct {
	log *zap.Logger

	retries  *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	pending  prometheus.GaugeFunc

	mu       sync.Mutex
	n        int  // repairs running
	closed   bool // Close was called
	stop     chan struct{}
	finalCtx context.Context // bounds the last attempt after Close; set before stop closes
	wg       sync.WaitGroup
}

func newRepairs(log *zap.Logger, reg prometheus.Registerer) (*repairs, error) {
	if log == nil {
		log = zap.NewNop()
	}
	rp := &repairs{log: log, stop: make(chan struct{})}
	rp.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_budget_ledger_retries_total",
		Help: "Attempts to repeat a budget ledger call that failed, by operation: settle, cancel, or reserve (the cancel of a reserve that timed out).",
	}, []string{"op"})
	rp.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_budget_ledger_repairs_total",
		Help: "Failed budget ledger calls retried in the background, by operation and outcome: done (a retry succeeded), expired (the lease ran out first), abandoned (shutdown, or too many pending).",
	}, []string{"op", "outcome"})
	rp.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_budget_ledger_repairs_pending",
		Help: "Failed budget ledger calls being retried now.",
	}, func() float64 { return float64(rp.count()) })
	for _, op := range []string{opSettle, opCancel, opReserve} {
		rp.retries.WithLabelValues(op)
		for _, o := range []string{repairDone, repairExpired, repairAbandoned} {
			rp.outcomes.WithLabelValues(op, o)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{rp.retries, rp.outcomes, rp.pending} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return rp, nil
}

func (rp *repairs) count() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.n
}

// retry repeats the settle (actual set) or cancel (actual nil) of r, made at
// now, which failed with cause.
func (rp *repairs) retry(ctx context.Context, l *RedisLedger, op string, r *Reservation, actual *Actual, now time.Time, cause error) {
	rp.retryFunc(ctx, op, r.id, r.Expires(), now, cause, func(ctx context.Context) error { return l.runSettle(ctx, r, actual, now) })
}

// retryOp repeats the settle script op so (a block's close) of the block
// id, whose lease expires at expires, made at now, which failed with cause.
func (rp *repairs) retryOp(ctx context.Context, l *RedisLedger, op string, so *settleOp, id string, expires, now time.Time, cause error) {
	rp.retryFunc(ctx, op, id, expires, now, cause, func(ctx context.Context) error { return l.runOp(ctx, so) })
}

// retryFunc repeats attempt, for the reservation or block id whose lease
// expires at expires, until it succeeds or the lease is over.
func (rp *repairs) retryFunc(ctx context.Context, op, id string, expires, now time.Time, cause error, attempt func(context.Context) error) {
	left := expires.Sub(now)
	fields := []zap.Field{zap.String("op", op), zap.String("reservation", id), zap.Error(cause)}
	if left <= 0 {
		rp.outcomes.WithLabelValues(op, repairExpired).Inc()
		rp.log.Warn("budget ledger call failed after its lease expired; not retried", fields...)
		return
	}
	rp.mu.Lock()
	if rp.closed || rp.n >= MaxRepairs {
		rp.mu.Unlock()
		rp.outcomes.WithLabelValues(op, repairAbandoned).Inc()
		rp.log.Error("budget ledger call failed and cannot be retried (shutting down, or too many retries pending); its reservation is held until its lease expires", fields...)
		return
	}
	rp.n++
	rp.wg.Add(1)
	rp.mu.Unlock()
	rp.log.Warn("budget ledger call failed; retrying in the background until its lease expires", append(fields, zap.Duration("lease_left", left))...)
	// The lease's end on this process's clock: now is the caller's instant,
	// which may be any clock.
	deadline := time.Now().Add(left)
	go rp.run(context.WithoutCancel(ctx), op, id, attempt, deadline)
}

// undoReserve cancels the reserve of call, made at now, which failed with
// cause, unless cause shows the call never left this process.
func (rp *repairs) undoReserve(ctx context.Context, l *RedisLedger, call *reserveCall, now time.Time, cause error) {
	if neverSent(cause) {
		return
	}
	r := call.reservation(l.leaseTTL)
	r.done.Store(true)
	rp.retry(ctx, l, opReserve, r, nil, now, cause)
}

// neverSent reports whether err shows that a command was not written to
// Redis: no connection could be had.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.As(err, &op) && op.Op == "dial"
}

func (rp *repairs) run(ctx context.Context, op, id string, attempt func(context.Context) error, deadline time.Time) {
	outcome, attempts := repairAbandoned, 0
	var lastErr error
	defer func() {
		rp.mu.Lock()
		rp.n--
		rp.mu.Unlock()
		rp.outcomes.WithLabelValues(op, outcome).Inc()
		fields := []zap.Field{zap.String("op", op), zap.String("reservation", id), zap.Int("attempts", attempts)}
		switch outcome {
		case repairDone:
			rp.log.Info("budget ledger call retried successfully", fields...)
		case repairExpired:
			rp.log.Warn("budget ledger call still failing when its lease expired; expiry gives the hold back", append(fields, zap.Error(lastErr))...)
		default:
			rp.log.Error("budget ledger call abandoned at shutdown; its reservation is held until its lease expires", append(fields, zap.Error(lastErr))...)
		}
		rp.wg.Done()
	}()
	backoff := repairFirstBackoff
	timer := time.NewTimer(jitter(backoff))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-rp.stop:
			// Shutting down: one last attempt, within Close's deadline.
			attempts++
			rp.retries.WithLabelValues(op).Inc()
			if lastErr = attempt(rp.finalCtx); lastErr == nil {
				outcome = repairDone
			}
			return
		}
		if time.Now().After(deadline) {
			outcome = repairExpired
			return
		}
		attempts++
		rp.retries.WithLabelValues(op).Inc()
		if lastErr = attempt(ctx); lastErr == nil {
			outcome = repairDone
			return
		}
		backoff = min(2*backoff, repairMaxBackoff)
		timer.Reset(jitter(backoff))
	}
}

// jitter returns a wait between half of d and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// close makes every repair try once more within ctx, and waits for them.
func (rp *repairs) close(ctx context.Context) error {
	rp.mu.Lock()
	if !rp.closed {
		rp.closed = true
		rp.finalCtx = ctx
		close(rp.stop)
	}
	rp.mu.Unlock()
	done := make(chan struct{})
	go func() {
		rp.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the ledger's budget blocks that have no request in flight
// (Flush) and ends the ledger's background retries: each failed call still
// pending is tried once more within ctx, and given up if that fails (its
// reservation is then held until its lease expires). Close returns when
// they are done, or ctx's error. It does not close the Redis client, which
// the caller owns; call it before closing the client. Settles and cancels
// that fail after Close are not retried.
func (l *RedisLedger) Close(ctx context.Context) error {
	return errors.Join(l.closeBlocks(ctx), l.repairs.close(ctx))
}

// PendingRepairs returns how many failed calls the ledger is retrying now.
func (l *RedisLedger) PendingRepairs() int { return l.repairs.count() }

package budget

import (
	"context"
	"sync"
	"time"
)

// DefaultSettleBatch is the RedisOptions.SettleBatch that `tollgate serve`
// uses: a settle's holds and lease stay counted up to this much longer (an
// over-count, never an under-count), and at a couple of hundred requests a
// second nearly every settle rides in the next request's reserve call.
const DefaultSettleBatch = 10 * time.Millisecond

// settleBatchMax caps the settles of one script call.
const settleBatchMax = 128

// settleJob is one settle or cancel waiting for its batch.
type settleJob struct {
	op   *settleOp
	done chan error // receives the job's outcome once
}

// settleBatch is the settles that go to Redis in one script call.
type settleBatch struct {
	jobs []*settleJob
	full chan struct{} // closed when the batch is sent before its delay is out
}

// finish tells each job of the batch its outcome.
func (b *settleBatch) finish(err error) {
	for _, j := range b.jobs {
		j.done <- err
	}
}

// settleBatcher gathers settles and cancels that arrive within a short delay
// of each other into one settle script call: one round trip, and one script
// for Redis, for all of them. Each settle in it is applied as when run
// alone. A reserve that goes to Redis meanwhile takes the batch along in its
// pipeline (one round trip for both); otherwise the first settle of a batch
// waits out the delay and sends it (or the settle that fills it does, at
// once). It needs no goroutine of its own.
type settleBatcher struct {
	delay time.Duration
	mu    sync.Mutex
	open  *settleBatch // taking settles, or nil
}

// take removes the open batch, if any, for a reserve to send it.
func (b *settleBatcher) take() *settleBatch {
	if b.delay <= 0 {
		return nil
	}
	b.mu.Lock()
	batch := b.open
	b.open = nil
	b.mu.Unlock()
	if batch != nil {
		close(batch.full) // its timer need not wait any longer
	}
	return batch
}

// runBatched runs the settle op in the current batch and returns its
// outcome, or ctx's error if ctx ends first (the settle may still run; a
// settle is safe to repeat).
func (l *RedisLedger) runBatched(ctx context.Context, op *settleOp) error {
	b := &l.batcher
	job := &settleJob{op: op, done: make(chan error, 1)}
	b.mu.Lock()
	batch := b.open
	first := batch == nil
	if first {
		batch = &settleBatch{full: make(chan struct{})}
		b.open = batch
	}
	batch.jobs = append(batch.jobs, job)
	full := len(batch.jobs) >= settleBatchMax
	if full {
		b.open = nil
	}
	b.mu.Unlock()

	switch {
	case full:
		close(batch.full)
		go l.sendBatch(ctx, batch)
	case first:
		go func() {
			t := time.NewTimer(b.delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-batch.full:
				return
			}
			b.mu.Lock()
			mine := b.open == batch
			if mine {
				b.open = nil
			}
			b.mu.Unlock()
			if mine {
				l.sendBatch(ctx, batch)
			}
		}()
	}
	select {
	case err := <-job.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendBatch runs a batch's settles in one script call within the ledger's
// timeout, whoever's context asked, and tells each its outcome.
func (l *RedisLedger) sendBatch(ctx context.Context, batch *settleBatch) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	ops := make([]*settleOp, len(batch.jobs))
	for i, j := range batch.jobs {
		ops[i] = j.op
	}
	keys, args := l.settleScriptCall(ops)
	// Run loads the script again (EVAL) if a restarted Redis lost it. A
	// settle that ran the first time finds no hold the second, and counts
	// once.
	batch.finish(l.settle.Run(ctx, l.c, keys, args...).Err())
}

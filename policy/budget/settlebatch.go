package budget

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultSettleBatch is the RedisOptions.SettleBatch that `tollgate serve`
// uses: a settle's holds and lease stay counted up to this much longer (an
// over-count, never an under-count), and Redis answers two or three settles
// with one read and one write at a couple of hundred requests a second.
const DefaultSettleBatch = 10 * time.Millisecond

// settleBatchMax caps the settles of one pipeline.
const settleBatchMax = 128

// settleJob is one settle or cancel waiting for its batch.
type settleJob struct {
	keys []string
	args []any
	done chan error // receives the job's outcome once
}

// settleBatch is the settles that go to Redis in one pipeline.
type settleBatch struct {
	jobs []*settleJob
	full chan struct{} // closed when the batch is sent before its delay is out
}

// settleBatcher gathers settles and cancels that arrive within a short delay
// of each other into one pipeline: one round trip, and one read and one write
// for Redis, for all of them. Each script in it is atomic on its own, as
// when run alone. It needs no goroutine of its own: the first settle of a
// batch waits out the delay and sends the batch (or the settle that fills
// it does, at once).
type settleBatcher struct {
	delay time.Duration
	mu    sync.Mutex
	open  *settleBatch // taking settles, or nil
}

// runBatched runs the settle script with keys and args in the current batch
// and returns its outcome, or ctx's error if ctx ends first (the settle may
// still run; a settle is safe to repeat).
func (l *RedisLedger) runBatched(ctx context.Context, keys []string, args []any) error {
	b := &l.batcher
	job := &settleJob{keys: keys, args: args, done: make(chan error, 1)}
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

// sendBatch runs a batch's settles in one pipeline within the ledger's
// timeout, whoever's context asked, and tells each its outcome.
func (l *RedisLedger) sendBatch(ctx context.Context, batch *settleBatch) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		pipe := l.c.Pipeline()
		cmds := make([]*redis.Cmd, len(batch.jobs))
		for i, j := range batch.jobs {
			cmds[i] = l.settle.EvalSha(ctx, pipe, j.keys, j.args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// A restarted Redis lost the script: load it and go again. A
			// settle that ran the first time finds no hold the second, and
			// counts once.
			if err = l.loadScripts(ctx, l.settle); err == nil {
				continue
			}
		}
		for i, j := range batch.jobs {
			e := cmds[i].Err()
			var reply redis.Error
			if e == nil && err != nil && !errors.As(err, &reply) {
				e = err // the pipeline failed as a whole (connection, timeout)
			}
			j.done <- e
		}
		return
	}
}

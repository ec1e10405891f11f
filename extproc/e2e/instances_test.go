package e2e

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// TestTwoInstancesShareOneCeiling runs two complete Tollgate stacks (two ext_proc
// servers behind two Envoy harnesses) on one Redis, each with its own ledger and
// client. Requests fired at both at once are held to one limit.
func TestTwoInstancesShareOneCeiling(t *testing.T) {
	rdb := redistest.Start(t)
	const limit = 5
	opts := func() stackOptions {
		return stackOptions{ledger: redisLedgerOn(t, rdb.Addr()), keyBudgets: `[{requests: 5, per: hour}]`}
	}
	stacks := []*stack{newStackWith(t, opts()), newStackWith(t, opts())}

	var ok, denied atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(s *stack) {
			defer wg.Done()
			_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
			var e *anthropic.Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &e) && e.StatusCode == 429:
				denied.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}(stacks[i%2])
	}
	wg.Wait()
	if ok.Load() != limit || denied.Load() != 16-limit {
		t.Errorf("admitted %d, denied %d; want %d and %d", ok.Load(), denied.Load(), limit, 16-limit)
	}
	served := len(stacks[0].fake.Requests()) + len(stacks[1].fake.Requests())
	if served != limit {
		t.Errorf("providers served %d requests", served)
	}
}

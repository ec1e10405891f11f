package budget

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// flushingLedger is a Redis ledger with blocks whose Read first flushes
// the blocks of every ledger of its store (the contract's instances): what
// each block holds idle goes back, as it does after a block's life, so that
// Read sees what the requests themselves use.
type flushingLedger struct {
	*RedisLedger
	mu  *sync.Mutex
	all *[]*RedisLedger
}

func (f flushingLedger) Read(ctx context.Context, q Query, now time.Time) ([]Balance, error) {
	f.mu.Lock()
	all := append([]*RedisLedger(nil), *f.all...)
	f.mu.Unlock()
	for _, l := range all {
		if err := l.Flush(ctx, now); err != nil {
			return nil, err
		}
	}
	return f.RedisLedger.Read(ctx, q, now)
}

// blockOpener opens ledgers with blocks of up to 32 requests (BlockLife an
// hour, so that only Flush closes an idle block) on srv, each test with a
// prefix of its own.
func blockOpener(srv *redistest.Server, name string, settleBatch time.Duration) opener {
	var n atomic.Int64
	return func(t *testing.T, leaseTTL time.Duration) func() Ledger {
		prefix := fmt.Sprintf("%s%d", name, n.Add(1))
		var mu sync.Mutex
		var all []*RedisLedger
		return func() Ledger {
			l := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{
				Prefix: prefix, LeaseTTL: leaseTTL, Timeout: 10 * time.Second,
				SettleBatch: settleBatch, Blocks: DefaultBlocks, BlockLife: time.Hour,
			})
			mu.Lock()
			all = append(all, l)
			mu.Unlock()
			return flushingLedger{RedisLedger: l, mu: &mu, all: &all}
		}
	}
}

// TestRedisLedgerContractBlocks runs the contract with budget blocks, alone
// and with settles batched.
func TestRedisLedgerContractBlocks(t *testing.T) {
	srv := redistest.Start(t)
	t.Run("Alone", func(t *testing.T) { runContract(t, blockOpener(srv, "blocks", 0)) })
	t.Run("SettleBatch", func(t *testing.T) { runContract(t, blockOpener(srv, "blocksbatch", 2*time.Millisecond)) })
}

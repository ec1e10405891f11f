package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// TestBudgetBlocks runs requests through the stack on a Redis ledger with
// budget blocks, as `tollgate serve` has it: two models in turn, so that
// early guesses are kept and replaced. The requests are admitted from
// blocks, and once the ledger closes its blocks Redis holds exactly what
// the records say: their cost, their count, no slot in flight.
func TestBudgetBlocks(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	ledger, err := budget.NewRedisLedger(c, budget.RedisOptions{Timeout: time.Second, SettleBatch: budget.DefaultSettleBatch, Blocks: budget.DefaultBlocks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close(context.Background()) }) //nolint:errcheck // retries end with the test
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 100, per: day}, {requests: 1000, per: minute}, {concurrent: 100}]`})
	const n = 6
	for i := range n {
		model := "claude-sonnet-4-5"
		if i%3 == 2 {
			model = "claude-haiku-4-5"
		}
		if _, err := s.client.Messages.New(context.Background(), hello(model), option.WithMaxRetries(0)); err != nil {
			t.Fatal(err)
		}
	}
	recs := s.records.wait(t, n)
	var cost int64
	fromBlocks := 0
	for _, r := range recs {
		cost += r.CostPicoUSD
		if strings.Contains(r.ReservationID, "/") {
			fromBlocks++
		}
	}
	if fromBlocks == 0 {
		t.Errorf("no request was admitted from a block: %d records", len(recs))
	}
	limits := []budget.Limit{{Unit: budget.USD, Per: budget.Day, Max: 100e12}, {Unit: budget.Requests, Per: budget.Minute, Max: 1000}, {Unit: budget.Concurrent, Max: 100}}
	var got []int64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := ledger.Flush(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		got = used(t, ledger, limits...)
		if got[0] == cost && got[1] == n && got[2] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the blocks closed: ledger used %v; want the records' cost %d, %d requests, 0 in flight", got, cost, n)
		}
	}
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

var aliceKey = budget.Scope{Kind: budget.ScopeKey, Name: "alice"}

// used reads what the key's limits have used, reservations included.
func used(t *testing.T, l budget.Ledger, limits ...budget.Limit) []int64 {
	t.Helper()
	bs, err := l.Read(context.Background(), budget.Query{Scope: aliceKey, Limits: limits}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Used
	}
	return out
}

func apiError(t *testing.T, err error) *anthropic.Error {
	t.Helper()
	var e *anthropic.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an API error, got %v", err)
	}
	return e
}

// TestRateLimit: two requests per minute; the third is refused with a 429 in
// Anthropic's format, a retry-after, and a message naming the scope. The
// refusal changes no counter.
func TestRateLimit(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{requests: 2, per: minute}]`})
	for i := 0; i < 2; i++ {
		var resp *http.Response
		if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Header.Get("x-tollgate-budget-remaining"), "scope=key:alice") {
			t.Errorf("x-tollgate-budget-remaining = %q", resp.Header.Get("x-tollgate-budget-remaining"))
		}
	}
	var resp *http.Response
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	e := apiError(t, err)
	if e.StatusCode != 429 || e.Type() != "rate_limit_error" || !strings.Contains(e.Message, "key:alice") || !strings.Contains(e.Message, "rate limit") {
		t.Errorf("got %d %s %q", e.StatusCode, e.Type(), e.Message)
	}
	if resp.Header.Get("retry-after") == "" {
		t.Error("a rate limit must say when to retry")
	}
	if n := len(s.fake.Requests()); n != 2 {
		t.Errorf("the provider saw %d requests", n)
	}
	recs := s.records.wait(t, 3)
	denied := 0
	for _, r := range recs {
		if r.Outcome == records.OutcomeDenied && r.BudgetOutcome == "denied:key:alice" && r.Status == 429 {
			denied++
		}
	}
	if denied != 1 {
		t.Errorf("records: %+v", recs)
	}
	if u := used(t, ledger, budget.Limit{Unit: budget.Requests, Per: budget.Minute, Max: 2}); u[0] != 2 {
		t.Errorf("the denied request was counted: used %d", u[0])
	}
}

// TestSpendBudgetHasNoRetryAfter: a USD budget smaller than one request's worst
// case refuses it at once, says why, and gives no retry-after (waiting will
// not help before the window resets).
func TestSpendBudgetHasNoRetryAfter(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{usd: 0.01, per: day}]`})
	var resp *http.Response
	_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithResponseInto(&resp))
	e := apiError(t, err)
	if e.StatusCode != 429 || e.Type() != "rate_limit_error" || !strings.Contains(e.Message, "budget exceeded") || !strings.Contains(e.Message, "max_tokens") {
		t.Errorf("got %d %s %q", e.StatusCode, e.Type(), e.Message)
	}
	if ra := resp.Header.Get("retry-after"); ra != "" {
		t.Errorf("retry-after %q on a spend budget", ra)
	}
}

// TestSpendIsSettled: after a request, the day's spend is its actual cost.
func TestSpendIsSettled(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 10, per: day}, {tokens: 1000000, per: day}, {concurrent: 4}]`})
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"), option.WithMaxRetries(0)); err != nil {
		t.Fatal(err)
	}
	r := s.records.wait(t, 1)[0]
	got := used(t, ledger,
		budget.Limit{Unit: budget.USD, Per: budget.Day, Max: 10 * 1e12},
		budget.Limit{Unit: budget.Tokens, Per: budget.Day, Max: 1_000_000},
		budget.Limit{Unit: budget.Concurrent, Max: 4})
	if got[0] != r.CostPicoUSD || got[1] != r.Usage.TotalTokens() || got[2] != 0 {
		t.Errorf("ledger used %v; record cost %d tokens %d, concurrency 0", got, r.CostPicoUSD, r.Usage.TotalTokens())
	}
	if r.BudgetOutcome != "allowed" {
		t.Errorf("budget outcome %q", r.BudgetOutcome)
	}
}

// TestCancelledStreamsFreeTheirSlots opens and cancels streams mid-response
// (Claude Code's speculative stream): the concurrency slots all come back.
func TestCancelledStreamsFreeTheirSlots(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	const n = 30
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{concurrent: 2}]`})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
				strings.NewReader(`{"model":"claude-sonnet-4-5-slow","max_tokens":10,"stream":true,"messages":[]}`))
			req.Header.Set("x-api-key", gatewayKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode == 200 {
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: content_block_delta") {
				}
			}
		}()
		if i%2 == 1 {
			wg.Wait() // at most two in flight, as the limit allows
		}
	}
	wg.Wait()
	s.records.wait(t, n)
	limit := budget.Limit{Unit: budget.Concurrent, Max: 2}
	if u := used(t, ledger, limit); u[0] != 0 {
		t.Errorf("%d slots still held after %d cancelled streams", u[0], n)
	}
}

// downLedger returns a Redis budget ledger whose Redis has stopped, with
// short timeouts; it is closed when the test ends, after its stacks.
func downLedger(t *testing.T) *budget.RedisLedger {
	t.Helper()
	rdb := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: rdb.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	ledger, err := budget.NewRedisLedger(client, budget.RedisOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close(context.Background()) }) //nolint:errcheck // retries end with the test
	rdb.Stop()
	return ledger
}

// TestLedgerDown stops Redis under the ledger: with budget_fail_mode closed a
// request is refused with Anthropic's overloaded error; with open it is served
// and recorded as unmetered.
func TestLedgerDown(t *testing.T) {
	ledger := downLedger(t)
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 5, per: day}]`,
				policyTail: "budget_fail_mode: " + mode + "\n"})
			// The second request is checked early, from the first: the same
			// failure, the same answer.
			for i := 1; i <= 2; i++ {
				_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
				if mode == "closed" {
					e := apiError(t, err)
					if e.StatusCode != 503 || e.Type() != "overloaded_error" || !strings.Contains(e.Message, "cannot check budgets") {
						t.Errorf("request %d: got %d %s %q", i, e.StatusCode, e.Type(), e.Message)
					}
					if n := len(s.fake.Requests()); n != 0 {
						t.Errorf("the provider saw %d requests", n)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if r := s.records.wait(t, i)[i-1]; r.BudgetOutcome != "unmetered" || r.Outcome != records.OutcomeOK {
					t.Errorf("record %+v", r)
				}
			}
			if n := metricValue(t, s.reg, "tollgate_budget_early_reservations_total", map[string]string{"outcome": "failed"}); n != 1 {
				t.Errorf("%v failed early reservations, want 1", n)
			}
		})
	}
}

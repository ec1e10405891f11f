package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// metricValue returns the value of a counter, or the sample count of a
// histogram, of the series of name whose labels include want; 0 if none.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// redisLedger returns a budget ledger on a fresh redis-server.
func redisLedger(t *testing.T) *budget.RedisLedger {
	t.Helper()
	return redisLedgerOn(t, redistest.Start(t).Addr())
}

// redisLedgerOn returns a budget ledger, with its own client, on the Redis at
// addr: one Tollgate instance's view of a shared store.
func redisLedgerOn(t *testing.T, addr string) *budget.RedisLedger {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	l, err := budget.NewRedisLedger(c, budget.RedisOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) }) //nolint:errcheck // retries end with the test
	return l
}

// TestEarlyReservations runs the budget check at the request headers from
// the key's previous request, on Redis: a request like the previous one
// keeps its early reservation (allowed or refused), another model replaces
// it, and a request refused for its body gives it back, request count
// included.
func TestEarlyReservations(t *testing.T) {
	ledger := redisLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{requests: 3, per: minute}, {usd: 100, per: day}, {concurrent: 2}]`})
	early := func(outcome string) float64 {
		return metricValue(t, s.reg, "tollgate_budget_early_reservations_total", map[string]string{"outcome": outcome})
	}
	perMinute := budget.Limit{Unit: budget.Requests, Per: budget.Minute, Max: 3}
	concurrent := budget.Limit{Unit: budget.Concurrent, Max: 2}

	for _, model := range []string{"claude-sonnet-4-5", "claude-sonnet-4-5"} {
		if _, err := s.client.Messages.New(context.Background(), hello(model)); err != nil {
			t.Fatal(err)
		}
	}
	if got := early("kept"); got != 1 {
		t.Errorf("kept %v early reservations after two alike requests, want 1 (the first has nothing to guess from)", got)
	}

	// A body Tollgate refuses: its early reservation is cancelled when the
	// stream ends, and its request is not counted.
	req, _ := http.NewRequest("POST", s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[`))
	req.Header.Set("x-api-key", gatewayKey)
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("malformed body: status %d", resp.StatusCode)
	}
	waitFor(t, func() bool { return early("cancelled") == 1 })
	if u := used(t, ledger, perMinute, concurrent); u[0] != 2 || u[1] != 0 {
		t.Errorf("after the refused body: %d requests this minute, %d in flight; want 2 and 0", u[0], u[1])
	}

	// Another model: the guess is given back and the request reserved in one
	// round trip; it is the third request of the minute.
	if _, err := s.client.Messages.New(context.Background(), hello("claude-haiku-4-5")); err != nil {
		t.Fatal(err)
	}
	if got := early("replaced"); got != 1 {
		t.Errorf("replaced %v, want 1", got)
	}

	// The fourth is refused by the early decision itself.
	_, err = s.client.Messages.New(context.Background(), hello("claude-haiku-4-5"))
	if e := apiError(t, err); e.StatusCode != 429 {
		t.Errorf("fourth request: %d, want 429", e.StatusCode)
	}
	if got := early("kept"); got != 2 {
		t.Errorf("kept %v, want 2", got)
	}
	if u := used(t, ledger, perMinute, concurrent); u[0] != 3 || u[1] != 0 {
		t.Errorf("at the end: %d requests this minute, %d in flight; want 3 and 0", u[0], u[1])
	}
	if n := len(s.fake.Requests()); n != 3 {
		t.Errorf("the provider saw %d requests, want 3", n)
	}
}

// waitFor polls cond (poll) and fails the test when it never holds: for
// what happens when a stream ends, after the client has its answer.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("condition not met within %v", pollFor)
	}
}

// pollFor is how long poll waits: generous, for machines under load.
const pollFor = 20 * time.Second

// poll calls cond until it holds, for up to pollFor, and reports whether it
// did.
func poll(cond func() bool) bool {
	for deadline := time.Now().Add(pollFor); !cond(); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestEarlyGuessRefusedRequestFits: a guess the budget refuses does not
// refuse a request that fits: after a request with a large max_tokens is
// refused, a small one is reserved at the body and served.
func TestEarlyGuessRefusedRequestFits(t *testing.T) {
	ledger := redisLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 0.05, per: day}]`})
	big := hello("claude-sonnet-4-5")
	big.MaxTokens = 16000
	_, err := s.client.Messages.New(context.Background(), big)
	if e := apiError(t, err); e.StatusCode != 429 {
		t.Fatalf("max_tokens 16000 on $0.05: %d, want 429", e.StatusCode)
	}
	small := hello("claude-sonnet-4-5")
	small.MaxTokens = 100
	if _, err := s.client.Messages.New(context.Background(), small); err != nil {
		t.Fatalf("max_tokens 100 on $0.05: %v", err)
	}
	if n := metricValue(t, s.reg, "tollgate_budget_early_reservations_total", map[string]string{"outcome": "retried"}); n != 1 {
		t.Errorf("%v retried early reservations, want 1", n)
	}
}

// TestEarlyGuessesBySize: an agent interleaves long requests to its main
// model with short side requests to another; each size keeps its own guess,
// so after one of each every request is guessed right.
func TestEarlyGuessesBySize(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: redisLedger(t), keyBudgets: `[{usd: 100, per: day}, {requests: 100, per: minute}]`})
	long := hello("claude-sonnet-4-5")
	long.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(strings.Repeat("context ", 1000)))}
	short := hello("claude-haiku-4-5")
	short.MaxTokens = 512
	for i := 0; i < 3; i++ {
		for _, p := range []anthropic.MessageNewParams{long, short} {
			if _, err := s.client.Messages.New(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first long request has nothing to guess from, the first short one
	// only the long one's guess; the four after them are all kept.
	got := map[string]float64{}
	for _, o := range []string{"kept", "replaced", "retried"} {
		got[o] = metricValue(t, s.reg, "tollgate_budget_early_reservations_total", map[string]string{"outcome": o})
	}
	if got["kept"] != 4 || got["replaced"] != 1 || got["retried"] != 0 {
		t.Errorf("early reservations %v; want 4 kept and 1 replaced", got)
	}
}

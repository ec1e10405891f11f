package budget

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// newRedisClient returns a client of addr with context deadlines honoured.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func newRedisLedger(t testing.TB, c redis.UniversalClient, opts RedisOptions) *RedisLedger {
	t.Helper()
	l, err := NewRedisLedger(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Load(bg); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRedisLedgerContract(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, leaseTTL time.Duration) func() Ledger {
		// Each test has a prefix of its own on the shared server; each
		// instance has a client (a connection pool) of its own, like a
		// separate process. The generous timeout keeps -race runs with
		// hundreds of goroutines from reading as an outage.
		prefix := fmt.Sprintf("test%d", n.Add(1))
		return func() Ledger {
			return newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: prefix, LeaseTTL: leaseTTL, Timeout: 10 * time.Second})
		}
	})
}

// TestRedisDown checks that a stopped or hung Redis gives ErrUnavailable
// within the timeout, and that the ledger works again once Redis is back,
// scripts reloaded.
func TestRedisDown(t *testing.T) {
	t.Run("PerRequest", func(t *testing.T) { testRedisDown(t, RedisOptions{Timeout: 200 * time.Millisecond}) })
	t.Run("Blocks", func(t *testing.T) {
		testRedisDown(t, RedisOptions{Timeout: 200 * time.Millisecond, Blocks: DefaultBlocks})
	})
}

func testRedisDown(t *testing.T, opts RedisOptions) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, opts)
	req := Request{Scopes: one(keyA, Limit{Requests, Minute, 100}, Limit{Concurrent, NoWindow, 5})}
	r := mustAllow(t, l, req, t0)

	srv.Stop()
	start := time.Now()
	_, err := l.Reserve(bg, req, t0)
	t.Logf("Reserve with Redis stopped: %v after %v", err, time.Since(start))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Reserve with Redis stopped: %v, want ErrUnavailable", err)
	}
	// Requests at once (with blocks, all but one wait for the one that opens
	// the next block, at most the timeout) each get ErrUnavailable.
	var wg sync.WaitGroup
	start = time.Now()
	for range 10 {
		wg.Go(func() {
			if _, err := l.Reserve(bg, req, t0); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Reserve at once with Redis stopped: %v, want ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
	t.Logf("10 Reserves at once with Redis stopped: all done after %v", time.Since(start))
	// Renew before Settle: a settled reservation needs no renewal.
	renewErr := l.Renew(bg, r, t0)
	for name, err := range map[string]error{
		"Renew":  renewErr,
		"Settle": l.Settle(bg, r, Actual{}, t0),
		"Reset":  l.Reset(bg, Query{Scope: keyA, Limits: req.Scopes[0].Limits}, t0),
	} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis stopped: %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := l.Read(bg, Query{Scope: keyA, Limits: req.Scopes[0].Limits}, t0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Read with Redis stopped: %v, want ErrUnavailable", err)
	}

	// The restarted Redis is empty: no script is cached, so the first call
	// gets NOSCRIPT and runs the script with EVAL.
	srv.Restart()
	mustAllow(t, l, req, t0)
	// The settle that failed during the outage is retried by the ledger.
	if err := l.Close(bg); err != nil {
		t.Fatal(err)
	}
	if u, _ := used(t, l, keyA, Limit{Concurrent, NoWindow, 5}, nil, t0); u != 1 {
		t.Errorf("%d slots held; want 1, the reserve after the restart", u)
	}
}

// TestRedisHung checks that a Redis that accepts connections but never
// answers costs one timeout, not the client's read timeout.
func TestRedisHung(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: lis.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	l, err := NewRedisLedger(c, RedisOptions{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = l.Reserve(bg, Request{Scopes: one(keyA, Limit{Requests, Minute, 1})}, t0)
	t.Logf("Reserve against a hung Redis: %v after %v", err, time.Since(start))
	var ne net.Error
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("err = %v, want ErrUnavailable from a timeout", err)
	}
}

// TestRedisScriptFlush checks the reload after SCRIPT FLUSH.
func TestRedisScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{})
	req := Request{Scopes: one(keyA, Limit{Requests, Minute, 2})}
	mustAllow(t, l, req, t0)
	if err := c.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	mustAllow(t, l, req, t0)
	mustDeny(t, l, req, t0)

	// A Replace sends both scripts in one pipeline: after a flush it loads
	// them and goes again, and the cancel still counts once.
	l = newRedisLedger(t, c, RedisOptions{Prefix: "flush2"})
	guess := mustAllow(t, l, req, t0)
	if err := c.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := l.Replace(bg, guess, req, t0)
	if err != nil || !d.Allowed {
		t.Fatalf("Replace after SCRIPT FLUSH: %+v, %v", d, err)
	}
	if u, _ := used(t, l, keyA, Limit{Requests, Minute, 2}, nil, t0); u != 1 {
		t.Errorf("%d requests counted after the replace; want 1", u)
	}
}

// TestRedisKeyLayout checks that every key shares the ledger's hash tag
// (one Redis Cluster slot), that scope names cannot break out of it, and
// that keys of windows expire.
func TestRedisKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Prefix: "tg:budget"})
	req := Request{
		Scopes: []ScopeLimits{
			{Scope: Scope{ScopeUser, "eve}{evil:\n\tx"}, Limits: []Limit{{USD, Day, usd("1")}, {Tokens, Minute, 100_000}, {Concurrent, NoWindow, 2}}},
			{Scope: Scope{ScopeSession, strings.Repeat("s", 300)}, Limits: []Limit{{USD, Session, usd("1")}}},
			{Scope: Global, Limits: []Limit{{Requests, Hour, 100}}},
		},
		CostPicoUSD: 10, Tokens: 10,
	}
	r := mustAllow(t, l, req, time.Now())
	keys, err := c.Keys(bg, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keys: %q", keys)
	if len(keys) < 7 {
		t.Errorf("only %d keys", len(keys))
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{tg:budget}:") || strings.ContainsAny(k[len("{tg:budget}"):], "{}\n\t") || len(k) > 200 {
			t.Errorf("key %q escapes the hash tag or is too long", k)
		}
		if k == "{tg:budget}:holds" {
			continue
		}
		if ttl, err := c.PTTL(bg, k).Result(); err != nil || ttl <= 0 {
			t.Errorf("key %q has no expiry (%v, %v)", k, ttl, err)
		}
	}
	settle(t, l, r, Actual{CostPicoUSD: 5, Tokens: 5}, time.Now())
	if n, _ := c.ZCard(bg, "{tg:budget}:holds").Result(); n != 0 {
		t.Errorf("%d holds left after settle", n)
	}
}

// TestRedisReserveRetried checks that a reserve script run twice with the
// same arguments, as a client retry after a lost reply does, counts once.
func TestRedisReserveRetried(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{})
	day := Limit{USD, Day, usd("1")}
	rate := Limit{Requests, Minute, 10}
	req := Request{Scopes: one(keyA, day, rate), CostPicoUSD: usd("0.25")}
	call := l.reserveCall(&req, t0)
	for i := range 2 {
		reply, err := l.reserve.Run(bg, c, call.keys, call.args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{1, 2}[i]; reply[0] != want {
			t.Errorf("run %d: reply %v, want status %d", i+1, reply, want)
		}
	}
	b := read(t, l, keyA, []Limit{day, rate}, nil, t0)
	if b[0].Held != usd("0.25") || b[1].Used != 1 {
		t.Errorf("after a retried reserve: %+v", b)
	}
}

func TestNewRedisLedgerChecksTheClient(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := NewRedisLedger(c, RedisOptions{}); err == nil {
		t.Error("a client without ContextTimeoutEnabled was accepted")
	}
	cc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer cc.Close()
	if _, err := NewRedisLedger(cc, RedisOptions{Prefix: "a{b}"}); err == nil {
		t.Error("a prefix with braces was accepted")
	}
}

// TestRedisSettleLeavesRequestCountsOut: a request count is final at reserve,
// so a settle's script call carries only the limits it changes (a spend
// counter and a lease here), while a cancel, which takes the counts back,
// carries them all.
func TestRedisSettleLeavesRequestCountsOut(t *testing.T) {
	srv := redistest.Start(t)
	l := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Timeout: 10 * time.Second})
	req := Request{Scopes: one(keyA, Limit{USD, Day, usd("10")}, Limit{Requests, Minute, 100}, Limit{Requests, Day, 100},
		Limit{Concurrent, NoWindow, 5}), CostPicoUSD: usd("1")}
	r := mustAllow(t, l, req, t0)
	op := l.settleOp(r, &Actual{CostPicoUSD: usd("0.5")}, t0)
	if len(op.keys) != 2 || op.args[3] != 2 || len(op.args) != 6+4+1 {
		t.Errorf("settle: %d keys %q, n %v, %d args", len(op.keys), op.keys, op.args[3], len(op.args))
	}
	op = l.settleOp(r, nil, t0)
	if len(op.keys) != 4 || op.args[3] != 4 || len(op.args) != 6+4+6+4+1 {
		t.Errorf("cancel: %d keys %q, n %v, %d args", len(op.keys), op.keys, op.args[3], len(op.args))
	}
	if err := l.Settle(bg, r, Actual{CostPicoUSD: usd("0.5")}, t0); err != nil {
		t.Fatal(err)
	}
	bal, err := l.Read(bg, Query{Scope: keyA, Limits: req.Scopes[0].Limits}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(bal) != 4 || bal[0].Used != usd("0.5") || bal[1].Used != 1 || bal[2].Used != 1 || bal[3].Used != 0 {
		t.Errorf("balances after the settle: %+v", bal)
	}
}

// TestRedisLedgerContractSettleBatch runs the contract suite with settles
// and cancels batched into pipelines.
func TestRedisLedgerContractSettleBatch(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, leaseTTL time.Duration) func() Ledger {
		prefix := fmt.Sprintf("batch%d", n.Add(1))
		return func() Ledger {
			return newRedisLedger(t, newRedisClient(t, srv.Addr()),
				RedisOptions{Prefix: prefix, LeaseTTL: leaseTTL, Timeout: 10 * time.Second, SettleBatch: 2 * time.Millisecond})
		}
	})
}

// scriptCounter records the script calls a client sends: per round trip,
// the first argument of each (for the settle and reserve scripts, the count
// of settles they carry).
type scriptCounter struct {
	mu    sync.Mutex
	trips [][]any
}

func (*scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.record(cmd)
		return next(ctx, cmd)
	}
}
func (p *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.record(cmds...)
		return next(ctx, cmds)
	}
}

func (p *scriptCounter) record(cmds ...redis.Cmder) {
	var trip []any
	for _, c := range cmds {
		if a := c.Args(); c.Name() == "evalsha" || c.Name() == "eval" {
			nkeys, _ := a[2].(int)
			trip = append(trip, a[3+nkeys])
		}
	}
	if trip != nil {
		p.mu.Lock()
		p.trips = append(p.trips, trip)
		p.mu.Unlock()
	}
}

func (p *scriptCounter) get() [][]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.trips)
}

// TestRedisSettleBatchOneScript: settles that arrive together go to Redis
// in one script call; a full batch goes at once, without waiting out the
// delay (an hour here), and each settle is applied.
func TestRedisSettleBatchOneScript(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Timeout: 10 * time.Second, SettleBatch: time.Hour})
	limits := []Limit{{USD, Day, usd("1000")}, {Requests, Minute, 1000}, {Concurrent, NoWindow, 1000}}
	rs := make([]*Reservation, settleBatchMax)
	for i := range rs {
		rs[i] = mustAllow(t, l, Request{Scopes: one(keyA, limits...), CostPicoUSD: usd("1")}, t0)
	}
	sc := &scriptCounter{}
	c.AddHook(sc)
	var wg sync.WaitGroup
	errs := make(chan error, len(rs))
	for _, r := range rs {
		wg.Go(func() { errs <- l.Settle(bg, r, Actual{CostPicoUSD: usd("0.5")}, t0) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := sc.get(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != settleBatchMax {
		t.Errorf("script calls %v, want one of %d settles", got, settleBatchMax)
	}
	bal, err := l.Read(bg, Query{Scope: keyA, Limits: limits}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if bal[0].Used != usd("64") || bal[1].Used != settleBatchMax || bal[2].Used != 0 {
		t.Errorf("balances %+v", bal)
	}
}

// TestRedisReserveTakesTheSettleBatch: settles waiting in their batch go to
// Redis with the next reserve, in its script call, before it (so the reserve
// sees them applied), without waiting out the batch's delay.
func TestRedisReserveTakesTheSettleBatch(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Timeout: 10 * time.Second, SettleBatch: time.Hour})
	req := Request{Scopes: one(keyA, Limit{USD, Day, usd("10")}, Limit{Requests, Minute, 100}, Limit{Concurrent, NoWindow, 2}),
		CostPicoUSD: usd("4")}
	r1, r2 := mustAllow(t, l, req, t0), mustAllow(t, l, req, t0)
	if d := reserve(t, l, req, t0); d.Allowed {
		t.Fatal("a third concurrent request was admitted")
	}
	sc := &scriptCounter{}
	c.AddHook(sc)
	errs := make(chan error, 2)
	go func() { errs <- l.Settle(bg, r1, Actual{CostPicoUSD: usd("1")}, t0) }()
	go func() { errs <- l.Cancel(bg, r2, t0) }()
	// Both wait in the batch (its delay is an hour) until a reserve comes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.batcher.mu.Lock()
		n := 0
		if l.batcher.open != nil {
			n = len(l.batcher.open.jobs)
		}
		l.batcher.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d settles in the batch", n)
		}
		time.Sleep(time.Millisecond)
	}
	// The concurrency slots and the 8 USD held are free for this reserve.
	d := reserve(t, l, Request{Scopes: req.Scopes, CostPicoUSD: usd("8")}, t0)
	if !d.Allowed {
		t.Fatalf("denied after the settles: %+v", d.Denial)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := sc.get()
	if len(got) != 1 || len(got[0]) != 1 || got[0][0] != 2 {
		t.Errorf("script calls %v, want one: the reserve script carrying 2 settles", got)
	}
	bal, err := l.Read(bg, Query{Scope: keyA, Limits: req.Scopes[0].Limits}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Spent 1 (settled) + 8 (held); requests: r1 and the last one (r2's
	// cancel took its count back); one lease.
	if bal[0].Used != usd("9") || bal[1].Used != 2 || bal[2].Used != 1 {
		t.Errorf("balances %+v", bal)
	}
}

// TestRedisSettleDoesNotRecreateCounters: a settle whose counter is gone (it
// expired, or was evicted) leaves it gone, rather than making a counter
// without a TTL that would never go away; the other counters settle.
func TestRedisSettleDoesNotRecreateCounters(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Timeout: 10 * time.Second})
	req := Request{Scopes: []ScopeLimits{
		{Scope: keyA, Limits: []Limit{{USD, Day, usd("10")}}},
		{Scope: teamP, Limits: []Limit{{USD, Month, usd("10")}}},
	}, CostPicoUSD: usd("2")}
	for _, cancel := range []bool{false, true} {
		r := mustAllow(t, l, req, t0)
		gone, _ := l.keys(&r.items[0])
		if err := c.Del(bg, gone).Err(); err != nil {
			t.Fatal(err)
		}
		if cancel {
			if err := l.Cancel(bg, r, t0); err != nil {
				t.Fatal(err)
			}
		} else {
			settle(t, l, r, Actual{CostPicoUSD: usd("1")}, t0)
		}
		if n, err := c.Exists(bg, gone).Result(); err != nil || n != 0 {
			t.Errorf("cancel %v: the counter that was gone exists again (%d, %v)", cancel, n, err)
		}
	}
	bal, err := l.Read(bg, Query{Scope: teamP, Limits: req.Scopes[1].Limits}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if bal[0].Used != usd("1") || bal[0].Held != 0 {
		t.Errorf("the team's counter: %+v, want 1 USD settled and nothing held", bal[0])
	}
}

// TestRedisLeaseSweep: leases that expired without a settle (a crashed
// replica) do not count, and a reserve in every leaseSweepEvery removes them
// from their set.
func TestRedisLeaseSweep(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Timeout: 10 * time.Second, LeaseTTL: time.Minute})
	req := Request{Scopes: one(keyA, Limit{Concurrent, NoWindow, 3})}
	for range 3 {
		mustAllow(t, l, req, t0) // never settled: the replica "crashed"
	}
	key, _ := l.keys(&plan(&req, t0, time.Minute, &l.windows)[0])
	later := t0.Add(2 * time.Minute)
	for i := range leaseSweepEvery {
		r := mustAllow(t, l, req, later) // the expired leases do not count
		settle(t, l, r, Actual{}, later)
		n, err := c.ZCard(bg, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if swept := n == 0; swept {
			return
		}
		if i == leaseSweepEvery-1 {
			t.Errorf("%d members left in the lease set after %d reserves", n, leaseSweepEvery)
		}
	}
}

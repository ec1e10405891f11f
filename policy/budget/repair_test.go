package budget

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// counterValue returns a counter's value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// faultLimits are the limits of the fault tests: five slots, as in issue 9's
// run, and a spend and a request budget to see holds and counts.
func faultLimits() []Limit {
	return []Limit{{Concurrent, NoWindow, 5}, {USD, Day, usd("100")}, {Requests, Day, 1000}}
}

// TestRedisCancelBeforeReserve is the race of a reserve that timed out: its
// caller's cancel reaches Redis before the reserve itself (another
// connection, both queued in a paused Redis). The cancel of a reservation
// never made succeeds and leaves a tombstone; the reserve, arriving late,
// finds it and counts nothing. A settle of a reservation never made succeeds
// too, and a cancel after a late commit gives everything back.
func TestRedisCancelBeforeReserve(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{})
	defer l.Close(bg) //nolint:errcheck
	lims := faultLimits()
	req := Request{ID: "late", Scopes: one(keyA, lims...), CostPicoUSD: usd("1")}
	now := time.Now()

	call := l.reserveCall(&req, now)
	if err := l.Cancel(bg, call.reservation(l.leaseTTL), now); err != nil {
		t.Fatalf("cancel of a reservation not made yet: %v", err)
	}
	reply, err := l.reserve.Run(bg, c, call.keys, call.args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != 1 || reply[0] != 3 {
		t.Errorf("the late reserve answered %v, want {3} (cancelled before it was made)", reply)
	}
	for _, b := range read(t, l, keyA, lims, nil, now) {
		if b.Used != 0 || b.Held != 0 {
			t.Errorf("%v: used %d, held %d after a cancelled reserve arrived; want nothing", b.Limit, b.Used, b.Held)
		}
	}

	// A settle of a reservation never made succeeds as well.
	call = l.reserveCall(&req, now)
	if err := l.Settle(bg, call.reservation(l.leaseTTL), Actual{CostPicoUSD: usd("0.5")}, now); err != nil {
		t.Fatalf("settle of a reservation not made: %v", err)
	}
	if reply, err := l.reserve.Run(bg, c, call.keys, call.args...).Int64Slice(); err != nil || reply[0] != 3 {
		t.Errorf("the late reserve after a settle: %v, %v; want {3}", reply, err)
	}

	// The other order: the reserve commits, then the cancel undoes it.
	call = l.reserveCall(&req, now)
	if _, err := l.reserve.Run(bg, c, call.keys, call.args...).Int64Slice(); err != nil {
		t.Fatal(err)
	}
	if err := l.Cancel(bg, call.reservation(l.leaseTTL), now); err != nil {
		t.Fatal(err)
	}
	for _, b := range read(t, l, keyA, lims, nil, now) {
		if b.Used != 0 || b.Held != 0 {
			t.Errorf("%v: used %d, held %d after a committed reserve was cancelled; want nothing", b.Limit, b.Used, b.Held)
		}
	}
	if n, _ := c.ZCard(bg, l.holdsKey()).Result(); n != 0 {
		t.Errorf("%d holds left", n)
	}
}

// faultLedger returns a ledger with the production timeout (100 ms) on srv,
// whose client gives up as fast, and its metrics.
func faultLedger(t *testing.T, srv *redistest.Server, leaseTTL time.Duration) (*RedisLedger, *prometheus.Registry) {
	return faultLedgerOpts(t, srv, RedisOptions{LeaseTTL: leaseTTL})
}

// faultLedgerOpts is faultLedger with options.
func faultLedgerOpts(t *testing.T, srv *redistest.Server, opts RedisOptions) (*RedisLedger, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := newRedisClient(t, srv.Addr())
	c.Options().MaxRetries = -1
	opts.Registerer = reg
	l := newRedisLedger(t, c, opts)
	t.Cleanup(func() { l.Close(bg) }) //nolint:errcheck
	return l, reg
}

// waitClean polls the ledger until no slot, hold or repair is left, and
// returns how long that took; the test fails after 30 s.
func waitClean(t *testing.T, l *RedisLedger, lims []Limit) time.Duration {
	t.Helper()
	start := time.Now()
	var bs []Balance
	for time.Since(start) < 30*time.Second {
		var err error
		bs, err = l.Read(bg, Query{Scope: keyA, Limits: lims}, time.Now())
		if err == nil && bs[0].Used == 0 && bs[1].Held == 0 && l.PendingRepairs() == 0 {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("30 s after Redis came back: %+v, %d repairs pending", bs, l.PendingRepairs())
	return 0
}

// TestRedisPauseLeaksNothing pauses Redis (SIGSTOP) for longer than the
// ledger's timeout while requests reserve, settle and cancel, as issue 9's
// run did: reserves time out but run once Redis resumes, settles and cancels
// fail. Once Redis is back, the retries and the cancels of the timed-out
// reserves leave no slot and no hold, long before the leases would expire.
func TestRedisPauseLeaksNothing(t *testing.T) {
	testPauseLeaksNothing(t, RedisOptions{})
}

// TestRedisPauseLeaksNothingBlocks is TestRedisPauseLeaksNothing with budget
// blocks: the closes of blocks and the undo of blocks whose open timed out.
func TestRedisPauseLeaksNothingBlocks(t *testing.T) {
	testPauseLeaksNothing(t, RedisOptions{Blocks: DefaultBlocks})
}

func testPauseLeaksNothing(t *testing.T, opts RedisOptions) {
	srv := redistest.Start(t)
	l, reg := faultLedgerOpts(t, srv, opts)
	lims := faultLimits()
	req := Request{ID: "r", Scopes: one(keyA, lims...), CostPicoUSD: usd("1")}
	var held []*Reservation
	for range 3 {
		held = append(held, mustAllow(t, l, req, time.Now()))
	}

	srv.Pause()
	var wg sync.WaitGroup
	var failed sync.Map
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch {
			case i < 2:
				err = l.Settle(bg, held[i], Actual{CostPicoUSD: usd("0.25")}, time.Now())
			case i == 2:
				err = l.Cancel(bg, held[i], time.Now())
			default:
				_, err = l.Reserve(bg, req, time.Now())
			}
			failed.Store(i, err)
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool {
		if err, _ := v.(error); !errors.Is(err, ErrUnavailable) {
			t.Errorf("call %v with Redis paused: %v, want ErrUnavailable", k, err)
		}
		return true
	})
	// Longer than the timeout, so that retries time out too and queue up.
	time.Sleep(500 * time.Millisecond)
	srv.Resume()

	took := waitClean(t, l, lims)
	t.Logf("clean %v after Redis resumed", took)
	bs := read(t, l, keyA, lims, nil, time.Now())
	if bs[1].Used != usd("0.5") || bs[2].Used != 2 {
		t.Errorf("spend %s, requests %d; want 0.50 (two settles) and 2 (the cancelled and the timed-out are not counted)",
			formatUSD(bs[1].Used), bs[2].Used)
	}
	ops := []string{opSettle, opCancel, opReserve}
	if opts.Blocks > 0 {
		// A block's requests settle and cancel in memory; what failed is the
		// blocks' closes (op settle) and opens (op reserve).
		ops = []string{opSettle, opReserve}
	}
	for _, op := range ops {
		if n := counterValue(l.repairs.outcomes.WithLabelValues(op, repairDone)); n == 0 {
			t.Errorf("no %s repaired", op)
		}
	}
	checkRegistered(t, reg, "tollgate_budget_ledger_retries_total", "tollgate_budget_ledger_repairs_total", "tollgate_budget_ledger_repairs_pending")
}

// TestRedisRestartLeaksNothing kills Redis while a reservation is held and
// settles it during the outage; Redis comes back empty, the retried settle
// succeeds, and nothing is held.
func TestRedisRestartLeaksNothing(t *testing.T) {
	srv := redistest.Start(t)
	l, _ := faultLedger(t, srv, DefaultLeaseTTL)
	lims := faultLimits()
	req := Request{ID: "r", Scopes: one(keyA, lims...), CostPicoUSD: usd("1")}
	r := mustAllow(t, l, req, time.Now())
	srv.Stop()
	if err := l.Settle(bg, r, Actual{}, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("settle with Redis down: %v", err)
	}
	if _, err := l.Reserve(bg, req, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("reserve with Redis down: %v", err)
	}
	// The settle, and the reserve's cancel unless the client knew that it
	// never sent the reserve.
	if n := l.PendingRepairs(); n < 1 {
		t.Errorf("%d repairs pending; want the settle's at least", n)
	}
	srv.Restart()
	waitClean(t, l, lims)
}

// TestRepairsStopWithTheLease: a settle that cannot reach Redis is retried
// until its lease is gone, then given up (expiry gives the hold back).
func TestRepairsStopWithTheLease(t *testing.T) {
	srv := redistest.Start(t)
	l, _ := faultLedger(t, srv, 300*time.Millisecond)
	r := mustAllow(t, l, Request{Scopes: one(keyA, faultLimits()...)}, time.Now())
	srv.Stop()
	if err := l.Cancel(bg, r, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancel with Redis down: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); l.PendingRepairs() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the retry outlived its lease by 30 s")
		}
	}
	if n := counterValue(l.repairs.outcomes.WithLabelValues(opCancel, repairExpired)); n != 1 {
		t.Errorf("%v cancels expired, want 1", n)
	}
}

// TestCloseTriesOnceMore: Close makes the pending retries try once more
// within its context and waits for them; after Close nothing is retried.
func TestCloseTriesOnceMore(t *testing.T) {
	srv := redistest.Start(t)
	l, _ := faultLedger(t, srv, DefaultLeaseTTL)
	lims := faultLimits()
	r := mustAllow(t, l, Request{Scopes: one(keyA, lims...)}, time.Now())
	srv.Pause()
	if err := l.Settle(bg, r, Actual{}, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("settle with Redis paused: %v", err)
	}
	srv.Resume()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l.PendingRepairs() != 0 {
		t.Errorf("%d repairs pending after Close", l.PendingRepairs())
	}
	if bs := read(t, l, keyA, lims, nil, time.Now()); bs[0].Used != 0 {
		t.Errorf("%d slots held after Close", bs[0].Used)
	}
	srv.Stop()
	r = &Reservation{id: "x", member: "x", ttl: time.Minute}
	r.expires.Store(time.Now().Add(time.Minute).UnixNano())
	if err := l.Cancel(bg, r, time.Now()); err == nil || l.PendingRepairs() != 0 {
		t.Errorf("after Close: cancel %v with %d repairs pending; want an error and none", err, l.PendingRepairs())
	}
}

// checkRegistered fails t for each metric of names that reg does not gather.
func checkRegistered(t *testing.T, reg *prometheus.Registry, names ...string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

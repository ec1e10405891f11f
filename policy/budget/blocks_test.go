package budget

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// blockLedgers returns a ledger with blocks (block life life) and one
// without, sharing a fresh prefix on srv: two replicas, the second of which
// shows what Redis holds.
func blockLedgers(t *testing.T, srv *redistest.Server, leaseTTL, life time.Duration) (*RedisLedger, *RedisLedger) {
	t.Helper()
	prefix := "blk-" + t.Name()
	a := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: prefix, LeaseTTL: leaseTTL, Timeout: 10 * time.Second, Blocks: DefaultBlocks, BlockLife: life})
	b := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: prefix, LeaseTTL: leaseTTL, Timeout: 10 * time.Second})
	return a, b
}

// TestRedisBlockCrashReclaimedAfterTTL: a replica that dies holding a block
// (its requests never settle, the block never closes) holds its leases and
// its spend until the lease TTL, and not after: another replica can then use
// the whole concurrency limit and the whole budget.
func TestRedisBlockCrashReclaimedAfterTTL(t *testing.T) {
	srv := redistest.Start(t)
	a, b := blockLedgers(t, srv, time.Minute, time.Hour)
	conc := Limit{Concurrent, NoWindow, 40}
	day := Limit{USD, Day, usd("10")}
	req := Request{Scopes: one(keyA, conc, day), CostPicoUSD: usd("0.01")}
	for range 3 {
		mustAllow(t, a, req, t0)
	}
	// a's first block: 4 requests' worth (blockFirst), 3 of them in use.
	if got := read(t, b, keyA, []Limit{conc, day}, nil, t0.Add(59*time.Second)); got[0].Used != 4 || got[1].Held != usd("0.04") {
		t.Fatalf("before the TTL: %d leases, %d held; want a's block: 4 leases, 0.04 held", got[0].Used, got[1].Held)
	}
	// a dies here. A minute after its block was taken, nothing of it counts.
	after := t0.Add(time.Minute)
	if got := read(t, b, keyA, []Limit{conc, day}, nil, after); got[0].Used != 0 || got[1].Used != 0 || got[1].Held != 0 {
		t.Fatalf("after the TTL: %+v; want nothing held", got)
	}
	// Another replica with blocks gets every slot.
	c := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: "blk-" + t.Name(), LeaseTTL: time.Minute, Timeout: 10 * time.Second, Blocks: DefaultBlocks, BlockLife: time.Hour})
	for i := range 40 {
		if d := reserve(t, c, req, after); !d.Allowed {
			t.Fatalf("request %d after the TTL: %s", i+1, d.Denial.Message())
		}
	}
	if d := mustDeny(t, c, req, after); d.Limit != conc {
		t.Errorf("the 41st request was denied by %v, want the concurrency limit", d.Limit)
	}
}

// TestRedisBlocksTwoReplicasNeverExceed: two replicas with blocks, 100
// requests at once from each, never exceed any limit together: spend,
// requests per minute and per day, concurrency. Once both close their
// blocks, Redis counts exactly what was admitted and settled.
func TestRedisBlocksTwoReplicasNeverExceed(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "two-" + t.Name()
	var ls [2]*RedisLedger
	for i := range ls {
		ls[i] = newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: prefix, Timeout: 10 * time.Second, Blocks: DefaultBlocks, BlockLife: time.Hour})
	}
	spend := Limit{USD, Day, usd("2")}
	perMin := Limit{Requests, Minute, 150}
	perDay := Limit{Requests, Day, 160}
	conc := Limit{Concurrent, NoWindow, 20}
	scopes := []ScopeLimits{{Scope: teamP, Limits: []Limit{spend, perMin, perDay}}, {Scope: keyA, Limits: []Limit{conc}}}
	reqs := realisticRequests(200, 7)
	var (
		wg                  sync.WaitGroup
		start               = make(chan struct{})
		inflight, peak      atomic.Int64
		admitted, settledPU atomic.Int64
	)
	for i := range 200 {
		l := ls[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := range 10 {
				rq := reqs[(i+j)%len(reqs)]
				now := t0.Add(time.Duration(i*10+j) * time.Millisecond)
				d, err := l.Reserve(bg, Request{ID: fmt.Sprint(i), Scopes: scopes, CostPicoUSD: rq.reserve}, now)
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed {
					continue
				}
				admitted.Add(1)
				if n := inflight.Add(1); n > peak.Load() {
					peak.Store(n) // racy maximum: only ever under-reports
				}
				runtime.Gosched()
				inflight.Add(-1)
				if err := l.Settle(bg, d.Reservation, Actual{CostPicoUSD: rq.actual}, now); err != nil {
					t.Error(err)
					return
				}
				settledPU.Add(rq.actual)
			}
		}()
	}
	close(start)
	wg.Wait()
	end := t0.Add(3 * time.Second)
	for _, l := range ls {
		if err := l.Flush(bg, end); err != nil {
			t.Fatal(err)
		}
	}
	got := read(t, ls[0], teamP, []Limit{spend, perMin, perDay}, nil, end)
	gotConc := read(t, ls[1], keyA, []Limit{conc}, nil, end)
	t.Logf("%d admitted, $%s settled, peak %d in flight", admitted.Load(), formatUSD(settledPU.Load()), peak.Load())
	if n := admitted.Load(); n > 150 || n == 0 {
		t.Errorf("%d admitted; the limits allow 150 a minute", n)
	}
	if settledPU.Load() > usd("2") || peak.Load() > 20 {
		t.Errorf("settled $%s, peak %d in flight; want at most $2 and 20", formatUSD(settledPU.Load()), peak.Load())
	}
	if got[0].Used != settledPU.Load() || got[0].Held != 0 || got[1].Used != admitted.Load() || got[2].Used != admitted.Load() || gotConc[0].Used != 0 {
		t.Errorf("after both flushed: spend %d (held %d), %d per minute, %d per day, %d in flight; want %d, 0, %d, %d, 0",
			got[0].Used, got[0].Held, got[1].Used, got[2].Used, gotConc[0].Used, settledPU.Load(), admitted.Load(), admitted.Load())
	}
}

// TestRedisBlockShrinksNearLimit: a block takes at most an eighth of what
// a limit has left, down to one request near the limit, so that another
// replica can still use what is left; the requests settle exactly.
func TestRedisBlockShrinksNearLimit(t *testing.T) {
	srv := redistest.Start(t)
	a, b := blockLedgers(t, srv, 0, time.Hour)
	day := Limit{USD, Day, usd("10")}
	req := Request{Scopes: one(teamP, day), CostPicoUSD: usd("0.01")}
	held := func(want string) {
		t.Helper()
		if _, h := used(t, b, teamP, day, nil, t0); h != usd(want) {
			t.Fatalf("held $%s, want $%s", formatUSD(h), want)
		}
	}
	var rs []*Reservation
	rs = append(rs, mustAllow(t, a, req, t0))
	held("0.04") // the first block: 4 requests' worth
	settle(t, b, mustAllow(t, b, Request{Scopes: one(teamP, day), CostPicoUSD: usd("9.80")}, t0), Actual{CostPicoUSD: usd("9.80")}, t0)
	for range 3 {
		rs = append(rs, mustAllow(t, a, req, t0)) // from the block
	}
	held("0.04")
	// The block is used up; the next would be 8 requests' worth, but $0.16
	// is left: an eighth of it is 2 requests' worth.
	rs = append(rs, mustAllow(t, a, req, t0))
	held("0.06")
	rs = append(rs, mustAllow(t, a, req, t0))
	settle(t, b, mustAllow(t, b, Request{Scopes: one(teamP, day), CostPicoUSD: usd("0.09")}, t0), Actual{CostPicoUSD: usd("0.09")}, t0)
	// $0.05 left: a block of one request, the per-request path.
	rs = append(rs, mustAllow(t, a, req, t0))
	held("0.07")
	// What a holds idle is nothing now: b can use all that is left.
	settle(t, b, mustAllow(t, b, Request{Scopes: one(teamP, day), CostPicoUSD: usd("0.04")}, t0), Actual{CostPicoUSD: usd("0.04")}, t0)
	mustDeny(t, b, Request{Scopes: one(teamP, day), CostPicoUSD: 1}, t0)
	for _, r := range rs {
		settle(t, a, r, Actual{CostPicoUSD: usd("0.005")}, t0)
	}
	// Every block's last request ended: the blocks closed, exactly.
	if u, h := used(t, b, teamP, day, nil, t0); u != usd("9.965") || h != 0 {
		t.Errorf("used $%s, held $%s; want $9.965 (9.80 + 0.09 + 0.04 + 7 × 0.005), nothing held", formatUSD(u), formatUSD(h))
	}
}

// TestRedisBlockReturnsUnusedSlots: the request counts, list entries and
// leases of a block that its replica did not use go back when the block
// closes: at Flush, and after the block's life when it is idle.
func TestRedisBlockReturnsUnusedSlots(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		life time.Duration
	}{{"Flush", time.Hour}, {"Idle", 50 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := blockLedgers(t, srv, 0, tc.life)
			lims := []Limit{{Requests, Minute, 1000}, {Requests, Day, 1000}, {Concurrent, NoWindow, 1000}, {USD, Month, usd("100")}}
			req := Request{Scopes: one(teamP, lims...), CostPicoUSD: usd("0.5")}
			var rs []*Reservation
			for range 3 {
				rs = append(rs, mustAllow(t, a, req, t0))
			}
			if tc.name == "Flush" {
				want := []int64{4, 4, 4, usd("2")}
				for i, bal := range read(t, b, teamP, lims, nil, t0) {
					if bal.Used != want[i] {
						t.Errorf("%v: used %d with a's block open, want %d", bal.Limit, bal.Used, want[i])
					}
				}
			}
			for _, r := range rs {
				settle(t, a, r, Actual{CostPicoUSD: usd("0.1")}, t0)
			}
			if tc.name == "Flush" {
				if err := a.Flush(bg, t0); err != nil {
					t.Fatal(err)
				}
			}
			want := []int64{3, 3, 0, usd("0.3")}
			deadline := time.Now().Add(20 * time.Second)
			for {
				var got []int64
				for _, bal := range read(t, b, teamP, lims, nil, t0) {
					got = append(got, bal.Used, bal.Held)
				}
				if fmt.Sprint(got) == fmt.Sprint([]int64{want[0], 0, want[1], 0, want[2], 0, want[3], 0}) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("used and held per limit %v; want %v used, nothing held", got, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestRedisBlockUndo: the undo of a block open that failed for its caller
// takes everything back when the open ran, and keeps a late open from
// committing when it had not.
func TestRedisBlockUndo(t *testing.T) {
	srv := redistest.Start(t)
	l, _ := blockLedgers(t, srv, 0, time.Hour)
	lims := []Limit{{Requests, Minute, 1000}, {Requests, Day, 1000}, {Concurrent, NoWindow, 1000}, {USD, Month, usd("100")}}
	req := Request{Scopes: one(teamP, lims...), CostPicoUSD: usd("0.5")}
	items := plan(&req, t0, l.leaseTTL, &l.windows)
	_, keys := l.blockKey(items)
	clean := func(when string) {
		t.Helper()
		for _, b := range read(t, l, teamP, lims, nil, t0) {
			if b.Used != 0 || b.Held != 0 {
				t.Errorf("%s: %v used %d held %d; want nothing", when, b.Limit, b.Used, b.Held)
			}
		}
	}
	for _, size := range []int64{1, 4} {
		// The open ran, its reply was lost.
		call := l.grantCall(items, keys, size, t0)
		reply, err := l.grant.Run(bg, l.c, call.keys, call.args...).Int64Slice()
		if err != nil || reply[0] != 1 || reply[1] != size {
			t.Fatalf("open: %v, %v", reply, err)
		}
		if err := l.runOp(bg, l.undoOp(call, t0)); err != nil {
			t.Fatal(err)
		}
		clean(fmt.Sprintf("undo after an open of %d", size))
		// The undo first, the open late.
		call = l.grantCall(items, keys, size, t0)
		if err := l.runOp(bg, l.undoOp(call, t0)); err != nil {
			t.Fatal(err)
		}
		reply, err = l.grant.Run(bg, l.c, call.keys, call.args...).Int64Slice()
		if err != nil || len(reply) != 1 || reply[0] != 3 {
			t.Fatalf("late open: %v, %v; want {3}", reply, err)
		}
		clean(fmt.Sprintf("a late open of %d after its undo", size))
	}
}

// TestRedisBlocksAccountExactly: requests on two replicas with blocks and one
// without, at once, reserved, then settled, released, cancelled or replaced
// at random; once the blocks are closed, every limit counts exactly what
// the requests settled and the requests that stayed admitted.
func TestRedisBlocksAccountExactly(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "exact-" + t.Name()
	var ls []*RedisLedger
	for i := range 3 {
		opts := RedisOptions{Prefix: prefix, Timeout: 10 * time.Second, SettleBatch: time.Millisecond}
		if i < 2 {
			opts.Blocks, opts.BlockLife = DefaultBlocks, 20*time.Millisecond
		}
		ls = append(ls, newRedisLedger(t, newRedisClient(t, srv.Addr()), opts))
	}
	team := []Limit{{USD, Day, usd("1000")}, {Tokens, Day, 1 << 40}, {Requests, Day, 100_000}, {Requests, Minute, 100_000}}
	key := []Limit{{Concurrent, NoWindow, 1000}, {USD, Month, usd("1000")}}
	scopes := []ScopeLimits{{Scope: teamP, Limits: team}, {Scope: keyA, Limits: key}}
	var (
		wg                      sync.WaitGroup
		spent, tokens, requests atomic.Int64
	)
	for g := range 12 {
		l := ls[g%3]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 150 {
				now := t0.Add(time.Duration(g*150+i) * time.Millisecond)
				req := Request{ID: fmt.Sprint(g), Scopes: scopes, CostPicoUSD: usd("0.01") + rng.Int64N(usd("0.05")), Tokens: 1000 + rng.Int64N(5000)}
				d, err := l.Reserve(bg, req, now)
				if err != nil || !d.Allowed {
					t.Errorf("Reserve: %v %+v", err, d.Denial)
					return
				}
				r := d.Reservation
				switch rng.IntN(4) {
				case 0: // cancelled: nothing counts
					err = l.Cancel(bg, r, now)
				case 1: // released: the request counts, nothing is spent
					err = l.Release(bg, r, now)
					requests.Add(1)
				case 2: // replaced by another request, which settles
					req.CostPicoUSD, req.Tokens = req.CostPicoUSD/2, req.Tokens/2
					if d, err = l.Replace(bg, r, req, now); err != nil || !d.Allowed {
						t.Errorf("Replace: %v %+v", err, d.Denial)
						return
					}
					r = d.Reservation
					fallthrough
				default:
					a := Actual{CostPicoUSD: rng.Int64N(req.CostPicoUSD + 1), Tokens: rng.Int64N(req.Tokens + 1)}
					err = l.Settle(bg, r, a, now)
					spent.Add(a.CostPicoUSD)
					tokens.Add(a.Tokens)
					requests.Add(1)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	end := t0.Add(5 * time.Second)
	for _, l := range ls {
		if err := l.Flush(bg, end); err != nil {
			t.Fatal(err)
		}
	}
	want := []int64{spent.Load(), 0, tokens.Load(), 0, requests.Load(), 0, requests.Load(), 0, 0, 0, spent.Load(), 0}
	var got []int64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = got[:0]
		for _, sl := range scopes {
			for _, b := range read(t, ls[2], sl.Scope, sl.Limits, nil, end) {
				got = append(got, b.Used, b.Held)
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("used and held per limit %v; want %v", got, want)
		}
	}
}

// TestRedisBlockMetrics: the blocks' metrics count blocks opened and the
// requests admitted from them.
func TestRedisBlockMetrics(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	l := newRedisLedger(t, newRedisClient(t, srv.Addr()), RedisOptions{Blocks: DefaultBlocks, BlockLife: time.Hour, Registerer: reg})
	req := Request{Scopes: one(teamP, Limit{Requests, Minute, 1000})}
	for range 6 {
		mustAllow(t, l, req, t0)
	}
	// Blocks of 4 (the first) and 8: two opened, six admitted.
	if o, a := counterValue(l.blocks.opened), counterValue(l.blocks.admitted); o != 2 || a != 6 {
		t.Errorf("%v blocks opened, %v requests admitted; want 2 and 6", o, a)
	}
	checkRegistered(t, reg, "tollgate_budget_blocks_opened_total", "tollgate_budget_block_admissions_total", "tollgate_budget_ledger_retries_total")
}

package budget

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// opener makes a fresh, empty store for one test and returns a function
// that makes ledgers on it: each call is another Tollgate instance sharing
// the store. leaseTTL configures the ledgers.
type opener func(t *testing.T, leaseTTL time.Duration) func() Ledger

// t0 is the clock's start in contract tests: a Wednesday, in winter time in
// Berlin.
var t0 = time.Date(2025, 3, 12, 10, 0, 0, 0, time.UTC)

var berlin = mustLocation("Europe/Berlin")

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// usd parses an amount of USD for tests.
func usd(s string) int64 {
	v, err := ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return v
}

var bg = context.Background()

// runContract runs the ledger contract against the ledgers of open. Every
// acceptance item of issue 4 that concerns the ledger is one subtest.
func runContract(t *testing.T, open opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"ReserveSettle", testReserveSettle},
		{"ConcurrentCeiling", testConcurrentCeiling},
		{"SmallRequestsUseTheCeiling", testSmallRequestsUseTheCeiling},
		{"TwoInstances", testTwoInstances},
		{"CalendarRolloverDSTStart", testRolloverDSTStart},
		{"CalendarRolloverDSTEnd", testRolloverDSTEnd},
		{"WeekAndMonthRollover", testWeekAndMonthRollover},
		{"SettleAcrossBoundary", testSettleAcrossBoundary},
		{"RollingLimit", testRollingLimit},
		{"RollingBurst", testRollingBurst},
		{"RollingTokens", testRollingTokens},
		{"CancelsFreeConcurrency", testCancelsFreeConcurrency},
		{"CrashedLeasesExpire", testCrashedLeasesExpire},
		{"Renew", testRenew},
		{"DeniedChangesNoCounter", testDeniedChangesNoCounter},
		{"ProviderSettlesOnServer", testProviderSettlesOnServer},
		{"SessionWindow", testSessionWindow},
		{"ResetKeepsHolds", testResetKeepsHolds},
		{"Remaining", testRemaining},
		{"Exempt", testExempt},
		{"SettleOnce", testSettleOnce},
		{"CancelGivesEverythingBack", testCancelGivesEverythingBack},
		{"CancelAfterLeaseExpiry", testCancelAfterLeaseExpiry},
		{"ReplaceDoesNotCompeteWithItsGuess", testReplaceDoesNotCompeteWithItsGuess},
		{"ExactAbove2To53", testExactAbove2To53},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func reserve(t *testing.T, l Ledger, req Request, now time.Time) Decision {
	t.Helper()
	d, err := l.Reserve(bg, req, now)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if d.Allowed != (d.Reservation != nil) || d.Allowed == (d.Denial != nil) {
		t.Fatalf("inconsistent decision %+v", d)
	}
	return d
}

func mustAllow(t *testing.T, l Ledger, req Request, now time.Time) *Reservation {
	t.Helper()
	d := reserve(t, l, req, now)
	if !d.Allowed {
		t.Fatalf("at %v: denied: %s", now, d.Denial.Message())
	}
	return d.Reservation
}

func mustDeny(t *testing.T, l Ledger, req Request, now time.Time) *Denial {
	t.Helper()
	d := reserve(t, l, req, now)
	if d.Allowed {
		t.Fatalf("at %v: allowed, want a denial", now)
	}
	return d.Denial
}

func settle(t *testing.T, l Ledger, r *Reservation, a Actual, now time.Time) {
	t.Helper()
	if err := l.Settle(bg, r, a, now); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

func read(t *testing.T, l Ledger, s Scope, limits []Limit, loc *time.Location, now time.Time) []Balance {
	t.Helper()
	b, err := l.Read(bg, Query{Scope: s, Limits: limits, Location: loc}, now)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

// used reads one limit's use.
func used(t *testing.T, l Ledger, s Scope, lim Limit, loc *time.Location, now time.Time) (used, held int64) {
	t.Helper()
	b := read(t, l, s, []Limit{lim}, loc, now)
	return b[0].Used, b[0].Held
}

func one(s Scope, limits ...Limit) []ScopeLimits { return []ScopeLimits{{Scope: s, Limits: limits}} }

var (
	keyA  = Scope{Kind: ScopeKey, Name: "alice-laptop"}
	teamP = Scope{Kind: ScopeTeam, Name: "platform"}
)

func testReserveSettle(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{Unit: USD, Per: Day, Max: usd("1")}
	tok := Limit{Unit: Tokens, Per: Day, Max: 10_000}
	req := Request{ID: "r1", Scopes: one(keyA, day, tok), CostPicoUSD: usd("0.30"), Tokens: 4000}
	r := mustAllow(t, l, req, t0)
	if u, h := used(t, l, keyA, day, nil, t0); u != usd("0.30") || h != usd("0.30") {
		t.Errorf("after reserve: used %d held %d, want 0.30 held", u, h)
	}
	settle(t, l, r, Actual{CostPicoUSD: usd("0.12"), Tokens: 1500}, t0.Add(time.Second))
	b := read(t, l, keyA, []Limit{day, tok}, nil, t0.Add(time.Second))
	want := []Balance{
		{Scope: keyA, Limit: day, Used: usd("0.12"), Start: time.Date(2025, 3, 12, 0, 0, 0, 0, time.UTC), ResetAt: time.Date(2025, 3, 13, 0, 0, 0, 0, time.UTC)},
		{Scope: keyA, Limit: tok, Used: 1500, Start: time.Date(2025, 3, 12, 0, 0, 0, 0, time.UTC), ResetAt: time.Date(2025, 3, 13, 0, 0, 0, 0, time.UTC)},
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("after settle (-want +got):\n%s", diff)
	}
	// What is left: 0.88 USD; a request of 0.90 is denied, one of 0.88 is not.
	d := mustDeny(t, l, Request{Scopes: one(keyA, day, tok), CostPicoUSD: usd("0.90")}, t0.Add(2*time.Second))
	if d.Scope != keyA || d.Limit != day || d.Used != usd("0.12") || d.Requested != usd("0.90") || d.RetryAfter != 0 ||
		!d.ResetAt.Equal(time.Date(2025, 3, 13, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("denial = %+v", d)
	}
	mustAllow(t, l, Request{Scopes: one(keyA, day, tok), CostPicoUSD: usd("0.88")}, t0.Add(2*time.Second))
}

// realistic is a request shaped like an agent's: a body of a few KB to
// tens of KB and a max_tokens of up to a few thousand, reserved at the
// worst case and costing less.
type realistic struct {
	reserve int64
	actual  int64
}

func realisticRequests(n int, seed uint64) []realistic {
	price, ok := pricing.Embedded().Lookup("anthropic", "claude-sonnet-4-5")
	if !ok {
		panic("no price for claude-sonnet-4-5")
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]realistic, n)
	for i := range out {
		body := 2_000 + rng.IntN(30_000)
		maxTokens := int64(256 + rng.IntN(2_000))
		u := pricing.Usage{
			InputTokens:     int64(body / 8),
			CacheReadTokens: int64(body / 8),
			OutputTokens:    rng.Int64N(maxTokens + 1),
		}
		out[i] = realistic{
			reserve: WorstCaseCost(price, InputBound(body, Media{}), maxTokens),
			actual:  pricing.Cost(u, price),
		}
		if out[i].actual > out[i].reserve {
			panic("a realistic request costs more than its reservation")
		}
	}
	return out
}

// testConcurrentCeiling: 200 concurrent requests against a $1.00 ceiling
// with realistic costs. The settled total never exceeds $1.00, exactly.
func testConcurrentCeiling(t *testing.T, open opener) {
	newLedger := open(t, 0)
	l := newLedger()
	ceiling := Limit{Unit: USD, Per: Day, Max: usd("1.00")}
	reqs := realisticRequests(200, 1)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		settled int64
		allowed int
	)
	for i, rq := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			now := t0.Add(time.Duration(i) * time.Millisecond)
			d, err := l.Reserve(bg, Request{ID: fmt.Sprint(i), Scopes: one(teamP, ceiling), CostPicoUSD: rq.reserve}, now)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if !d.Allowed {
				return
			}
			if err := l.Settle(bg, d.Reservation, Actual{CostPicoUSD: rq.actual}, now.Add(time.Second)); err != nil {
				t.Errorf("Settle: %v", err)
				return
			}
			mu.Lock()
			settled += rq.actual
			allowed++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	u, h := used(t, l, teamP, ceiling, nil, t0.Add(time.Minute))
	t.Logf("%d of 200 admitted; settled $%s", allowed, formatUSD(u))
	if u != settled || h != 0 {
		t.Errorf("ledger says used %d held %d; the requests settled %d", u, h, settled)
	}
	if u > usd("1.00") {
		t.Errorf("settled $%s, above the $1.00 ceiling", formatUSD(u))
	}
	if allowed == 0 || allowed == 200 {
		t.Errorf("%d of 200 admitted; the test should saturate the ceiling", allowed)
	}
}

// testSmallRequestsUseTheCeiling: with small requests, at least 90% of the
// ceiling is usable under the same concurrency.
func testSmallRequestsUseTheCeiling(t *testing.T, open opener) {
	l := open(t, 0)()
	ceiling := Limit{Unit: USD, Per: Day, Max: usd("1.00")}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			<-start
			for {
				est := usd("0.004")
				d, err := l.Reserve(bg, Request{ID: fmt.Sprint(g), Scopes: one(teamP, ceiling), CostPicoUSD: est}, t0)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if !d.Allowed {
					if settled := d.Denial.Used - d.Denial.Held; est > ceiling.Max-settled {
						return // no room even once every request in flight settles
					}
					continue
				}
				actual := est - rng.Int64N(est/4)
				if err := l.Settle(bg, d.Reservation, Actual{CostPicoUSD: actual}, t0); err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	u, h := used(t, l, teamP, ceiling, nil, t0)
	t.Logf("settled $%s of $1.00", formatUSD(u))
	if h != 0 || u > usd("1.00") || u < usd("0.90") {
		t.Errorf("settled $%s (held %d); want between $0.90 and $1.00", formatUSD(u), h)
	}
}

// testTwoInstances: two instances on one store enforce one ceiling and one
// concurrency limit.
func testTwoInstances(t *testing.T, open opener) {
	newLedger := open(t, 0)
	a, b := newLedger(), newLedger()
	ceiling := Limit{Unit: USD, Per: Day, Max: usd("1.00")}
	conc := Limit{Unit: Concurrent, Max: 5}
	reqs := realisticRequests(100, 3)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, rq := range reqs {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := l.Reserve(bg, Request{Scopes: one(teamP, ceiling), CostPicoUSD: rq.reserve}, t0)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if d.Allowed {
				if err := l.Settle(bg, d.Reservation, Actual{CostPicoUSD: rq.reserve}, t0); err != nil {
					t.Errorf("Settle: %v", err)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	ua, _ := used(t, a, teamP, ceiling, nil, t0)
	ub, _ := used(t, b, teamP, ceiling, nil, t0)
	if ua != ub || ua > usd("1.00") || ua < usd("0.90") {
		t.Errorf("instance a sees $%s, b sees $%s; want one total in [$0.90, $1.00]", formatUSD(ua), formatUSD(ub))
	}

	for i := range 5 {
		l := a
		if i%2 == 1 {
			l = b
		}
		mustAllow(t, l, Request{Scopes: one(keyA, conc)}, t0)
	}
	for _, l := range []Ledger{a, b} {
		if d := mustDeny(t, l, Request{Scopes: one(keyA, conc)}, t0); d.Used != 5 || d.RetryAfter != ConcurrencyRetryAfter {
			t.Errorf("denial = %+v", d)
		}
	}
}

// at is a Berlin wall-clock instant.
func at(y int, m time.Month, d, hh, mm, ss int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, 0, berlin)
}

// testRolloverDSTStart: the Berlin day of 2025-03-30 lasts 23 hours (02:00
// CET becomes 03:00 CEST); its window starts and ends at local midnight.
func testRolloverDSTStart(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{Unit: USD, Per: Day, Max: usd("1")}
	req := Request{Scopes: one(keyA, day), Location: berlin, CostPicoUSD: usd("1")}

	// 23:59:59 on the 29th local is 22:59:59 UTC: the UTC day has an hour to go.
	r := mustAllow(t, l, req, at(2025, 3, 29, 23, 59, 59))
	settle(t, l, r, Actual{CostPicoUSD: usd("1")}, at(2025, 3, 29, 23, 59, 59))
	d := mustDeny(t, l, req, at(2025, 3, 29, 23, 59, 59))
	if want := at(2025, 3, 30, 0, 0, 0); !d.ResetAt.Equal(want) || d.ResetAt.Location() != berlin {
		t.Errorf("ResetAt = %v, want %v in Berlin", d.ResetAt, want)
	}
	// Local midnight (23:00 UTC) opens a new window.
	r = mustAllow(t, l, req, at(2025, 3, 30, 0, 0, 0))
	settle(t, l, r, Actual{CostPicoUSD: usd("1")}, at(2025, 3, 30, 0, 0, 0))
	// 23 hours later, at 23:59:59 CEST, the same day still holds.
	last := at(2025, 3, 30, 23, 59, 59)
	if got := last.Sub(at(2025, 3, 30, 0, 0, 0)); got != 23*time.Hour+59*time.Minute+59*time.Second-time.Hour {
		t.Fatalf("test premise: the day is not 23 hours long (%v)", got)
	}
	d = mustDeny(t, l, req, last)
	if want := at(2025, 3, 31, 0, 0, 0); !d.ResetAt.Equal(want) {
		t.Errorf("ResetAt = %v, want %v", d.ResetAt, want)
	}
	mustAllow(t, l, req, at(2025, 3, 31, 0, 0, 0))
}

// testRolloverDSTEnd: the Berlin day of 2025-10-26 lasts 25 hours.
func testRolloverDSTEnd(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{Unit: Requests, Per: Day, Max: 1}
	req := Request{Scopes: one(keyA, day), Location: berlin}
	mustAllow(t, l, req, at(2025, 10, 26, 0, 0, 0))
	// 02:30 happens twice; both and 23:59:59 (24h59m59s after midnight) are the same day.
	first := time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	second := first.Add(time.Hour)                          // 02:30 CET
	for _, now := range []time.Time{first, second, at(2025, 10, 26, 23, 59, 59)} {
		if d := mustDeny(t, l, req, now); !d.ResetAt.Equal(at(2025, 10, 27, 0, 0, 0)) {
			t.Errorf("at %v: ResetAt = %v", now, d.ResetAt)
		}
	}
	mustAllow(t, l, req, at(2025, 10, 27, 0, 0, 0))
}

// testWeekAndMonthRollover: weeks start on Monday and months on the first,
// at local midnight.
func testWeekAndMonthRollover(t *testing.T, open opener) {
	l := open(t, 0)()
	week := Limit{Unit: Requests, Per: Week, Max: 1}
	month := Limit{Unit: Requests, Per: Month, Max: 1}
	wreq := Request{Scopes: one(keyA, week), Location: berlin}
	mreq := Request{Scopes: one(teamP, month), Location: berlin}

	// Monday 2025-03-24 00:00 to Sunday 2025-03-30 23:59:59 (CEST by then).
	mustAllow(t, l, wreq, at(2025, 3, 24, 0, 0, 0))
	d := mustDeny(t, l, wreq, at(2025, 3, 30, 23, 59, 59))
	if !d.ResetAt.Equal(at(2025, 3, 31, 0, 0, 0)) {
		t.Errorf("week ResetAt = %v", d.ResetAt)
	}
	mustAllow(t, l, wreq, at(2025, 3, 31, 0, 0, 0))
	// The Sunday before (2025-03-23) belonged to the previous week.
	mustAllow(t, l, wreq, at(2025, 3, 23, 23, 59, 59))

	// March 2025 in Berlin: 1 March 00:00 CET to 1 April 00:00 CEST.
	mustAllow(t, l, mreq, at(2025, 3, 1, 0, 0, 0))
	d = mustDeny(t, l, mreq, at(2025, 3, 31, 23, 59, 59))
	if !d.ResetAt.Equal(at(2025, 4, 1, 0, 0, 0)) {
		t.Errorf("month ResetAt = %v", d.ResetAt)
	}
	// 22:30 UTC on the 31st is already April in Berlin, not in UTC.
	mustAllow(t, l, mreq, time.Date(2025, 3, 31, 22, 30, 0, 0, time.UTC))
	mustDeny(t, l, mreq, at(2025, 4, 30, 23, 59, 59))
}

// testSettleAcrossBoundary: a request reserved before midnight and settled
// after it is charged to the day it was reserved in.
func testSettleAcrossBoundary(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{Unit: USD, Per: Day, Max: usd("1")}
	req := Request{Scopes: one(keyA, day), Location: berlin, CostPicoUSD: usd("0.80")}
	before, after := at(2025, 3, 12, 23, 59, 59), at(2025, 3, 13, 0, 0, 1)
	r := mustAllow(t, l, req, before)
	if u, _ := used(t, l, keyA, day, berlin, after); u != 0 {
		t.Errorf("the new day starts with %d used", u)
	}
	settle(t, l, r, Actual{CostPicoUSD: usd("0.50")}, after)
	if u, h := used(t, l, keyA, day, berlin, before); u != usd("0.50") || h != 0 {
		t.Errorf("the old day: used %d held %d, want 0.50 settled", u, h)
	}
	if u, h := used(t, l, keyA, day, berlin, after); u != 0 || h != 0 {
		t.Errorf("the new day: used %d held %d, want nothing", u, h)
	}
}

// testRollingLimit: never more than N admitted in any 60 s window, and a
// denial's retry-after is exact: the request fits at ResetAt, not before.
func testRollingLimit(t *testing.T, open opener) {
	l := open(t, 0)()
	const n = 5
	lim := Limit{Unit: Requests, Per: Minute, Max: n}
	req := Request{Scopes: one(keyA, lim)}
	rng := rand.New(rand.NewPCG(4, 4))
	var admitted []time.Time
	now := t0
	checkedRetry := 0
	for now.Before(t0.Add(15 * time.Minute)) {
		for range 1 + rng.IntN(3) {
			d := reserve(t, l, req, now)
			if d.Allowed {
				admitted = append(admitted, now)
				settle(t, l, d.Reservation, Actual{}, now)
				continue
			}
			den := d.Denial
			if den.RetryAfter <= 0 || !den.ResetAt.Equal(now.Add(den.RetryAfter)) {
				t.Fatalf("at %v: denial without an exact retry: %+v", now, den)
			}
			if checkedRetry < 20 && rng.IntN(4) == 0 {
				checkedRetry++
				mustDeny(t, l, req, den.ResetAt.Add(-time.Millisecond))
				now = den.ResetAt
				d = reserve(t, l, req, now)
				if !d.Allowed {
					t.Fatalf("at ResetAt %v: still denied", now)
				}
				admitted = append(admitted, now)
				settle(t, l, d.Reservation, Actual{}, now)
			}
		}
		now = now.Add(time.Duration(rng.IntN(7000)) * time.Millisecond)
	}
	full := 0
	for i, start := range admitted {
		c := 0
		for _, a := range admitted[i:] {
			if a.Before(start.Add(time.Minute)) {
				c++
			}
		}
		if c > n {
			t.Fatalf("%d admitted in the 60 s from %v", c, start)
		}
		if c == n {
			full++
		}
	}
	if full == 0 || checkedRetry == 0 {
		t.Errorf("the limit was never reached (%d full windows, %d retries checked)", full, checkedRetry)
	}
}

// testRollingBurst: concurrent requests at one instant get exactly N slots.
func testRollingBurst(t *testing.T, open opener) {
	newLedger := open(t, 0)
	a, b := newLedger(), newLedger()
	lim := Limit{Unit: Requests, Per: Hour, Max: 7}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := range 50 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Reserve(bg, Request{Scopes: one(teamP, lim)}, t0)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 7 {
		t.Errorf("%d admitted, want 7", allowed)
	}
	mustDeny(t, a, Request{Scopes: one(teamP, lim)}, t0.Add(time.Hour-time.Millisecond))
	mustAllow(t, a, Request{Scopes: one(teamP, lim)}, t0.Add(time.Hour))
}

// testRollingTokens: rolling token windows hold the estimate, settle to the
// actual, and age out.
func testRollingTokens(t *testing.T, open opener) {
	l := open(t, 0)()
	lim := Limit{Unit: Tokens, Per: Minute, Max: 10_000}
	req := Request{Scopes: one(keyA, lim), Tokens: 6_000}
	r := mustAllow(t, l, req, t0)
	d := mustDeny(t, l, req, t0.Add(10*time.Second))
	if d.Used != 6_000 || !d.ResetAt.Equal(t0.Add(time.Minute)) || d.RetryAfter != 50*time.Second {
		t.Errorf("denial = %+v", d)
	}
	settle(t, l, r, Actual{Tokens: 1_000}, t0.Add(20*time.Second))
	mustAllow(t, l, req, t0.Add(20*time.Second)) // 1,000 + 6,000
	if u, _ := used(t, l, keyA, lim, nil, t0.Add(30*time.Second)); u != 7_000 {
		t.Errorf("used %d, want 7000", u)
	}
	if u, _ := used(t, l, keyA, lim, nil, t0.Add(time.Minute)); u != 6_000 {
		t.Errorf("after the first aged out: used %d, want 6000", u)
	}
	if d := mustDeny(t, l, Request{Scopes: one(keyA, lim), Tokens: 20_000}, t0.Add(time.Minute)); !d.TooLarge() || d.RetryAfter != 0 || !d.ResetAt.IsZero() {
		t.Errorf("too large: %+v", d)
	}
}

// testCancelsFreeConcurrency: 1,000 requests cancelled mid-stream (reserved,
// then released or settled with what was billed so far) leave no slot taken.
func testCancelsFreeConcurrency(t *testing.T, open opener) {
	newLedger := open(t, 0)
	a, b := newLedger(), newLedger()
	conc := Limit{Unit: Concurrent, Max: 8}
	tconc := Limit{Unit: Concurrent, Max: 20}
	req := Request{Scopes: []ScopeLimits{{Scope: keyA, Limits: []Limit{conc}}, {Scope: teamP, Limits: []Limit{tconc}}}}
	var wg sync.WaitGroup
	for g := range 10 {
		l := a
		if g%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := 0
			for i := 0; done < 100; i++ {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				d, err := l.Reserve(bg, req, now)
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed {
					continue // another goroutine holds the slots for a moment
				}
				if done%2 == 0 {
					err = l.Release(bg, d.Reservation, now)
				} else {
					err = l.Settle(bg, d.Reservation, Actual{CostPicoUSD: 1000, Tokens: 10}, now)
				}
				if err != nil {
					t.Error(err)
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	for _, s := range []struct {
		scope Scope
		lim   Limit
	}{{keyA, conc}, {teamP, tconc}} {
		if u, _ := used(t, a, s.scope, s.lim, nil, t0); u != 0 {
			t.Errorf("%v: %d slots taken after 1,000 cancels", s.scope, u)
		}
	}
}

// testCrashedLeasesExpire: reservations whose process died free their
// slots and their held spend when their leases expire; a late settle still
// counts its actual cost, once.
func testCrashedLeasesExpire(t *testing.T, open opener) {
	l := open(t, time.Minute)()
	conc := Limit{Unit: Concurrent, Max: 3}
	day := Limit{Unit: USD, Per: Day, Max: usd("1")}
	req := Request{Scopes: one(keyA, conc, day), CostPicoUSD: usd("0.30")}
	var crashed []*Reservation
	for range 3 {
		crashed = append(crashed, mustAllow(t, l, req, t0))
	}
	if d := mustDeny(t, l, req, t0.Add(59*time.Second)); d.Limit != conc {
		t.Errorf("denied by %v, want the concurrency limit", d.Limit)
	}
	after := t0.Add(time.Minute)
	b := read(t, l, keyA, []Limit{conc, day}, nil, after)
	if b[0].Used != 0 || b[1].Used != 0 || b[1].Held != 0 {
		t.Errorf("after expiry: %+v", b)
	}
	mustAllow(t, l, req, after)
	// One of the "crashed" requests was only slow: its settle counts the
	// actual cost without giving back the hold a second time.
	settle(t, l, crashed[0], Actual{CostPicoUSD: usd("0.10")}, after)
	settle(t, l, crashed[0], Actual{CostPicoUSD: usd("0.10")}, after)
	if u, h := used(t, l, keyA, day, nil, after); u != usd("0.40") || h != usd("0.30") {
		t.Errorf("used %d held %d, want 0.40 with 0.30 held", u, h)
	}
	if err := l.Renew(bg, crashed[1], after); err != ErrExpired {
		t.Errorf("Renew of an expired reservation: %v, want ErrExpired", err)
	}
}

// testRenew: a renewed lease outlives the TTL.
func testRenew(t *testing.T, open opener) {
	l := open(t, time.Minute)()
	conc := Limit{Unit: Concurrent, Max: 1}
	day := Limit{Unit: USD, Per: Day, Max: usd("1")}
	req := Request{Scopes: one(keyA, conc, day), CostPicoUSD: usd("0.60")}
	r := mustAllow(t, l, req, t0)
	if r.RenewDue(t0.Add(29*time.Second)) || !r.RenewDue(t0.Add(30*time.Second)) {
		t.Error("RenewDue is not at half the TTL")
	}
	if err := l.Renew(bg, r, t0.Add(50*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !r.Expires().Equal(t0.Add(110 * time.Second)) {
		t.Errorf("Expires = %v", r.Expires())
	}
	b := read(t, l, keyA, []Limit{conc, day}, nil, t0.Add(100*time.Second))
	if b[0].Used != 1 || b[1].Held != usd("0.60") {
		t.Errorf("renewed lease gone at +100s: %+v", b)
	}
	mustDeny(t, l, req, t0.Add(100*time.Second))
	mustAllow(t, l, req, t0.Add(110*time.Second))
	settle(t, l, r, Actual{CostPicoUSD: usd("0.20")}, t0.Add(111*time.Second))
	if err := l.Renew(bg, r, t0.Add(112*time.Second)); err != nil {
		t.Errorf("Renew after Settle: %v, want nil", err)
	}
}

// snapshot reads every limit of every scope of scopes.
func snapshot(t *testing.T, l Ledger, scopes []ScopeLimits, now time.Time) [][]Balance {
	t.Helper()
	var out [][]Balance
	for _, sl := range scopes {
		out = append(out, read(t, l, sl.Scope, sl.Limits, berlin, now))
	}
	return out
}

// everyKind returns limits of every unit and window in every kind of scope,
// all far above what a test request needs.
func everyKind() []ScopeLimits {
	return []ScopeLimits{
		{Scope: keyA, Limits: []Limit{{USD, Day, usd("100")}, {Tokens, Day, 1_000_000}, {Concurrent, NoWindow, 100}}},
		{Scope: Scope{ScopeUser, "alice"}, Limits: []Limit{{Requests, Minute, 100}, {USD, Month, usd("1000")}}},
		{Scope: teamP, Limits: []Limit{{Requests, Day, 100}, {Tokens, Hour, 1_000_000}, {USD, Week, usd("1000")}}},
		{Scope: Scope{ScopeProject, "web"}, Limits: []Limit{{Requests, Hour, 100}}},
		{Scope: Scope{ScopeProvider, "anthropic"}, Limits: []Limit{{USD, Month, usd("1000")}, {Concurrent, NoWindow, 100}}},
		{Scope: Scope{ScopeSession, "s1"}, Limits: []Limit{{USD, Session, usd("100")}, {Requests, Session, 100}}},
		{Scope: Global, Limits: []Limit{{Tokens, Minute, 1_000_000}, {Requests, Minute, 1000}}},
	}
}

// usage is what every limit of scopes has used and holds at now.
func usage(t *testing.T, l Ledger, scopes []ScopeLimits, now time.Time) [][2]int64 {
	t.Helper()
	var out [][2]int64
	for _, bs := range snapshot(t, l, scopes, now) {
		for _, b := range bs {
			out = append(out, [2]int64{b.Used, b.Held})
		}
	}
	return out
}

// testCancelGivesEverythingBack: a cancelled reservation leaves every limit
// of every kind as it found it, request counts included, and a second cancel
// or a settle after it changes nothing.
func testCancelGivesEverythingBack(t *testing.T, open opener) {
	l := open(t, 0)()
	scopes := everyKind()
	req := Request{ID: "x", Scopes: scopes, Location: berlin, CostPicoUSD: usd("0.3"), Tokens: 5_000}
	// Something is counted already, so that a cancel cannot pass for one by
	// emptying a window.
	settle(t, l, mustAllow(t, l, req, t0), Actual{CostPicoUSD: usd("0.1"), Tokens: 100}, t0)
	now := t0.Add(time.Second)
	before := usage(t, l, scopes, now)
	r := mustAllow(t, l, req, now)
	if cmp.Equal(before, usage(t, l, scopes, now)) {
		t.Fatal("the reservation counted nothing")
	}
	if err := l.Cancel(bg, r, now); err != nil {
		t.Fatal(err)
	}
	if after := usage(t, l, scopes, now); !cmp.Equal(before, after) {
		t.Errorf("a cancel left counts behind (-before +after):\n%s", cmp.Diff(before, after))
	}
	if err := l.Cancel(bg, r, now); err != nil {
		t.Fatal(err)
	}
	settle(t, l, r, Actual{CostPicoUSD: usd("1"), Tokens: 1}, now)
	if after := usage(t, l, scopes, now); !cmp.Equal(before, after) {
		t.Errorf("a second cancel or a settle after the cancel counted (-before +after):\n%s", cmp.Diff(before, after))
	}
}

// testCancelAfterLeaseExpiry: a reservation whose lease expired gave back
// its holds then; a late cancel takes back its request counts and nothing
// twice.
func testCancelAfterLeaseExpiry(t *testing.T, open opener) {
	l := open(t, 10*time.Second)()
	scopes := everyKind()
	req := Request{ID: "x", Scopes: scopes, Location: berlin, CostPicoUSD: usd("0.3"), Tokens: 5_000}
	r := mustAllow(t, l, req, t0)
	now := t0.Add(20 * time.Second)
	if err := l.Cancel(bg, r, now); err != nil {
		t.Fatal(err)
	}
	for i, u := range usage(t, l, scopes, now) {
		if u != [2]int64{} {
			t.Errorf("limit %d: used %d, held %d after the cancel; want nothing", i, u[0], u[1])
		}
	}
}

// testReplaceDoesNotCompeteWithItsGuess: the replacement is checked without
// the share of the reservation it replaces, so at a concurrency of one and
// one request a minute the request still gets in, and counts once; when the
// replacement is refused, the guess is cancelled all the same.
func testReplaceDoesNotCompeteWithItsGuess(t *testing.T, open opener) {
	lims := one(keyA, Limit{Concurrent, NoWindow, 1}, Limit{Requests, Minute, 1}, Limit{Requests, Day, 1},
		Limit{USD, Day, usd("1")}, Limit{Tokens, Hour, 1000})
	guess := Request{ID: "g", Scopes: lims, Location: berlin, CostPicoUSD: usd("0.6"), Tokens: 600}
	exact := Request{ID: "g", Scopes: lims, Location: berlin, CostPicoUSD: usd("0.9"), Tokens: 900}

	l := open(t, 0)()
	d, err := l.Replace(bg, mustAllow(t, l, guess, t0), exact, t0.Add(time.Millisecond))
	if err != nil || !d.Allowed {
		t.Fatalf("Replace: %+v, %v", d, err)
	}
	now := t0.Add(2 * time.Millisecond)
	want := [][2]int64{{1, 0}, {1, 0}, {1, 0}, {usd("0.9"), usd("0.9")}, {900, 0}}
	if got := usage(t, l, lims, now); !cmp.Equal(want, got) {
		t.Errorf("after the replace (-want +got):\n%s", cmp.Diff(want, got))
	}
	if den := mustDeny(t, l, guess, now); den.Limit.Unit != Concurrent {
		t.Errorf("a second request was refused by %v, want the concurrency limit", den.Limit)
	}

	l = open(t, 0)()
	tooDear := exact
	tooDear.CostPicoUSD = usd("2")
	d, err = l.Replace(bg, mustAllow(t, l, guess, t0), tooDear, t0.Add(time.Millisecond))
	if err != nil || d.Allowed || d.Denial.Limit.Unit != USD {
		t.Fatalf("Replace with too much: %+v, %v; want a USD denial", d, err)
	}
	for i, u := range usage(t, l, lims, now) {
		if u != [2]int64{} {
			t.Errorf("limit %d: used %d, held %d after a refused replace; want nothing", i, u[0], u[1])
		}
	}
}

// testDeniedChangesNoCounter: whichever limit denies a request, no counter
// of any scope changes.
func testDeniedChangesNoCounter(t *testing.T, open opener) {
	const cost, tokens = 300_000_000_000, 5_000
	base := everyKind
	for si, sl := range base() {
		for li, lim := range sl.Limits {
			t.Run(sl.Scope.String()+"/"+lim.String(), func(t *testing.T) {
				l := open(t, 0)()
				scopes := base()
				target := &scopes[si].Limits[li]
				switch target.Unit {
				case USD:
					target.Max = 2 * cost
				case Tokens:
					target.Max = 2 * tokens
				default:
					target.Max = 2
				}
				req := Request{ID: "x", Scopes: scopes, Location: berlin, CostPicoUSD: cost, Tokens: tokens}
				// Two requests in flight fill the target limit.
				mustAllow(t, l, req, t0)
				mustAllow(t, l, req, t0.Add(time.Second))
				now := t0.Add(2 * time.Second)
				before := snapshot(t, l, scopes, now)
				d := mustDeny(t, l, req, now)
				if d.Scope != sl.Scope || d.Limit != *target {
					t.Fatalf("denied by %v %v, want %v %v", d.Scope, d.Limit, sl.Scope, *target)
				}
				if after := snapshot(t, l, scopes, now); !cmp.Equal(before, after) {
					t.Errorf("a denied request changed counters:\n%s", cmp.Diff(before, after))
				}
				if msg := d.Message(); msg == "" {
					t.Error("empty message")
				}
			})
		}
	}
}

// testProviderSettlesOnServer: every provider of the chain must admit the
// request; only the one that served is charged.
func testProviderSettlesOnServer(t *testing.T, open opener) {
	l := open(t, 0)()
	pa, pb := Scope{ScopeProvider, "a"}, Scope{ScopeProvider, "b"}
	lim := Limit{USD, Month, usd("10")}
	req := Request{Scopes: []ScopeLimits{{Scope: pa, Limits: []Limit{lim}}, {Scope: pb, Limits: []Limit{lim}}}, CostPicoUSD: usd("2")}
	r := mustAllow(t, l, req, t0)
	if u, _ := used(t, l, pa, lim, nil, t0); u != usd("2") {
		t.Errorf("a holds %d", u)
	}
	settle(t, l, r, Actual{CostPicoUSD: usd("1.5"), Provider: "b"}, t0)
	ua, _ := used(t, l, pa, lim, nil, t0)
	ub, _ := used(t, l, pb, lim, nil, t0)
	if ua != 0 || ub != usd("1.5") {
		t.Errorf("a %d b %d; want 0 and 1.5", ua, ub)
	}
	r = mustAllow(t, l, req, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("1")}, t0) // unknown server: both
	ua, _ = used(t, l, pa, lim, nil, t0)
	ub, _ = used(t, l, pb, lim, nil, t0)
	if ua != usd("1") || ub != usd("2.5") {
		t.Errorf("a %d b %d; want 1 and 2.5", ua, ub)
	}
}

// testSessionWindow: a session's budget lives until the session has been
// idle for the TTL.
func testSessionWindow(t *testing.T, open opener) {
	l := open(t, 0)()
	s := Scope{ScopeSession, "claude-session-1"}
	lim := Limit{USD, Session, usd("5")}
	req := Request{Scopes: one(s, lim), SessionTTL: time.Hour, CostPicoUSD: usd("3")}
	r := mustAllow(t, l, req, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("2")}, t0.Add(10*time.Minute))
	r = mustAllow(t, l, req, t0.Add(20*time.Minute))
	settle(t, l, r, Actual{CostPicoUSD: usd("3")}, t0.Add(30*time.Minute))
	d := mustDeny(t, l, Request{Scopes: one(s, lim), SessionTTL: time.Hour, CostPicoUSD: 1}, t0.Add(40*time.Minute))
	if !d.ResetAt.Equal(t0.Add(90*time.Minute)) || d.RetryAfter != 0 {
		t.Errorf("denial = %+v; want the session to expire an hour after its last use", d)
	}
	// Another session is not affected; this one is fresh after an idle hour.
	mustAllow(t, l, Request{Scopes: one(Scope{ScopeSession, "claude-session-2"}, lim), SessionTTL: time.Hour, CostPicoUSD: usd("5")}, t0.Add(40*time.Minute))
	mustAllow(t, l, req, t0.Add(90*time.Minute))
}

// testResetKeepsHolds: a reset empties the settled part of a window and the
// rolling and concurrency counts; requests in flight still settle.
func testResetKeepsHolds(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{USD, Day, usd("1")}
	rate := Limit{Requests, Minute, 2}
	conc := Limit{Concurrent, NoWindow, 2}
	req := Request{Scopes: one(keyA, day, rate, conc), CostPicoUSD: usd("0.50")}
	r1 := mustAllow(t, l, req, t0)
	settle(t, l, r1, Actual{CostPicoUSD: usd("0.50")}, t0)
	r2 := mustAllow(t, l, req, t0)
	mustDeny(t, l, req, t0)
	q := Query{Scope: keyA, Limits: []Limit{day, rate, conc}}
	if err := l.Reset(bg, q, t0); err != nil {
		t.Fatal(err)
	}
	b := read(t, l, keyA, q.Limits, nil, t0)
	if b[0].Used != usd("0.50") || b[0].Held != usd("0.50") || b[1].Used != 0 || b[2].Used != 0 {
		t.Errorf("after reset: %+v", b)
	}
	settle(t, l, r2, Actual{CostPicoUSD: usd("0.25")}, t0)
	if u, h := used(t, l, keyA, day, nil, t0); u != usd("0.25") || h != 0 {
		t.Errorf("used %d held %d, want 0.25", u, h)
	}
}

// testRemaining: the tightest limit is reported, as a fraction of its max.
func testRemaining(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{USD, Day, usd("10")}
	rate := Limit{Requests, Minute, 5}
	req := Request{Scopes: []ScopeLimits{{Scope: keyA, Limits: []Limit{rate}}, {Scope: teamP, Limits: []Limit{day}}}, CostPicoUSD: usd("1")}
	d := reserve(t, l, req, t0)
	if d.Remaining == nil || d.Remaining.Scope != keyA || d.Remaining.Amount != 4 || !d.Remaining.ResetAt.IsZero() {
		t.Fatalf("Remaining = %+v, want 4 requests of key alice-laptop (80%%, against 90%% of the team's spend)", d.Remaining)
	}
	settle(t, l, d.Reservation, Actual{CostPicoUSD: usd("8.5")}, t0)
	d = reserve(t, l, req, t0)
	want := &Remaining{Scope: teamP, Limit: day, Amount: usd("0.5"), ResetAt: time.Date(2025, 3, 13, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(want, d.Remaining); diff != "" {
		t.Errorf("Remaining (-want +got):\n%s", diff)
	}
	if got, want := d.Remaining.Header(), "0.50 usd; scope=team:platform; per=day; reset=2025-03-13T00:00:00Z"; got != want {
		t.Errorf("Header() = %q, want %q", got, want)
	}
}

// testExempt: an exempt request touches nothing.
func testExempt(t *testing.T, open opener) {
	l := open(t, 0)()
	rate := Limit{Requests, Minute, 1}
	req := Request{Scopes: one(keyA, rate)}
	mustAllow(t, l, req, t0)
	ex := req
	ex.Exempt = true
	for range 3 {
		r := mustAllow(t, l, ex, t0)
		settle(t, l, r, Actual{CostPicoUSD: 5}, t0)
	}
	if u, _ := used(t, l, keyA, rate, nil, t0); u != 1 {
		t.Errorf("used %d, want 1", u)
	}
	// A request with no limits at all is admitted the same way.
	r := mustAllow(t, l, Request{}, t0)
	settle(t, l, r, Actual{}, t0)
}

// testSettleOnce: settling twice counts once.
func testSettleOnce(t *testing.T, open opener) {
	l := open(t, 0)()
	day := Limit{USD, Day, usd("1")}
	r := mustAllow(t, l, Request{Scopes: one(keyA, day), CostPicoUSD: usd("0.5")}, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("0.2")}, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("0.2")}, t0)
	if err := l.Release(bg, r, t0); err != nil {
		t.Fatal(err)
	}
	if u, h := used(t, l, keyA, day, nil, t0); u != usd("0.2") || h != 0 {
		t.Errorf("used %d held %d, want 0.2", u, h)
	}
}

// testExactAbove2To53: amounts of money beyond 2^53 pico-USD (about 9,007
// USD), where doubles are no longer exact, are compared exactly.
func testExactAbove2To53(t *testing.T, open opener) {
	l := open(t, 0)()
	month := Limit{USD, Month, usd("50000")}
	r := mustAllow(t, l, Request{Scopes: one(teamP, month), CostPicoUSD: usd("49999.999999999997")}, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("49999.999999999997")}, t0)
	d := mustDeny(t, l, Request{Scopes: one(teamP, month), CostPicoUSD: 4}, t0)
	if d.Used != usd("49999.999999999997") {
		t.Errorf("Used = %d", d.Used)
	}
	mustAllow(t, l, Request{Scopes: one(teamP, month), CostPicoUSD: 3}, t0)
	if u, _ := used(t, l, teamP, month, nil, t0); u != usd("50000") {
		t.Errorf("used %d, want exactly 50000 USD", u)
	}
}

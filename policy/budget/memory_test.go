package budget

import (
	"testing"
	"time"
)

func TestMemoryLedgerContract(t *testing.T) {
	runContract(t, func(t *testing.T, leaseTTL time.Duration) func() Ledger {
		l := NewMemoryLedger(leaseTTL)
		return func() Ledger { return l }
	})
}

// TestMemoryLedgerForgetsOldWindows checks that windows that are over are
// dropped, so memory does not grow with time.
func TestMemoryLedgerForgetsOldWindows(t *testing.T) {
	l := NewMemoryLedger(time.Minute)
	req := Request{
		Scopes: []ScopeLimits{
			{Scope: keyA, Limits: []Limit{{USD, Day, usd("1")}, {Requests, Minute, 10}, {Concurrent, NoWindow, 5}}},
			{Scope: Scope{ScopeSession, "s"}, Limits: []Limit{{USD, Session, usd("1")}}},
		},
		SessionTTL:  time.Hour,
		CostPicoUSD: 1,
	}
	r := mustAllow(t, l, req, t0)
	settle(t, l, r, Actual{}, t0)
	mustAllow(t, l, req, t0) // never settled: its hold expires
	later := t0.Add(3 * 24 * time.Hour)
	mustAllow(t, l, Request{}, later)
	if _, err := l.Read(bg, Query{Scope: keyA}, later); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.counters) != 0 || len(l.logs) != 0 || len(l.leases) != 0 || len(l.holds) != 0 {
		t.Errorf("after three days: %d counters, %d logs, %d lease sets, %d holds; want none",
			len(l.counters), len(l.logs), len(l.leases), len(l.holds))
	}
}

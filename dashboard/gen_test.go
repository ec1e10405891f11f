package dashboard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

// testNow is the instant the tests run at: a Wednesday afternoon.
var testNow = time.Date(2026, 5, 13, 15, 30, 0, 0, time.UTC)

var testModels = []string{"claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"}

// genRecords returns n records over the days before now, from users spread
// over teams, grouped in Claude Code sessions of a few requests, some of them
// by a subagent; seed makes them repeatable.
func genRecords(n, users, teams, days int, now time.Time, seed uint64) []records.Record {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]records.Record, 0, n)
	span := time.Duration(days) * 24 * time.Hour
	for len(out) < n {
		u := rng.IntN(users)
		team := fmt.Sprintf("team-%02d", u%teams)
		user := fmt.Sprintf("user-%03d", u)
		sess := fmt.Sprintf("sess-%d-%d", u, len(out))
		start := now.Add(-time.Duration(rng.Int64N(int64(span))))
		parts := 1 + rng.IntN(12)
		for i := 0; i < parts && len(out) < n; i++ {
			r := records.Record{
				ID: fmt.Sprintf("rec-%07d", len(out)), TraceID: sess, SessionID: sess,
				Start: start, End: start.Add(2 * time.Second),
				KeyID: "key-" + user, User: user, Team: team, Route: "claude", Provider: "anthropic",
				Model: testModels[rng.IntN(len(testModels))], Endpoint: "messages", Method: "POST", Path: "/v1/messages",
				Status: 200, Outcome: records.OutcomeOK,
				Usage:       pricing.Usage{InputTokens: 100 + rng.Int64N(5000), OutputTokens: 10 + rng.Int64N(2000)},
				CostPicoUSD: 1e8 + rng.Int64N(5e10),
				LatencyMS:   float64(200 + rng.IntN(8000)), TTFTMS: float64(50 + rng.IntN(900)),
			}
			if i >= 2 && i%2 == 0 {
				r.AgentID, r.ParentAgentID = sess+"-sub", sess+"-main"
			} else {
				r.AgentID = sess + "-main"
			}
			if rng.IntN(20) == 0 {
				r.Status, r.Outcome, r.ErrorType = 529, records.OutcomeProviderError, "overloaded_error"
			}
			if rng.IntN(10) == 0 {
				r.CacheStatus, r.CostSavedPicoUSD, r.CostPicoUSD = "HIT", r.CostPicoUSD, 0
			}
			r.Cost = pricing.FormatUSD(r.CostPicoUSD)
			r.Attempts = []records.Attempt{{N: 1, Provider: "anthropic", Model: r.Model, Status: r.Status, TimeToHeadersMS: r.TTFTMS}}
			out = append(out, r)
			start = start.Add(time.Duration(5+rng.IntN(60)) * time.Second)
		}
	}
	return out
}

// memStore returns a memory store holding recs.
func memStore(t testing.TB, recs []records.Record) *records.MemoryStore {
	t.Helper()
	m := records.NewMemoryStore(len(recs))
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return m
}

// spendStore returns a spend.Memory holding recs.
func spendStore(t testing.TB, recs []records.Record) *spend.Memory {
	t.Helper()
	m := spend.NewMemory(max(len(recs), 1))
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return m
}

// wantSpend adds up recs independently of the spend package: the spend of
// today, this week (from Monday) and this month (UTC) that p may see.
func wantSpend(recs []records.Record, p adminapi.Principal, now time.Time) (today, week, month int64, n30 int) {
	y, m, d := now.Date()
	dayStart := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	wd := int(now.Weekday())
	if wd == 0 {
		wd = 7
	}
	weekStart := dayStart.AddDate(0, 0, 1-wd)
	monthStart := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	from30 := dayStart.AddDate(0, 0, -29)
	for _, r := range recs {
		if p.Team != "" && r.Team != p.Team || r.Start.After(now) {
			continue
		}
		if !r.Start.Before(dayStart) {
			today += r.CostPicoUSD
		}
		if !r.Start.Before(weekStart) {
			week += r.CostPicoUSD
		}
		if !r.Start.Before(monthStart) {
			month += r.CostPicoUSD
		}
		if !r.Start.Before(from30) {
			n30++
		}
	}
	return
}

package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

// benchBudgets are the budgets of the benchmarks: a usd month budget for
// each of the 10 teams, a usd day budget for each of the 200 users, and the
// global day and month ones.
func benchBudgets() *budget.Config {
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		budget.Global: {{Unit: budget.USD, Per: budget.Day, Max: 5_000e12}, {Unit: budget.USD, Per: budget.Month, Max: 100_000e12}},
	}}
	for i := range 10 {
		cfg.Limits[budget.Scope{Kind: budget.ScopeTeam, Name: fmt.Sprintf("team-%02d", i)}] = []budget.Limit{{Unit: budget.USD, Per: budget.Month, Max: 10_000e12}}
	}
	for i := range 200 {
		cfg.Limits[budget.Scope{Kind: budget.ScopeUser, Name: fmt.Sprintf("user-%03d", i)}] = []budget.Limit{{Unit: budget.USD, Per: budget.Day, Max: 50e12}}
	}
	return cfg
}

// benchPages are the pages the benchmarks render: every page, the Records
// page with filters and a time range, a session and a record.
func benchPages(one records.Record) []string {
	return []string{"", "budgets", "records", "records?key=key-user-011&model=claude-opus-4-1",
		"records?since=2026-04-01T00:00&until=2026-04-02T00:00", "sessions",
		"sessions/" + one.TraceID, "records/" + one.ID + "?trace=" + one.TraceID}
}

// BenchmarkPages renders each page over 100,000 records (90 days, 200
// users, 10 teams) in the memory stores (records.MemoryStore for the
// lists, spend.Memory for the Overview and Budgets), as the admin and as a
// viewer, with 212 budgets. The lists read at most records.MaxQueryLimit
// records and show PageSize rows; the Overview and Budgets aggregate every
// record of their range.
func BenchmarkPages(b *testing.B) {
	recs := genRecords(100_000, 200, 10, 90, testNow, 9)
	cfg := benchBudgets()
	d, err := New(Options{Tokens: testTokens, Records: memStore(b, recs), Now: func() time.Time { return testNow },
		Insights: SpendInsights{Store: spendStore(b, recs), BudgetConfig: func() *budget.Config { return cfg }}})
	if err != nil {
		b.Fatal(err)
	}
	one := recs[len(recs)-1]
	for _, who := range []adminapi.Principal{{Name: "admin"}, {Name: "lead-03", Team: viewerTeam}} {
		id, _ := d.sessions.create(who, tokenOf(who), testNow)
		for _, page := range benchPages(one) {
			name := "admin/"
			if who.Team != "" {
				name = "viewer/"
			}
			b.Run(name+page, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest("GET", Prefix+page, nil)
					req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
					rec := httptest.NewRecorder()
					d.ServeHTTP(rec, req)
					if rec.Code != 200 && !(who.Team != "" && rec.Code == 403) {
						b.Fatalf("%s: %d", page, rec.Code)
					}
				}
			})
		}
	}
}

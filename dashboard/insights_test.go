package dashboard

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/records"
)

// TestRecordsInsightsBudgets checks the interim forecast by hand: 12.5 days
// into a 31-day month, a team that spent $10 is forecast $24.80.
func TestRecordsInsightsBudgets(t *testing.T) {
	now := time.Date(2026, 5, 13, 12, 0, 0, 0, time.UTC)
	rec := func(id, team string, start time.Time, pico int64) records.Record {
		return records.Record{ID: id, TraceID: id, Team: team, Start: start, CostPicoUSD: pico, Outcome: records.OutcomeOK}
	}
	store := memStore(t, []records.Record{
		rec("a", "red", now.Add(-time.Hour), 6e12),
		rec("b", "red", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 4e12),
		rec("c", "blue", now.Add(-time.Minute), 1e12),
		rec("d", "red", time.Date(2026, 4, 30, 23, 59, 59, 0, time.UTC), 7e12), // last month
		rec("e", "red", now.Add(time.Second), 7e12),                            // after now
	})
	got, err := RecordsInsights{Store: store}.Budgets(context.Background(), adminapi.Principal{Name: "admin"}, now)
	if err != nil {
		t.Fatal(err)
	}
	start, end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	want := []Budget{
		{Scope: "team:red", Per: "month", Unit: "usd", WindowStart: start, WindowEnd: end, Used: 10e12, Forecast: 24_800_000_000_000, Method: "linear"},
		{Scope: "team:blue", Per: "month", Unit: "usd", WindowStart: start, WindowEnd: end, Used: 1e12, Forecast: 2_480_000_000_000, Method: "linear"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("budgets (-want +got):\n%s", diff)
	}
	got, _ = RecordsInsights{Store: store}.Budgets(context.Background(), adminapi.Principal{Name: "lead", Team: "blue"}, now)
	if len(got) != 1 || got[0].Scope != "team:blue" {
		t.Errorf("a viewer of blue gets %+v", got)
	}
}

// fixedInsights serves fixed numbers, as the aggregation API would.
type fixedInsights struct {
	o  Overview
	bs []Budget
}

func (f fixedInsights) Overview(context.Context, adminapi.Principal, time.Time) (Overview, error) {
	return f.o, nil
}

func (f fixedInsights) Budgets(context.Context, adminapi.Principal, time.Time) ([]Budget, error) {
	return f.bs, nil
}

// TestPagesShowInsights: the Overview and Budgets pages show what an
// Insights implementation gives, limits, units and exhaustion included.
func TestPagesShowInsights(t *testing.T) {
	start, end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ins := fixedInsights{
		o: Overview{Month: Spend{CostPicoUSD: 75e12, Requests: 9, LimitPicoUSD: 100e12}},
		bs: []Budget{
			{Scope: "team:red", Per: "month", Unit: "usd", WindowStart: start, WindowEnd: end, Limit: 100e12, Used: 75e12, Forecast: 180e12,
				Method: "profile", ExhaustsAt: time.Date(2026, 5, 20, 6, 0, 0, 0, time.UTC)},
			{Scope: "key:ci", Per: "day", Unit: "tokens", WindowStart: start, WindowEnd: start.AddDate(0, 0, 1), Limit: 1_000_000, Used: 10, Forecast: 20, Method: "linear"},
		},
	}
	srv, _, _ := serve(t, memStore(t, nil), Options{Insights: ins})
	b := newBrowser(t, srv)
	b.login(adminToken)
	_, page := b.get(Prefix)
	for _, want := range []string{`data-pico="75000000000000">$75.00`, "budget $100.00 (75.0%)"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	status, page := b.get(Prefix + "budgets")
	for _, want := range []string{`class="budget risk" data-scope="team:red"`, "at risk", "2026-05-20 06:00:00", "$180.00", "profile",
		`class="budget" data-scope="key:ci"`, "1000000 tokens", "10 tokens (0.0%)"} {
		if !strings.Contains(page, want) {
			t.Errorf("budgets page lacks %q", want)
		}
	}
	if status != http.StatusOK || strings.Contains(page, `id="no-limits"`) {
		t.Errorf("budgets page: %d, or says no limits are known", status)
	}
}

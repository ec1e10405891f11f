package dashboard

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

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

func (f fixedInsights) Sessions(context.Context, adminapi.Principal, time.Time, time.Time, int) ([]SessionSummary, error) {
	return nil, nil
}

// TestPagesShowInsights: the Overview and Budgets pages show what an
// Insights implementation gives, limits, units and exhaustion included.
func TestPagesShowInsights(t *testing.T) {
	start, end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ins := fixedInsights{
		o: Overview{Month: Spend{CostPicoUSD: 75e12, Requests: 9, LimitPicoUSD: 100e12}},
		bs: []Budget{
			{Scope: "team:red", Per: "month", Unit: "usd", WindowStart: start, WindowEnd: end, Limit: 100e12, Used: 75e12, Forecast: 180e12,
				Method: "weekday_profile", ExhaustsAt: time.Date(2026, 5, 20, 6, 0, 0, 0, time.UTC)},
			{Scope: "key:ci", Per: "day", Unit: "tokens", WindowStart: start, WindowEnd: start.AddDate(0, 0, 1), Limit: 1_000_000, Used: 10, Forecast: 20, Method: "linear"},
		},
	}
	srv, _, _ := serve(t, nil, Options{Insights: ins})
	b := newBrowser(t, srv)
	b.login(adminToken)
	_, page := b.get(Prefix)
	for _, want := range []string{`data-pico="75000000000000">$75.00`, "budget $100.00 (75.0%)"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	status, page := b.get(Prefix + "budgets")
	for _, want := range []string{`class="budget risk" data-scope="team:red"`, "at risk", "2026-05-20 06:00 UTC", "$180.00", "weekday_profile",
		`class="budget" data-scope="key:ci"`, "1000000 tokens", "10 tokens (0.0%)"} {
		if !strings.Contains(page, want) {
			t.Errorf("budgets page lacks %q", want)
		}
	}
	if status != http.StatusOK {
		t.Errorf("budgets page: %d", status)
	}
}

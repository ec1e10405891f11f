package spendtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/internal/recordgen"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

// End100k is when the acceptance's 100,000 records end.
var End100k = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// Records100k is the acceptance data set: 100,000 records over 30 days, 200
// users in 10 teams.
func Records100k() []records.Record {
	return recordgen.Generate(recordgen.Options{Seed: 100_000, Records: 100_000, End: End100k, Days: 30, Users: 200, Teams: 10})
}

// Budgets100k is a budget for every team, user and provider of
// Records100k, and a global one: 424 limits.
func Budgets100k() *budget.Config {
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		budget.Global: {{Unit: budget.USD, Per: budget.Month, Max: 50_000 * 1e12}},
	}}
	for i := range 10 {
		cfg.Limits[budget.Scope{Kind: budget.ScopeTeam, Name: recordgen.TeamName(i)}] = []budget.Limit{
			{Unit: budget.USD, Per: budget.Month, Max: 5_000 * 1e12}, {Unit: budget.Tokens, Per: budget.Week, Max: 2e9}}
	}
	for i := range 200 {
		cfg.Limits[budget.Scope{Kind: budget.ScopeUser, Name: recordgen.UserName(i)}] = []budget.Limit{
			{Unit: budget.USD, Per: budget.Day, Max: 40 * 1e12}, {Unit: budget.Requests, Per: budget.Month, Max: 1000}}
	}
	for _, p := range []string{"anthropic", "bedrock", "vertex"} {
		cfg.Limits[budget.Scope{Kind: budget.ScopeProvider, Name: p}] = []budget.Limit{{Unit: budget.USD, Per: budget.Week, Max: 10_000 * 1e12}}
	}
	return cfg
}

// API100k serves the spend API over store for the admin token "admin",
// with Budgets100k and the clock an hour before End100k.
func API100k(store spend.Store) http.Handler {
	tokens := adminapi.NewTokens("admin", nil)
	return spend.NewAPIHandler(spend.Options{
		Store: store, Tokens: func() *adminapi.Tokens { return tokens },
		Budgets: Budgets100k, Now: func() time.Time { return End100k.Add(-time.Hour) },
	})
}

// Query100k is one query of the benchmark.
type Query100k struct{ Name, Target string }

// Queries100k are the spend API queries the acceptance times over
// Records100k (under 200 ms each), over the 30 days unless named otherwise.
// The _now ones end at the API's clock, an hour before End100k, off the
// hour: the default range of a dashboard page.
func Queries100k() []Query100k {
	month := "&from=" + End100k.AddDate(0, 0, -30).Format(time.RFC3339) + "&to=" + End100k.Format(time.RFC3339)
	week := "&from=" + End100k.AddDate(0, 0, -7).Format(time.RFC3339) + "&to=" + End100k.Format(time.RFC3339)
	now := "&to=" + End100k.Add(-time.Hour+17*time.Minute+3*time.Second).Format(time.RFC3339)
	return []Query100k{
		{"totals", "/v1/spend/totals?" + month},
		{"totals_by_user", "/v1/spend/totals?group_by=user" + month},
		{"totals_by_key_model", "/v1/spend/totals?group_by=key,model" + month},
		{"totals_team_by_class", "/v1/spend/totals?team=platform&group_by=class" + month},
		{"series_day_by_team", "/v1/spend/series?step=day&group_by=team" + month},
		{"series_day_by_team_no_latency", "/v1/spend/series?step=day&group_by=team&latency=false" + month},
		{"series_day_latency", "/v1/spend/series?step=day" + month},
		{"series_day_berlin_by_model", "/v1/spend/series?step=day&tz=Europe/Berlin&group_by=model" + month},
		{"series_day_kolkata", "/v1/spend/series?step=day&tz=Asia/Kolkata" + month},
		{"totals_by_user_no_latency", "/v1/spend/totals?group_by=user&latency=false" + month},
		{"series_hour_by_model_7d", "/v1/spend/series?step=hour&group_by=model" + week},
		{"series_week_by_provider", "/v1/spend/series?step=week&group_by=provider" + month},
		{"series_day_one_user", "/v1/spend/series?step=day&user=user-007" + month},
		{"series_day_by_team_now", "/v1/spend/series?step=day&group_by=team" + now},
		{"totals_by_model_now", "/v1/spend/totals?group_by=model" + now},
		{"sessions_top20", "/v1/spend/sessions?limit=20" + month},
		{"sessions_team_top20", "/v1/spend/sessions?limit=20&team=data" + month},
		{"sessions_top20_now", "/v1/spend/sessions?limit=20" + now},
		{"budgets_424", "/v1/spend/budgets"},
		{"series_csv_day_by_user", "/v1/spend/series?step=day&group_by=user&format=csv" + month},
	}
}

// BenchmarkAPI times each of Queries100k through h, JSON or CSV encoding
// included.
func BenchmarkAPI(b *testing.B, h http.Handler) {
	for _, bc := range Queries100k() {
		b.Run(bc.Name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, bc.Target, nil)
				req.Header.Set("Authorization", "Bearer admin")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

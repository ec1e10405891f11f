package spend_test

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

const (
	adminToken  = "admin-secret"
	viewerToken = "viewer-platform"
	usd         = 1_000_000_000_000 // pico-USD per dollar
)

// rec is an admitted record of team platform, key k-alice, costing
// dollars at t.
func rec(id string, t time.Time, dollars int64) records.Record {
	c := dollars * usd
	return records.Record{
		ID: id, Start: t, End: t.Add(time.Second), Team: "platform", User: "alice", KeyID: "k-alice",
		Route: "anthropic", Provider: "anthropic", Model: "claude-sonnet-4-5", Outcome: records.OutcomeOK, Status: 200,
		BudgetOutcome: "allowed", CostPicoUSD: c, Cost: pricing.FormatUSD(c), LatencyMS: 1000,
		Usage: pricing.Usage{InputTokens: 100, OutputTokens: 10},
	}
}

// server serves the spend API over recs with the clock at now and cfg's
// budgets, for the admin token and a viewer of team platform.
func server(t *testing.T, recs []records.Record, cfg *budget.Config, now time.Time) http.Handler {
	t.Helper()
	m := spend.NewMemory(1000)
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	tokens := adminapi.NewTokens(adminToken, []adminapi.Viewer{{Name: "lead-alice", Team: "platform", SHA256: sha256.Sum256([]byte(viewerToken))}})
	return spend.NewAPIHandler(spend.Options{
		Store:   m,
		Tokens:  func() *adminapi.Tokens { return tokens },
		Budgets: func() *budget.Config { return cfg },
		KeyTeam: func(k string) string { return map[string]string{"k-alice": "platform", "k-bob": "research"}[k] },
		Now:     func() time.Time { return now },
	})
}

func get(t *testing.T, h http.Handler, token, target string, out any) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %d %v: %s", target, w.Code, err, w.Body)
		}
	}
	return w.Code
}

type budgetJSON struct {
	Scope            string     `json:"scope"`
	Unit             string     `json:"unit"`
	Per              string     `json:"per"`
	Limit            string     `json:"limit"`
	Used             string     `json:"used"`
	Remaining        string     `json:"remaining"`
	WindowStart      time.Time  `json:"window_start"`
	WindowEnd        time.Time  `json:"window_end"`
	Forecast         string     `json:"forecast"`
	ForecastMethod   string     `json:"forecast_method"`
	ForecastLinear   string     `json:"forecast_linear"`
	ForecastProfile  *string    `json:"forecast_weekday_profile"`
	Exhausted        bool       `json:"exhausted"`
	ExhaustsAt       *time.Time `json:"exhausts_at"`
	AtRisk           bool       `json:"at_risk"`
	UsedFraction     float64    `json:"used_fraction"`
	ForecastFraction float64    `json:"forecast_fraction"`
}

type budgetsBody struct {
	Now      time.Time    `json:"now"`
	Timezone string       `json:"timezone"`
	Budgets  []budgetJSON `json:"budgets"`
}

func ptr[T any](v T) *T { return &v }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// weekdays is $10 at 06:00 UTC on every working day from Wednesday
// 2026-04-15 to Wednesday 2026-05-13 (today in these tests), nothing at
// weekends. 2026-05-01 is a Friday.
func weekdays() []records.Record {
	var recs []records.Record
	for d := at("2026-04-15T06:00:00Z"); !d.After(at("2026-05-13T06:00:00Z")); d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			recs = append(recs, rec("r-"+d.Format("0102"), d, 10))
		}
	}
	return recs
}

func usdLimit(dollars int64, per budget.Window) budget.Limit {
	return budget.Limit{Unit: budget.USD, Per: per, Max: dollars * usd}
}

func findBudget(t *testing.T, body budgetsBody, scope, per string) budgetJSON {
	t.Helper()
	for _, b := range body.Budgets {
		if b.Scope == scope && b.Per == per {
			return b
		}
	}
	t.Fatalf("no %s budget per %s in %+v", scope, per, body)
	return budgetJSON{}
}

// TestForecastsByHand checks forecasts and exhaustion against figures
// worked out by hand (in the comments), with the clock at Wednesday
// 2026-05-13 12:00 UTC.
func TestForecastsByHand(t *testing.T) {
	now := at("2026-05-13T12:00:00Z")
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		{Kind: budget.ScopeTeam, Name: "platform"}: {usdLimit(150, budget.Month), usdLimit(100, budget.Week), usdLimit(12, budget.Day)},
		{Kind: budget.ScopeUser, Name: "alice"}:    {usdLimit(80, budget.Month)},
		{Kind: budget.ScopeKey, Name: "k-alice"}:   {{Unit: budget.Requests, Per: budget.Month, Max: 20}, {Unit: budget.Tokens, Per: budget.Week, Max: 1000}},
	}}
	var body budgetsBody
	if code := get(t, server(t, weekdays(), cfg, now), adminToken, "/v1/spend/budgets", &body); code != 200 {
		t.Fatalf("status %d", code)
	}
	// The profile: the 28 days before today (Apr 15 to May 12) hold four
	// of each weekday at $10 and no weekend: $10 a working day.
	//
	// Month (May 1 to Jun 1, 31 days; 12.5 elapsed): used = 9 working
	// days (May 1, 4-8, 11-13) × $10 = $90. Linear: 90 × 31 / 12.5 =
	// $223.20. Profile: expected so far = 8 working days + half of today =
	// $85, so the pace factor is 90/85 = 18/17; the rest of the window is
	// half of today and 12 working days (May 14-15, 18-22, 25-29) = $125;
	// forecast 90 + 125 × 18/17 = $222.352941176470588..., to the
	// pico-dollar 222.352941176471. Exhaustion at $150: $60 left, spent at
	// 180/17 a working day after 90/17 for the rest of today: 1020/17 -
	// 90/17 - 2 × 180/17 (Thu, Fri) - 3 × 180/17 (Mon-Wed) = 30/17 left
	// for Thursday May 21, a sixth of it: 04:00.
	month := findBudget(t, body, "team:platform", "month")
	want := budgetJSON{
		Scope: "team:platform", Unit: "usd", Per: "month", Limit: "150.00", Used: "90.00", Remaining: "60.00",
		WindowStart: at("2026-05-01T00:00:00Z"), WindowEnd: at("2026-06-01T00:00:00Z"),
		Forecast: "222.352941176471", ForecastMethod: "weekday_profile", ForecastLinear: "223.20", ForecastProfile: ptr("222.352941176471"),
		ExhaustsAt: ptr(at("2026-05-21T04:00:00Z")), AtRisk: true, UsedFraction: 0.6, ForecastFraction: 222.352941176471 / 150,
	}
	if diff := cmp.Diff(want, month, cmp.Comparer(func(a, b float64) bool { return fmt.Sprintf("%.9f", a) == fmt.Sprintf("%.9f", b) })); diff != "" {
		t.Errorf("month (-want +got):\n%s", diff)
	}
	// Week (Mon May 11 to May 18; 2.5 days elapsed): used $30. Linear: 30
	// × 7 / 2.5 = $84. Profile: expected so far $25, factor 1.2; the rest
	// is half of today, Thursday and Friday = $25: 30 + 30 = $60, under
	// the $100: no exhaustion.
	week := findBudget(t, body, "team:platform", "week")
	if week.Used != "30.00" || week.ForecastLinear != "84.00" || *week.ForecastProfile != "60.00" || week.Forecast != "60.00" ||
		week.ExhaustsAt != nil || week.AtRisk || !week.WindowStart.Equal(at("2026-05-11T00:00:00Z")) {
		t.Errorf("week: %+v", week)
	}
	// Day (half elapsed): $10 used, linear $20, no profile within a day;
	// $2 left at $10 per 12 h: 2.4 h after noon, 14:24.
	day := findBudget(t, body, "team:platform", "day")
	if day.Used != "10.00" || day.Forecast != "20.00" || day.ForecastMethod != "linear" || day.ForecastProfile != nil ||
		day.ExhaustsAt == nil || !day.ExhaustsAt.Equal(at("2026-05-13T14:24:00Z")) || !day.AtRisk {
		t.Errorf("day: %+v", day)
	}
	// alice's $80 month is used up by $90: exhausted, no date.
	alice := findBudget(t, body, "user:alice", "month")
	if !alice.Exhausted || alice.ExhaustsAt != nil || !alice.AtRisk || alice.Remaining != "0.00" {
		t.Errorf("alice: %+v", alice)
	}
	// Requests count admitted requests: 9 this month, of 20. Linear: 9 ×
	// 31 / 12.5 = 22.32, so 22; profile: 9 + 12.5 × 9/8.5 = 22.235...,
	// so 22. At 18/17 requests a working day (9/17 for the rest of
	// today), the 11 = 187/17 left are 16/17 after Tuesday May 26, which
	// Wednesday May 27 spends 16/18 of the way through: 21:20.
	reqs := findBudget(t, body, "key:k-alice", "month")
	if reqs.Used != "9" || reqs.ForecastLinear != "22" || reqs.Forecast != "22" || reqs.ExhaustsAt == nil || !reqs.ExhaustsAt.Equal(at("2026-05-27T21:20:00Z")) {
		t.Errorf("requests: %+v", reqs)
	}
	// Tokens: 110 a record, 3 this week: 330 of 1000.
	if tok := findBudget(t, body, "key:k-alice", "week"); tok.Used != "330" || tok.Unit != "tokens" {
		t.Errorf("tokens: %+v", tok)
	}
	// At risk first: the exhausted and the forecast over their limits.
	var order []string
	for _, b := range body.Budgets {
		order = append(order, b.Scope+"/"+b.Per)
	}
	if diff := cmp.Diff([]string{"user:alice/month", "team:platform/day", "team:platform/month", "key:k-alice/month", "key:k-alice/week", "team:platform/week"}, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestForecastLinearOnly has no profile (the four weeks before today are
// not all used): the forecast is linear.
func TestForecastLinearOnly(t *testing.T) {
	// $2 at noon on each of May 1 to 10; now is May 11 00:00, 10 of 31 days.
	var recs []records.Record
	for d := 1; d <= 10; d++ {
		recs = append(recs, rec(fmt.Sprint("d", d), time.Date(2026, 5, d, 12, 0, 0, 0, time.UTC), 2))
	}
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		budget.Global: {usdLimit(50, budget.Month)},
		{Kind: budget.ScopeProject, Name: "none"}: {usdLimit(50, budget.Month)},
	}}
	var body budgetsBody
	get(t, server(t, recs, cfg, at("2026-05-11T00:00:00Z")), adminToken, "/v1/spend/budgets", &body)
	g := findBudget(t, body, "global", "month")
	// Used $20; linear 20 × 31 / 10 = $62; $30 left at $2 a day: 15 days,
	// May 26 00:00.
	if g.Used != "20.00" || g.Forecast != "62.00" || g.ForecastMethod != "linear" || g.ForecastProfile != nil ||
		g.ExhaustsAt == nil || !g.ExhaustsAt.Equal(at("2026-05-26T00:00:00Z")) {
		t.Errorf("global: %+v", g)
	}
	if p := findBudget(t, body, "project:none", "month"); p.Used != "0.00" || p.Forecast != "0.00" || p.ExhaustsAt != nil || p.AtRisk {
		t.Errorf("unused project: %+v", p)
	}
}

// TestForecastTimezone counts a day in budget_timezone: Tokyo's May 13
// runs from May 12 15:00 to May 13 15:00 UTC.
func TestForecastTimezone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	recs := []records.Record{rec("a", at("2026-05-12T06:00:00Z"), 7), rec("b", at("2026-05-13T06:00:00Z"), 10)}
	cfg := &budget.Config{Location: tokyo, Limits: map[budget.Scope][]budget.Limit{budget.Global: {usdLimit(100, budget.Day)}}}
	var body budgetsBody
	get(t, server(t, recs, cfg, at("2026-05-13T12:00:00Z")), adminToken, "/v1/spend/budgets", &body)
	// 21:00 in Tokyo: $10 over 21 of 24 hours, 10 × 24 / 21 = 11.428571428571428...
	g := findBudget(t, body, "global", "day")
	if body.Timezone != "Asia/Tokyo" || g.Used != "10.00" || g.Forecast != "11.428571428571" ||
		!g.WindowStart.Equal(at("2026-05-12T15:00:00Z")) || g.WindowStart.Format(time.RFC3339) != "2026-05-13T00:00:00+09:00" {
		t.Errorf("tokyo: %+v %s", g, body.Timezone)
	}
}

// TestViewerCannotReadAnotherTeam: a viewer token sees its team's totals
// only, and asking for another team's is 403, never an empty answer.
func TestViewerCannotReadAnotherTeam(t *testing.T) {
	recs := []records.Record{rec("p1", at("2026-05-13T06:00:00Z"), 10), rec("p2", at("2026-05-13T07:00:00Z"), 5)}
	r := rec("r1", at("2026-05-13T08:00:00Z"), 1000)
	r.Team, r.User, r.KeyID = "research", "bob", "k-bob"
	recs = append(recs, r)
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		{Kind: budget.ScopeTeam, Name: "platform"}: {usdLimit(100, budget.Month)},
		{Kind: budget.ScopeTeam, Name: "research"}: {usdLimit(100, budget.Month)},
		{Kind: budget.ScopeKey, Name: "k-alice"}:   {usdLimit(100, budget.Month)},
		{Kind: budget.ScopeKey, Name: "k-bob"}:     {usdLimit(100, budget.Month)},
		budget.Global:                              {usdLimit(5000, budget.Month)},
	}}
	h := server(t, recs, cfg, at("2026-05-13T12:00:00Z"))
	for _, target := range []string{
		"/v1/spend/totals?team=research",
		"/v1/spend/series?team=research&group_by=user",
		"/v1/spend/sessions?team=research",
		"/v1/spend/totals?team=research&format=csv",
		"/v1/spend/budgets?scope=team:research",
		"/v1/spend/budgets?scope=key:k-bob",
		"/v1/spend/budgets?scope=global",
	} {
		var e struct {
			Error struct{ Type string } `json:"error"`
		}
		if code := get(t, h, viewerToken, target, &e); code != http.StatusForbidden || e.Error.Type != "permission_error" {
			t.Errorf("viewer GET %s: %d %+v, want 403 permission_error", target, code, e)
		}
	}
	type totals struct {
		Filter map[string]string `json:"filter"`
		Groups []struct {
			Group   map[string]string `json:"group"`
			CostUSD string            `json:"cost_usd"`
		} `json:"groups"`
		Total struct {
			Requests int64  `json:"requests"`
			CostUSD  string `json:"cost_usd"`
		} `json:"total"`
	}
	var v, a totals
	get(t, h, viewerToken, "/v1/spend/totals?group_by=team,user", &v)
	if v.Total.CostUSD != "15.00" || v.Total.Requests != 2 || len(v.Groups) != 1 || v.Groups[0].Group["team"] != "platform" || v.Filter["team"] != "platform" {
		t.Errorf("viewer totals: %+v", v)
	}
	get(t, h, adminToken, "/v1/spend/totals?group_by=team", &a)
	if a.Total.CostUSD != "1015.00" || len(a.Groups) != 2 || a.Groups[0].Group["team"] != "research" {
		t.Errorf("admin totals: %+v", a)
	}
	var vb budgetsBody
	get(t, h, viewerToken, "/v1/spend/budgets", &vb)
	var scopes []string
	for _, b := range vb.Budgets {
		scopes = append(scopes, b.Scope)
	}
	if diff := cmp.Diff([]string{"key:k-alice", "team:platform"}, scopes); diff != "" {
		t.Errorf("viewer's budgets (-want +got):\n%s", diff)
	}
	var ab budgetsBody
	get(t, h, adminToken, "/v1/spend/budgets", &ab)
	if len(ab.Budgets) != 5 {
		t.Errorf("admin sees %d budgets, want 5", len(ab.Budgets))
	}
	// Unknown tokens are 401.
	if code := get(t, h, "nope", "/v1/spend/totals", nil); code != http.StatusUnauthorized {
		t.Errorf("unknown token: %d", code)
	}
}

func TestSeriesShapeAndCSV(t *testing.T) {
	recs := []records.Record{
		rec("a", at("2026-05-11T06:00:00Z"), 10), rec("b", at("2026-05-12T06:00:00Z"), 5), rec("c", at("2026-05-12T09:00:00Z"), 1),
	}
	recs[2].Model = "claude-haiku-4-5"
	recs[2].TTFTMS = 250
	recs[2].SessionID = "s1"
	h := server(t, recs, nil, at("2026-05-13T12:00:00Z"))
	var body struct {
		From     time.Time   `json:"from"`
		To       time.Time   `json:"to"`
		Step     string      `json:"step"`
		GroupBy  []string    `json:"group_by"`
		Buckets  []time.Time `json:"buckets"`
		Timezone string      `json:"timezone"`
		Series   []struct {
			Group  map[string]string `json:"group"`
			Total  json.RawMessage   `json:"total"`
			Points []struct {
				Start   time.Time `json:"start"`
				CostUSD string    `json:"cost_usd"`
				TTFT    *struct {
					P50 float64 `json:"p50"`
				} `json:"ttft_ms"`
			} `json:"points"`
		} `json:"series"`
		OtherGroups int `json:"other_groups"`
		Total       struct {
			Points []struct {
				CostUSD string `json:"cost_usd"`
			} `json:"points"`
		} `json:"total"`
	}
	if code := get(t, h, adminToken, "/v1/spend/series?from=2026-05-11&to=2026-05-14&step=day&group_by=model&limit=1", &body); code != 200 {
		t.Fatalf("%d", code)
	}
	if len(body.Buckets) != 3 || len(body.Series) != 1 || body.OtherGroups != 1 || body.Series[0].Group["model"] != "claude-sonnet-4-5" {
		t.Fatalf("series: %+v", body)
	}
	var costs, totals []string
	for i, p := range body.Series[0].Points {
		costs = append(costs, p.CostUSD)
		totals = append(totals, body.Total.Points[i].CostUSD)
	}
	if diff := cmp.Diff([]string{"10.00", "5.00", "0.00"}, costs); diff != "" {
		t.Errorf("sonnet's points (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.00", "6.00", "0.00"}, totals); diff != "" {
		t.Errorf("total points (-want +got):\n%s", diff)
	}
	req := httptest.NewRequest("GET", "/v1/spend/series?from=2026-05-11&to=2026-05-14&group_by=model,class&format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"start", "model", "class", "requests", "errors", "refused", "cost_usd", "cost_saved_usd", "cache_hits", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms"},
		{"2026-05-11T00:00:00Z", "claude-sonnet-4-5", "none", "1", "0", "0", "10.00", "0.00", "0", "100", "10", "0", "0", "1000", "1000", "", ""},
		{"2026-05-12T00:00:00Z", "claude-haiku-4-5", "main", "1", "0", "0", "1.00", "0.00", "0", "100", "10", "0", "0", "1000", "1000", "250", "250"},
		{"2026-05-12T00:00:00Z", "claude-sonnet-4-5", "none", "1", "0", "0", "5.00", "0.00", "0", "100", "10", "0", "0", "1000", "1000", "", ""},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("csv (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"/v1/spend/series?step=month", "/v1/spend/series?group_by=team,team", "/v1/spend/series?group_by=colour",
		"/v1/spend/totals?from=2026-05-12&to=2026-05-11", "/v1/spend/totals?tz=Mars/Base", "/v1/spend/totals?format=xml",
		"/v1/spend/totals?limit=0", "/v1/spend/totals?order=price", "/v1/spend/totals?tean=x", "/v1/spend/series?step=hour&from=2020-01-01",
		"/v1/spend/budgets?scope=galaxy",
	} {
		if code := get(t, h, adminToken, bad, nil); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, code)
		}
	}
}

// TestRoutesReadThePrincipal: the routes without authentication, as the
// dashboard mounts them, hold a viewer put in the context to its team, and
// a request without a principal sees nothing.
func TestRoutesReadThePrincipal(t *testing.T) {
	m := spend.NewMemory(10)
	r := rec("r1", at("2026-05-13T08:00:00Z"), 1000)
	r.Team = "research"
	if err := m.Write(context.Background(), []records.Record{rec("p1", at("2026-05-13T06:00:00Z"), 10), r}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, rt := range spend.Routes(spend.Options{Store: m, Now: func() time.Time { return at("2026-05-13T12:00:00Z") }}) {
		mux.HandleFunc(rt.Method+" "+rt.Path, rt.Handler)
	}
	for _, tt := range []struct {
		p    *adminapi.Principal
		want string
	}{
		{&adminapi.Principal{Name: "admin"}, `"cost_usd":"1010.00"`},
		{&adminapi.Principal{Name: "lead", Team: "platform"}, `"cost_usd":"10.00"`},
		{nil, `"cost_usd":"0.00"`},
	} {
		req := httptest.NewRequest("GET", "/v1/spend/totals", nil)
		if tt.p != nil {
			req = req.WithContext(adminapi.WithPrincipal(req.Context(), *tt.p))
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if !strings.Contains(w.Body.String(), `"total":{"requests"`) || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%+v: %s, want %s in the total", tt.p, w.Body, tt.want)
		}
	}
}

package dashboard

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"html"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/internal/recordgen"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

// The viewer of a recordgen team (recordgen.TeamName(3)), beside testTokens'
// viewer of team-03.
const (
	genViewerToken = "viewer-secret-mobile"
	genViewerTeam  = "mobile"
)

// genTokens are testTokens with a viewer of genViewerTeam too.
func genTokens() *adminapi.Tokens {
	return adminapi.NewTokens(adminToken, []adminapi.Viewer{
		{Name: "lead-03", Team: viewerTeam, SHA256: sha256.Sum256([]byte(viewerToken))},
		{Name: "lead-mobile", Team: genViewerTeam, SHA256: sha256.Sum256([]byte(genViewerToken))},
	})
}

// berlin is the budget timezone of the tests that use one.
func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// genFixture is generated records of 200 users in 10 teams over 35 days up
// to testNow, with budgets in Berlin time set from their use: team platform's
// month limit is half again what it used so far (so it is at risk and runs
// out within the month), the other limits far above their use.
type genFixture struct {
	recs []records.Record
	loc  *time.Location
	cfg  *budget.Config
	// keyTeam is the team of each key.
	keyTeam map[string]string
}

func newGenFixture(t testing.TB, n int) genFixture {
	t.Helper()
	f := genFixture{
		recs: recordgen.Generate(recordgen.Options{Seed: 16, Records: n, End: testNow, Days: 35}),
		loc:  berlin(t), keyTeam: map[string]string{},
	}
	for i := range f.recs {
		r := &f.recs[i]
		f.keyTeam[r.KeyID] = r.Team
		// The attempts the Sessions page shows (recordgen leaves them
		// out): one, or a fallback after an overloaded first provider.
		if r.Outcome == records.OutcomeDenied || r.Outcome == records.OutcomeInvalid {
			continue // refused before any attempt
		}
		r.Attempts = []records.Attempt{{N: 1, Provider: r.Provider, Model: r.Model, Status: r.Status, TimeToHeadersMS: r.TTFTMS}}
		if r.Outcome == records.OutcomeOK && r.Provider != "anthropic" && i%3 == 0 {
			r.Attempts = []records.Attempt{{N: 1, Provider: "anthropic", Model: r.Model, Status: 529, TimeToHeadersMS: 80}, {N: 2, Provider: r.Provider, Model: r.Model, Status: r.Status, TimeToHeadersMS: r.TTFTMS}}
		}
	}
	used := func(p adminapi.Principal, per budget.Window) int64 {
		w := wantNumbersOf(f.recs, p, testNow, f.loc)
		return map[budget.Window]int64{budget.Day: w.Today, budget.Week: w.Week, budget.Month: w.Month}[per]
	}
	team := func(name string) budget.Scope { return budget.Scope{Kind: budget.ScopeTeam, Name: name} }
	f.cfg = &budget.Config{Location: f.loc, Limits: map[budget.Scope][]budget.Limit{
		budget.Global: {
			{Unit: budget.USD, Per: budget.Day, Max: 100 * max(used(adminapi.Principal{}, budget.Day), 1)},
			{Unit: budget.USD, Per: budget.Month, Max: 10 * used(adminapi.Principal{}, budget.Month)},
		},
		team("platform"): {{Unit: budget.USD, Per: budget.Month, Max: used(adminapi.Principal{Team: "platform"}, budget.Month) * 3 / 2}},
		team(genViewerTeam): {
			{Unit: budget.USD, Per: budget.Month, Max: 10 * used(adminapi.Principal{Team: genViewerTeam}, budget.Month)},
			{Unit: budget.Tokens, Per: budget.Week, Max: 1_000_000_000},
		},
		team("data"): {{Unit: budget.USD, Per: budget.Week, Max: 10 * used(adminapi.Principal{Team: "data"}, budget.Week)}},
		{Kind: budget.ScopeKey, Name: recordgen.KeyID(3)}:     {{Unit: budget.Requests, Per: budget.Day, Max: 100_000}}, // a key of mobile
		{Kind: budget.ScopeKey, Name: recordgen.KeyID(4)}:     {{Unit: budget.Requests, Per: budget.Day, Max: 100_000}}, // a key of web
		{Kind: budget.ScopeUser, Name: recordgen.UserName(3)}: {{Unit: budget.USD, Per: budget.Day, Max: 1e15}},
	}}
	return f
}

// insights returns the SpendInsights of f over a spend.Memory of its records.
func (f genFixture) insights(t testing.TB) SpendInsights {
	return SpendInsights{Store: spendStore(t, f.recs), BudgetConfig: func() *budget.Config { return f.cfg }, KeyTeam: func(k string) string { return f.keyTeam[k] }}
}

// api returns the spend API over si's store and budgets, at now.
func (f genFixture) api(si SpendInsights, now func() time.Time) http.Handler {
	return spend.NewAPIHandler(spend.Options{Store: si.Store, Tokens: genTokens, Budgets: si.BudgetConfig, KeyTeam: si.KeyTeam, Now: now})
}

// numbers are the Overview's figures in a form every source can give: the
// insights, the spend API's JSON, the rendered page, and the test's own sums.
type numbers struct {
	Today, Week, Month                   int64 // cost
	TodayN, WeekN, MonthN                int64 // requests
	Requests, Errors, Refused, SavedPico int64
	Latency, TTFT                        [2]float64
	// ByTeam is each team's cost per day of the range, for the teams that
	// spent something.
	ByTeam              map[string][]int64
	TopUsers, TopModels []Top
}

func numbersOf(o Overview) numbers {
	n := numbers{
		Today: o.Today.CostPicoUSD, Week: o.Week.CostPicoUSD, Month: o.Month.CostPicoUSD,
		TodayN: o.Today.Requests, WeekN: o.Week.Requests, MonthN: o.Month.Requests,
		Requests: o.Requests, Errors: o.Errors, Refused: o.Refused, SavedPico: o.CacheSavedPicoUSD,
		Latency: [2]float64{o.LatencyMS.P50, o.LatencyMS.P95}, TTFT: [2]float64{o.TTFTMS.P50, o.TTFTMS.P95},
		ByTeam: map[string][]int64{}, TopUsers: o.TopUsers, TopModels: o.TopModels,
	}
	for i, g := range o.ByTeam.Groups {
		n.ByTeam[g] = o.ByTeam.CostPicoUSD[i]
	}
	return n
}

// wantNumbersOf adds up recs as p may see them at now, in loc, without the
// spend package: the windows from local midnight, Monday and the 1st, the
// range from midnight 29 days before today, errors and refusals by
// outcome, and the percentiles as percentile_disc over the completed
// requests that have the measure.
func wantNumbersOf(recs []records.Record, p adminapi.Principal, now time.Time, loc *time.Location) numbers {
	l := now.In(loc)
	today := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	week := time.Date(l.Year(), l.Month(), l.Day()-(int(l.Weekday())+6)%7, 0, 0, 0, 0, loc)
	month := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
	since := time.Date(l.Year(), l.Month(), l.Day()-29, 0, 0, 0, 0, loc)
	days := 30
	n := numbers{ByTeam: map[string][]int64{}}
	users, models := map[string]*Top{}, map[string]*Top{}
	var lat, ttft []float64
	for i := range recs {
		r := &recs[i]
		if !p.Admin() && r.Team != p.Team || !r.Start.Before(now) {
			continue
		}
		for _, w := range []struct {
			cost, n *int64
			from    time.Time
		}{{&n.Today, &n.TodayN, today}, {&n.Week, &n.WeekN, week}, {&n.Month, &n.MonthN, month}} {
			if !r.Start.Before(w.from) {
				*w.cost += r.CostPicoUSD
				*w.n++
			}
		}
		if r.Start.Before(since) {
			continue
		}
		n.Requests++
		switch r.Outcome {
		case records.OutcomeProviderError, records.OutcomeIncomplete, records.OutcomeUnavailable:
			n.Errors++
		case records.OutcomeDenied, records.OutcomeInvalid:
			n.Refused++
		}
		n.SavedPico += r.CostSavedPicoUSD
		if r.Outcome == records.OutcomeOK && r.LatencyMS > 0 {
			lat = append(lat, r.LatencyMS)
		}
		if r.Outcome == records.OutcomeOK && r.TTFTMS > 0 {
			ttft = append(ttft, r.TTFTMS)
		}
		s := r.Start.In(loc)
		day := 0
		for d := 1; d < days; d++ {
			if !s.Before(time.Date(l.Year(), l.Month(), l.Day()-29+d, 0, 0, 0, 0, loc)) {
				day = d
			}
		}
		team := cmp.Or(r.Team, "(none)")
		if n.ByTeam[team] == nil {
			n.ByTeam[team] = make([]int64, days)
		}
		n.ByTeam[team][day] += r.CostPicoUSD
		for _, top := range []struct {
			m    map[string]*Top
			name string
		}{{users, r.User}, {models, r.Model}} {
			if top.m[top.name] == nil {
				top.m[top.name] = &Top{Name: top.name}
			}
			top.m[top.name].CostPicoUSD += r.CostPicoUSD
			top.m[top.name].Requests++
		}
	}
	disc := func(v []float64) [2]float64 {
		if len(v) == 0 {
			return [2]float64{}
		}
		slices.Sort(v)
		at := func(q float64) float64 { return v[max(0, int(math.Ceil(q*float64(len(v))))-1)] }
		return [2]float64{at(0.5), at(0.95)}
	}
	n.Latency, n.TTFT = disc(lat), disc(ttft)
	top := func(m map[string]*Top) []Top {
		var out []Top
		for _, t := range m {
			out = append(out, *t)
		}
		slices.SortFunc(out, func(a, b Top) int {
			return cmp.Or(cmp.Compare(b.CostPicoUSD, a.CostPicoUSD), cmp.Compare(a.Name, b.Name))
		})
		return out[:min(len(out), TopN)]
	}
	n.TopUsers, n.TopModels = top(users), top(models)
	return n
}

// apiGet calls the spend API h as token and decodes its JSON into out.
func apiGet(t testing.TB, h http.Handler, token, target string, out any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
}

type apiMetrics struct {
	Requests         int64 `json:"requests"`
	Errors           int64 `json:"errors"`
	Refused          int64 `json:"refused"`
	CostPicoUSD      int64 `json:"cost_pico_usd"`
	CostSavedPicoUSD int64 `json:"cost_saved_pico_usd"`
	LatencyMS        *struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
	} `json:"latency_ms"`
	TTFTMS *struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
	} `json:"ttft_ms"`
}

// apiNumbers asks the spend API h, as token, for the Overview's numbers:
// the totals from the start of today, this week and this month (the
// windows' starts computed here, in loc), the default range's daily series
// by team and its totals, and the top users and models.
func apiNumbers(t testing.TB, h http.Handler, token string, now time.Time, loc *time.Location) numbers {
	t.Helper()
	l := now.In(loc)
	var n numbers
	for _, w := range []struct {
		cost, n *int64
		from    time.Time
	}{
		{&n.Today, &n.TodayN, time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)},
		{&n.Week, &n.WeekN, time.Date(l.Year(), l.Month(), l.Day()-(int(l.Weekday())+6)%7, 0, 0, 0, 0, loc)},
		{&n.Month, &n.MonthN, time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)},
	} {
		var tot struct{ Total apiMetrics }
		apiGet(t, h, token, "/v1/spend/totals?latency=false&from="+url.QueryEscape(w.from.Format(time.RFC3339)), &tot)
		*w.cost, *w.n = tot.Total.CostPicoUSD, tot.Total.Requests
	}
	var series struct {
		Series []struct {
			Group  map[string]string `json:"group"`
			Points []apiMetrics      `json:"points"`
		} `json:"series"`
		OtherGroups int `json:"other_groups"`
		Total       struct {
			Total apiMetrics `json:"total"`
		} `json:"total"`
	}
	apiGet(t, h, token, "/v1/spend/series?step=day&group_by=team&latency=false", &series)
	if series.OtherGroups != 0 {
		t.Fatalf("the series has %d other groups: more teams than the test expects", series.OtherGroups)
	}
	n.ByTeam = map[string][]int64{}
	for _, s := range series.Series {
		var pts []int64
		for _, p := range s.Points {
			pts = append(pts, p.CostPicoUSD)
		}
		n.ByTeam[cmp.Or(s.Group["team"], "(none)")] = pts
	}
	tot := series.Total.Total
	n.Requests, n.Errors, n.Refused, n.SavedPico = tot.Requests, tot.Errors, tot.Refused, tot.CostSavedPicoUSD
	var all struct{ Total apiMetrics }
	apiGet(t, h, token, "/v1/spend/totals", &all)
	if m := all.Total; m.LatencyMS != nil && m.TTFTMS != nil {
		n.Latency, n.TTFT = [2]float64{m.LatencyMS.P50, m.LatencyMS.P95}, [2]float64{m.TTFTMS.P50, m.TTFTMS.P95}
	}
	for _, top := range []struct {
		dim string
		out *[]Top
	}{{"user", &n.TopUsers}, {"model", &n.TopModels}} {
		var g struct {
			Groups []struct {
				Group map[string]string `json:"group"`
				apiMetrics
			} `json:"groups"`
		}
		apiGet(t, h, token, "/v1/spend/totals?latency=false&limit="+strconv.Itoa(TopN)+"&group_by="+top.dim, &g)
		*top.out = []Top{}
		for _, x := range g.Groups {
			*top.out = append(*top.out, Top{Name: x.Group[top.dim], CostPicoUSD: x.CostPicoUSD, Requests: x.Requests})
		}
	}
	return n
}

// apiBudget is a budget of GET /v1/spend/budgets.
type apiBudget struct {
	Scope      string     `json:"scope"`
	Unit       string     `json:"unit"`
	Per        string     `json:"per"`
	Limit      string     `json:"limit"`
	Used       string     `json:"used"`
	Forecast   string     `json:"forecast"`
	Method     string     `json:"forecast_method"`
	ExhaustsAt *time.Time `json:"exhausts_at"`
	AtRisk     bool       `json:"at_risk"`
}

func apiBudgets(t testing.TB, h http.Handler, token string) []apiBudget {
	t.Helper()
	var out struct{ Budgets []apiBudget }
	apiGet(t, h, token, "/v1/spend/budgets", &out)
	return out.Budgets
}

// budgetsAsAPI returns bs as the spend API writes them, amounts formatted.
func budgetsAsAPI(bs []Budget) []apiBudget {
	out := make([]apiBudget, len(bs))
	for i, b := range bs {
		f := func(v int64) string {
			if b.Unit == "usd" {
				return pricing.FormatUSD(v)
			}
			return strconv.FormatInt(v, 10)
		}
		out[i] = apiBudget{Scope: b.Scope, Unit: b.Unit, Per: b.Per, Limit: f(b.Limit), Used: f(b.Used), Forecast: f(b.Forecast), Method: b.Method, AtRisk: b.AtRisk()}
		if !b.ExhaustsAt.IsZero() {
			at := b.ExhaustsAt
			out[i].ExhaustsAt = &at
		}
	}
	return out
}

var (
	reSpendN   = regexp.MustCompile(`id="(spend-[a-z]+)-requests" data-n="(\d+)"`)
	reRequests = regexp.MustCompile(`id="requests" data-n="(\d+)"`)
	reErrors   = regexp.MustCompile(`id="errors" data-errors="(\d+)" data-refused="(\d+)"`)
	rePct      = regexp.MustCompile(`id="(latency|ttft)" data-p50="([0-9.e+]+)" data-p95="([0-9.e+]+)"`)
	reChart    = regexp.MustCompile(`(?s)<script type="application/json" id="chart-teams-data">(.*?)</script>`)
	reTopTable = regexp.MustCompile(`(?s)<table class="top" id="(top-users|top-models)">(.*?)</table>`)
	reTopRow   = regexp.MustCompile(`data-name="([^"]*)" data-requests="(\d+)"><td>[^<]*</td><td class="num" data-pico="(\d+)"`)
)

// pageNumbers reads the numbers of a rendered Overview page.
func pageNumbers(t testing.TB, page string) numbers {
	t.Helper()
	atoi := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	pico := picoByID(page)
	n := numbers{Today: pico["spend-today"], Week: pico["spend-week"], Month: pico["spend-month"], SavedPico: pico["cache-saved"], ByTeam: map[string][]int64{}}
	for _, m := range reSpendN.FindAllStringSubmatch(page, -1) {
		*map[string]*int64{"spend-today": &n.TodayN, "spend-week": &n.WeekN, "spend-month": &n.MonthN}[m[1]] = atoi(m[2])
	}
	if m := reRequests.FindStringSubmatch(page); m != nil {
		n.Requests = atoi(m[1])
	}
	if m := reErrors.FindStringSubmatch(page); m != nil {
		n.Errors, n.Refused = atoi(m[1]), atoi(m[2])
	}
	for _, m := range rePct.FindAllStringSubmatch(page, -1) {
		p50, _ := strconv.ParseFloat(m[2], 64)
		p95, _ := strconv.ParseFloat(m[3], 64)
		*map[string]*[2]float64{"latency": &n.Latency, "ttft": &n.TTFT}[m[1]] = [2]float64{p50, p95}
	}
	m := reChart.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no chart data in the overview")
	}
	var c chartData
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		t.Fatalf("chart data %s: %v", m[1], err)
	}
	for i, g := range c.Groups {
		n.ByTeam[g] = c.Pico[i]
	}
	for _, tb := range reTopTable.FindAllStringSubmatch(page, -1) {
		out := []Top{}
		for _, r := range reTopRow.FindAllStringSubmatch(tb[2], -1) {
			out = append(out, Top{Name: r[1], Requests: atoi(r[2]), CostPicoUSD: atoi(r[3])})
		}
		if tb[1] == "top-users" {
			n.TopUsers = out
		} else {
			n.TopModels = out
		}
	}
	return n
}

// pageBudget is a line of the Budgets page.
type pageBudget struct {
	Scope, Unit, Per string
	AtRisk           bool
	Used, Forecast   int64
	Limit            int64
	ExhaustsAt       string // RFC 3339, or ""
}

var reBudgetRow = regexp.MustCompile(`(?s)<tr class="budget( risk)?" data-scope="([^"]*)" data-unit="([^"]*)" data-per="([^"]*)">` +
	`.*?data-used="(\d+)".*?data-forecast="(\d+)".*?data-limit="(\d+)".*?<td class="exhausts"(?: data-exhausts="([^"]*)")?>`)

// pageBudgets reads the lines of a rendered Budgets page, in order.
func pageBudgets(page string) []pageBudget {
	var out []pageBudget
	for _, m := range reBudgetRow.FindAllStringSubmatch(page, -1) {
		used, _ := strconv.ParseInt(m[5], 10, 64)
		fc, _ := strconv.ParseInt(m[6], 10, 64)
		limit, _ := strconv.ParseInt(m[7], 10, 64)
		out = append(out, pageBudget{Scope: m[2], Unit: m[3], Per: m[4], AtRisk: m[1] != "", Used: used, Forecast: fc, Limit: limit, ExhaustsAt: html.UnescapeString(m[8])})
	}
	return out
}

// TestSpendInsightsOverview: the Overview's numbers, for the admin and for
// a viewer, over 20,000 records in Berlin time, equal the test's own sums
// and what the spend API answers, and the page shows them.
func TestSpendInsightsOverview(t *testing.T) {
	f := newGenFixture(t, 20_000)
	si := f.insights(t)
	api := f.api(si, func() time.Time { return testNow })
	srv, _, _ := serve(t, f.recs, Options{Insights: si, Tokens: genTokens})
	for _, who := range []struct {
		p     adminapi.Principal
		token string
	}{{adminapi.Principal{Name: "admin"}, adminToken}, {adminapi.Principal{Name: "lead-mobile", Team: genViewerTeam}, genViewerToken}} {
		o, err := si.Overview(context.Background(), who.p, testNow)
		if err != nil {
			t.Fatal(err)
		}
		got, want := numbersOf(o), wantNumbersOf(f.recs, who.p, testNow, f.loc)
		if want.Month <= want.Week || want.Week <= want.Today || want.Today == 0 || want.Requests <= records.MaxQueryLimit {
			t.Fatalf("%s: the fixture does not exercise the windows: %+v", who.p.Name, want)
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("%s: overview against the test's sums (-want +got):\n%s", who.p.Name, diff)
		}
		if diff := gocmp.Diff(apiNumbers(t, api, who.token, testNow, f.loc), got); diff != "" {
			t.Errorf("%s: overview against the spend API (-api +got):\n%s", who.p.Name, diff)
		}
		if !o.Since.Equal(time.Date(2026, 4, 14, 0, 0, 0, 0, f.loc)) || o.Location != f.loc || len(o.ByTeam.Days) != 30 {
			t.Errorf("%s: range from %s in %s, %d days", who.p.Name, o.Since, o.Location, len(o.ByTeam.Days))
		}
		b := newBrowser(t, srv)
		b.login(who.token)
		_, page := b.get(Prefix)
		if diff := gocmp.Diff(want, pageNumbers(t, page)); diff != "" {
			t.Errorf("%s: the page against the test's sums (-want +page):\n%s", who.p.Name, diff)
		}
	}
	// Limits: the admin's windows against the global budgets, a viewer's
	// against its team's.
	o, _ := si.Overview(context.Background(), adminapi.Principal{Name: "admin"}, testNow)
	if o.Today.LimitPicoUSD != f.cfg.Limits[budget.Global][0].Max || o.Week.LimitPicoUSD != 0 || o.Month.LimitPicoUSD != f.cfg.Limits[budget.Global][1].Max {
		t.Errorf("admin limits %d %d %d", o.Today.LimitPicoUSD, o.Week.LimitPicoUSD, o.Month.LimitPicoUSD)
	}
	o, _ = si.Overview(context.Background(), adminapi.Principal{Name: "lead-mobile", Team: genViewerTeam}, testNow)
	if want := f.cfg.Limits[budget.Scope{Kind: budget.ScopeTeam, Name: genViewerTeam}][0].Max; o.Month.LimitPicoUSD != want || o.Today.LimitPicoUSD != 0 {
		t.Errorf("viewer limits %d %d, want month %d", o.Today.LimitPicoUSD, o.Month.LimitPicoUSD, want)
	}
}

// TestOverviewMonthBeforeRange: on the 31st the month began before the
// 30-day range, and the month's spend still counts from the 1st.
func TestOverviewMonthBeforeRange(t *testing.T) {
	now := time.Date(2026, 5, 31, 10, 0, 0, 0, time.UTC)
	recs := []records.Record{
		{ID: "a", Start: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), Team: "red", CostPicoUSD: 5, Outcome: records.OutcomeOK},
		{ID: "b", Start: time.Date(2026, 4, 30, 23, 0, 0, 0, time.UTC), Team: "red", CostPicoUSD: 7, Outcome: records.OutcomeOK},
		{ID: "c", Start: now.Add(-time.Hour), Team: "red", CostPicoUSD: 11, Outcome: records.OutcomeOK},
	}
	o, err := SpendInsights{Store: spendStore(t, recs)}.Overview(context.Background(), adminapi.Principal{Name: "admin"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if o.Month.CostPicoUSD != 16 || o.Month.Requests != 2 || o.Requests != 1 || o.Today.CostPicoUSD != 11 {
		t.Errorf("month %+v, range %d requests, today %+v; want month 16 over 2, range 1, today 11", o.Month, o.Requests, o.Today)
	}
}

// TestSpendInsightsBudgets: the Budgets the dashboard shows are those of
// GET /v1/spend/budgets, in its order (at risk first), for the admin and
// for a viewer (its team's and its team's keys' only), and the page lists
// them in that order with the API's exhaustion instant.
func TestSpendInsightsBudgets(t *testing.T) {
	f := newGenFixture(t, 20_000)
	si := f.insights(t)
	api := f.api(si, func() time.Time { return testNow })
	srv, _, _ := serve(t, f.recs, Options{Insights: si, Tokens: genTokens})
	for _, who := range []struct {
		p      adminapi.Principal
		token  string
		scopes []string
	}{
		{adminapi.Principal{Name: "admin"}, adminToken, nil},
		{adminapi.Principal{Name: "lead-mobile", Team: genViewerTeam}, genViewerToken, []string{"key:" + recordgen.KeyID(3), "team:mobile", "team:mobile"}},
	} {
		bs, err := si.Budgets(context.Background(), who.p, testNow)
		if err != nil {
			t.Fatal(err)
		}
		want := apiBudgets(t, api, who.token)
		if diff := gocmp.Diff(want, budgetsAsAPI(bs), gocmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("%s: budgets against the spend API (-api +got):\n%s", who.p.Name, diff)
		}
		if who.scopes != nil {
			var scopes []string
			for _, b := range bs {
				scopes = append(scopes, b.Scope)
			}
			slices.Sort(scopes)
			if !slices.Equal(scopes, who.scopes) {
				t.Errorf("%s sees %v, want %v", who.p.Name, scopes, who.scopes)
			}
		}
		b := newBrowser(t, srv)
		b.login(who.token)
		_, page := b.get(Prefix + "budgets")
		lines := pageBudgets(page)
		if len(lines) != len(bs) {
			t.Fatalf("%s: the page shows %d budgets, want %d", who.p.Name, len(lines), len(bs))
		}
		for i, l := range lines {
			w := bs[i]
			at := ""
			if !w.ExhaustsAt.IsZero() {
				at = w.ExhaustsAt.Format(time.RFC3339)
			}
			if l != (pageBudget{Scope: w.Scope, Unit: w.Unit, Per: w.Per, AtRisk: w.AtRisk(), Used: w.Used, Forecast: w.Forecast, Limit: w.Limit, ExhaustsAt: at}) {
				t.Errorf("%s: line %d is %+v, want %+v", who.p.Name, i, l, w)
			}
		}
	}
	// The admin's first budget is platform's month, at risk, running out
	// at the instant the API gives, and used what the test adds up.
	bs := apiBudgets(t, api, adminToken)
	platform := wantNumbersOf(f.recs, adminapi.Principal{Team: "platform"}, testNow, f.loc).Month
	if len(bs) == 0 || bs[0].Scope != "team:platform" || !bs[0].AtRisk || bs[0].ExhaustsAt == nil || bs[0].Used != pricing.FormatUSD(platform) {
		t.Fatalf("first budget %+v, want team:platform at risk with an exhaustion date, used %s", bs[0], pricing.FormatUSD(platform))
	}
	for _, b := range bs[1:] {
		if b.AtRisk {
			t.Errorf("%s at risk too", b.Scope)
		}
	}
}

// TestOverviewOtherTeams: beyond the TopN dearest teams, the chart adds up
// the rest as one line, so that each day's stack is the day's spend.
func TestOverviewOtherTeams(t *testing.T) {
	recs := genRecords(3000, 120, 12, 20, testNow, 11)
	o, err := SpendInsights{Store: spendStore(t, recs)}.Overview(context.Background(), adminapi.Principal{Name: "admin"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := wantNumbersOf(recs, adminapi.Principal{}, testNow, time.UTC)
	if len(want.ByTeam) != 12 || len(o.ByTeam.Groups) != TopN+1 || o.ByTeam.Groups[TopN] != OtherGroups {
		t.Fatalf("%d teams, chart groups %v; want the %d dearest and %q", len(want.ByTeam), o.ByTeam.Groups, TopN, OtherGroups)
	}
	for day := range o.ByTeam.Days {
		var got, all int64
		for _, g := range o.ByTeam.CostPicoUSD {
			got += g[day]
		}
		for _, g := range want.ByTeam {
			all += g[day]
		}
		if got != all {
			t.Errorf("day %d: the stack adds up to %d, the day's spend is %d", day, got, all)
		}
	}
	for i, g := range o.ByTeam.Groups[:TopN] {
		if !slices.Equal(o.ByTeam.CostPicoUSD[i], want.ByTeam[g]) {
			t.Errorf("%s: %v, want %v", g, o.ByTeam.CostPicoUSD[i], want.ByTeam[g])
		}
	}
}

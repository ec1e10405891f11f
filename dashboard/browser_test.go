package dashboard

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/internal/browsertest"
	"github.com/tollgate-dev/tollgate/records"
)

var docsShots = flag.Bool("docs", false, "also copy the overview and session screenshots into docs/ for the README")

// TestBrowser drives the dashboard in a real headless Chromium over 20,000
// generated records (200 users, 10 teams, 35 days, Claude Code sessions
// with subagents) and budgets in Berlin time, at an injected instant: log
// in, read the overview's numbers and see them equal both the spend API's
// JSON and the test's own sums; see the at-risk budget first with the
// exhaustion instant the API gives; filter the records, open a record and a
// session with nested subagents; see a POST without its CSRF token refused;
// and, as a team's viewer, see that team's numbers only and another team's
// session refused. Every page is screenshot into the test's artifact
// directory (go test -artifacts keeps it).
func TestBrowser(t *testing.T) {
	f := newGenFixture(t, 20_000)
	si := f.insights(t)
	api := f.api(si, func() time.Time { return testNow })
	srv, _, _ := serve(t, f.recs, Options{Insights: si, Tokens: genTokens})
	ctx := browsertest.Start(t, 3*time.Minute)
	dir := t.ArtifactDir()
	shot := func(name string) string { return browsertest.Screenshot(t, ctx, dir, name) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	attr := func(sel, name string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		if err != nil || !v.Exists {
			t.Fatalf("%s[%s]: %v", sel, name, err)
		}
		return v.Value
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.querySelectorAll("+strconv.Quote(sel)+").length"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	html := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// overview checks the page's numbers against the test's sums and the
	// spend API's, as who.
	overview := func(who adminapi.Principal, token string) {
		t.Helper()
		got, want := pageNumbers(t, html()), wantNumbersOf(f.recs, who, testNow, f.loc)
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("%s: overview against the test's sums (-want +page):\n%s", token, diff)
		}
		if diff := gocmp.Diff(apiNumbers(t, api, token, testNow, f.loc), got); diff != "" {
			t.Errorf("%s: overview against the spend API (-api +page):\n%s", token, diff)
		}
		if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#spend-month"))); text != usd(want.Month) || want.Month == 0 {
			t.Errorf("%s: month shows %q, want %q", token, text, usd(want.Month))
		}
	}

	// Log in: the overview redirects to the login form.
	do("open", chromedp.Navigate(srv.URL+Prefix), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("login")
	do("log in", chromedp.SendKeys(chromedp.CSS("#token"), adminToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#chart-teams canvas")))
	overview(adminapi.Principal{Name: "admin"}, adminToken)
	// app.js ran under the page's Content-Security-Policy: uPlot drew the
	// chart (waited for above) and the bars have their widths.
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#top-users .hbar").style.width`)); err != nil || w != "100%" {
		t.Errorf("top user's bar width %q, %v; want 100%%", w, err)
	}
	if n := count("#chart-teams .u-legend .u-series"); n != 11 { // the x axis and 10 teams
		t.Errorf("the chart's legend has %d series, want 11", n)
	}
	copyShot(t, shot("overview"), "dashboard-overview.png")

	// Budgets: the at-risk one first, running out when the API says.
	bs := apiBudgets(t, api, adminToken)
	do("budgets", chromedp.Navigate(srv.URL+Prefix+"budgets"), chromedp.WaitVisible(chromedp.CSS("#budgets")))
	if count("tr.budget") != len(bs) || count("tr.budget.risk") != 1 {
		t.Errorf("budgets page: %d lines, %d at risk; want %d, 1", count("tr.budget"), count("tr.budget.risk"), len(bs))
	}
	first := "tr.budget:first-child"
	if got := attr(first, "class"); got != "budget risk" || attr(first, "data-scope") != bs[0].Scope || !bs[0].AtRisk || bs[0].ExhaustsAt == nil {
		t.Fatalf("first budget line %q %q; the API's first %+v", got, attr(first, "data-scope"), bs[0])
	}
	if got := attr(first+" td.exhausts", "data-exhausts"); got != bs[0].ExhaustsAt.Format(time.RFC3339) {
		t.Errorf("%s runs out at %s on the page, at %s by the API", bs[0].Scope, got, bs[0].ExhaustsAt.Format(time.RFC3339))
	}
	shot("budgets")

	// Filter the records by key (the store's filter) and model (the page's).
	want := 0
	for _, r := range f.recs {
		if r.KeyID == "key-011" && r.Model == "claude-sonnet-4-5" {
			want++
		}
	}
	do("records", chromedp.Navigate(srv.URL+Prefix+"records"), chromedp.WaitVisible(chromedp.CSS("#filters")),
		chromedp.SendKeys(chromedp.CSS(`input[name="key"]`), "key-011"),
		chromedp.SendKeys(chromedp.CSS(`input[name="model"]`), "claude-sonnet-4-5"),
		chromedp.Click(chromedp.CSS("#apply")), chromedp.WaitVisible(chromedp.CSS(`input[name="key"][value="key-011"]`)))
	if got := count("tr.rec"); got != min(want, PageSize) || want == 0 {
		t.Errorf("filtered records: %d rows, want %d", got, min(want, PageSize))
	}
	shot("records")
	do("one record", chromedp.Click(chromedp.CSS("tr.rec a")), chromedp.WaitVisible(chromedp.CSS("#record-json")))
	shot("record")

	// Open a Claude Code session whose subagents nest under their agent:
	// the largest of at most 30 requests.
	store := memStore(t, f.recs)
	var session records.Trace
	seen := map[string]bool{}
	for _, r := range f.recs {
		if r.SessionID == "" || seen[r.TraceID] {
			continue
		}
		seen[r.TraceID] = true
		tr, err := store.Trace(context.Background(), r.TraceID)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Totals.Requests <= 30 && tr.Totals.Requests > session.Totals.Requests && nests(tr.Requests) {
			session = tr
		}
	}
	// The Sessions page lists what GET /v1/spend/sessions gives for its
	// range, the dearest first.
	do("sessions", chromedp.Navigate(srv.URL+Prefix+"sessions"), chromedp.WaitVisible(chromedp.CSS("#sessions")))
	var apiSessions struct {
		Sessions []struct {
			ID          string `json:"session_id"`
			Requests    int64  `json:"requests"`
			CostPicoUSD int64  `json:"cost_pico_usd"`
		} `json:"sessions"`
	}
	apiGet(t, api, adminToken, "/v1/spend/sessions?limit=1000&from="+testNow.UTC().Add(-7*24*time.Hour).Truncate(time.Hour).Format(time.RFC3339), &apiSessions)
	if n := count("tr.sess"); n != min(PageSize, len(apiSessions.Sessions)) || n == 0 {
		t.Errorf("sessions page: %d lines, the API %d sessions", n, len(apiSessions.Sessions))
	}
	for i, want := range apiSessions.Sessions[:min(3, len(apiSessions.Sessions))] {
		sel := "tr.sess:nth-child(" + strconv.Itoa(i+1) + ")"
		if attr(sel, "data-id") != want.ID || attr(sel, "data-requests") != strconv.FormatInt(want.Requests, 10) ||
			attr(sel+" td[data-pico]", "data-pico") != strconv.FormatInt(want.CostPicoUSD, 10) {
			t.Errorf("session line %d: %s, the API's %+v", i+1, attr(sel, "data-id"), want)
		}
	}
	shot("sessions")
	do("one session", chromedp.Navigate(srv.URL+Prefix+"sessions/"+session.ID), chromedp.WaitVisible(chromedp.CSS("#session")))
	if got := count("tr.req"); got != session.Totals.Requests || got == 0 {
		t.Errorf("session shows %d requests, want %d", got, session.Totals.Requests)
	}
	if count("table.nested") == 0 {
		t.Errorf("session %s: no subagent nested", session.ID)
	}
	if got := attr("#session-cost", "data-pico"); got != strconv.FormatInt(session.Totals.CostPicoUSD, 10) {
		t.Errorf("session cost %s, want %d", got, session.Totals.CostPicoUSD)
	}
	copyShot(t, shot("session"), "dashboard-session.png")

	// A POST from the page without the CSRF token is refused.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/dashboard/logout", {method: "POST", body: new URLSearchParams({x: "1"})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("POST without a CSRF token: %d %v, want 403", status, err)
	}

	// Log out, log in as mobile's viewer: its team's numbers, its budgets,
	// and another team's session is 403.
	var other string
	for _, r := range f.recs {
		if r.Team != genViewerTeam {
			other = r.TraceID
			break
		}
	}
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	// A fresh load of the login page: typing into the page the logout's
	// redirect is still committing fails now and then under load ("Could
	// not find node with given id", seen once in CI).
	do("log in as the viewer", chromedp.Navigate(srv.URL+Prefix+"login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), genViewerToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#chart-teams canvas")))
	overview(adminapi.Principal{Name: "lead-mobile", Team: genViewerTeam}, genViewerToken)
	shot("viewer-overview")
	do("viewer budgets", chromedp.Navigate(srv.URL+Prefix+"budgets"), chromedp.WaitVisible(chromedp.CSS("#budgets")))
	if got, want := count("tr.budget"), len(apiBudgets(t, api, genViewerToken)); got != want || got == 0 {
		t.Errorf("the viewer's budgets page has %d lines, the API %d", got, want)
	}
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(srv.URL+Prefix+"sessions/"+other))
	if err != nil || resp.Status != 403 {
		t.Fatalf("viewer opens another team's session: %v %v, want 403", resp, err)
	}
	shot("viewer-forbidden")
}

// nests reports whether a subagent of recs nests under an agent that made
// requests in the session, as the Sessions page shows it.
func nests(recs []records.Record) bool {
	agents := map[string]bool{}
	for _, r := range recs {
		agents[r.AgentID] = true
	}
	for _, r := range recs {
		if r.AgentID != "" && r.ParentAgentID != "" && r.ParentAgentID != r.AgentID && agents[r.ParentAgentID] {
			return true
		}
	}
	return false
}

// copyShot copies a screenshot into docs/ under name when the test runs
// with -docs.
func copyShot(t *testing.T, path, name string) {
	if !*docsShots {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

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

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/internal/browsertest"
	"github.com/tollgate-dev/tollgate/records"
)

var docsShots = flag.Bool("docs", false, "also copy the overview and session screenshots into docs/ for the README")

// TestBrowser drives the dashboard in a real headless Chromium: log in, read
// the overview's numbers, filter the records, open a record and a session,
// see a viewer refused another team's session, and a POST without its CSRF
// token refused. Every page is screenshot into the test's artifact
// directory (go test -artifacts keeps it).
func TestBrowser(t *testing.T) {
	// Keep under records.MaxQueryLimit within the month so that the interim
	// overview is exact: the test compares it with its own sums.
	recs := genRecords(900, 60, 10, 35, testNow, 7)
	srv, _, _ := serve(t, memStore(t, recs), Options{})
	ctx := browsertest.Start(t, 2*time.Minute)
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

	// Log in: the overview redirects to the login form.
	do("open", chromedp.Navigate(srv.URL+Prefix), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("login")
	do("log in", chromedp.SendKeys(chromedp.CSS("#token"), adminToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#chart-teams canvas")))

	// The overview's numbers equal the test's own sums.
	today, week, month, _ := wantSpend(recs, adminapi.Principal{}, testNow)
	for id, want := range map[string]int64{"spend-today": today, "spend-week": week, "spend-month": month} {
		if got := attr("#"+id, "data-pico"); got != strconv.FormatInt(want, 10) {
			t.Errorf("%s: %s, want %d", id, got, want)
		}
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#spend-month"))); text != usd(month) {
		t.Errorf("month shows %q, want %q", text, usd(month))
	}
	// app.js ran under the page's Content-Security-Policy: uPlot drew the
	// chart (waited for above) and the bars have their widths.
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#top-users .hbar").style.width`)); err != nil || w != "100%" {
		t.Errorf("top user's bar width %q, %v; want 100%%", w, err)
	}
	copyShot(t, shot("overview"), "dashboard-overview.png")

	do("budgets", chromedp.Navigate(srv.URL+Prefix+"budgets"), chromedp.WaitVisible(chromedp.CSS("#budgets")))
	shot("budgets")

	// Filter the records by user and model.
	want := 0
	for _, r := range recs {
		if r.User == "user-011" && r.Model == "claude-sonnet-4-5" {
			want++
		}
	}
	do("records", chromedp.Navigate(srv.URL+Prefix+"records"), chromedp.WaitVisible(chromedp.CSS("#filters")),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "user-011"),
		chromedp.SendKeys(chromedp.CSS(`input[name="model"]`), "claude-sonnet-4-5"),
		chromedp.Click(chromedp.CSS("#apply")), chromedp.WaitVisible(chromedp.CSS(`input[name="user"][value="user-011"]`)))
	if got := count("tr.rec"); got != min(want, PageSize) || want == 0 {
		t.Errorf("filtered records: %d rows, want %d", got, want)
	}
	shot("records")
	do("one record", chromedp.Click(chromedp.CSS("tr.rec a")), chromedp.WaitVisible(chromedp.CSS("#record-json")))
	shot("record")

	// Open the session with the most requests, subagents nested.
	var biggest records.Trace
	store := memStore(t, recs)
	for _, r := range recs {
		if tr, _ := store.Trace(context.Background(), r.TraceID); tr.Totals.Requests > biggest.Totals.Requests {
			biggest = tr
		}
	}
	do("sessions", chromedp.Navigate(srv.URL+Prefix+"sessions"), chromedp.WaitVisible(chromedp.CSS("#sessions")))
	shot("sessions")
	do("one session", chromedp.Navigate(srv.URL+Prefix+"sessions/"+biggest.ID), chromedp.WaitVisible(chromedp.CSS("#session")))
	if got := count("tr.req"); got != biggest.Totals.Requests {
		t.Errorf("session shows %d requests, want %d", got, biggest.Totals.Requests)
	}
	if count("table.nested") == 0 {
		t.Errorf("session %s: no subagent nested", biggest.ID)
	}
	if got := attr("#session-cost", "data-pico"); got != strconv.FormatInt(biggest.Totals.CostPicoUSD, 10) {
		t.Errorf("session cost %s, want %d", got, biggest.Totals.CostPicoUSD)
	}
	copyShot(t, shot("session"), "dashboard-session.png")

	// A POST from the page without the CSRF token is refused.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/dashboard/logout", {method: "POST", body: new URLSearchParams({x: "1"})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("POST without a CSRF token: %d %v, want 403", status, err)
	}

	// Log out, log in as team-03's viewer: another team's session is 403.
	var other string
	for _, r := range recs {
		if r.Team != viewerTeam {
			other = r.TraceID
			break
		}
	}
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), viewerToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#spend-today")))
	today, _, _, _ = wantSpend(recs, adminapi.Principal{Team: viewerTeam}, testNow)
	if got := attr("#spend-today", "data-pico"); got != strconv.FormatInt(today, 10) {
		t.Errorf("viewer today %s, want %d", got, today)
	}
	shot("viewer-overview")
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(srv.URL+Prefix+"sessions/"+other))
	if err != nil || resp.Status != 403 {
		t.Fatalf("viewer opens another team's session: %v %v, want 403", resp, err)
	}
	shot("viewer-forbidden")
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

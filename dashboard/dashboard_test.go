package dashboard

import (
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

const (
	adminToken  = "admin-secret"
	viewerToken = "viewer-secret-03"
	viewerTeam  = "team-03"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testTokens() *adminapi.Tokens {
	return adminapi.NewTokens(adminToken, []adminapi.Viewer{{Name: "lead-03", Team: viewerTeam, SHA256: sha256.Sum256([]byte(viewerToken))}})
}

// tokenOf returns the test token of principal p.
func tokenOf(p adminapi.Principal) string {
	if p.Team != "" {
		return viewerToken
	}
	return adminToken
}

// serve starts the dashboard of opt over recs: Tokens default to
// testTokens, Records to a memory store of recs, Insights to SpendInsights
// over a spend.Memory of recs (no budgets), and Now to a clock at testNow.
func serve(t testing.TB, recs []records.Record, opt Options) (*httptest.Server, *Dashboard, *clock) {
	t.Helper()
	c := &clock{t: testNow}
	if opt.Tokens == nil {
		opt.Tokens = testTokens
	}
	if opt.Records == nil {
		opt.Records = memStore(t, recs)
	}
	if opt.Insights == nil {
		opt.Insights = SpendInsights{Store: spendStore(t, recs)}
	}
	if opt.Now == nil {
		opt.Now = c.now
	}
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, d)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, d, c
}

// browser is an HTTP client with cookies that does not follow redirects
// and sends an Origin on every POST, as a browser would.
type browser struct {
	t      testing.TB
	c      *http.Client
	base   string
	origin string
}

func newBrowser(t testing.TB, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.URL, origin: srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in %s", page)
	}
	return m[1]
}

// login logs b in with token and returns the CSRF token of its session.
func (b *browser) login(token string) string {
	b.t.Helper()
	_, page := b.get(Prefix + "login")
	resp, body := b.post(Prefix+"login", url.Values{"csrf": {csrfOf(b.t, page)}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != Prefix {
		b.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	status, page := b.get(Prefix)
	if status != 200 {
		b.t.Fatalf("overview after login: %d %s", status, page)
	}
	return csrfOf(b.t, page)
}

var dataPico = regexp.MustCompile(`id="([a-z-]+)" data-pico="(-?\d+)"`)

func picoByID(page string) map[string]int64 {
	out := map[string]int64{}
	for _, m := range dataPico.FindAllStringSubmatch(page, -1) {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		out[m[1]] = v
	}
	return out
}

func TestLoginCookieAndOverview(t *testing.T) {
	recs := genRecords(600, 40, 10, 20, testNow, 1)
	srv, _, _ := serve(t, recs, Options{SecureCookie: true})
	b := newBrowser(t, srv)

	if status, _ := b.get(Prefix); status != http.StatusSeeOther {
		t.Fatalf("overview without a session: %d, want a redirect to the login", status)
	}
	_, page := b.get(Prefix + "login")
	resp, body := b.post(Prefix+"login", url.Values{"csrf": {csrfOf(t, page)}, "token": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
	resp, _ = b.post(Prefix+"login", url.Values{"csrf": {csrfOf(t, body)}, "token": {adminToken}})
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteStrictMode || sess.Path != Prefix || len(sess.Value) < 40 {
		t.Fatalf("session cookie %+v", sess)
	}
	// The jar does not send a Secure cookie over plain HTTP; send it by hand.
	req, _ := http.NewRequest("GET", srv.URL+Prefix, nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sess.Value})
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	ov, _ := io.ReadAll(r2.Body)
	if r2.StatusCode != 200 {
		t.Fatalf("overview: %d", r2.StatusCode)
	}
	today, week, month, _ := wantSpend(recs, adminapi.Principal{}, testNow)
	got := picoByID(string(ov))
	if got["spend-today"] != today || got["spend-week"] != week || got["spend-month"] != month || today == 0 {
		t.Errorf("overview spend %v, want today %d week %d month %d", got, today, week, month)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if r2.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

func TestCSRF(t *testing.T) {
	srv, d, _ := serve(t, genRecords(50, 5, 2, 3, testNow, 2), Options{})
	b := newBrowser(t, srv)
	csrf := b.login(adminToken)

	for _, tt := range []struct {
		name, origin string
		form         url.Values
	}{
		{"no token", srv.URL, url.Values{}},
		{"wrong token", srv.URL, url.Values{"csrf": {"x" + csrf}}},
		{"no origin", "", url.Values{"csrf": {csrf}}},
		{"other origin", "http://evil.example", url.Values{"csrf": {csrf}}},
	} {
		b.origin = tt.origin
		resp, body := b.post(Prefix+"logout", tt.form)
		if resp.StatusCode != http.StatusForbidden || d.sessions.len() != 1 {
			t.Errorf("%s: %d, %d sessions, %s", tt.name, resp.StatusCode, d.sessions.len(), body)
		}
	}
	b.origin = srv.URL
	// The login form is CSRF-bound too: a login without the form's token
	// (a login CSRF) is refused.
	resp, _ := b.post(Prefix+"login", url.Values{"token": {adminToken}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without its form token: %d", resp.StatusCode)
	}
	resp, _ = b.post(Prefix+"logout", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || d.sessions.len() != 0 {
		t.Errorf("logout: %d, %d sessions", resp.StatusCode, d.sessions.len())
	}
	if status, _ := b.get(Prefix); status != http.StatusSeeOther {
		t.Errorf("overview after logout: %d", status)
	}
}

func TestViewerSeesItsTeamOnly(t *testing.T) {
	recs := genRecords(800, 40, 10, 20, testNow, 3)
	var mine, other records.Record
	for _, r := range recs {
		if r.Team == viewerTeam && mine.ID == "" {
			mine = r
		}
		if r.Team != viewerTeam && other.ID == "" {
			other = r
		}
	}
	limit := budget.Limit{Unit: budget.USD, Per: budget.Month, Max: 1e15}
	cfg := &budget.Config{Limits: map[budget.Scope][]budget.Limit{
		budget.Global: {limit}, {Kind: budget.ScopeTeam, Name: viewerTeam}: {limit}, {Kind: budget.ScopeTeam, Name: other.Team}: {limit},
		{Kind: budget.ScopeKey, Name: other.KeyID}: {limit},
	}}
	srv, _, _ := serve(t, recs, Options{Insights: SpendInsights{Store: spendStore(t, recs), BudgetConfig: func() *budget.Config { return cfg },
		KeyTeam: func(k string) string { return map[string]string{other.KeyID: other.Team}[k] }}})
	b := newBrowser(t, srv)
	b.login(viewerToken)

	for _, tt := range []struct {
		path   string
		status int
	}{
		{"sessions/" + mine.TraceID, 200},
		{"sessions/" + other.TraceID, 403},
		{"records/" + mine.ID + "?trace=" + mine.TraceID, 200},
		{"records/" + other.ID + "?trace=" + other.TraceID, 403},
		{"records?team=" + other.Team, 403},
		{"records?team=" + viewerTeam, 200},
		{"records?team=" + viewerTeam + "&bogus=1", 400},
		{"sessions/" + mine.TraceID + "?x=1", 400},
	} {
		if status, body := b.get(Prefix + tt.path); status != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.path, status, tt.status, body)
		}
	}
	_, page := b.get(Prefix + "records")
	if strings.Contains(page, other.Team+"</td>") || !strings.Contains(page, viewerTeam+"</td>") {
		t.Errorf("a viewer's records page shows another team's records")
	}
	_, page = b.get(Prefix + "sessions")
	if strings.Contains(page, ">"+other.Team+"<") {
		t.Errorf("a viewer's sessions page shows another team's sessions")
	}
	_, page = b.get(Prefix)
	today, week, month, _ := wantSpend(recs, adminapi.Principal{Team: viewerTeam}, testNow)
	if got := picoByID(page); got["spend-today"] != today || got["spend-week"] != week || got["spend-month"] != month {
		t.Errorf("viewer overview %v, want %d %d %d", got, today, week, month)
	}
	_, page = b.get(Prefix + "budgets")
	if got := pageBudgets(page); len(got) != 1 || got[0].Scope != "team:"+viewerTeam {
		t.Errorf("a viewer's budgets page shows %+v, want its team's only", got)
	}
	// Filters naming another team's records find none of them.
	for _, q := range []string{"records?session_id=" + other.SessionID, "records?trace_id=" + other.TraceID, "records?key=" + other.KeyID} {
		if status, page := b.get(Prefix + q); status != 200 || strings.Contains(page, `<tr class="rec">`) {
			t.Errorf("%s: %d, shows another team's records", q, status)
		}
	}
}

// TestViewerListsReachOlderRecords: a viewer's Records and Sessions pages
// ask the store for its team's records, so that another team's newer
// records (more than the store returns a query) do not hide them.
func TestViewerListsReachOlderRecords(t *testing.T) {
	var recs []records.Record
	for i := range 1500 {
		team, start := "team-01", testNow.Add(-time.Duration(i+1)*time.Minute)
		if i >= 1200 { // the viewer's team: the oldest 300
			team = viewerTeam
		}
		id := "r" + strconv.Itoa(i)
		recs = append(recs, records.Record{ID: id, TraceID: "trace-" + id, SessionID: "trace-" + id, Start: start, Team: team, User: "u", Outcome: records.OutcomeOK, CostPicoUSD: 1})
	}
	srv, _, _ := serve(t, recs, Options{})
	b := newBrowser(t, srv)
	b.login(viewerToken)
	if _, page := b.get(Prefix + "records"); !strings.Contains(page, "1–50 of 300<") || strings.Contains(page, "team-01</td>") {
		t.Errorf("a viewer's records page does not list its team's 300 records")
	}
	if _, page := b.get(Prefix + "sessions"); !strings.Contains(page, "1–50 of 300<") || strings.Contains(page, ">team-01<") {
		t.Errorf("a viewer's sessions page does not list its team's 300 sessions")
	}
}

// TestStatic: the vendored chart library is served to anyone (it is no
// secret), directories are not listed, and unknown pages are 404.
func TestStatic(t *testing.T) {
	srv, _, _ := serve(t, nil, Options{})
	b := newBrowser(t, srv)
	if status, body := b.get(Prefix + "static/vendor/uplot/uPlot.iife.min.js"); status != 200 || !strings.Contains(body, "uPlot") {
		t.Errorf("uPlot: %d", status)
	}
	for _, path := range []string{"static/", "static/vendor/", "nope"} {
		if status, _ := b.get(Prefix + path); status != 404 {
			t.Errorf("%s: %d", path, status)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	srv, _, c := serve(t, genRecords(10, 2, 1, 1, testNow, 4), Options{SessionTTL: time.Hour})
	b := newBrowser(t, srv)
	b.login(adminToken)
	c.add(59 * time.Minute)
	if status, _ := b.get(Prefix + "records"); status != 200 {
		t.Fatalf("before expiry: %d", status)
	}
	c.add(time.Minute)
	if status, _ := b.get(Prefix + "records"); status != http.StatusSeeOther {
		t.Fatalf("after expiry: %d, want a redirect to the login", status)
	}
}

// TestRevokedTokenEndsItsSessions: a viewer token removed from the policy
// (Tokens now without it) ends the sessions it logged in, at their next
// request.
func TestRevokedTokenEndsItsSessions(t *testing.T) {
	var mu sync.Mutex
	tokens := testTokens()
	current := func() *adminapi.Tokens { mu.Lock(); defer mu.Unlock(); return tokens }
	srv, d, _ := serve(t, genRecords(10, 2, 1, 1, testNow, 4), Options{Tokens: current})
	viewer, admin := newBrowser(t, srv), newBrowser(t, srv)
	viewer.login(viewerToken)
	admin.login(adminToken)
	mu.Lock()
	tokens = adminapi.NewTokens(adminToken, nil)
	mu.Unlock()
	if status, _ := viewer.get(Prefix); status != http.StatusSeeOther || d.sessions.len() != 1 {
		t.Errorf("revoked viewer: %d, %d sessions left, want a redirect to the login and 1", status, d.sessions.len())
	}
	if status, _ := admin.get(Prefix); status != 200 {
		t.Errorf("admin: %d", status)
	}
}

func TestSessionStoreIsBounded(t *testing.T) {
	s := newSessions(time.Hour, 3)
	var ids []string
	for i := range 5 {
		id, _ := s.create(adminapi.Principal{Name: "admin"}, adminToken, testNow.Add(time.Duration(i)*time.Minute))
		ids = append(ids, id)
	}
	if s.len() != 3 {
		t.Fatalf("%d sessions, want 3", s.len())
	}
	// The two ending soonest went first.
	for i, id := range ids {
		if _, ok := s.get(id, testNow.Add(5*time.Minute)); ok != (i >= 2) {
			t.Errorf("session %d live: %v", i, ok)
		}
	}
}

func TestDisabledWithoutAdminToken(t *testing.T) {
	srv, _, _ := serve(t, nil, Options{Tokens: func() *adminapi.Tokens { return adminapi.NewTokens("", nil) }})
	if status, body := newBrowser(t, srv).get(Prefix + "login"); status != http.StatusForbidden || !strings.Contains(body, "disabled") {
		t.Errorf("%d %s", status, body)
	}
}

func TestRecordsFilterAndPages(t *testing.T) {
	recs := genRecords(2500, 20, 4, 10, testNow, 5)
	newest := 0
	for i, r := range recs {
		if r.Start.After(recs[newest].Start) {
			newest = i
		}
	}
	recs[newest].Provider, recs[newest].RequestClass = "bedrock", "subagent"
	srv, _, _ := serve(t, recs, Options{})
	b := newBrowser(t, srv)
	b.login(adminToken)
	want := 0
	for _, r := range recs {
		if r.User == "user-007" && r.Model == "claude-opus-4-1" {
			want++
		}
	}
	_, page := b.get(Prefix + "records?key=key-user-007&user=user-007&model=claude-opus-4-1")
	if got := strings.Count(page, `<tr class="rec">`); got != min(want, PageSize) || want == 0 {
		t.Errorf("%d rows, want %d", got, want)
	}
	// The filters the store does not answer: project, route, provider,
	// request class, applied by the page.
	_, page = b.get(Prefix + "records?provider=bedrock&request_class=subagent&route=claude")
	if got := strings.Count(page, `<tr class="rec">`); got != 1 {
		t.Errorf("provider and request class: %d rows, want 1", got)
	}
	if _, page = b.get(Prefix + "records?provider=vertex"); strings.Count(page, `<tr class="rec">`) != 0 {
		t.Error("provider=vertex: rows shown")
	}
	var sess string
	want = 0
	for _, r := range recs {
		if sess == "" {
			sess = r.SessionID
		}
		if r.SessionID == sess {
			want++
		}
	}
	_, page = b.get(Prefix + "records?session_id=" + sess + "&trace_id=" + sess)
	if got := strings.Count(page, `<tr class="rec">`); got != want {
		t.Errorf("session %s: %d rows, want %d", sess, got, want)
	}
	_, page = b.get(Prefix + "records")
	if !strings.Contains(page, "1–50 of 1000 (from the newest 1000") || !strings.Contains(page, `href="?page=2"`) {
		t.Errorf("first page of 2500 records: no pager")
	}
	// A time range well before the newest records: the store bounds both
	// ends, so the page finds them however many records came after.
	from, until := testNow.AddDate(0, 0, -8), testNow.AddDate(0, 0, -7)
	want = 0
	for _, r := range recs {
		if !r.Start.Before(from) && r.Start.Before(until) {
			want++
		}
	}
	_, page = b.get(Prefix + "records?since=" + from.Format("2006-01-02T15:04") + "&until=" + until.Format(time.RFC3339))
	if !strings.Contains(page, "1–"+strconv.Itoa(min(want, PageSize))+" of "+strconv.Itoa(want)+"<") || want == 0 {
		t.Errorf("records of one day a week ago: want %d", want)
	}
	if status, _ := b.get(Prefix + "records?since=yesterday"); status != 400 {
		t.Errorf("bad since: %d", status)
	}
}

func TestAgentTree(t *testing.T) {
	rec := func(id, agent, parent string) records.Record {
		return records.Record{ID: id, AgentID: agent, ParentAgentID: parent, CostPicoUSD: 1}
	}
	root := agentTree([]records.Record{
		rec("1", "main", ""), rec("2", "sub", "main"), rec("3", "main", ""), rec("4", "subsub", "sub"),
		rec("5", "sub", "main"), rec("6", "orphan", "gone"), rec("7", "", ""),
	})
	var shape func(n *agentNode) string
	shape = func(n *agentNode) string {
		var parts []string
		for _, it := range n.Items {
			if it.Record != nil {
				parts = append(parts, it.Record.ID)
			} else {
				parts = append(parts, it.Agent.ID+"("+shape(it.Agent)+")")
			}
		}
		return strings.Join(parts, " ")
	}
	if got, want := shape(root), "1 sub(2 subsub(4) 5) 3 6 7"; got != want || root.Requests != 7 {
		t.Errorf("tree %q (%d requests), want %q", got, root.Requests, want)
	}
}

// TestSessionBySessionID: a Claude Code session whose requests carried
// their own trace ids is listed by its session id, and its page gathers
// its requests by that id; a viewer of another team gets 403 for it.
func TestSessionBySessionID(t *testing.T) {
	rec := func(id, trace string, start time.Time) records.Record {
		return records.Record{ID: id, TraceID: trace, SessionID: "sess-x", Start: start, Team: "team-01", User: "u", Outcome: records.OutcomeOK, CostPicoUSD: 3e12, Model: "m"}
	}
	recs := []records.Record{rec("a", "trace-a", testNow.Add(-2*time.Hour)), rec("b", "trace-b", testNow.Add(-time.Hour))}
	srv, _, _ := serve(t, recs, Options{})
	b := newBrowser(t, srv)
	b.login(adminToken)
	if _, page := b.get(Prefix + "sessions"); !strings.Contains(page, `href="/dashboard/sessions/sess-x"`) || !strings.Contains(page, `data-pico="6000000000000"`) {
		t.Errorf("sessions page lacks sess-x with its two requests' cost:\n%s", page)
	}
	if status, page := b.get(Prefix + "sessions/sess-x"); status != 200 || strings.Count(page, `<tr class="req"`) != 2 {
		t.Errorf("sess-x: %d, want its 2 requests:\n%s", status, page)
	}
	if status, _ := b.get(Prefix + "sessions/nope"); status != http.StatusNotFound {
		t.Errorf("unknown session: %d", status)
	}
	v := newBrowser(t, srv)
	v.login(viewerToken)
	if status, _ := v.get(Prefix + "sessions/sess-x"); status != http.StatusForbidden {
		t.Errorf("another team's session by id: %d, want 403", status)
	}
}

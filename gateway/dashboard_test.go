package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/pgtest"
	"github.com/tollgate-dev/tollgate/internal/recordgen"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/records/pgstore"
)

// TestServeDashboard: tollgate serve mounts the dashboard on the admin port;
// the admin token logs in and the Records page reads the records store.
func TestServeDashboard(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("admin-secret\n"), 0o600)
	_, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.AdminTokenFile = tokenFile })
	defer func() { cancel(); <-done }()
	base := "http://" + adminAddr
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var status int
	var page string
	for i := 0; i < 200; i++ { // until the admin port serves
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if status, page = get("/dashboard"); status != 200 || !strings.Contains(page, `name="token"`) {
		t.Fatalf("/dashboard: %d, want the login form\n%s\nlogs:\n%s", status, page, logs.String())
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no csrf field: %s", page)
	}
	req, _ := http.NewRequest("POST", base+"/dashboard/login", strings.NewReader(url.Values{"csrf": {csrf[1]}, "token": {"admin-secret"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `id="spend-today"`) {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	if status, page = get("/dashboard/records"); status != 200 || !strings.Contains(page, `id="records"`) {
		t.Fatalf("records page: %d %s", status, page)
	}
}

// TestServeDashboardOverPostgres: tollgate serve over a PostgreSQL holding
// generated records gives the dashboard the spend API's store. A team
// lead's viewer token sees its team's month on the Overview (the test's own
// sum) and its team's budget, and gets 403 for another team's records,
// session and totals, by page and by API; the admin sees every team's month.
func TestServeDashboardOverPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dbURL := pg.Database(t)
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	db, err := pgstore.Open(dbURL, pgstore.Options{Retention: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recs := recordgen.Generate(recordgen.Options{Seed: 7, Records: 5000, Users: 40, End: now.Add(-time.Hour), Days: 40})
	if err := db.Sink().Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// monthOf is the team's spend this month (UTC); "" is every team's.
	// rangeOf counts its requests in the Overview's 30 days.
	monthOf := func(team string) int64 {
		y, m, _ := time.Now().UTC().Date()
		start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		var sum int64
		for _, r := range recs {
			if (team == "" || r.Team == team) && !r.Start.Before(start) {
				sum += r.CostPicoUSD
			}
		}
		return sum
	}
	rangeOf := func(team string) int {
		y, m, d := time.Now().UTC().Date()
		start := time.Date(y, m, d-29, 0, 0, 0, 0, time.UTC)
		n := 0
		for _, r := range recs {
			if (team == "" || r.Team == team) && !r.Start.Before(start) {
				n++
			}
		}
		return n
	}
	var research records.Record
	for _, r := range recs {
		if r.Team == "research" && r.SessionID != "" {
			research = r
			break
		}
	}

	path := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(path, []byte("version: 1\nproviders:\n  demo: {type: anthropic, base_url: 'http://127.0.0.1:1', api_key: '${X:-k}'}\n"+
		"routes:\n  demo: {chain: [demo]}\n"+
		"teams:\n  platform:\n    budgets: [{usd: 100000, per: month}]\n    viewers: [{name: lead-alice, sha256: "+policy.HashKey("viewer-secret")+"}]\n"+
		"  research: {budgets: [{usd: 50000, per: month}]}\n"), 0o600)
	_, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.PolicyPath, c.AdminToken, c.PostgresURL = path, "admin-secret", dbURL })
	defer func() { cancel(); <-done }()
	base := "http://" + adminAddr
	for i := 0; i < 400; i++ { // until the admin port serves
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	login := func(token string) func(string) (int, string) {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		get := func(path string) (int, string) {
			t.Helper()
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s: %v\nlogs:\n%s", path, err, logs.String())
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		_, page := get("/dashboard/login")
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
		if csrf == nil {
			t.Fatalf("no login form: %s", page)
		}
		req, _ := http.NewRequest("POST", base+"/dashboard/login", strings.NewReader(url.Values{"csrf": {csrf[1]}, "token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return get
	}
	month := regexp.MustCompile(`id="spend-month" data-pico="(\d+)"`)
	requests := regexp.MustCompile(`id="requests" data-n="(\d+)"`)
	api := func(token, target string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	viewer := login("viewer-secret")
	status, page := viewer("/dashboard/")
	if m := month.FindStringSubmatch(page); status != 200 || m == nil || m[1] != strconv.FormatInt(monthOf("platform"), 10) {
		t.Errorf("viewer overview: %d, month %v, want %d\n%s", status, m, monthOf("platform"), page)
	}
	if m := requests.FindStringSubmatch(page); m == nil || m[1] != strconv.Itoa(rangeOf("platform")) || rangeOf("platform") == 0 {
		t.Errorf("viewer overview: %v requests in 30 days, want %d", m, rangeOf("platform"))
	}
	if _, page := viewer("/dashboard/budgets"); !strings.Contains(page, `data-scope="team:platform"`) || strings.Contains(page, "team:research") {
		t.Errorf("viewer budgets page: want team:platform only\n%s", page)
	}
	for _, p := range []string{"/dashboard/records?team=research", "/dashboard/sessions/" + research.TraceID,
		"/dashboard/records/" + research.ID + "?trace=" + research.TraceID} {
		if status, _ := viewer(p); status != http.StatusForbidden {
			t.Errorf("viewer GET %s: %d, want 403", p, status)
		}
	}
	for _, p := range []string{"/v1/spend/totals?team=research", "/v1/spend/series?team=research", "/v1/spend/sessions?team=research",
		"/v1/spend/budgets?scope=team:research", "/v1/records?team=research"} {
		if status, body := api("viewer-secret", p); status != http.StatusForbidden || !strings.Contains(body, "permission_error") {
			t.Errorf("viewer GET %s: %d %s, want 403", p, status, body)
		}
	}
	admin := login("admin-secret")
	if _, page := admin("/dashboard/"); month.FindStringSubmatch(page) == nil || month.FindStringSubmatch(page)[1] != strconv.FormatInt(monthOf(""), 10) {
		t.Errorf("admin overview month %v, want %d", month.FindStringSubmatch(page), monthOf(""))
	}
	if _, page := admin("/dashboard/"); requests.FindStringSubmatch(page) == nil || requests.FindStringSubmatch(page)[1] != strconv.Itoa(rangeOf("")) {
		t.Errorf("admin overview: %v requests in 30 days, want %d", requests.FindStringSubmatch(page), rangeOf(""))
	}
}

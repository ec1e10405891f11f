package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/pgtest"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend/spendtest"
)

// end100k is when the 100,000 records end.
var end100k = spendtest.End100k

func apiGet(t testing.TB, h http.Handler, target string, out any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer admin")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
	}
}

// TestSpendAPI100k loads the 100,000 records into Postgres with COPY and
// checks the API's numbers against sums computed here from the records.
func TestSpendAPI100k(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 records: not in -short")
	}
	_, d := open(t, Options{})
	recs := spendtest.Records100k()
	load(t, d, recs)
	if n := count(t, d); n != len(recs) {
		t.Fatalf("%d rows, want %d", n, len(recs))
	}
	h := spendtest.API100k(d)
	from := end100k.AddDate(0, 0, -30).Format(time.RFC3339)
	to := end100k.Format(time.RFC3339)

	// Sums computed independently: per team, per team and day, per model,
	// per session, and in all.
	teamCost := map[string]int64{}
	teamDayCost := map[string]int64{}
	modelReqs := map[string]int64{}
	sessionCost := map[string]int64{}
	var total, tokens, saved, errs, refused int64
	for _, r := range recs {
		teamCost[r.Team] += r.CostPicoUSD
		teamDayCost[r.Team+" "+r.Start.UTC().Format(time.DateOnly)] += r.CostPicoUSD
		modelReqs[r.Model]++
		total += r.CostPicoUSD
		saved += r.CostSavedPicoUSD
		tokens += r.Usage.InputTokens + r.Usage.OutputTokens + r.Usage.CacheReadTokens + r.Usage.CacheWrite5mTokens + r.Usage.CacheWrite1hTokens
		switch r.Outcome {
		case records.OutcomeProviderError, records.OutcomeIncomplete, records.OutcomeUnavailable:
			errs++
		case records.OutcomeDenied, records.OutcomeInvalid:
			refused++
		}
		if r.SessionID != "" {
			sessionCost[r.SessionID] += r.CostPicoUSD
		}
	}

	type metrics struct {
		Requests     int64  `json:"requests"`
		Errors       int64  `json:"errors"`
		Refused      int64  `json:"refused"`
		CostUSD      string `json:"cost_usd"`
		CostSavedUSD string `json:"cost_saved_usd"`
		Tokens       struct {
			Total int64 `json:"total"`
		} `json:"tokens"`
	}
	var totals struct {
		Groups []struct {
			Group map[string]string `json:"group"`
			metrics
		} `json:"groups"`
		Total metrics `json:"total"`
	}
	apiGet(t, h, "/v1/spend/totals?group_by=team&from="+from+"&to="+to, &totals)
	if totals.Total.Requests != int64(len(recs)) || totals.Total.CostUSD != pricing.FormatUSD(total) || totals.Total.Tokens.Total != tokens ||
		totals.Total.Errors != errs || totals.Total.Refused != refused || totals.Total.CostSavedUSD != pricing.FormatUSD(saved) {
		t.Errorf("total %+v, want %d requests, $%s, %d tokens, %d errors, %d refused, $%s saved",
			totals.Total, len(recs), pricing.FormatUSD(total), tokens, errs, refused, pricing.FormatUSD(saved))
	}
	if len(totals.Groups) != 10 {
		t.Errorf("%d teams, want 10", len(totals.Groups))
	}
	for _, g := range totals.Groups {
		if want := pricing.FormatUSD(teamCost[g.Group["team"]]); g.CostUSD != want {
			t.Errorf("team %s: $%s, want $%s", g.Group["team"], g.CostUSD, want)
		}
	}

	var series struct {
		Buckets []time.Time `json:"buckets"`
		Series  []struct {
			Group  map[string]string `json:"group"`
			Points []struct {
				Start   time.Time `json:"start"`
				CostUSD string    `json:"cost_usd"`
			} `json:"points"`
		} `json:"series"`
	}
	apiGet(t, h, "/v1/spend/series?step=day&group_by=team&tz=UTC&from="+from+"&to="+to, &series)
	if len(series.Buckets) != 30 || len(series.Series) != 10 {
		t.Fatalf("%d buckets, %d series; want 30 and 10", len(series.Buckets), len(series.Series))
	}
	for _, s := range series.Series {
		for _, p := range s.Points {
			if want := pricing.FormatUSD(teamDayCost[s.Group["team"]+" "+p.Start.UTC().Format(time.DateOnly)]); p.CostUSD != want {
				t.Errorf("team %s on %s: $%s, want $%s", s.Group["team"], p.Start.Format(time.DateOnly), p.CostUSD, want)
			}
		}
	}

	var byModel struct {
		Groups []struct {
			Group map[string]string `json:"group"`
			metrics
		} `json:"groups"`
	}
	apiGet(t, h, "/v1/spend/totals?group_by=model&order=requests&from="+from+"&to="+to, &byModel)
	if len(byModel.Groups) != 3 {
		t.Errorf("%d models, want 3", len(byModel.Groups))
	}
	for _, g := range byModel.Groups {
		if g.Requests != modelReqs[g.Group["model"]] {
			t.Errorf("model %s: %d requests, want %d", g.Group["model"], g.Requests, modelReqs[g.Group["model"]])
		}
	}

	var sessions struct {
		Sessions []struct {
			ID      string `json:"session_id"`
			CostUSD string `json:"cost_usd"`
		} `json:"sessions"`
	}
	apiGet(t, h, "/v1/spend/sessions?limit=10&from="+from+"&to="+to, &sessions)
	var top int64
	for _, c := range sessionCost {
		top = max(top, c)
	}
	if len(sessions.Sessions) != 10 || sessions.Sessions[0].CostUSD != pricing.FormatUSD(top) {
		t.Errorf("top sessions %+v, want the dearest at $%s", sessions.Sessions, pricing.FormatUSD(top))
	}
	for _, s := range sessions.Sessions {
		if want := pricing.FormatUSD(sessionCost[s.ID]); s.CostUSD != want {
			t.Errorf("session %s: $%s, want $%s", s.ID, s.CostUSD, want)
		}
	}

	var bud struct {
		Budgets []struct {
			Scope, Per, Used string
		} `json:"budgets"`
	}
	apiGet(t, h, "/v1/spend/budgets", &bud)
	if len(bud.Budgets) != 1+20+400+3 {
		t.Errorf("%d budgets, want 424", len(bud.Budgets))
	}
	var monthCost int64 // May in UTC, up to the clock, an hour before the end
	for _, r := range recs {
		if r.Start.Before(end100k.Add(-time.Hour)) && r.Start.Month() == time.May {
			monthCost += r.CostPicoUSD
		}
	}
	found := false
	for _, b := range bud.Budgets {
		if b.Scope == "global" {
			found = true
			if b.Used != pricing.FormatUSD(monthCost) {
				t.Errorf("global month used $%s, want $%s", b.Used, pricing.FormatUSD(monthCost))
			}
		}
	}
	if !found {
		t.Error("no global budget")
	}
}

// BenchmarkSpendQueries times each spend query of the acceptance
// (spendtest.Queries100k), through the API, over the 100,000 records in
// Postgres (README "Spend API" has the figures; the acceptance asks under
// 200 ms each).
func BenchmarkSpendQueries(b *testing.B) {
	srv := pgtest.Start(b)
	d, err := Open(srv.Database(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	load(b, d, spendtest.Records100k())
	if _, err := d.pool.Exec(context.Background(), "VACUUM ANALYZE records, records_hourly"); err != nil {
		b.Fatal(err)
	}
	spendtest.BenchmarkAPI(b, spendtest.API100k(d))
}

// BenchmarkSinkWrite times the sink's write of a batch of 500 generated
// records (each batch new), with the hourly rollup's trigger and without
// it: what the rollup costs the write path.
func BenchmarkSinkWrite(b *testing.B) {
	srv := pgtest.Start(b)
	d, err := Open(srv.Database(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	recs := spendtest.Records100k()
	c := context.Background()
	if _, err := d.Migrate(c); err != nil {
		b.Fatal(err)
	}
	n := 0
	batch := make([]records.Record, 500)
	for _, trigger := range []string{"ENABLE", "DISABLE"} {
		if _, err := d.pool.Exec(c, "ALTER TABLE records "+trigger+" TRIGGER records_hourly_add"); err != nil {
			b.Fatal(err)
		}
		b.Run("rollup_"+strings.ToLower(trigger)+"d", func(b *testing.B) {
			for b.Loop() {
				for i := range batch { // new ids each time
					batch[i] = recs[(n*len(batch)+i)%len(recs)]
					batch[i].ID = fmt.Sprintf("%s-%d", batch[i].ID, n)
				}
				n++
				if err := d.Sink().Write(c, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/internal/pgtest"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records/pgstore"
)

// BenchmarkPagesPostgres renders each page over 100,000 records (90 days,
// 200 users, 10 teams) in a real PostgreSQL (internal/pgtest), the store a
// deployment with --postgres-url reads for the lists and the aggregates,
// with the budgets of BenchmarkPages.
func BenchmarkPagesPostgres(b *testing.B) {
	srv := pgtest.Start(b)
	url := srv.Database(b)
	db, err := pgstore.Open(url, pgstore.Options{Retention: 10 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	recs := genRecords(100_000, 200, 10, 90, testNow, 9)
	for i := 0; i < len(recs); i += 5000 {
		if err := db.Sink().Write(ctx, recs[i:min(len(recs), i+5000)]); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE records"); err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	cfg := benchBudgets()
	d, err := New(Options{Tokens: testTokens, Records: db, Now: func() time.Time { return testNow },
		Insights: SpendInsights{Store: db, BudgetConfig: func() *budget.Config { return cfg }}})
	if err != nil {
		b.Fatal(err)
	}
	one := recs[len(recs)-1]
	for _, who := range []adminapi.Principal{{Name: "admin"}, {Name: "lead-03", Team: viewerTeam}} {
		id, _ := d.sessions.create(who, tokenOf(who), testNow)
		name := "admin/"
		if who.Team != "" {
			name = "viewer/"
		}
		for _, page := range benchPages(one) {
			b.Run(name+page, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest("GET", Prefix+page, nil)
					req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
					rec := httptest.NewRecorder()
					d.ServeHTTP(rec, req)
					if rec.Code != 200 && !(who.Team != "" && rec.Code == 403) {
						b.Fatalf("%s: %d %s", page, rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

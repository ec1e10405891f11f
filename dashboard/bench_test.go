package dashboard

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

// BenchmarkPages renders each page over 100,000 records (90 days, 200
// users, 10 teams) in the memory store, as the admin and as a viewer. Every
// page reads at most records.MaxQueryLimit records and shows PageSize rows,
// so its time does not grow with the store.
func BenchmarkPages(b *testing.B) {
	recs := genRecords(100_000, 200, 10, 90, testNow, 9)
	store := memStore(b, recs)
	d, err := New(Options{Tokens: testTokens, Records: store, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	one := recs[len(recs)-1]
	for _, who := range []adminapi.Principal{{Name: "admin"}, {Name: "lead-03", Team: viewerTeam}} {
		id, _ := d.sessions.create(who, tokenOf(who), testNow)
		for _, page := range []string{"", "budgets", "records", "records?user=user-011&model=claude-opus-4-1",
			"records?since=2026-04-01T00:00&until=2026-04-02T00:00", "sessions",
			"sessions/" + one.TraceID, "records/" + one.ID + "?trace=" + one.TraceID} {
			name := "admin/"
			if who.Team != "" {
				name = "viewer/"
			}
			b.Run(name+page, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest("GET", Prefix+page, nil)
					req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
					rec := httptest.NewRecorder()
					d.ServeHTTP(rec, req)
					if rec.Code != 200 && !(who.Team != "" && rec.Code == 403) {
						b.Fatalf("%s: %d", page, rec.Code)
					}
				}
			})
		}
	}
}

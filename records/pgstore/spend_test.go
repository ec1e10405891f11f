package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
	"github.com/tollgate-dev/tollgate/spend/spendtest"
)

// load writes recs to d through its sink (COPY), in batches of 5,000.
func load(t testing.TB, d *DB, recs []records.Record) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := 0; i < len(recs); i += 5000 {
		if err := d.Sink().Write(c, recs[i:min(i+5000, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpendContract(t *testing.T) {
	_, d := open(t, Options{})
	spendtest.Run(t, func(t *testing.T, recs []records.Record) spend.Store {
		load(t, d, recs)
		load(t, d, recs[:100]) // a replay adds nothing
		return d
	})
}

func TestQueryByTeamAndSession(t *testing.T) {
	_, d := open(t, Options{})
	a, b, c := fullRecord(1, t0), fullRecord(2, t0.Add(time.Second)), fullRecord(3, t0.Add(2*time.Second))
	b.Team, c.SessionID = "research", "session-2"
	load(t, d, []records.Record{a, b, c})
	for _, tc := range []struct {
		q    records.Query
		want int
	}{
		{records.Query{Team: "platform"}, 2},
		{records.Query{Team: "research"}, 1},
		{records.Query{SessionID: "session-2"}, 1},
		{records.Query{Team: "research", SessionID: "session-2"}, 0},
	} {
		got, err := d.Query(ctx(t), tc.q)
		if err != nil || len(got) != tc.want {
			t.Errorf("%+v: %d records (%v), want %d", tc.q, len(got), err, tc.want)
		}
	}
}

package pgstore

import (
	"context"
	"slices"
	"sync"
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

// checkRollup checks the hourly rollup against recs, the records d holds:
// its totals equal theirs, and so do the spend queries over whole hours,
// which read the rollup alone.
func checkRollup(t *testing.T, d *DB, recs []records.Record) {
	t.Helper()
	var n, cost int64
	if err := d.pool.QueryRow(ctx(t), "SELECT coalesce(sum(requests), 0)::bigint, coalesce(sum(cost_pico_usd), 0)::bigint FROM records_hourly").Scan(&n, &cost); err != nil {
		t.Fatal(err)
	}
	var wantCost int64
	from, to := recs[0].Start, recs[0].Start
	for _, r := range recs {
		wantCost += r.CostPicoUSD
		if r.Start.Before(from) {
			from = r.Start
		}
		if r.Start.After(to) {
			to = r.Start
		}
	}
	if n != int64(len(recs)) || cost != wantCost {
		t.Errorf("rollup: %d requests costing %d, want %d costing %d", n, cost, len(recs), wantCost)
	}
	from, to = floorHour(from), floorHour(to).Add(time.Hour)
	if roll, _, raw := split(from, to, spend.Hour, time.UTC); len(raw) > 0 || !roll.from.Equal(from) {
		t.Fatalf("split %v %v: %v %v, want the rollup alone", from, to, roll, raw)
	}
	spendtest.Compare(t, d, recs, spend.Query{From: from, To: to, Step: spend.Hour, GroupBy: []spend.Dim{spend.DimUser, spend.DimClass}, Percentiles: true, Rollup: true})
}

// TestRollupBackfill writes records with the schema of migration 2, then
// migrates: migration 3 adds up the records already stored into the rollup,
// and its trigger the later ones, each once.
func TestRollupBackfill(t *testing.T) {
	_, d := open(t, Options{})
	if _, err := d.migrateTo(ctx(t), 2); err != nil {
		t.Fatal(err)
	}
	recs := spendtest.Records()
	before, after := recs[:2000], recs[2000:]
	var days []time.Time
	for _, r := range recs {
		days = append(days, day(r.Start))
	}
	if err := d.ensurePartitions(ctx(t), days); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, len(before))
	for i := range before {
		v, err := values(&before[i])
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = v
	}
	if err := d.insert(ctx(t), rows); err != nil {
		t.Fatal(err)
	}
	if applied, err := d.Migrate(ctx(t)); err != nil || !slices.Contains(applied, 3) {
		t.Fatalf("Migrate: %v, %v; want 3 applied", applied, err)
	}
	load(t, d, after)
	load(t, d, recs[1500:2500]) // a replay across both
	checkRollup(t, d, recs)
}

func TestSpendContract(t *testing.T) {
	_, d := open(t, Options{})
	spendtest.Run(t, func(t *testing.T, recs []records.Record) spend.Store {
		load(t, d, recs)
		load(t, d, recs[:100]) // a replay adds nothing
		return d
	})
}

// parentOnly is a DB that reads the records through the partitioned table
// only, as Aggregate does after a partition it named was dropped.
type parentOnly struct{ *DB }

func (p parentOnly) Aggregate(ctx context.Context, q spend.Query) ([]spend.Row, error) {
	return p.aggregate(ctx, q, false)
}

// TestAggregateThroughThePartitionedTable checks the records' part read
// through the partitioned table, not each day's partition by name.
func TestAggregateThroughThePartitionedTable(t *testing.T) {
	_, d := open(t, Options{})
	recs := spendtest.Records()
	load(t, d, recs)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	from := spendtest.End.AddDate(0, 0, -10).Add(7 * time.Minute)
	spendtest.Compare(t, parentOnly{d}, recs, spend.Query{From: from, To: spendtest.End.Add(-time.Minute), Step: spend.Day, Location: kolkata,
		GroupBy: []spend.Dim{spend.DimTeam}, Percentiles: true, Rollup: true})
	// A range of one hour with no partition: nothing, from neither.
	q := spend.Query{From: spendtest.End.AddDate(1, 0, 0).Add(time.Minute), To: spendtest.End.AddDate(1, 0, 0).Add(2 * time.Minute)}
	spendtest.Compare(t, d, recs, q)
	spendtest.Compare(t, parentOnly{d}, recs, q)
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

// TestSplit checks which hours the rollup answers for.
func TestSplit(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 30)
	for _, tc := range []struct {
		name       string
		from, to   time.Time
		step       spend.Step
		loc        *time.Location
		roll       span
		holes, raw int
	}{
		{"aligned", from, to, spend.Day, berlin, span{from, to}, 0, 0},
		{"edges", from.Add(-time.Minute), to.Add(time.Second), spend.Hour, time.UTC, span{from, to}, 0, 2},
		{"within an hour", from.Add(time.Minute), from.Add(59 * time.Minute), spend.NoStep, time.UTC, span{}, 0, 1},
		{"days off the hour", from, to, spend.Day, kolkata, span{from, to}, 30, 30},
		{"hours off the hour", from, to, spend.Hour, kolkata, span{}, 0, 1},
	} {
		roll, holes, raw := split(tc.from, tc.to, tc.step, tc.loc)
		if !roll.from.Equal(tc.roll.from) || !roll.to.Equal(tc.roll.to) || len(holes) != tc.holes || len(raw) != tc.raw {
			t.Errorf("%s: roll %v, %d holes, %d raw; want %v, %d, %d", tc.name, roll, len(holes), len(raw), tc.roll, tc.holes, tc.raw)
		}
		for _, h := range holes {
			if h.Minute() != 0 || h.In(kolkata).Minute() != 30 {
				t.Errorf("%s: hole %v", tc.name, h)
			}
		}
	}
}

// TestRollupUnderConcurrentWriters has four writers store the same records
// at once, in batches of different orders and sizes, as replicas replaying
// overlapping spools would: each record is stored and added up once. A
// write that fails (Postgres may break a deadlock between two of them) is
// retried, as the records Writer does.
func TestRollupUnderConcurrentWriters(t *testing.T) {
	_, d := open(t, Options{})
	recs := spendtest.Records()
	var days []time.Time
	for _, r := range recs {
		days = append(days, day(r.Start))
	}
	if _, err := d.Migrate(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := d.ensurePartitions(ctx(t), days); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := slices.Clone(recs)
			if w%2 == 1 {
				slices.Reverse(mine)
			}
			size := 100 + 150*w
			for i := 0; i < len(mine); i += size {
				batch := mine[i:min(i+size, len(mine))]
				for try := 0; ; try++ {
					err := d.Sink().Write(ctx(t), batch)
					if err == nil {
						break
					}
					if try == 20 {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := count(t, d); n != len(recs) {
		t.Errorf("%d rows, want %d", n, len(recs))
	}
	checkRollup(t, d, recs)
}

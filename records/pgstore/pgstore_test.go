package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/internal/pgtest"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// t0 is the start of the first test record.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// open starts a server with a database for the test and opens a DB on it.
func open(t *testing.T, opt Options) (*pgtest.Server, *DB) {
	t.Helper()
	srv := pgtest.Start(t)
	d, err := Open(srv.Database(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return srv, d
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// fullRecord has every field set, times to the microsecond.
func fullRecord(i int, start time.Time) records.Record {
	cost := int64(i) * 3_750_000_000
	return records.Record{
		ID:              fmt.Sprintf("req-%05d", i),
		ClientRequestID: "client-" + fmt.Sprint(i),
		Start:           start,
		End:             start.Add(1500*time.Millisecond + 7*time.Microsecond),
		TraceID:         "trace-1",
		SessionID:       "session-1", AgentID: "agent-2", ParentAgentID: "agent-1", RequestClass: "subagent",
		KeyID: "key-1", User: "alice", Team: "platform", Project: "billing",
		Metadata: map[string]string{"cost_center": "42", "é": "ü"},
		Route:    "claude", Provider: "anthropic",
		Attempts: []records.Attempt{
			{N: 1, Provider: "bedrock", Model: "anthropic.claude-sonnet-4-5", Status: 529, TimeToHeadersMS: 12.5},
			{N: 2, Provider: "anthropic", Model: "claude-sonnet-4-5", Status: 200, TimeToHeadersMS: 80.25},
		},
		Endpoint: "messages", Method: "POST", Path: "/v1/messages?beta=true",
		RequestedModel: "@claude/sonnet", Model: "claude-sonnet-4-5", ResponseModel: "claude-sonnet-4-5-20250929",
		Stream: true, Status: 200, ErrorType: "overloaded_error", Outcome: records.OutcomeOK,
		Usage: pricing.Usage{
			InputTokens: 10, CacheReadTokens: 20, CacheWrite5mTokens: 30, CacheWrite1hTokens: 40,
			OutputTokens: 50, ReasoningTokens: 6, WebSearchRequests: 7, WebFetchRequests: 8,
		},
		CostPicoUSD: cost, Cost: pricing.FormatUSD(cost), PriceEstimated: true, UsageEstimated: true,
		PriceCatalog: "2026-04", LatencyMS: 1500.125, TTFTMS: 320.5, CacheStatus: "MISS",
		CostSavedPicoUSD: 99, CostSaved: "0.000000000099", BudgetOutcome: "fitted",
		ReservationID: "res-1", ReservedPicoUSD: 123_456, MaxTokensFitted: 1024, ThinkingBudgetFitted: 512,
		RequestBody: `{"model":"x"}`, ResponseBody: `{"id":"msg_1"}`,
	}
}

func count(t *testing.T, d *DB) int {
	t.Helper()
	var n int
	if err := d.pool.QueryRow(ctx(t), "SELECT count(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRoundTripEveryField(t *testing.T) {
	_, d := open(t, Options{})
	want := fullRecord(1, t0.Add(123456*time.Microsecond))
	minimal := records.Record{ID: "req-min", Start: t0.Add(time.Hour), End: t0.Add(time.Hour), Outcome: records.OutcomeDenied}
	if err := d.Sink().Write(ctx(t), []records.Record{want, minimal}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Query(ctx(t), records.Query{TraceID: "trace-1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]records.Record{want}, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Nothing set comes back as nothing: no empty maps or lists.
	got, err = d.Query(ctx(t), records.Query{Since: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]records.Record{minimal}, got); diff != "" {
		t.Errorf("minimal record (-want +got):\n%s", diff)
	}
	// Until bounds the start: the minimal record starts at t0+1h.
	if got, err = d.Query(ctx(t), records.Query{Until: t0.Add(time.Hour)}); err != nil || len(got) != 1 || got[0].ID != want.ID {
		t.Errorf("until t0+1h: %d records, %v; want only %s", len(got), err, want.ID)
	}
	tr, err := d.Trace(ctx(t), "trace-1")
	if err != nil || tr.Totals.Requests != 1 || tr.Totals.CostPicoUSD != want.CostPicoUSD {
		t.Errorf("trace: %+v, %v", tr.Totals, err)
	}
	if _, err := d.Trace(ctx(t), "nope"); !errors.Is(err, records.ErrNotFound) {
		t.Errorf("unknown trace: %v, want ErrNotFound", err)
	}
	// Nanoseconds are cut to Postgres's microseconds.
	nano := fullRecord(2, t0.Add(2*time.Second+1999*time.Nanosecond))
	nano.TraceID = "trace-nano"
	if err := d.Sink().Write(ctx(t), []records.Record{nano}); err != nil {
		t.Fatal(err)
	}
	got, _ = d.Query(ctx(t), records.Query{TraceID: "trace-nano"})
	if len(got) != 1 || !got[0].Start.Equal(t0.Add(2*time.Second+time.Microsecond)) {
		t.Errorf("nanosecond start came back as %v", got)
	}
}

func TestRejectsWhatItCannotStore(t *testing.T) {
	_, d := open(t, Options{})
	good := fullRecord(1, t0)
	noID := fullRecord(2, t0)
	noID.ID = ""
	nul := fullRecord(3, t0)
	nul.Metadata = map[string]string{"k": "a\x00b"}
	err := d.Sink().Write(ctx(t), []records.Record{noID, good, nul})
	var rej *records.RejectedError
	if !errors.As(err, &rej) || len(rej.Records) != 2 || rej.Records[0].Index != 0 || rej.Records[1].Index != 2 {
		t.Fatalf("Write: %v, want records 0 and 2 rejected", err)
	}
	if n := count(t, d); n != 1 {
		t.Errorf("%d rows, want the one good record", n)
	}
}

// countingSink records the size of every batch the Writer hands the sink.
type countingSink struct {
	records.Sink
	mu      sync.Mutex
	batches []int
}

func (c *countingSink) Write(ctx context.Context, recs []records.Record) error {
	c.mu.Lock()
	c.batches = append(c.batches, len(recs))
	c.mu.Unlock()
	return c.Sink.Write(ctx, recs)
}

func newWriter(t *testing.T, sink records.Sink, batch int) (*records.Writer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := records.NewWriter(records.WriterOptions{
		Sinks: []records.Sink{sink}, SpoolDir: t.TempDir(), BatchSize: batch,
		RetryInterval: 20 * time.Millisecond, WriteTimeout: 2 * time.Second, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, reg
}

func closeWriter(t *testing.T, w *records.Writer) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(c); err != nil {
		t.Fatal(err)
	}
}

func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == "postgres" {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBatchesThroughTheWriter(t *testing.T) {
	_, d := open(t, Options{})
	cs := &countingSink{Sink: d.Sink()}
	w, _ := newWriter(t, cs, 50)
	want := make([]string, 500)
	for i := range want {
		r := fullRecord(i+1, t0.Add(time.Duration(i)*time.Minute)) // across two days
		want[i] = r.ID
		w.Emit(r)
	}
	closeWriter(t, w)
	got, err := d.Query(ctx(t), records.Query{Limit: records.MaxQueryLimit})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i := range got {
		ids[i] = got[i].ID
	}
	slices.Sort(ids)
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("stored ids (-want +got):\n%s", diff)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.batches) >= 500 || slices.Max(cs.batches) > 50 {
		t.Errorf("batches %v: want fewer writes than records, each at most 50", cs.batches)
	}
}

// TestExactlyOnceAcrossOutage stops Postgres, emits 100 records, starts it
// again: the spool replays them, and each is stored once. A batch written
// twice (a reply lost after the commit) adds nothing either.
func TestExactlyOnceAcrossOutage(t *testing.T) {
	srv, d := open(t, Options{})
	// Migrated and partitioned before the outage, as a running gateway is.
	if err := d.Sink().Write(ctx(t), []records.Record{fullRecord(1000, t0)}); err != nil {
		t.Fatal(err)
	}
	w, reg := newWriter(t, d.Sink(), 16)
	srv.Stop()
	for i := range 100 {
		w.Emit(fullRecord(i+1, t0.Add(time.Duration(i)*time.Second)))
	}
	eventually(t, "100 records spooled during the outage", func() bool {
		return metric(t, reg, "tollgate_records_spooled_total") == 100
	})
	if n := metric(t, reg, "tollgate_records_written_total"); n != 0 {
		t.Fatalf("%v records written while Postgres was down", n)
	}
	srv.Restart()
	eventually(t, "the spool to be replayed into Postgres", func() bool {
		return metric(t, reg, "tollgate_records_written_total") == 100 && metric(t, reg, "tollgate_record_spool_bytes") == 0
	})
	closeWriter(t, w)
	if n := count(t, d); n != 101 {
		t.Errorf("%d rows, want 101", n)
	}
	// The same batch again, as a retry after a lost reply.
	batch := []records.Record{fullRecord(1, t0), fullRecord(2, t0.Add(time.Second)), fullRecord(2000, t0)}
	if err := d.Sink().Write(ctx(t), batch); err != nil {
		t.Fatal(err)
	}
	if err := d.Sink().Write(ctx(t), batch); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d); n != 102 {
		t.Errorf("%d rows after writing a batch twice, want 102", n)
	}
	// The hourly rollup the spend API reads counts each record once too.
	stored := []records.Record{fullRecord(1000, t0), fullRecord(2000, t0)}
	for i := range 100 {
		stored = append(stored, fullRecord(i+1, t0.Add(time.Duration(i)*time.Second)))
	}
	checkRollup(t, d, stored)
}

func TestMigrateIsIdempotent(t *testing.T) {
	_, d := open(t, Options{})
	applied, err := d.Migrate(ctx(t))
	if err != nil || len(applied) == 0 || applied[0] != 1 {
		t.Fatalf("first Migrate: %v, %v; want version 1 applied", applied, err)
	}
	applied, err = d.Migrate(ctx(t))
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate: %v, %v; want nothing applied", applied, err)
	}
	if err := d.Sink().Write(ctx(t), []records.Record{fullRecord(1, t0)}); err != nil {
		t.Fatal(err)
	}
}

func partitionOf(t *testing.T, d *DB, id string) string {
	t.Helper()
	var name string
	if err := d.pool.QueryRow(ctx(t), "SELECT tableoid::regclass::text FROM records WHERE id = $1", id).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestPartitionsAcrossADayBoundary(t *testing.T) {
	_, d := open(t, Options{})
	midnight := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)
	before := fullRecord(1, midnight.Add(-time.Microsecond))
	at := fullRecord(2, midnight)
	// A start in another zone belongs to its UTC day.
	zoned := fullRecord(3, time.Date(2026, 5, 2, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)))
	if err := d.Sink().Write(ctx(t), []records.Record{before, at, zoned}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		before.ID: "records_p20260501",
		at.ID:     "records_p20260502",
		zoned.ID:  "records_p20260503",
	} {
		if got := partitionOf(t, d, id); got != want {
			t.Errorf("record %s in %s, want %s", id, got, want)
		}
	}
	parts, err := d.Partitions(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"records_p20260501", "records_p20260502", "records_p20260503"}, parts); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	// Maintain creates today's and the next days' ahead of time.
	if _, err := d.Maintain(ctx(t), midnight.Add(5*24*time.Hour+time.Hour)); err != nil {
		t.Fatal(err)
	}
	parts, _ = d.Partitions(ctx(t))
	for _, want := range []string{"records_p20260507", "records_p20260508", "records_p20260509", "records_p20260510"} {
		if !slices.Contains(parts, want) {
			t.Errorf("partitions %v lack %s", parts, want)
		}
	}
}

func TestRetentionDropsOldPartitionsOnly(t *testing.T) {
	_, d := open(t, Options{Retention: 10 * 24 * time.Hour, AheadDays: 1})
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC) // cutoff 2026-06-10T12:00Z
	var recs []records.Record
	for i, dd := range []int{1, 9, 10, 11, 20} { // June days
		recs = append(recs, fullRecord(i+1, time.Date(2026, 6, dd, 6, 0, 0, 0, time.UTC)))
	}
	if err := d.Sink().Write(ctx(t), recs); err != nil {
		t.Fatal(err)
	}
	dropped, err := d.Maintain(ctx(t), now)
	if err != nil {
		t.Fatal(err)
	}
	// June 10 ends after the cutoff: some of its records are still young.
	if diff := cmp.Diff([]string{"records_p20260601", "records_p20260609"}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	got, err := d.Query(ctx(t), records.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"req-00005", "req-00004", "req-00003"}, ids); diff != "" {
		t.Errorf("records kept (-want +got):\n%s", diff)
	}
	parts, _ := d.Partitions(ctx(t))
	if diff := cmp.Diff([]string{"records_p20260610", "records_p20260611", "records_p20260620", "records_p20260621"}, parts); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	// The hourly rollup lost the dropped days with them.
	checkRollup(t, d, recs[2:])
	// A second pass drops nothing; a day later, June 10 goes.
	if dropped, err := d.Maintain(ctx(t), now); err != nil || len(dropped) != 0 {
		t.Errorf("second pass dropped %v, %v", dropped, err)
	}
	if dropped, err := d.Maintain(ctx(t), now.Add(24*time.Hour)); err != nil || !slices.Equal(dropped, []string{"records_p20260610"}) {
		t.Errorf("a day later dropped %v, %v; want records_p20260610", dropped, err)
	}
	// A late record of a dropped day gets its partition back and is stored.
	late := fullRecord(9, time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC))
	if err := d.Sink().Write(ctx(t), []records.Record{late}); err != nil {
		t.Fatal(err)
	}
	if got := partitionOf(t, d, late.ID); got != "records_p20260601" {
		t.Errorf("late record in %s", got)
	}
}

// TestRunMaintenanceUsesTheClock checks that the periodic loop runs Maintain
// with the injected clock's time.
func TestRunMaintenanceUsesTheClock(t *testing.T) {
	_, d := open(t, Options{AheadDays: 1})
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.RunMaintenance(c, time.Hour, func() time.Time { return time.Date(2031, 1, 31, 5, 0, 0, 0, time.UTC) })
	}()
	eventually(t, "the partitions of the clock's today and tomorrow", func() bool {
		parts, err := d.Partitions(ctx(t))
		return err == nil && slices.Equal(parts, []string{"records_p20310131", "records_p20310201"})
	})
	cancel()
	<-done
}

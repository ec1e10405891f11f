// Package spendtest is the contract every spend.Store passes: its
// aggregates, sessions and budget uses over generated records
// (internal/recordgen) must equal a reference computed here, naively, from
// the records themselves.
package spendtest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/internal/recordgen"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

// Open returns a store holding recs (and nothing else), for one test.
type Open func(t *testing.T, recs []records.Record) spend.Store

// End is when the contract's generated records end.
var End = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// Records are the contract's records: 3,000 over 30 days, 40 users in 5
// teams.
func Records() []records.Record {
	return recordgen.Generate(recordgen.Options{Seed: 16, Records: 3000, End: End, Days: 30, Users: 40, Teams: 5})
}

// Run runs the contract against the stores open returns.
func Run(t *testing.T, open Open) {
	recs := Records()
	store := open(t, recs)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := End.AddDate(0, 0, -30)
	t.Run("Aggregate", func(t *testing.T) {
		for _, q := range []spend.Query{
			{From: start, To: End, Percentiles: true},
			{From: start, To: End},
			{From: start, To: End, Step: spend.Day, GroupBy: []spend.Dim{spend.DimTeam}, Percentiles: true},
			{From: start, To: End, Step: spend.Week, Location: berlin, GroupBy: []spend.Dim{spend.DimUser}, Percentiles: true},
			{From: End.AddDate(0, 0, -2), To: End.Add(-7 * time.Hour), Step: spend.Hour, GroupBy: []spend.Dim{spend.DimModel, spend.DimClass}, Percentiles: true},
			{From: start, To: End, GroupBy: []spend.Dim{spend.DimProvider}, Filter: spend.Filter{spend.DimTeam: recordgen.TeamName(0)}},
			{From: start, To: End, Step: spend.Day, Location: berlin, GroupBy: []spend.Dim{spend.DimRoute},
				Filter: spend.Filter{spend.DimClass: spend.ClassSubagent, spend.DimModel: "claude-haiku-4-5"}},
			{From: start, To: End, GroupBy: []spend.Dim{spend.DimKey, spend.DimProject}},
			{From: End.AddDate(0, 0, -7), To: End, Filter: spend.Filter{spend.DimUser: recordgen.UserName(3)}, Step: spend.Day},
			{From: End, To: End.AddDate(0, 0, 1), GroupBy: []spend.Dim{spend.DimTeam}}, // nothing there
			{From: start, To: End, Filter: spend.Filter{spend.DimTeam: "nobody"}},
			{From: start, To: End, Step: spend.Day, Location: berlin, GroupBy: []spend.Dim{spend.DimTeam, spend.DimModel}, Percentiles: true, Rollup: true},
			{From: start, To: End, GroupBy: []spend.Dim{spend.DimUser}, Percentiles: true, Rollup: true},
			{From: start, To: End, Step: spend.Week, Rollup: true, Filter: spend.Filter{spend.DimProvider: "bedrock"}},
			{From: start, To: End, Rollup: true, Percentiles: true},
			{From: End, To: End.AddDate(0, 0, 1), Step: spend.Day, GroupBy: []spend.Dim{spend.DimTeam}, Rollup: true},
			// Ranges off the hour, and days that start off the hour (UTC+05:30):
			// a store with an hourly rollup must read the records there.
			{From: start.Add(17*time.Minute + 3*time.Second), To: End.Add(-25 * time.Minute), Step: spend.Day, GroupBy: []spend.Dim{spend.DimTeam},
				Percentiles: true, Rollup: true},
			{From: End.AddDate(0, 0, -3).Add(-time.Microsecond), To: End.AddDate(0, 0, -3).Add(59 * time.Minute), GroupBy: []spend.Dim{spend.DimUser}, Percentiles: true},
			{From: start, To: End, Step: spend.Day, Location: kolkata, GroupBy: []spend.Dim{spend.DimModel}, Percentiles: true, Rollup: true},
			{From: start, To: End, Step: spend.Hour, Location: kolkata, Filter: spend.Filter{spend.DimTeam: recordgen.TeamName(1)}, Percentiles: true},
			{From: start.Add(30 * time.Minute), To: End.Add(-30 * time.Minute), Location: kolkata, Step: spend.Week, Percentiles: true, Rollup: true},
		} {
			name := fmt.Sprintf("%s_%v_%v_%v_%v_%v", q.Step, q.GroupBy, q.Filter, q.From.Format("0102"), q.Percentiles, q.Rollup)
			t.Run(name, func(t *testing.T) {
				got, err := store.Aggregate(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want := Aggregate(recs, q)
				sortRows(got)
				if diff := gocmp.Diff(want, got, equalTimes, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("aggregate (-want +got):\n%s", diff)
				}
			})
		}
	})
	t.Run("Sessions", func(t *testing.T) {
		for _, q := range []spend.SessionQuery{
			{From: start, To: End, Limit: 15},
			{From: End.AddDate(0, 0, -9), To: End, Filter: spend.Filter{spend.DimTeam: recordgen.TeamName(1)}, Limit: 1000},
			{From: start, To: End, Filter: spend.Filter{spend.DimModel: "claude-opus-4-1"}, Limit: 5},
			{From: start.Add(90 * time.Minute), To: End.Add(-11*time.Hour - 30*time.Second), Filter: spend.Filter{spend.DimClass: spend.ClassSubagent}, Limit: 30},
			{From: End.AddDate(0, 0, -4).Add(9*time.Hour + 10*time.Minute), To: End.AddDate(0, 0, -4).Add(10*time.Hour + 50*time.Minute), Limit: 0},
		} {
			got, err := store.Sessions(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := Sessions(recs, q)
			if len(want) == 0 {
				t.Fatalf("%+v: the reference has no sessions; the test is vacuous", q)
			}
			if diff := gocmp.Diff(want, got, equalTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sessions %+v (-want +got):\n%s", q, diff)
			}
		}
	})
	t.Run("Budgets", func(t *testing.T) {
		cfg := &budget.Config{Location: berlin, Limits: map[budget.Scope][]budget.Limit{
			{Kind: budget.ScopeTeam, Name: recordgen.TeamName(0)}: {{Unit: budget.USD, Per: budget.Month, Max: 900_000_000_000_000}, {Unit: budget.Requests, Per: budget.Day, Max: 500}},
			{Kind: budget.ScopeTeam, Name: recordgen.TeamName(2)}: {{Unit: budget.Tokens, Per: budget.Week, Max: 50_000_000}},
			{Kind: budget.ScopeUser, Name: recordgen.UserName(7)}: {{Unit: budget.USD, Per: budget.Week, Max: 20_000_000_000_000}},
			{Kind: budget.ScopeKey, Name: recordgen.KeyID(8)}:     {{Unit: budget.USD, Per: budget.Day, Max: 5_000_000_000_000}},
			{Kind: budget.ScopeProvider, Name: "bedrock"}:         {{Unit: budget.USD, Per: budget.Month, Max: 100_000_000_000_000}},
			budget.Global:               {{Unit: budget.USD, Per: budget.Month, Max: 2_000_000_000_000_000}, {Unit: budget.Requests, Per: budget.Minute, Max: 100}},
			{Kind: budget.ScopeSession}: {{Unit: budget.USD, Per: budget.Session, Max: 1}},
		}}
		now := time.Date(2026, 5, 31, 20, 0, 0, 0, time.UTC) // a Sunday; the month began 30 days ago
		got, err := spend.Budgets(ctx, store, cfg, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := spend.Budgets(ctx, referenceStore{recs}, cfg, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		spend.SortBudgets(got)
		spend.SortBudgets(want)
		if len(want) != 7 {
			t.Errorf("%d forecastable budgets, want 7", len(want))
		}
		if diff := gocmp.Diff(want, got, equalTimes, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("budgets (-want +got):\n%s", diff)
		}
	})
}

// Compare checks store's aggregate of q against the reference over recs,
// the records store holds.
func Compare(t *testing.T, store spend.Store, recs []records.Record, q spend.Query) {
	t.Helper()
	got, err := store.Aggregate(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	sortRows(got)
	if diff := gocmp.Diff(Aggregate(recs, q), got, equalTimes, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("aggregate %+v (-want +got):\n%s", q, diff)
	}
}

// equalTimes compares instants, whatever their location.
var equalTimes = gocmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// referenceStore is a spend.Store over the reference functions.
type referenceStore struct{ recs []records.Record }

func (r referenceStore) Aggregate(_ context.Context, q spend.Query) ([]spend.Row, error) {
	return Aggregate(r.recs, q), nil
}

func (r referenceStore) Sessions(_ context.Context, q spend.SessionQuery) ([]spend.Session, error) {
	return Sessions(r.recs, q), nil
}

// Aggregate is the reference of spend.Store.Aggregate, sorted by level,
// start and group.
func Aggregate(recs []records.Record, q spend.Query) []spend.Row {
	var out []spend.Row
	for _, l := range q.Levels() {
		rows := aggregate(recs, q.At(l))
		for i := range rows {
			rows[i].Level = l
			if l == spend.LevelBucket || l == spend.LevelAll {
				rows[i].Group = nil
			}
		}
		out = append(out, rows...)
	}
	sortRows(out)
	return out
}

func aggregate(recs []records.Record, q spend.Query) []spend.Row {
	loc := q.Loc()
	groups := map[string][]*records.Record{}
	var keys []string
	for i := range recs {
		r := &recs[i]
		if r.Start.Before(q.From) || !r.Start.Before(q.To) || !matches(r, q.Filter) {
			continue
		}
		parts := []string{fmt.Sprint(bucket(r.Start, q.Step, loc).UnixMicro())}
		for _, d := range q.GroupBy {
			parts = append(parts, dimValue(r, d))
		}
		k := strings.Join(parts, "\x00")
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]spend.Row, 0, len(keys))
	for _, k := range keys {
		rs := groups[k]
		row := spend.Row{Start: bucket(rs[0].Start, q.Step, loc), Group: make([]string, len(q.GroupBy)), Metrics: metrics(rs, q.Percentiles)}
		for i, d := range q.GroupBy {
			row.Group[i] = dimValue(rs[0], d)
		}
		out = append(out, row)
	}
	sortRows(out)
	return out
}

// Sessions is the reference of spend.Store.Sessions.
func Sessions(recs []records.Record, q spend.SessionQuery) []spend.Session {
	bySession := map[string][]*records.Record{}
	for i := range recs {
		r := &recs[i]
		if r.SessionID == "" || r.Start.Before(q.From) || !r.Start.Before(q.To) || !matches(r, q.Filter) {
			continue
		}
		bySession[r.SessionID] = append(bySession[r.SessionID], r)
	}
	var out []spend.Session
	for id, rs := range bySession {
		s := spend.Session{ID: id, Metrics: metrics(rs, false), First: rs[0].Start.UTC(), Last: rs[0].Start.UTC()}
		var teams, users, keys, projects, agents, models []string
		for _, r := range rs {
			teams, users, keys, projects = append(teams, r.Team), append(users, r.User), append(keys, r.KeyID), append(projects, r.Project)
			if r.AgentID != "" {
				agents = append(agents, r.AgentID)
			}
			if r.Model != "" {
				models = append(models, r.Model)
			}
			if r.Start.Before(s.First) {
				s.First = r.Start.UTC()
			}
			if r.Start.After(s.Last) {
				s.Last = r.Start.UTC()
			}
		}
		s.Team, s.User, s.Key, s.Project = leastNonEmpty(teams), leastNonEmpty(users), leastNonEmpty(keys), leastNonEmpty(projects)
		slices.Sort(agents)
		s.Subagents = int64(len(slices.Compact(agents)))
		slices.Sort(models)
		s.Models = slices.Compact(models)
		if len(s.Models) == 0 {
			s.Models = nil
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b spend.Session) int {
		return cmp.Or(cmp.Compare(b.CostPicoUSD, a.CostPicoUSD), strings.Compare(a.ID, b.ID))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func leastNonEmpty(vs []string) string {
	vs = slices.DeleteFunc(vs, func(s string) bool { return s == "" })
	if len(vs) == 0 {
		return ""
	}
	return slices.Min(vs)
}

// metrics adds up rs; with percentiles, also the latency percentiles.
func metrics(rs []*records.Record, percentiles bool) spend.Metrics {
	var m spend.Metrics
	var lat, ttft []float64
	for _, r := range rs {
		m.Requests++
		switch r.Outcome {
		case records.OutcomeProviderError, records.OutcomeIncomplete, records.OutcomeUnavailable:
			m.Errors++
		case records.OutcomeDenied, records.OutcomeInvalid:
			m.Refused++
		}
		if r.BudgetOutcome == "allowed" {
			m.Admitted++
		}
		if r.CacheStatus == "HIT" {
			m.CacheHits++
		}
		m.CostPicoUSD += r.CostPicoUSD
		m.CostSavedPicoUSD += r.CostSavedPicoUSD
		m.InputTokens += r.Usage.InputTokens
		m.OutputTokens += r.Usage.OutputTokens
		m.CacheReadTokens += r.Usage.CacheReadTokens
		m.CacheWriteTokens += r.Usage.CacheWrite5mTokens + r.Usage.CacheWrite1hTokens
		if r.Outcome == records.OutcomeOK && r.LatencyMS > 0 {
			lat = append(lat, r.LatencyMS)
		}
		if r.Outcome == records.OutcomeOK && r.TTFTMS > 0 {
			ttft = append(ttft, r.TTFTMS)
		}
	}
	if percentiles {
		m.LatencyN, m.LatencyP50, m.LatencyP95 = int64(len(lat)), disc(lat, 50), disc(lat, 95)
		m.TTFTN, m.TTFTP50, m.TTFTP95 = int64(len(ttft)), disc(ttft, 50), disc(ttft, 95)
	}
	return m
}

// disc is the pct-th percentile of vs as percentile_disc: the sample at
// position ceil(n × pct / 100) in ascending order (1-based).
func disc(vs []float64, pct int) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	pos := (len(s)*pct + 99) / 100
	return s[max(pos, 1)-1]
}

func matches(r *records.Record, f spend.Filter) bool {
	for d, v := range f {
		if dimValue(r, d) != v {
			return false
		}
	}
	return true
}

func dimValue(r *records.Record, d spend.Dim) string {
	switch d {
	case spend.DimTeam:
		return r.Team
	case spend.DimUser:
		return r.User
	case spend.DimKey:
		return r.KeyID
	case spend.DimProject:
		return r.Project
	case spend.DimRoute:
		return r.Route
	case spend.DimProvider:
		return r.Provider
	case spend.DimModel:
		return r.Model
	case spend.DimClass:
		switch {
		case r.RequestClass != "":
			return r.RequestClass
		case r.SessionID == "":
			return "none"
		case r.AgentID == "":
			return "main"
		}
		return "subagent"
	}
	panic("unknown dimension " + string(d))
}

// bucket is the start of the bucket of t (no DST change falls in the
// contract's range).
func bucket(t time.Time, step spend.Step, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	switch step {
	case spend.Hour:
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
	case spend.Day:
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case spend.Week:
		back := int(t.Weekday()) - 1
		if back < 0 {
			back = 6
		}
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

func sortRows(rows []spend.Row) {
	slices.SortFunc(rows, func(a, b spend.Row) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), a.Start.Compare(b.Start), slices.Compare(a.Group, b.Group))
	})
}

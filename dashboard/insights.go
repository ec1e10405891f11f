package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/records"
)

// Insights is where the Overview and Budgets pages read their numbers, as
// principal p may see them (a viewer: its team only) at instant now. The
// aggregation API (package spend) is meant to implement it; until it does,
// [RecordsInsights] computes them from a records store.
type Insights interface {
	// Overview returns the numbers of the Overview page.
	Overview(ctx context.Context, p adminapi.Principal, now time.Time) (Overview, error)
	// Budgets returns every budget p may see, the ones at risk first.
	Budgets(ctx context.Context, p adminapi.Principal, now time.Time) ([]Budget, error)
}

// Overview is what the Overview page shows. Money is in pico-USD.
type Overview struct {
	// Today, Week and Month are the spend of the current UTC day, ISO week
	// (from Monday) and calendar month.
	Today, Week, Month Spend
	// Since is the start of the range the fields below cover (up to now).
	Since time.Time
	// Requests counts the requests of the range, Errors those whose outcome
	// is not ok, and CacheSavedPicoUSD what cache hits saved.
	Requests, Errors  int64
	CacheSavedPicoUSD int64
	// LatencyMS and TTFTMS are the 50th and 95th percentiles of the range's
	// latency and time to first byte (TTFT over the requests that have one).
	LatencyMS, TTFTMS Percentiles
	// ByTeam is the spend over time by team, one point per UTC day.
	ByTeam Series
	// TopUsers and TopModels are the biggest spenders of the range, biggest
	// first, at most ten of each.
	TopUsers, TopModels []Top
	// Partial says the numbers cover only part of the range (the interim
	// implementation read at most records.MaxQueryLimit records).
	Partial bool
}

// Spend is what a window cost, against its budget when one applies.
type Spend struct {
	CostPicoUSD int64
	Requests    int64
	// LimitPicoUSD is the budget of the window; zero when none is known.
	LimitPicoUSD int64
}

// Percentiles are the 50th and 95th percentiles of a measure.
type Percentiles struct{ P50, P95 float64 }

// Series is spend over time by group: CostPicoUSD[i][j] is what Groups[i]
// spent on the day starting at Days[j].
type Series struct {
	Days        []time.Time
	Groups      []string
	CostPicoUSD [][]int64
}

// Top is one line of a top list.
type Top struct {
	Name        string
	CostPicoUSD int64
	Requests    int64
}

// Budget is one budget's current window: its use so far, the forecast to
// the window's end, and when it runs out at the current pace.
type Budget struct {
	// Scope is what the budget applies to, such as "team:platform" or
	// "global".
	Scope string
	// Per is the window: "day", "week" or "month".
	Per string
	// Unit is what Limit, Used and Forecast count, as the policy names it:
	// "usd" (in pico-USD), "tokens" or "requests".
	Unit                   string
	WindowStart, WindowEnd time.Time
	// Limit is the budget's limit; zero when it is not known.
	Limit          int64
	Used, Forecast int64
	// Method names the forecast: "linear" (the pace of the window so far)
	// or "profile" (the day-of-week profile of the last weeks).
	Method string
	// ExhaustsAt is when Used reaches Limit at the current pace; zero when
	// it does not within the window, already has, or the limit is not known.
	ExhaustsAt time.Time
}

// AtRisk reports whether b is used up or forecast to be by the end of its
// window.
func (b Budget) AtRisk() bool { return b.Limit > 0 && (b.Used >= b.Limit || b.Forecast >= b.Limit) }

// RecordsInsights is the interim [Insights]: sums over the records a
// records.Store returns, until the aggregation API takes over. A store
// returns at most records.MaxQueryLimit records a query, the newest, so on a
// busy gateway the numbers cover only the most recent requests; Overview
// says so with Partial. It knows no budget limits: Budgets lists each team's
// month so far and its linear forecast, with no limit.
type RecordsInsights struct {
	Store records.Store
}

var _ Insights = RecordsInsights{}

// rangeDays is how many days the Overview's range and chart cover.
const rangeDays = 30

// Overview implements [Insights.Overview].
func (ri RecordsInsights) Overview(ctx context.Context, p adminapi.Principal, now time.Time) (Overview, error) {
	now = now.UTC()
	today := startOfDay(now)
	week := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	since := today.AddDate(0, 0, -(rangeDays - 1))
	from := since
	for _, t := range []time.Time{month, week} {
		if t.Before(from) {
			from = t
		}
	}
	recs, partial, err := ri.read(ctx, p, from, now)
	if err != nil {
		return Overview{}, err
	}
	o := Overview{Since: since, Partial: partial}
	days := make([]time.Time, rangeDays)
	for i := range days {
		days[i] = since.AddDate(0, 0, i)
	}
	byTeam := map[string][]int64{}
	users, models := map[string]*Top{}, map[string]*Top{}
	var lat, ttft []float64
	for i := range recs {
		r := &recs[i]
		for _, w := range []struct {
			s     *Spend
			start time.Time
		}{{&o.Today, today}, {&o.Week, week}, {&o.Month, month}} {
			if !r.Start.Before(w.start) {
				w.s.CostPicoUSD += r.CostPicoUSD
				w.s.Requests++
			}
		}
		if r.Start.Before(since) {
			continue
		}
		o.Requests++
		if r.Outcome != records.OutcomeOK {
			o.Errors++
		}
		o.CacheSavedPicoUSD += r.CostSavedPicoUSD
		lat = append(lat, r.LatencyMS)
		if r.TTFTMS > 0 {
			ttft = append(ttft, r.TTFTMS)
		}
		day := int(startOfDay(r.Start.UTC()).Sub(since) / (24 * time.Hour))
		if day >= 0 && day < rangeDays {
			team := cmp.Or(r.Team, "(none)")
			if byTeam[team] == nil {
				byTeam[team] = make([]int64, rangeDays)
			}
			byTeam[team][day] += r.CostPicoUSD
		}
		addTop(users, cmp.Or(r.User, "(none)"), r)
		addTop(models, cmp.Or(r.Model, "(none)"), r)
	}
	o.LatencyMS, o.TTFTMS = percentiles(lat), percentiles(ttft)
	o.ByTeam.Days = days
	for _, team := range slices.Sorted(maps.Keys(byTeam)) {
		o.ByTeam.Groups = append(o.ByTeam.Groups, team)
		o.ByTeam.CostPicoUSD = append(o.ByTeam.CostPicoUSD, byTeam[team])
	}
	o.TopUsers, o.TopModels = topOf(users), topOf(models)
	return o, nil
}

// Budgets implements [Insights.Budgets]: each team's calendar month so far
// with a linear forecast to its end, biggest forecast first. No limit is
// known here.
func (ri RecordsInsights) Budgets(ctx context.Context, p adminapi.Principal, now time.Time) ([]Budget, error) {
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	recs, _, err := ri.read(ctx, p, start, now)
	if err != nil {
		return nil, err
	}
	used := map[string]int64{}
	for i := range recs {
		used[cmp.Or(recs[i].Team, "(none)")] += recs[i].CostPicoUSD
	}
	var out []Budget
	elapsed, window := now.Sub(start), end.Sub(start)
	for team, u := range used {
		f := u
		if elapsed > 0 {
			f = int64(math.Round(float64(u) * float64(window) / float64(elapsed)))
		}
		out = append(out, Budget{Scope: "team:" + team, Per: "month", Unit: "usd", WindowStart: start, WindowEnd: end, Used: u, Forecast: f, Method: "linear"})
	}
	slices.SortFunc(out, func(a, b Budget) int {
		return cmp.Or(cmp.Compare(b.Forecast, a.Forecast), cmp.Compare(a.Scope, b.Scope))
	})
	return out, nil
}

// read returns the records p may see that started in [from, now], and
// whether the store's limit may have left some out.
func (ri RecordsInsights) read(ctx context.Context, p adminapi.Principal, from, now time.Time) ([]records.Record, bool, error) {
	recs, err := ri.Store.Query(ctx, records.Query{Since: from, Limit: records.MaxQueryLimit})
	if err != nil {
		return nil, false, fmt.Errorf("dashboard: read records: %w", err)
	}
	partial := len(recs) >= records.MaxQueryLimit
	out := recs[:0]
	for _, r := range recs {
		if (p.Admin() || r.Team == p.Team) && !r.Start.After(now) {
			out = append(out, r)
		}
	}
	return out, partial, nil
}

func addTop(m map[string]*Top, name string, r *records.Record) {
	t := m[name]
	if t == nil {
		t = &Top{Name: name}
		m[name] = t
	}
	t.CostPicoUSD += r.CostPicoUSD
	t.Requests++
}

// topOf returns the ten biggest of m, biggest first, ties by name.
func topOf(m map[string]*Top) []Top {
	out := make([]Top, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Top) int {
		return cmp.Or(cmp.Compare(b.CostPicoUSD, a.CostPicoUSD), cmp.Compare(a.Name, b.Name))
	})
	return out[:min(len(out), 10)]
}

// percentiles returns the nearest-rank 50th and 95th percentiles of v; v is
// sorted in place.
func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(v)))) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Percentiles{P50: rank(0.50), P95: rank(0.95)}
}

func startOfDay(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

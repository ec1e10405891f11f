package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/spend"
)

// Insights is where the Overview and Budgets pages read their numbers, as
// principal p may see them (a viewer: its team only) at instant now.
// [SpendInsights] implements it with the spend API's queries.
type Insights interface {
	// Overview returns the numbers of the Overview page.
	Overview(ctx context.Context, p adminapi.Principal, now time.Time) (Overview, error)
	// Budgets returns every budget p may see, the ones at risk first.
	Budgets(ctx context.Context, p adminapi.Principal, now time.Time) ([]Budget, error)
	// Sessions returns the Claude Code sessions p may see with a record
	// starting in [from, to), their records in that range added up, the
	// dearest first, at most limit.
	Sessions(ctx context.Context, p adminapi.Principal, from, to time.Time, limit int) ([]SessionSummary, error)
}

// SessionSummary is a Claude Code session's records in a range, added up.
type SessionSummary struct {
	// ID is the session id (x-claude-code-session-id).
	ID string
	// Team and User are those of its records (the least if they differ).
	Team, User string
	// First and Last are the starts of its first and last records.
	First, Last time.Time
	// Errors and Refused count as in Overview.
	Requests, Errors, Refused int64
	// Agents counts the distinct agent ids of its records (the main agent
	// and its subagents).
	Agents      int64
	CostPicoUSD int64
	// Models lists the models of its records, sorted.
	Models []string
}

// Overview is what the Overview page shows. Money is in pico-USD.
type Overview struct {
	// Location is the timezone of the days, weeks and months below.
	Location *time.Location
	// Today, Week and Month are the spend of the current day, week (from
	// Monday) and calendar month.
	Today, Week, Month Spend
	// Since is the start of the range the fields below cover (up to now):
	// midnight 29 days before today, as the spend API's default range.
	Since time.Time
	// Requests counts the requests of the range; Errors those that failed
	// on the way (outcome provider_error, incomplete or unavailable) and
	// Refused those Tollgate refused (denied or invalid), as the spend API
	// counts them. CacheSavedPicoUSD is what cache hits saved.
	Requests, Errors, Refused int64
	CacheSavedPicoUSD         int64
	// LatencyMS and TTFTMS are the 50th and 95th percentiles of the range's
	// latency and time to first token, over the completed requests that
	// have one (the spend API's latency_ms and ttft_ms).
	LatencyMS, TTFTMS Percentiles
	// ByTeam is the spend over time by team, one point per day.
	ByTeam Series
	// TopUsers and TopModels are the biggest spenders of the range, biggest
	// first, at most TopN of each.
	TopUsers, TopModels []Top
}

// TopN is how many lines a top list shows, and how many teams the chart
// stacks (the others are added up as one).
const TopN = 10

// OtherGroups names the line of the chart that adds up the teams beyond
// the TopN dearest.
const OtherGroups = "(other teams)"

// Spend is what a window cost, against its budget when one applies.
type Spend struct {
	CostPicoUSD int64
	Requests    int64
	// LimitPicoUSD is the usd budget of the window (the global one for the
	// admin, the team's for a viewer); zero when there is none.
	LimitPicoUSD int64
}

// Percentiles are the 50th and 95th percentiles of a measure over N
// samples; zero without samples.
type Percentiles struct {
	P50, P95 float64
	N        int64
}

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
	Limit                  int64
	Used, Forecast         int64
	// Method names the forecast: "linear" (the pace of the window so far)
	// or "weekday_profile" (the day-of-week profile of the last 4 weeks).
	Method string
	// ExhaustsAt is when Used reaches Limit at the current pace; zero when
	// it does not within the window, or already has.
	ExhaustsAt time.Time
}

// AtRisk reports whether b is used up or forecast to be by the end of its
// window.
func (b Budget) AtRisk() bool { return b.Limit > 0 && (b.Used >= b.Limit || b.Forecast >= b.Limit) }

// SpendInsights is [Insights] from the spend API's store, with the spend
// API's queries: the numbers are those GET /v1/spend/series, /totals and
// /budgets answer at the same instant, over the whole range.
type SpendInsights struct {
	// Store aggregates the records (spend.Memory or PostgreSQL).
	Store spend.Store
	// BudgetConfig returns the current policy's budgets; nil, or returning
	// nil, has none. Their timezone is that of the pages' days, weeks and
	// months.
	BudgetConfig func() *budget.Config
	// KeyTeam returns the team of a gateway key id ("" when unknown), so
	// that a viewer sees the budgets of its team's keys; nil shows viewers
	// their team's budgets only.
	KeyTeam func(keyID string) string
}

var _ Insights = SpendInsights{}

func (si SpendInsights) config() *budget.Config {
	if si.BudgetConfig == nil {
		return nil
	}
	return si.BudgetConfig()
}

func location(cfg *budget.Config) *time.Location {
	if cfg != nil && cfg.Location != nil {
		return cfg.Location
	}
	return time.UTC
}

// filter is the spend filter of p's queries: a viewer's team.
func filter(p adminapi.Principal) spend.Filter {
	if p.Admin() {
		return spend.Filter{}
	}
	return spend.Filter{spend.DimTeam: p.Team}
}

// Overview implements [Insights.Overview] with the queries of
// /v1/spend/series?step=day&group_by=team&latency=false (the chart, the
// counts and the days of this week and month),
// /v1/spend/totals (the percentiles) and
// /v1/spend/totals?group_by=user (and model)&latency=false (the top lists),
// over the spend API's default range, run concurrently.
func (si SpendInsights) Overview(ctx context.Context, p adminapi.Principal, now time.Time) (Overview, error) {
	cfg := si.config()
	loc := location(cfg)
	today, _ := spend.Window(budget.Day, now, loc)
	week, _ := spend.Window(budget.Week, now, loc)
	month, _ := spend.Window(budget.Month, now, loc)
	y, m, d := today.Date()
	since := spend.Day.Truncate(time.Date(y, m, d-(spend.DefaultRangeDays-1), 12, 0, 0, 0, loc), loc)

	base := spend.Query{From: since, To: now, Location: loc, Filter: filter(p)}
	chart, lat, users, models := base, base, base, base
	chart.Step, chart.GroupBy, chart.Rollup = spend.Day, []spend.Dim{spend.DimTeam}, true
	lat.Percentiles = true
	users.GroupBy, models.GroupBy = []spend.Dim{spend.DimUser}, []spend.Dim{spend.DimModel}
	queries := []spend.Query{chart, lat, users, models}
	if month.Before(since) { // the 31st: the month began before the range
		early := base
		early.From, early.To = month, since
		queries = append(queries, early)
	}
	rows := make([][]spend.Row, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	for i := range queries {
		wg.Go(func() { rows[i], errs[i] = si.Store.Aggregate(ctx, queries[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Overview{}, fmt.Errorf("dashboard: overview: %w", err)
	}

	o := Overview{Location: loc, Since: since}
	for t := since; t.Before(now); t = spend.Day.Next(t, loc) {
		o.ByTeam.Days = append(o.ByTeam.Days, t)
	}
	index := make(map[int64]int, len(o.ByTeam.Days))
	for i, t := range o.ByTeam.Days {
		index[t.UnixMicro()] = i
	}
	var teams []spend.Row
	cells := map[string][]int64{}
	for _, r := range rows[0] {
		switch {
		case r.Level == spend.LevelAll:
			o.Requests, o.Errors, o.Refused = r.Requests, r.Errors, r.Refused
			o.CacheSavedPicoUSD = r.CostSavedPicoUSD
		case r.Level == spend.LevelBucket:
			for _, w := range []struct {
				s     *Spend
				start time.Time
			}{{&o.Today, today}, {&o.Week, week}, {&o.Month, month}} {
				if !r.Start.Before(w.start) {
					w.s.CostPicoUSD += r.CostPicoUSD
					w.s.Requests += r.Requests
				}
			}
		case r.Level == spend.LevelGroup:
			teams = append(teams, r)
		default:
			i, ok := index[r.Start.UnixMicro()]
			if !ok {
				continue
			}
			if cells[r.Group[0]] == nil {
				cells[r.Group[0]] = make([]int64, len(o.ByTeam.Days))
			}
			cells[r.Group[0]][i] += r.CostPicoUSD
		}
	}
	if len(queries) > 4 {
		for _, r := range rows[4] {
			o.Month.CostPicoUSD += r.CostPicoUSD
			o.Month.Requests += r.Requests
		}
	}
	rank(teams)
	var other []int64
	for i, t := range teams {
		if i < TopN {
			c := cells[t.Group[0]]
			if c == nil {
				c = make([]int64, len(o.ByTeam.Days))
			}
			o.ByTeam.Groups = append(o.ByTeam.Groups, cmp.Or(t.Group[0], "(none)"))
			o.ByTeam.CostPicoUSD = append(o.ByTeam.CostPicoUSD, c)
			continue
		}
		if other == nil {
			other = make([]int64, len(o.ByTeam.Days))
		}
		for j, v := range cells[t.Group[0]] {
			other[j] += v
		}
	}
	if other != nil {
		o.ByTeam.Groups = append(o.ByTeam.Groups, OtherGroups)
		o.ByTeam.CostPicoUSD = append(o.ByTeam.CostPicoUSD, other)
	}
	for _, r := range rows[1] {
		o.LatencyMS = Percentiles{P50: r.LatencyP50, P95: r.LatencyP95, N: r.LatencyN}
		o.TTFTMS = Percentiles{P50: r.TTFTP50, P95: r.TTFTP95, N: r.TTFTN}
	}
	o.TopUsers, o.TopModels = tops(rows[2]), tops(rows[3])

	scope := budget.Global
	if !p.Admin() {
		scope = budget.Scope{Kind: budget.ScopeTeam, Name: p.Team}
	}
	for _, l := range cfg.LimitsOf(scope) {
		if l.Unit != budget.USD {
			continue
		}
		var s *Spend
		switch l.Per {
		case budget.Day:
			s = &o.Today
		case budget.Week:
			s = &o.Week
		case budget.Month:
			s = &o.Month
		default:
			continue
		}
		if s.LimitPicoUSD == 0 || l.Max < s.LimitPicoUSD {
			s.LimitPicoUSD = l.Max
		}
	}
	return o, nil
}

// rank orders rows by cost, highest first, ties by group: the spend API's
// order.
func rank(rows []spend.Row) {
	slices.SortFunc(rows, func(a, b spend.Row) int {
		return cmp.Or(cmp.Compare(b.CostPicoUSD, a.CostPicoUSD), slices.Compare(a.Group, b.Group))
	})
}

// tops returns the TopN dearest of rows of one group dimension.
func tops(rows []spend.Row) []Top {
	rank(rows)
	out := make([]Top, 0, min(len(rows), TopN))
	for _, r := range rows[:min(len(rows), TopN)] {
		out = append(out, Top{Name: r.Group[0], CostPicoUSD: r.CostPicoUSD, Requests: r.Requests})
	}
	return out
}

// Budgets implements [Insights.Budgets] with the query and forecasts of
// GET /v1/spend/budgets: every calendar budget of the policy p may see (a
// viewer: its team's, and its team's keys'), at risk first.
func (si SpendInsights) Budgets(ctx context.Context, p adminapi.Principal, now time.Time) ([]Budget, error) {
	cfg := si.config()
	uses, err := spend.Budgets(ctx, si.Store, cfg, now, spend.BudgetVisible(p, si.KeyTeam))
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	spend.SortBudgets(uses)
	loc := location(cfg)
	out := make([]Budget, len(uses))
	for i := range uses {
		u := &uses[i]
		out[i] = Budget{
			Scope: u.Scope.String(), Per: u.Limit.Per.String(), Unit: u.Limit.Unit.String(),
			WindowStart: u.WindowStart.In(loc), WindowEnd: u.WindowEnd.In(loc),
			Limit: u.Limit.Max, Used: u.Used, Forecast: u.Forecast, Method: u.Method,
		}
		if u.ExhaustsAt != nil {
			out[i].ExhaustsAt = u.ExhaustsAt.In(loc)
		}
	}
	return out, nil
}

// Sessions implements [Insights.Sessions] with the query of GET
// /v1/spend/sessions (a viewer's team as its filter).
func (si SpendInsights) Sessions(ctx context.Context, p adminapi.Principal, from, to time.Time, limit int) ([]SessionSummary, error) {
	ss, err := si.Store.Sessions(ctx, spend.SessionQuery{From: from, To: to, Filter: filter(p), Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("dashboard: sessions: %w", err)
	}
	out := make([]SessionSummary, len(ss))
	for i, s := range ss {
		out[i] = SessionSummary{ID: s.ID, Team: s.Team, User: s.User, First: s.First, Last: s.Last,
			Requests: s.Requests, Errors: s.Errors, Refused: s.Refused, Agents: s.Subagents, CostPicoUSD: s.CostPicoUSD, Models: s.Models}
	}
	return out, nil
}

package spend

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/policy/budget"
)

// Forecast methods.
const (
	MethodLinear  = "linear"
	MethodWeekday = "weekday_profile"
)

// profileWeeks is how many weeks before today the day-of-week profile
// looks at.
const profileWeeks = 4

// BudgetUse is the use of one calendar budget in its current window, from
// the records, with its forecast to the end of the window.
type BudgetUse struct {
	Scope budget.Scope
	Limit budget.Limit
	// WindowStart and WindowEnd bound the current window, in the budget
	// timezone.
	WindowStart, WindowEnd time.Time
	// Used is the amount of the window's records so far, in the limit's
	// unit (pico-USD, tokens, admitted requests).
	Used int64
	// Linear is Used extended over the whole window at the pace so far:
	// Used × window length ÷ time elapsed, rounded.
	Linear int64
	// Profile is the day-of-week forecast, or nil without a profile (see
	// Forecast).
	Profile *int64
	// Method says which forecast Forecast and ExhaustsAt follow.
	Method string
	// Forecast is the amount the window should end with: Profile when
	// there is one, else Linear.
	Forecast int64
	// Exhausted says Used has reached the limit.
	Exhausted bool
	// ExhaustsAt is when Used reaches the limit at the current pace,
	// following Method, to the second; nil when it does not within the
	// window, or already has.
	ExhaustsAt *time.Time
}

// AtRisk reports whether the budget is used up or is forecast to be by the
// end of its window.
func (u *BudgetUse) AtRisk() bool { return u.Exhausted || u.Forecast >= u.Limit.Max }

// Fraction is a/Limit.Max.
func (u *BudgetUse) Fraction(a int64) float64 { return float64(a) / float64(u.Limit.Max) }

// Forecastable reports whether the use of limit l can be read from records
// and forecast: a usd, tokens or requests budget over a calendar window
// (day, week, month) of any scope but sessions.
func Forecastable(s budget.Scope, l budget.Limit) bool {
	return s.Kind != budget.ScopeSession && (l.Unit == budget.USD || l.Unit == budget.Tokens || l.Unit == budget.Requests) &&
		(l.Per == budget.Day || l.Per == budget.Week || l.Per == budget.Month)
}

// scopeDim is the dimension that holds a scope kind's names; false for
// global, which takes every record.
func scopeDim(k budget.ScopeKind) (Dim, bool) {
	switch k {
	case budget.ScopeKey:
		return DimKey, true
	case budget.ScopeUser:
		return DimUser, true
	case budget.ScopeTeam:
		return DimTeam, true
	case budget.ScopeProject:
		return DimProject, true
	case budget.ScopeProvider:
		return DimProvider, true
	}
	return "", false
}

// amount is what limit unit u counts of m.
func amount(u budget.Unit, m *Metrics) int64 {
	switch u {
	case budget.USD:
		return m.CostPicoUSD
	case budget.Tokens:
		return m.Tokens()
	case budget.Requests:
		return m.Admitted
	}
	return 0
}

// Window returns the calendar window per that holds now in loc: days start
// at local midnight, weeks on Monday, months on the first.
func Window(per budget.Window, now time.Time, loc *time.Location) (start, end time.Time) {
	switch per {
	case budget.Day:
		start = Day.Truncate(now, loc)
		return start, Day.Next(start, loc)
	case budget.Week:
		start = Week.Truncate(now, loc)
		return start, Week.Next(start, loc)
	}
	y, m, _ := now.In(loc).Date()
	return midnight(y, m, 1, loc), midnight(y, m+1, 1, loc)
}

// Budgets returns the use of every forecastable limit of cfg (see
// Forecastable) whose scope keep accepts (nil keeps all), as of now, read
// from store with one query: the daily amounts from the earliest window
// start or four weeks before today, whichever is earlier, grouped by the
// dimensions of the scopes' kinds. They are in no particular order.
func Budgets(ctx context.Context, store Store, cfg *budget.Config, now time.Time, keep func(budget.Scope) bool) ([]BudgetUse, error) {
	if cfg == nil {
		return nil, nil
	}
	loc := cfg.Location
	if loc == nil {
		loc = time.UTC
	}
	today := Day.Truncate(now, loc)
	y, m, d := today.Date()
	from := midnight(y, m, d-7*profileWeeks, loc)

	var scopes []budget.Scope
	wanted := map[budget.Scope]bool{}
	kinds := map[budget.ScopeKind]bool{}
	for s, limits := range cfg.Limits {
		if keep != nil && !keep(s) {
			continue
		}
		for _, l := range limits {
			if !Forecastable(s, l) {
				continue
			}
			if ws, _ := Window(l.Per, now, loc); ws.Before(from) {
				from = ws
			}
			if !wanted[s] {
				wanted[s] = true
				kinds[s.Kind] = true
				scopes = append(scopes, s)
			}
		}
	}
	if len(scopes) == 0 {
		return nil, nil
	}
	q := Query{From: from, To: now, Step: Day, Location: loc}
	var groupKinds []budget.ScopeKind
	if len(scopes) == 1 && scopes[0].Kind != budget.ScopeGlobal {
		dim, _ := scopeDim(scopes[0].Kind)
		q.Filter = Filter{dim: scopes[0].Name}
	} else {
		for _, k := range []budget.ScopeKind{budget.ScopeKey, budget.ScopeUser, budget.ScopeTeam, budget.ScopeProject, budget.ScopeProvider} {
			if kinds[k] {
				dim, _ := scopeDim(k)
				q.GroupBy = append(q.GroupBy, dim)
				groupKinds = append(groupKinds, k)
			}
		}
	}
	rows, err := store.Aggregate(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("spend: budgets: %w", err)
	}
	daily := map[budget.Scope]map[int64]*Metrics{} // scope -> day start -> amounts
	add := func(s budget.Scope, r *Row) {
		if !wanted[s] {
			return
		}
		if daily[s] == nil {
			daily[s] = map[int64]*Metrics{}
		}
		day := r.Start.UnixMicro()
		if daily[s][day] == nil {
			daily[s][day] = &Metrics{}
		}
		daily[s][day].add(&r.Metrics)
	}
	for i := range rows {
		r := &rows[i]
		add(budget.Global, r)
		if len(q.Filter) > 0 {
			add(scopes[0], r)
		}
		for j, k := range groupKinds {
			add(budget.Scope{Kind: k, Name: r.Group[j]}, r)
		}
	}
	var out []BudgetUse
	for _, s := range scopes {
		days := daily[s]
		for _, l := range cfg.Limits[s] {
			if !Forecastable(s, l) {
				continue
			}
			u := l.Unit
			out = append(out, forecast(s, l, func(day time.Time) int64 {
				if m := days[day.UnixMicro()]; m != nil {
					return amount(u, m)
				}
				return 0
			}, now, loc))
		}
	}
	return out, nil
}

// SortBudgets orders uses by risk: those used up or forecast to run out
// first, then by forecast over limit, highest first, then by scope and limit.
func SortBudgets(uses []BudgetUse) {
	slices.SortStableFunc(uses, func(a, b BudgetUse) int {
		ar, br := a.AtRisk(), b.AtRisk()
		if ar != br {
			if ar {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(b.Fraction(b.Forecast), a.Fraction(a.Forecast)),
			cmp.Compare(a.Scope.String(), b.Scope.String()),
			cmp.Compare(a.Limit.Unit, b.Limit.Unit), cmp.Compare(a.Limit.Per, b.Limit.Per))
	})
}

// forecast computes the use of limit l of scope s at now, from the amounts
// of each local day (day gives the amount of the day starting at its
// argument, up to now).
//
// Linear extends the pace of the window so far to its end. The day-of-week
// profile is the mean amount of each weekday over the four weeks before
// today; there is one when each of those weeks has some use, and it applies
// to week and month windows (within a day it is linear). Its forecast is
// Used plus the profile's amounts for the rest of the window (the rest of
// today pro rata), scaled by how the window so far compares with the
// profile's amounts for it: the current pace with the shape of a week.
// ExhaustsAt walks the chosen forecast forward from now, spread evenly
// within each day.
func forecast(s budget.Scope, l budget.Limit, day func(time.Time) int64, now time.Time, loc *time.Location) BudgetUse {
	ws, we := Window(l.Per, now, loc)
	u := BudgetUse{Scope: s, Limit: l, WindowStart: ws, WindowEnd: we, Method: MethodLinear}
	for d := ws; d.Before(now); d = Day.Next(d, loc) {
		u.Used += day(d)
	}
	u.Exhausted = u.Used >= l.Max
	elapsed, total := now.Sub(ws), we.Sub(ws)
	u.Linear = u.Used
	if elapsed > 0 {
		u.Linear = int64(math.Round(float64(u.Used) * float64(total) / float64(elapsed)))
	}
	u.Forecast = u.Linear
	if !u.Exhausted && u.Used > 0 && elapsed > 0 {
		rate := float64(u.Used) / float64(elapsed) // per nanosecond
		if t := now.Add(time.Duration(float64(l.Max-u.Used) / rate)).Round(time.Second); t.Before(we) {
			u.ExhaustsAt = &t
		}
	}
	if l.Per == budget.Day {
		return u
	}
	profile, ok := weekdayProfile(day, now, loc)
	if !ok {
		return u
	}
	today := Day.Truncate(now, loc)
	tomorrow := Day.Next(today, loc)
	frac := float64(now.Sub(today)) / float64(tomorrow.Sub(today))
	pToday := profile[today.Weekday()]
	expected := pToday * frac
	for d := ws; d.Before(today); d = Day.Next(d, loc) {
		expected += profile[d.Weekday()]
	}
	if expected <= 0 {
		return u
	}
	factor := float64(u.Used) / expected
	rest := pToday * (1 - frac)
	for d := tomorrow; d.Before(we); d = Day.Next(d, loc) {
		rest += profile[d.Weekday()]
	}
	p := int64(math.Round(float64(u.Used) + factor*rest))
	u.Profile, u.Forecast, u.Method = &p, p, MethodWeekday
	u.ExhaustsAt = nil
	if u.Exhausted || factor == 0 {
		return u
	}
	left := float64(l.Max - u.Used)
	// The rest of today, then each day to the end of the window.
	segStart, segEnd, amt := now, tomorrow, factor*pToday*(1-frac)
	for {
		if amt > 0 && amt >= left {
			t := segStart.Add(time.Duration(left / amt * float64(segEnd.Sub(segStart)))).Round(time.Second)
			u.ExhaustsAt = &t
			return u
		}
		left -= amt
		if !segEnd.Before(we) {
			return u
		}
		segStart, segEnd = segEnd, Day.Next(segEnd, loc)
		amt = factor * profile[segStart.Weekday()]
	}
}

// weekdayProfile returns the mean amount of each weekday over the four
// weeks before today, and whether each of those weeks had some use.
func weekdayProfile(day func(time.Time) int64, now time.Time, loc *time.Location) ([7]float64, bool) {
	var sums [7]int64
	var weeks [profileWeeks]int64
	y, m, d := Day.Truncate(now, loc).Date()
	for k := range 7 * profileWeeks {
		dd := midnight(y, m, d-7*profileWeeks+k, loc)
		a := day(dd)
		sums[dd.Weekday()] += a
		weeks[k/7] += a
	}
	var p [7]float64
	for _, w := range weeks {
		if w <= 0 {
			return p, false
		}
	}
	for i, s := range sums {
		p[i] = float64(s) / profileWeeks
	}
	return p, true
}

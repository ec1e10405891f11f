package budget

import (
	"sync/atomic"
	"time"
)

// windowGrace is how long a calendar window's counters outlive the window,
// so that a request reserved just before midnight still settles into the day
// it was reserved in.
const windowGrace = 24 * time.Hour

// itemKind is how a limit is stored.
type itemKind uint8

const (
	// kindCounter counts calendar and session windows: settled amounts plus
	// amounts held by reservations in flight.
	kindCounter itemKind = iota
	// kindRolling keeps a log of the amounts admitted in a rolling window,
	// each stamped with the instant it was reserved, and their sum.
	kindRolling
	// kindLease keeps the leases of the requests in flight, each with its
	// expiry.
	kindLease
)

// item is one limit of one scope as a reservation sees it: where it is
// counted and how much the request needs there.
type item struct {
	scope Scope
	limit Limit
	kind  itemKind
	// commit is set for request counts, which are final when reserved: they
	// are added to the settled amount, not held.
	commit bool
	// win identifies a calendar window: the date of its first day as
	// yyyymmdd (day, week) or yyyymm (month); 0 for other windows.
	win int32
	// cal is the calendar window, in the request's timezone; nil for other
	// windows.
	cal *calWindow
	// need is what the request takes in the limit's unit.
	need int64
	// at is the instant of Reserve, the stamp of a rolling log entry.
	at time.Time
	// ttl is how long after at the window's storage may be dropped: the
	// session TTL of a session, past the end of a calendar window, past the
	// window of a rolling log, or the lease TTL.
	ttl time.Duration
	// The memory ledger's storage of the item, found at Reserve, so that
	// Settle and expiry need no lookups.
	ctr   *counter
	log   *rollLog
	entry *rollEntry
	ls    *leaseSet
}

// calendarWindow returns the bounds of the calendar window per that holds
// now in loc, and its id. Days start at local midnight, weeks on Monday,
// months on the first.
func calendarWindow(per Window, now time.Time, loc *time.Location) (start, end time.Time, id int32) {
	t := now.In(loc)
	y, m, d := t.Date()
	switch per {
	case Day:
		start, end = midnight(y, m, d, loc), midnight(y, m, d+1, loc)
	case Week:
		d -= (int(t.Weekday()) + 6) % 7 // back to Monday
		start, end = midnight(y, m, d, loc), midnight(y, m, d+7, loc)
	case Month:
		start, end = midnight(y, m, 1, loc), midnight(y, m+1, 1, loc)
		return start, end, int32(y*100 + int(m))
	}
	// Normalise the date (d may be 0 or negative) at noon, which no DST
	// change skips.
	y, m, d = time.Date(y, m, d, 12, 0, 0, 0, loc).Date()
	return start, end, int32(y*10000 + int(m)*100 + d)
}

// midnight returns the first instant of a local date; d may be out of range,
// as for time.Date. Where a DST change skips midnight (clocks jump from 00:00
// to 01:00), the day starts at the jump, not an hour earlier on the day
// before, which is what time.Date returns.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if _, _, td := t.Date(); td != time.Date(y, m, d, 12, 0, 0, 0, loc).Day() {
		_, t = t.ZoneBounds()
	}
	return t
}

// windowCache remembers the current calendar window of each kind, so that
// most requests skip the date arithmetic. It is safe for concurrent use; a
// nil *windowCache computes every time.
type windowCache struct {
	wins [Month + 1]atomic.Pointer[calWindow]
}

// calWindow is a calendar window in a location.
type calWindow struct {
	loc        *time.Location
	start, end time.Time
	id         int32
}

// window returns the calendar window per that holds now in loc, from the
// cache when now is in the window last computed for per and loc. The result
// is shared and must not be modified.
func (c *windowCache) window(per Window, now time.Time, loc *time.Location) *calWindow {
	var p *atomic.Pointer[calWindow]
	if c != nil {
		p = &c.wins[per]
		if w := p.Load(); w != nil && w.loc == loc && !now.Before(w.start) && now.Before(w.end) {
			return w
		}
	}
	w := &calWindow{loc: loc}
	w.start, w.end, w.id = calendarWindow(per, now, loc)
	if p != nil {
		p.Store(w)
	}
	return w
}

// start returns the start of a calendar window, or zero.
func (it *item) start() time.Time {
	if it.cal == nil {
		return time.Time{}
	}
	return it.cal.start
}

// end returns the end of a calendar window, or zero.
func (it *item) end() time.Time {
	if it.cal == nil {
		return time.Time{}
	}
	return it.cal.end
}

// expireAt is when the window's storage may be dropped, as known at Reserve.
func (it *item) expireAt() time.Time { return it.at.Add(it.ttl) }

// location returns loc, or UTC for nil.
func location(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

func sessionTTL(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultSessionTTL
	}
	return d
}

// plan lists the items of a request at instant now: one per limit of each
// scope, in order, with the windows that now falls in.
func plan(req *Request, now time.Time, leaseTTL time.Duration, wc *windowCache) []item {
	n := 0
	for _, sl := range req.Scopes {
		n += len(sl.Limits)
	}
	items := make([]item, 0, n)
	loc := location(req.Location)
	for _, sl := range req.Scopes {
		for _, l := range sl.Limits {
			it := item{scope: sl.Scope, limit: l, at: now}
			switch l.Unit {
			case USD:
				it.need = max(req.CostPicoUSD, 0)
			case Tokens:
				it.need = max(req.Tokens, 0)
			default:
				it.need = 1
			}
			it.fillWindow(now, loc, sessionTTL(req.SessionTTL), leaseTTL, wc)
			items = append(items, it)
		}
	}
	return items
}

// queryItems lists the items of a Read or Reset query.
func queryItems(q *Query, now time.Time, leaseTTL time.Duration, wc *windowCache) []item {
	items := make([]item, 0, len(q.Limits))
	loc := location(q.Location)
	for _, l := range q.Limits {
		it := item{scope: q.Scope, limit: l, at: now}
		it.fillWindow(now, loc, sessionTTL(q.SessionTTL), leaseTTL, wc)
		items = append(items, it)
	}
	return items
}

// fillWindow sets the kind, window and expiry of it at now.
func (it *item) fillWindow(now time.Time, loc *time.Location, sessTTL, leaseTTL time.Duration, wc *windowCache) {
	it.commit = it.limit.Unit == Requests
	switch per := it.limit.Per; {
	case it.limit.Unit == Concurrent:
		it.kind = kindLease
		it.ttl = leaseTTL
	case per.Rolling():
		it.kind = kindRolling
		it.ttl = per.length() + leaseTTL
	case per == Session:
		it.kind = kindCounter
		it.ttl = sessTTL
	default:
		it.kind = kindCounter
		it.cal = wc.window(per, now, loc)
		it.win = it.cal.id
		it.ttl = it.cal.end.Add(windowGrace).Sub(now)
	}
}

// settleAmount is what a settled request is charged in item it.
func (it *item) settleAmount(a *Actual) int64 {
	if it.scope.Kind == ScopeProvider && a.Provider != "" && a.Provider != it.scope.Name {
		return 0 // another provider of the chain served the request
	}
	switch it.limit.Unit {
	case USD:
		return max(a.CostPicoUSD, 0)
	case Tokens:
		return max(a.Tokens, 0)
	}
	return 0
}

// held reports whether the reservation holds an amount in it that Settle
// replaces: spend and tokens in calendar and session windows.
func (it *item) held() bool { return it.kind == kindCounter && !it.commit }

// tightest returns the limit with the smallest fraction left once the
// reservation is counted; used[i] is item i's use including the request.
func tightest(items []item, used []int64) *Remaining {
	best, bestFrac := -1, 2.0
	for i := range items {
		left := max(items[i].limit.Max-used[i], 0)
		frac := float64(left) / float64(items[i].limit.Max)
		if frac < bestFrac {
			best, bestFrac = i, frac
		}
	}
	if best < 0 {
		return nil
	}
	it := &items[best]
	r := &Remaining{Scope: it.scope, Limit: it.limit, Amount: max(it.limit.Max-used[best], 0)}
	if it.kind == kindCounter && it.limit.Per != Session {
		r.ResetAt = it.end()
	}
	return r
}

// deny builds the denial of item it. used and held are the window's use
// before the request; fits is when a rolling window would admit the request
// (zero if never), and expires the expiry of a session window (zero if
// unknown).
func deny(it *item, used, held int64, fits, expires time.Time, now time.Time, loc *time.Location) *Denial {
	d := &Denial{Scope: it.scope, Limit: it.limit, Used: used, Held: held, Requested: it.need}
	switch {
	case it.kind == kindLease:
		d.RetryAfter = ConcurrencyRetryAfter
	case it.kind == kindRolling:
		if !fits.IsZero() && !d.TooLarge() {
			d.ResetAt = fits.In(location(loc))
			d.RetryAfter = max(fits.Sub(now), time.Millisecond)
		}
	case it.limit.Per == Session:
		if !expires.IsZero() {
			d.ResetAt = expires.In(location(loc))
		}
	default:
		d.ResetAt = it.end()
	}
	return d
}

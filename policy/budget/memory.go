package budget

import (
	"container/heap"
	"context"
	"strconv"
	"sync"
	"time"
)

// tombstoneTTL is how long a ledger remembers a reservation whose lease
// expired, so that its late Settle adds the actual cost without taking the
// reservation away twice, and a repeated Settle is told apart from it.
const tombstoneTTL = 24 * time.Hour

// sweepEvery is how often the memory ledger drops windows that are over.
const sweepEvery = time.Minute

// MemoryLedger is a Ledger in process memory, for a single Tollgate
// instance: the embedded default when no Redis is configured. It follows the
// same contract as RedisLedger. Its zero value is not usable; call
// NewMemoryLedger.
type MemoryLedger struct {
	leaseTTL time.Duration

	mu        sync.Mutex
	seq       uint64
	counters  map[slot]*counter
	logs      map[slot]*rollLog
	leases    map[slot]*leaseSet
	holds     map[string]*memHold
	expiries  holdHeap
	expired   map[string]time.Time // tombstones of expired holds
	nextSweep time.Time
}

var _ Ledger = (*MemoryLedger)(nil)

// slot names one window of one limit of one scope.
type slot struct {
	scope Scope
	unit  Unit
	per   Window
	win   int32
}

func slotOf(it *item) slot {
	return slot{scope: it.scope, unit: it.limit.Unit, per: it.limit.Per, win: it.win}
}

// counter is a calendar or session window.
type counter struct {
	settled, held int64
	expireAt      time.Time
}

// live returns the settled amount that counts at now: all of it, except for
// a session that expired, which starts again from nothing.
func (c *counter) live(it *item, now time.Time) int64 {
	if it.limit.Per == Session && !now.Before(c.expireAt) {
		return 0
	}
	return c.settled
}

// rollLog is a rolling window: the entries admitted in it, oldest first.
type rollLog struct {
	entries []*rollEntry
	sum     int64
}

// rollEntry is one admitted amount of a rolling window.
type rollEntry struct {
	at     time.Time
	amount int64
	gone   bool // aged out or reset
}

// leaseSet holds the leases of a concurrency limit by reservation id.
type leaseSet struct {
	leases map[string]time.Time
	next   time.Time // the earliest expiry, or zero
}

// memHold is a reservation in flight.
type memHold struct {
	res     *Reservation
	expires time.Time
}

// NewMemoryLedger returns an empty memory ledger whose leases live leaseTTL
// unless renewed (DefaultLeaseTTL when leaseTTL <= 0).
func NewMemoryLedger(leaseTTL time.Duration) *MemoryLedger {
	if leaseTTL <= 0 {
		leaseTTL = DefaultLeaseTTL
	}
	return &MemoryLedger{
		leaseTTL: leaseTTL,
		counters: map[slot]*counter{},
		logs:     map[slot]*rollLog{},
		leases:   map[slot]*leaseSet{},
		holds:    map[string]*memHold{},
		expired:  map[string]time.Time{},
	}
}

// Reserve implements [Ledger.Reserve]. It never fails.
func (l *MemoryLedger) Reserve(_ context.Context, req Request, now time.Time) (Decision, error) {
	if req.Exempt {
		return exemptDecision(), nil
	}
	items := plan(&req, now, l.leaseTTL)
	if len(items) == 0 {
		return exemptDecision(), nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)

	// Check every limit before changing anything.
	var usedBuf [16]int64
	used := usedBuf[:0]
	for i := range items {
		it := &items[i]
		var u, held int64
		switch it.kind {
		case kindCounter:
			if c := l.counters[slotOf(it)]; c != nil {
				u, held = c.live(it, now)+c.held, c.held
			}
		case kindRolling:
			if lg := l.logs[slotOf(it)]; lg != nil {
				lg.age(now, it.limit.Per.length())
				u = lg.sum
			}
		case kindLease:
			if ls := l.leases[slotOf(it)]; ls != nil {
				ls.age(now)
				u = int64(len(ls.leases))
			}
		}
		if it.need > it.limit.Max-u {
			var fits, expires time.Time
			switch {
			case it.kind == kindRolling:
				fits = l.logs[slotOf(it)].fits(u, it.need, it.limit.Max, it.limit.Per.length())
			case it.limit.Per == Session:
				if c := l.counters[slotOf(it)]; c != nil && now.Before(c.expireAt) {
					expires = c.expireAt
				}
			}
			return Decision{Denial: deny(it, u, held, fits, expires, now, req.Location)}, nil
		}
		used = append(used, u+it.need)
	}

	l.seq++
	res := &Reservation{id: req.ID + "#" + strconv.FormatUint(l.seq, 36), items: items, ttl: l.leaseTTL}
	expires := now.Add(l.leaseTTL)
	res.expires.Store(expires.UnixNano())
	for i := range items {
		it := &items[i]
		s := slotOf(it)
		switch it.kind {
		case kindCounter:
			c := l.counters[s]
			if c == nil {
				c = &counter{}
				l.counters[s] = c
			}
			c.settled = c.live(it, now)
			if it.commit {
				c.settled += it.need
			} else {
				c.held += it.need
			}
			c.expireAt = later(c.expireAt, it.expireAt)
		case kindRolling:
			lg := l.logs[s]
			if lg == nil {
				lg = &rollLog{}
				l.logs[s] = lg
			}
			it.entry = lg.add(now, it.need)
		case kindLease:
			ls := l.leases[s]
			if ls == nil {
				ls = &leaseSet{leases: map[string]time.Time{}}
				l.leases[s] = ls
			}
			ls.leases[res.id] = expires
			if ls.next.IsZero() || expires.Before(ls.next) {
				ls.next = expires
			}
		}
	}
	l.holds[res.id] = &memHold{res: res, expires: expires}
	heap.Push(&l.expiries, holdExpiry{at: expires, id: res.id})
	return Decision{Allowed: true, Reservation: res, Remaining: tightest(items, used)}, nil
}

// Settle implements [Ledger.Settle]. It never fails.
func (l *MemoryLedger) Settle(_ context.Context, r *Reservation, actual Actual, now time.Time) error {
	if r.settled() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)
	_, live := l.holds[r.id]
	if live {
		delete(l.holds, r.id) // its heap entry is skipped when it comes up
	} else if _, ok := l.expired[r.id]; ok {
		delete(l.expired, r.id)
	} else {
		return nil // forgotten long ago; nothing to undo
	}
	for i := range r.items {
		it := &r.items[i]
		a := it.settleAmount(&actual)
		switch it.kind {
		case kindCounter:
			if it.commit {
				continue
			}
			c := l.counters[slotOf(it)]
			if c == nil {
				continue // the window is over and forgotten
			}
			if live {
				c.held -= it.need
			}
			c.settled = c.live(it, now) + a
			if it.limit.Per == Session {
				c.expireAt = now.Add(it.expireAt.Sub(it.at))
			}
		case kindRolling:
			if !it.commit && !it.entry.gone {
				l.logs[slotOf(it)].sum += a - it.entry.amount
				it.entry.amount = a
			}
		case kindLease:
			if ls := l.leases[slotOf(it)]; ls != nil {
				delete(ls.leases, r.id)
			}
		}
	}
	return nil
}

// Release implements [Ledger.Release].
func (l *MemoryLedger) Release(ctx context.Context, r *Reservation, now time.Time) error {
	return l.Settle(ctx, r, Actual{}, now)
}

// Renew implements [Ledger.Renew].
func (l *MemoryLedger) Renew(_ context.Context, r *Reservation, now time.Time) error {
	if r == nil || r.exempt || r.done.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)
	h, ok := l.holds[r.id]
	if !ok {
		return ErrExpired
	}
	expires := now.Add(l.leaseTTL)
	if !expires.After(h.expires) {
		return nil
	}
	h.expires = expires
	r.expires.Store(expires.UnixNano())
	heap.Push(&l.expiries, holdExpiry{at: expires, id: r.id})
	for i := range r.items {
		it := &r.items[i]
		if it.kind == kindLease {
			if ls := l.leases[slotOf(it)]; ls != nil {
				if _, ok := ls.leases[r.id]; ok {
					ls.leases[r.id] = expires
				}
			}
		}
	}
	return nil
}

// Read implements [Ledger.Read]. It never fails.
func (l *MemoryLedger) Read(_ context.Context, q Query, now time.Time) ([]Balance, error) {
	items := queryItems(&q, now, l.leaseTTL)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)
	out := make([]Balance, len(items))
	for i := range items {
		it := &items[i]
		b := Balance{Scope: it.scope, Limit: it.limit, Start: it.start, ResetAt: it.end}
		switch it.kind {
		case kindCounter:
			c := l.counters[slotOf(it)]
			if c != nil {
				b.Used, b.Held = c.live(it, now)+c.held, c.held
			}
			if it.limit.Per == Session {
				b.ResetAt = time.Time{}
				if c != nil && now.Before(c.expireAt) {
					b.ResetAt = c.expireAt.In(location(q.Location))
				}
			}
		case kindRolling:
			if lg := l.logs[slotOf(it)]; lg != nil {
				lg.age(now, it.limit.Per.length())
				b.Used = lg.sum
			}
		case kindLease:
			if ls := l.leases[slotOf(it)]; ls != nil {
				ls.age(now)
				b.Used = int64(len(ls.leases))
			}
		}
		out[i] = b
	}
	return out, nil
}

// Reset implements [Ledger.Reset]. It never fails.
func (l *MemoryLedger) Reset(_ context.Context, q Query, now time.Time) error {
	items := queryItems(&q, now, l.leaseTTL)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)
	for i := range items {
		it := &items[i]
		s := slotOf(it)
		switch it.kind {
		case kindCounter:
			if c := l.counters[s]; c != nil {
				c.settled = 0
			}
		case kindRolling:
			if lg := l.logs[s]; lg != nil {
				for _, e := range lg.entries {
					e.gone = true
				}
				delete(l.logs, s)
			}
		case kindLease:
			delete(l.leases, s)
		}
	}
	return nil
}

// maintain expires the holds whose leases ran out by now and, once a
// minute, drops windows that are over. l.mu is held.
func (l *MemoryLedger) maintain(now time.Time) {
	for len(l.expiries) > 0 && !l.expiries[0].at.After(now) {
		e := heap.Pop(&l.expiries).(holdExpiry)
		h, ok := l.holds[e.id]
		if !ok || !h.expires.Equal(e.at) {
			continue // settled, or renewed to a later expiry
		}
		delete(l.holds, e.id)
		l.expired[e.id] = now
		for i := range h.res.items {
			it := &h.res.items[i]
			if it.held() {
				if c := l.counters[slotOf(it)]; c != nil {
					c.held -= it.need
				}
			}
		}
	}
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(sweepEvery)
	for s, c := range l.counters {
		if !now.Before(c.expireAt) {
			delete(l.counters, s)
		}
	}
	for s, lg := range l.logs {
		if lg.age(now, s.per.length()); len(lg.entries) == 0 {
			delete(l.logs, s)
		}
	}
	for s, ls := range l.leases {
		if ls.age(now); len(ls.leases) == 0 {
			delete(l.leases, s)
		}
	}
	for id, at := range l.expired {
		if now.Sub(at) >= tombstoneTTL {
			delete(l.expired, id)
		}
	}
}

// age drops the entries stamped at or before now minus the window length.
func (lg *rollLog) age(now time.Time, length time.Duration) {
	cutoff := now.Add(-length)
	n := 0
	for n < len(lg.entries) && !lg.entries[n].at.After(cutoff) {
		e := lg.entries[n]
		lg.sum -= e.amount
		e.gone = true
		lg.entries[n] = nil
		n++
	}
	lg.entries = lg.entries[n:]
}

// add appends an entry, keeping the log in stamp order.
func (lg *rollLog) add(at time.Time, amount int64) *rollEntry {
	e := &rollEntry{at: at, amount: amount}
	i := len(lg.entries)
	for i > 0 && lg.entries[i-1].at.After(at) {
		i--
	}
	lg.entries = append(lg.entries, nil)
	copy(lg.entries[i+1:], lg.entries[i:])
	lg.entries[i] = e
	lg.sum += amount
	return e
}

// fits returns when enough entries will have aged out for need to fit under
// max, with used in the window now; zero if need alone exceeds max.
func (lg *rollLog) fits(used, need, max int64, length time.Duration) time.Time {
	if need > max || lg == nil {
		return time.Time{}
	}
	for _, e := range lg.entries {
		used -= e.amount
		if need <= max-used {
			return e.at.Add(length)
		}
	}
	return time.Time{}
}

// age drops the leases that expired by now.
func (ls *leaseSet) age(now time.Time) {
	if ls.next.IsZero() || now.Before(ls.next) {
		return
	}
	ls.next = time.Time{}
	for id, exp := range ls.leases {
		if !now.Before(exp) {
			delete(ls.leases, id)
		} else if ls.next.IsZero() || exp.Before(ls.next) {
			ls.next = exp
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// holdExpiry is an entry of the expiry heap; stale entries (of settled or
// renewed holds) are skipped when popped.
type holdExpiry struct {
	at time.Time
	id string
}

type holdHeap []holdExpiry

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h holdHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *holdHeap) Push(x any)        { *h = append(*h, x.(holdExpiry)) }
func (h *holdHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

package budget

import (
	"container/heap"
	"context"
	"strconv"
	"sync"
	"time"
)

// sweepEvery is how often the memory ledger drops windows that are over.
const sweepEvery = time.Minute

// MemoryLedger is a Ledger in process memory, for a single Tollgate
// instance: the embedded default when no Redis is configured. It follows the
// same contract as RedisLedger. Its zero value is not usable; call
// NewMemoryLedger.
type MemoryLedger struct {
	leaseTTL time.Duration
	windows  windowCache

	mu        sync.Mutex
	seq       uint64
	counters  map[slot]*counter
	logs      map[slot]*rollLog
	leases    map[slot]*leaseSet
	holds     holdHeap // reservations in flight, by lease expiry
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

// leaseSet holds the leases of a concurrency limit, by reservation id. A
// lease expires with its reservation's hold.
type leaseSet struct {
	leases map[string]struct{}
}

// holdState is where a reservation of the memory ledger is in its life.
type holdState uint8

const (
	holdLive holdState = iota
	holdExpired
	holdSettled
)

// memHold is the memory ledger's state of a reservation.
type memHold struct {
	expires time.Time
	state   holdState
	index   int // in the holds heap, while live
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
	}
}

// Reserve implements [Ledger.Reserve]. It never fails.
func (l *MemoryLedger) Reserve(_ context.Context, req Request, now time.Time) (Decision, error) {
	if req.Exempt {
		return exemptDecision(), nil
	}
	items := plan(&req, now, l.leaseTTL, &l.windows)
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
			if it.ctr = l.counters[slotOf(it)]; it.ctr != nil {
				u, held = it.ctr.live(it, now)+it.ctr.held, it.ctr.held
			}
		case kindRolling:
			if it.log = l.logs[slotOf(it)]; it.log != nil {
				it.log.age(now, it.limit.Per.length())
				u = it.log.sum
			}
		case kindLease:
			if it.ls = l.leases[slotOf(it)]; it.ls != nil {
				u = int64(len(it.ls.leases))
			}
		}
		if it.need > it.limit.Max-u {
			var fits, expires time.Time
			switch {
			case it.kind == kindRolling:
				fits = it.log.fits(u, it.need, it.limit.Max, it.limit.Per.length())
			case it.limit.Per == Session && it.ctr != nil && now.Before(it.ctr.expireAt):
				expires = it.ctr.expireAt
			}
			return Decision{Denial: deny(it, u, held, fits, expires, now, req.Location)}, nil
		}
		used = append(used, u+it.need)
	}

	l.seq++
	res := &Reservation{id: req.ID + "#" + strconv.FormatUint(l.seq, 36), items: items, ttl: l.leaseTTL}
	res.hold.expires = now.Add(l.leaseTTL)
	res.expires.Store(res.hold.expires.UnixNano())
	for i := range items {
		it := &items[i]
		switch it.kind {
		case kindCounter:
			if it.ctr == nil {
				it.ctr = &counter{}
				l.counters[slotOf(it)] = it.ctr
			}
			c := it.ctr
			c.settled = c.live(it, now)
			if it.commit {
				c.settled += it.need
			} else {
				c.held += it.need
			}
			c.expireAt = later(c.expireAt, it.expireAt())
		case kindRolling:
			if it.log == nil {
				it.log = &rollLog{}
				l.logs[slotOf(it)] = it.log
			}
			it.entry = it.log.add(now, it.need)
		case kindLease:
			if it.ls == nil {
				it.ls = &leaseSet{leases: map[string]struct{}{}}
				l.leases[slotOf(it)] = it.ls
			}
			it.ls.leases[res.id] = struct{}{}
		}
	}
	heap.Push(&l.holds, res)
	return Decision{Allowed: true, Reservation: res, Remaining: tightest(items, used)}, nil
}

// endHold ends a reservation's hold at now, under l.mu, and reports whether
// it was still live (its holds not yet given back by expiry).
func (l *MemoryLedger) endHold(r *Reservation, now time.Time) bool {
	l.maintain(now)
	h := &r.hold
	live := h.state == holdLive
	if live {
		heap.Remove(&l.holds, h.index)
	}
	h.state = holdSettled
	return live
}

// Settle implements [Ledger.Settle]. It never fails.
func (l *MemoryLedger) Settle(_ context.Context, r *Reservation, actual Actual, now time.Time) error {
	if r.settled() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	live := l.endHold(r, now)
	for i := range r.items {
		it := &r.items[i]
		a := it.settleAmount(&actual)
		switch it.kind {
		case kindCounter:
			if it.commit {
				continue
			}
			c := it.ctr
			if live {
				c.held -= it.need
			}
			c.settled = c.live(it, now) + a
			if it.limit.Per == Session {
				c.expireAt = now.Add(it.ttl)
			}
		case kindRolling:
			if !it.commit && !it.entry.gone {
				it.log.sum += a - it.entry.amount
				it.entry.amount = a
			}
		case kindLease:
			delete(it.ls.leases, r.id)
		}
	}
	return nil
}

// Cancel implements [Ledger.Cancel]. It never fails.
func (l *MemoryLedger) Cancel(_ context.Context, r *Reservation, now time.Time) error {
	if r.settled() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	live := l.endHold(r, now)
	for i := range r.items {
		it := &r.items[i]
		switch it.kind {
		case kindCounter:
			c := it.ctr
			switch {
			case !it.commit && live:
				c.held -= it.need
			case it.commit && c.live(it, now) > 0:
				// A session that expired since counts from nothing already.
				c.settled = max(c.settled-it.need, 0)
			}
		case kindRolling:
			if !it.entry.gone {
				it.log.sum -= it.entry.amount
				it.entry.amount = 0
			}
		case kindLease:
			delete(it.ls.leases, r.id)
		}
	}
	return nil
}

// Replace implements [Ledger.Replace]. It never fails.
func (l *MemoryLedger) Replace(ctx context.Context, old *Reservation, req Request, now time.Time) (Decision, error) {
	if err := l.Cancel(ctx, old, now); err != nil {
		return Decision{}, err
	}
	return l.Reserve(ctx, req, now)
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
	h := &r.hold
	switch {
	case h.state == holdExpired:
		return ErrExpired
	case h.state != holdLive:
		return nil
	}
	if expires := now.Add(l.leaseTTL); expires.After(h.expires) {
		h.expires = expires
		r.expires.Store(expires.UnixNano())
		heap.Fix(&l.holds, h.index)
	}
	return nil
}

// Read implements [Ledger.Read]. It never fails.
func (l *MemoryLedger) Read(_ context.Context, q Query, now time.Time) ([]Balance, error) {
	items := queryItems(&q, now, l.leaseTTL, &l.windows)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maintain(now)
	out := make([]Balance, len(items))
	for i := range items {
		it := &items[i]
		b := Balance{Scope: it.scope, Limit: it.limit, Start: it.start(), ResetAt: it.end()}
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
				b.Used = int64(len(ls.leases))
			}
		}
		out[i] = b
	}
	return out, nil
}

// Reset implements [Ledger.Reset]. It never fails.
func (l *MemoryLedger) Reset(_ context.Context, q Query, now time.Time) error {
	items := queryItems(&q, now, l.leaseTTL, &l.windows)
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
			if ls := l.leases[s]; ls != nil {
				clear(ls.leases) // reservations still hold the set
				delete(l.leases, s)
			}
		}
	}
	return nil
}

// maintain expires the reservations whose leases ran out by now (giving
// back their holds and concurrency slots) and, once a minute, drops windows
// that are over. l.mu is held.
func (l *MemoryLedger) maintain(now time.Time) {
	for len(l.holds) > 0 && !l.holds[0].hold.expires.After(now) {
		r := heap.Pop(&l.holds).(*Reservation)
		r.hold.state = holdExpired
		for i := range r.items {
			it := &r.items[i]
			switch {
			case it.held():
				it.ctr.held -= it.need
			case it.kind == kindLease:
				delete(it.ls.leases, r.id)
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
		if len(ls.leases) == 0 {
			delete(l.leases, s)
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

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// holdHeap orders the reservations in flight by lease expiry.
type holdHeap []*Reservation

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].hold.expires.Before(h[j].hold.expires) }
func (h holdHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hold.index, h[j].hold.index = i, j
}
func (h *holdHeap) Push(x any) {
	r := x.(*Reservation)
	r.hold.index = len(*h)
	*h = append(*h, r)
}
func (h *holdHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}

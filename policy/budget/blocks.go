package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBlocks is the RedisOptions.Blocks that `tollgate serve` uses: a
// replica's block admits up to 32 requests of one limit set.
const DefaultBlocks = 32

// DefaultBlockLife is how long a block admits requests by default
// (RedisOptions.BlockLife).
const DefaultBlockLife = time.Second

// blockShare bounds a block to 1/blockShare of what each of its limits has
// left when the block is taken, so that near a limit blocks shrink to one
// request (the per-request path), and a replica never holds idle more than
// an eighth of what another replica could still use.
const blockShare = 8

// blockFirst is the size of a limit set's first block, in requests; the
// next ones double while they are used up, and shrink to a quarter more
// than the last one admitted when it was not.
const blockFirst = 4

// maxExact is the largest amount Lua's doubles hold exactly (2^53 - 1): a
// block's amounts stay below it.
const maxExact = 1<<53 - 1

// blocks are the budget blocks a Redis ledger holds (RedisOptions.Blocks).
//
// A block is a reservation of several requests' worth in every limit of a
// limit set (the limits of one scope chain in their current windows), taken
// in Redis in one script call, exactly like a reservation of one request
// but cap times as large: cap times the request's worst-case spend and
// tokens held in calendar counters, cap requests counted in request
// counters and request lists, cap leases in concurrency sets. It counts as
// used in Redis from then on, so every ceiling holds across replicas. The
// requests that follow are admitted from it in memory while it lasts (one
// block life) and has room in every limit; each settles into it in memory.
// When it stops admitting and its last request has ended, one more call
// closes it: what its requests settled is added, what it held is given
// back, the request counts and list entries it did not use are taken back,
// its leases are dropped. Closes ride in the next script call (a block's
// open, or a batch of settles), so under steady traffic Redis sees about one
// script per block.
type blocks struct {
	max  int64
	life time.Duration

	opened   prometheus.Counter // blocks opened
	admitted prometheus.Counter // requests admitted from blocks

	mu     sync.Mutex
	sets   map[string]*blockSet
	open   map[*grant]struct{} // the blocks admitting requests, for Flush
	closed bool
}

// blockSet is the blocks of one limit set.
type blockSet struct {
	key string
	// refill is held (a value in it) by the request that opens the set's
	// next block, so that the requests that come meanwhile wait for it
	// instead of opening blocks of their own; they wait no longer than the
	// ledger's timeout.
	refill chan struct{}
	cur    *grant // the block admitting requests, or nil; under blocks.mu
	next   int64  // the size of the next block, in requests; under blocks.mu
}

// grant is one block. Its fields are under blocks.mu.
type grant struct {
	set    *blockSet
	id     string // unique: lease members and tombstones use it
	member string // its hold in the holds index
	items  []item // as planned for the request that opened it
	keys   []string
	cap    int64
	// Per item: amt is what Redis holds for the block (cap times the
	// opening request's need); used is what its requests take now (held
	// counters and leases: the requests in flight; request counts: every
	// request admitted and not cancelled); settled is what ended requests
	// cost (held counters); base is the limit's use before the block;
	// stamps are the stamps of request list entries.
	amt, used, settled, base []int64
	stamps                   []string

	admitted      int64 // requests admitted
	inflight      int
	until         time.Time // it admits requests of instants before until
	expires       time.Time // its lease
	retired       bool      // it admits no more
	closed        bool      // its close was sent
	closedExpires time.Time // its lease when its close was made
	timer         *time.Timer
}

// blockable reports whether items can be served from blocks: calendar
// counters, request lists and lease sets. A limit set with a rolling token
// window or a session window takes the per-request path.
func blockable(items []item) bool {
	for i := range items {
		it := &items[i]
		if it.limit.Per == Session || it.kind == kindRolling && !it.commit {
			return false
		}
	}
	return len(items) > 0
}

// set returns the blocks of the limit set key.
func (b *blocks) set(key string) *blockSet {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sets[key]
	if s == nil {
		s = &blockSet{key: key, next: min(blockFirst, b.max), refill: make(chan struct{}, 1)}
		b.sets[key] = s
	}
	return s
}

// forget drops set from the map if no block of it admits requests and no
// request is opening one. b.mu is held; owner says the caller holds
// set.refill.
func (b *blocks) forget(set *blockSet, owner bool) {
	if set.cur != nil || b.sets[set.key] != set {
		return
	}
	if owner {
		delete(b.sets, set.key)
		return
	}
	select {
	case set.refill <- struct{}{}:
		delete(b.sets, set.key)
		<-set.refill
	default:
	}
}

// lock takes set.refill, waiting no longer than d or ctx.
func (set *blockSet) lock(ctx context.Context, d time.Duration) error {
	select {
	case set.refill <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case set.refill <- struct{}{}:
		return nil
	case <-t.C:
		return errors.New("timed out waiting for the budget block another request is opening")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// room reports whether item i of g has room for need.
func (g *grant) room(i int, need int64) bool {
	if g.items[i].held() {
		return g.amt[i]-g.used[i]-g.settled[i] >= need
	}
	return g.amt[i]-g.used[i] >= need
}

// admit admits a request of items at now from g, if g has room for it.
// blocks.mu is held.
func (l *RedisLedger) admit(g *grant, items []item, reqID string, now time.Time) *Reservation {
	// A request's instant may be before the block's (it was taken before
	// the request waited for the block): its list entries are stamped later
	// still, and its calendar windows are the block's (the limit set's key
	// names them).
	if g.retired || !now.Before(g.until) {
		return nil
	}
	for i := range items {
		if !g.room(i, items[i].need) {
			return nil
		}
	}
	for i := range items {
		g.used[i] += items[i].need
	}
	g.admitted++
	g.inflight++
	l.blocks.admitted.Inc()
	id := escapeName(reqID)
	if len(id) > 32 {
		id = id[:32]
	}
	r := &Reservation{id: id + "#" + g.id + "/" + strconv.FormatInt(g.admitted, 36), items: items, ttl: l.leaseTTL, grant: g}
	r.expires.Store(g.expires.UnixNano())
	if g.cap == 1 {
		// A block of one request is the per-request path: it closes when
		// its request ends.
		l.retire(g, now)
	}
	return r
}

// remaining is Decision.Remaining of a request admitted from g: the use of
// each limit when the block was taken, plus what the block's requests take.
func (g *grant) remaining(items []item) *Remaining {
	used := make([]int64, len(items))
	for i := range items {
		used[i] = g.base[i] + g.used[i] + g.settled[i]
	}
	return tightest(items, used)
}

// retire stops g admitting requests and returns its close if no request of
// it is in flight (nil otherwise: the last one's end closes it). blocks.mu
// is held.
func (l *RedisLedger) retire(g *grant, now time.Time) *settleOp {
	if g.retired {
		return nil
	}
	g.retired = true
	delete(l.blocks.open, g)
	set := g.set
	if set.cur == g {
		set.cur = nil
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	// The next block follows the traffic: twice as large when this one was
	// used up, a quarter more than it admitted when its life ended first,
	// so that a limit set holds little idle in blocks whose long requests
	// are still running.
	next := g.admitted + g.admitted/4
	if g.admitted >= g.cap {
		next = 2 * g.cap
	}
	set.next = min(max(next, 1), l.blocks.max)
	if g.inflight == 0 {
		return l.closeOp(g, now)
	}
	return nil
}

// closeOp returns the settle script's close of g (luaSettleFn's adjust) and
// marks g closed. blocks.mu is held.
func (l *RedisLedger) closeOp(g *grant, now time.Time) *settleOp {
	g.closed = true
	g.closedExpires = g.expires
	n := len(g.items)
	op := &settleOp{keys: g.keys, args: make([]any, 6, 6+5*n)}
	forget := later(g.expires, now).Add(l.leaseTTL)
	op.args[0], op.args[1], op.args[2], op.args[3], op.args[4], op.args[5] = g.member, g.id, ms(now), n, "2", ms(forget)
	for i := range g.items {
		it := &g.items[i]
		kind := kindArg(it)
		var a1, a2 any = int64(0), int64(0)
		switch {
		case it.held():
			a1, a2 = g.amt[i], g.settled[i]
		case kind == "c":
			a1 = g.amt[i] - g.used[i]
		case kind == "q":
			if g.stamps[i] != "" {
				a1, a2 = g.amt[i]-g.used[i], g.stamps[i]
			}
		default: // a lease set: every lease of the block goes
			a2 = g.amt[i]
		}
		op.args = append(op.args, kind, modeArg(it), a1, a2, int64(0))
	}
	return op
}

// blockKey names the limit set of items: each limit's key (scope, unit and
// window) and maximum.
func (l *RedisLedger) blockKey(items []item) (string, []string) {
	keys := make([]string, len(items))
	var b strings.Builder
	for i := range items {
		k, _ := l.keys(&items[i])
		keys[i] = k
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(items[i].limit.Max, 10))
		b.WriteByte('\n')
	}
	return b.String(), keys
}

// reserveBlock is Reserve for a blockable request: from the limit set's
// block when it has room, else from a new block, opened in one script call
// that also closes the old one if it can be closed.
func (l *RedisLedger) reserveBlock(ctx context.Context, req *Request, items []item, now time.Time) (Decision, error) {
	b := l.blocks
	key, keys := l.blockKey(items)
	set := b.set(key)
	if err := set.lock(ctx, l.timeout); err != nil {
		return Decision{}, unavailable("reserve", err)
	}
	defer func() { <-set.refill }()

	b.mu.Lock()
	var closing *settleOp
	old := set.cur
	if old != nil {
		if r := l.admit(old, items, req.ID, now); r != nil {
			d := Decision{Allowed: true, Reservation: r, Remaining: old.remaining(items)}
			b.mu.Unlock()
			return d, nil
		}
		closing = l.retire(old, now)
	}
	size := set.next
	b.mu.Unlock()
	for i := range items {
		if need := items[i].need; need > 0 {
			size = min(size, maxExact/need)
		}
	}
	size = max(size, 1)

	call := l.grantCall(items, keys, size, now)
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	reply, closeErr, err := l.runScript(ctx, l.grant, call, closing)
	if closeErr != nil {
		l.repairs.retryOp(ctx, l, opSettle, closing, old.id, old.closedExpires, now, closeErr)
	}
	if err != nil {
		// The block may have been made, or may still be: undo it by its id,
		// whatever happened to it.
		if !neverSent(err) {
			undo := l.undoOp(call, now)
			l.repairs.retryFunc(ctx, opReserve, call.id, call.expires, now, err, func(ctx context.Context) error { return l.runOp(ctx, undo) })
		}
		b.mu.Lock()
		b.forget(set, true)
		b.mu.Unlock()
		return Decision{}, unavailable("reserve", err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.forget(set, true)
	n := len(items)
	switch {
	case len(reply) == 2+3*n && reply[0] == 1, len(reply) == 2 && reply[0] == 2:
		g := &grant{
			set: set, id: call.id, items: items, keys: keys, cap: reply[1],
			amt: make([]int64, n), used: make([]int64, n), settled: make([]int64, n), base: make([]int64, n), stamps: make([]string, n),
			until: now.Add(b.life), expires: call.expires,
		}
		var member strings.Builder
		member.WriteString(g.id)
		member.WriteByte('*')
		member.WriteString(strconv.FormatInt(g.cap, 10))
		for i := range items {
			it := &items[i]
			g.amt[i] = g.cap * it.need
			if reply[0] == 1 {
				v := reply[2+3*i : 5+3*i]
				g.base[i] = v[0] + v[1]
				if it.kind == kindRolling {
					g.stamps[i] = strconv.FormatInt(v[2], 10)
				}
			}
			if it.held() && g.amt[i] != 0 {
				member.WriteByte('\n')
				member.WriteString(keys[i])
				member.WriteByte('\t')
				member.WriteString(strconv.FormatInt(g.amt[i], 10))
			}
		}
		g.member = member.String()
		set.cur = g
		b.open[g] = struct{}{}
		b.opened.Inc()
		r := l.admit(g, items, req.ID, now)
		if r == nil {
			return Decision{}, unavailable("reserve", errors.New("a new budget block has no room for its own request"))
		}
		if !g.retired && !b.closed {
			g.timer = time.AfterFunc(b.life, func() { l.blockIdle(g) })
		}
		d := Decision{Allowed: true, Reservation: r}
		if reply[0] == 1 {
			d.Remaining = g.remaining(items)
		}
		return d, nil
	case len(reply) == 1 && reply[0] == 3:
		return Decision{}, unavailable("reserve", errors.New("the budget block was closed before it was made"))
	case len(reply) == 5 && reply[0] == 0 && reply[1] >= 1 && int(reply[1]) <= n:
		return Decision{Denial: denial(items, reply, req, now)}, nil
	}
	return Decision{}, unavailable("reserve", fmt.Errorf("unexpected reply %v", reply))
}

// grantCall prepares the block script's keys and arguments (luaGrant) for
// a block of up to size requests of items.
func (l *RedisLedger) grantCall(items []item, keys []string, size int64, now time.Time) *reserveCall {
	seq := l.seq.Add(1)
	c := &reserveCall{items: items, id: "b" + l.instance + "." + strconv.FormatUint(seq, 36), expires: now.Add(l.leaseTTL)}
	c.keys = make([]string, 3, 3+len(items))
	c.keys[0], c.keys[1], c.keys[2] = l.holdsKey(), l.expiredKey(), l.endedKey()
	c.keys = append(c.keys, keys...)
	c.args = make([]any, 0, 9+6*len(items))
	c.args = append(c.args, 0, l.endedTTL(), ms(now), c.id, ms(c.expires), len(items), size, ms(now.Add(l.blocks.life)), blockShare)
	for i := range items {
		it := &items[i]
		var p int64
		if it.kind == kindRolling {
			p = it.limit.Per.length().Milliseconds()
		}
		c.args = append(c.args, kindArg(it), modeArg(it), it.limit.Max, it.need, l.keyTTL(it), p)
	}
	return c
}

// endBlock settles (actual set) or cancels a reservation admitted from a
// block, in memory; the end of the last request of a retired block closes
// it.
func (l *RedisLedger) endBlock(ctx context.Context, r *Reservation, actual *Actual, now time.Time) error {
	g := r.grant
	b := l.blocks
	b.mu.Lock()
	for i := range r.items {
		it := &r.items[i]
		switch {
		case it.held():
			g.used[i] -= it.need
			if actual != nil {
				g.settled[i] += it.settleAmount(actual)
			}
		case it.kind == kindLease || actual == nil:
			// A lease is free again; a cancelled request's count goes back.
			g.used[i] -= it.need
		}
	}
	g.inflight--
	var op *settleOp
	if g.retired && g.inflight == 0 && !g.closed {
		op = l.closeOp(g, now)
	}
	b.mu.Unlock()
	if op == nil {
		return nil
	}
	return l.sendClose(ctx, g, op, now)
}

// sendClose runs the close of a block, in the settle batch or alone; a
// failure is retried in the background (a close is idempotent).
func (l *RedisLedger) sendClose(ctx context.Context, g *grant, op *settleOp, now time.Time) error {
	if err := l.runOp(ctx, op); err != nil {
		l.repairs.retryOp(ctx, l, opSettle, op, g.id, g.closedExpires, now, err)
		return fmt.Errorf("%w (retried in the background until its lease expires)", unavailable("close budget block", err))
	}
	return nil
}

// blockIdle retires g when its life is over, if no request did before.
func (l *RedisLedger) blockIdle(g *grant) {
	b := l.blocks
	b.mu.Lock()
	if b.closed || g.retired {
		b.mu.Unlock()
		return
	}
	op := l.retire(g, g.until)
	b.forget(g.set, false)
	b.mu.Unlock()
	if op != nil {
		l.sendClose(context.Background(), g, op, g.until) //nolint:errcheck // retried in the background
	}
}

// renewBlock renews the block of r, and so r's lease.
func (l *RedisLedger) renewBlock(ctx context.Context, r *Reservation, now time.Time) error {
	g := r.grant
	expires := now.Add(l.leaseTTL)
	keys := []string{l.holdsKey()}
	l.blocks.mu.Lock()
	member, leases := g.member, int64(0)
	for i := range g.items {
		if g.items[i].kind == kindLease {
			keys = append(keys, g.keys[i])
			leases = g.amt[i]
		}
	}
	l.blocks.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	ok, err := l.grantRenew.Run(ctx, l.c, keys, member, g.id, ms(expires), (2 * l.leaseTTL).Milliseconds(), leases).Int64()
	if err != nil {
		return unavailable("renew", err)
	}
	if ok == 0 {
		return ErrExpired
	}
	l.blocks.mu.Lock()
	g.expires = later(g.expires, expires)
	l.blocks.mu.Unlock()
	r.expires.Store(expires.UnixNano())
	return nil
}

// Flush stops every block of the ledger admitting requests and closes those
// with no request in flight, in one script call: what they held and did not
// use is given back at once (the others close when their last request
// ends). The next request of each limit set opens a new block. Close calls
// it; without it an idle block is closed after its life (BlockLife). It does
// nothing without blocks.
func (l *RedisLedger) Flush(ctx context.Context, now time.Time) error {
	b := l.blocks
	if b == nil {
		return nil
	}
	var ops []*settleOp
	var gs []*grant
	b.mu.Lock()
	for g := range b.open {
		if op := l.retire(g, now); op != nil {
			ops = append(ops, op)
			gs = append(gs, g)
		}
		b.forget(g.set, false)
	}
	b.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	keys, args := l.settleScriptCall(ops)
	if err := l.settle.Run(ctx, l.c, keys, args...).Err(); err != nil {
		for i, op := range ops {
			l.repairs.retryOp(ctx, l, opSettle, op, gs[i].id, gs[i].closedExpires, now, err)
		}
		return unavailable("flush budget blocks", err)
	}
	return nil
}

// closeBlocks flushes the blocks at Close and stops their timers.
func (l *RedisLedger) closeBlocks(ctx context.Context) error {
	if l.blocks == nil {
		return nil
	}
	err := l.Flush(ctx, time.Now())
	l.blocks.mu.Lock()
	l.blocks.closed = true
	l.blocks.mu.Unlock()
	return err
}

// undoOp returns the settle script's undo of the block open call, made at
// now (luaSettleFn's undo).
func (l *RedisLedger) undoOp(call *reserveCall, now time.Time) *settleOp {
	n := len(call.items)
	op := &settleOp{keys: call.keys[3:], args: make([]any, 0, 8+2*n)}
	forget := call.expires.Add(l.leaseTTL)
	op.args = append(op.args, "", call.id, ms(now), n, "3", ms(forget), ms(call.expires), ms(now.Add(l.blocks.life)))
	for i := range call.items {
		op.args = append(op.args, kindArg(&call.items[i]), modeArg(&call.items[i]))
	}
	return op
}

// newBlocks returns the blocks of a ledger with options opts, their metrics
// registered with opts.Registerer if set.
func newBlocks(opts *RedisOptions) (*blocks, error) {
	life := opts.BlockLife
	if life <= 0 {
		life = DefaultBlockLife
	}
	b := &blocks{
		max: int64(opts.Blocks), life: life, sets: map[string]*blockSet{}, open: map[*grant]struct{}{},
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_budget_blocks_opened_total",
			Help: "Budget blocks this replica opened in Redis (one script call each, closes riding along).",
		}),
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_budget_block_admissions_total",
			Help: "Requests admitted from budget blocks, in memory; divided by tollgate_budget_blocks_opened_total, the requests per block script.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{b.opened, b.admitted} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

package budget

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// DefaultRedisPrefix is the default prefix of the Redis ledger's keys.
const DefaultRedisPrefix = "tollgate:budget"

// DefaultRedisTimeout bounds each call of the Redis ledger by default. A
// loopback round trip costs well under a millisecond and a cross-zone one a
// few; a Redis that has not answered in 100 ms is treated as unavailable.
const DefaultRedisTimeout = 100 * time.Millisecond

// RedisOptions configures a RedisLedger. The zero value is the default.
type RedisOptions struct {
	// Prefix starts every key; the keys are "{Prefix}:...", so that Prefix
	// is the hash tag of them all. Default DefaultRedisPrefix.
	Prefix string
	// Timeout bounds each call (one round trip, two after a script cache
	// flush). Default DefaultRedisTimeout.
	Timeout time.Duration
	// LeaseTTL is how long reservations live without Renew. Default
	// DefaultLeaseTTL. Every replica sharing the store must use the same.
	LeaseTTL time.Duration
	// SettleBatch, when positive, is how long a settle or cancel waits for
	// others to go to Redis with it in one script call: one round trip, one
	// read and one write for Redis, for all of them. A reserve that comes
	// meanwhile carries the waiting settles in its own script call, before
	// itself, so under steady traffic settles cost no round trip of their
	// own. Settles happen after the response, off the client's path.
	// Default 0: each settle goes alone.
	SettleBatch time.Duration
	// Blocks, when positive, turns budget blocks on: the ledger reserves
	// ahead, in one script call, a block of up to Blocks requests' worth in
	// every limit of a request's limit set (worst-case spend and tokens,
	// request counts, concurrency leases), held in Redis like a reservation
	// so that every ceiling holds across replicas, and admits and settles
	// the following requests of that limit set in memory; what a block did
	// not use goes back when it closes. Near a limit blocks shrink to one
	// request (the per-request path). Limit sets with a rolling token window
	// or a session window always take the per-request path. README
	// "Performance" ("third round: blocks") has the rules and the figures.
	// Default 0: every request goes to Redis. `tollgate serve` uses
	// DefaultBlocks (--budget-blocks).
	Blocks int
	// BlockLife is how long a block admits requests; it then closes once
	// its last request has ended. Default DefaultBlockLife. Request list
	// entries of a block are stamped at its end, so that they count at least
	// as long as any request admitted from it.
	BlockLife time.Duration
	// Logger receives the retries of failed settles and cancels (nothing
	// when nil).
	Logger *zap.Logger
	// Registerer receives the retry metrics and, with Blocks, the blocks'
	// (none when nil).
	Registerer prometheus.Registerer
}

// RedisLedger is a Ledger in Redis, shared by every Tollgate replica that
// uses the same Redis and prefix. Each method is one Lua script run with
// EVALSHA, so each is one round trip and atomic; the scripts are loaded by
// Load and reloaded by EVAL when Redis answers NOSCRIPT (after a restart or a
// failover). Every failure to reach Redis or run a script wraps
// ErrUnavailable.
//
// All keys of a ledger share one hash tag, "{Prefix}", and so one slot of a
// Redis Cluster. A decision touches scopes that many keys share (the team, a
// provider, global), so no per-request tag could keep it in one slot; a
// fixed tag does, at the price of putting all budget traffic on one shard.
// A request of 3 scopes and 6 windows (its reserve and, in the same script
// call, an earlier request's settle) runs 28 commands in one script, about
// 475,000 instructions in redis-server 7.0 (README "Performance", which
// also has the throughput of one shard). Standalone Redis and Sentinel (a
// redis.NewFailoverClient) need nothing more.
//
// A settle or cancel that fails is retried in the background, and a reserve
// whose outcome is unknown is cancelled by its id (repair.go), so that a
// Redis that was briefly unreachable or paused leaks no hold; call Close at
// shutdown to give the pending retries a last chance.
type RedisLedger struct {
	c        redis.UniversalClient
	tag      string // "{prefix}"
	timeout  time.Duration
	leaseTTL time.Duration
	instance string // random, makes reservation ids unique across processes
	seq      atomic.Uint64
	windows  windowCache
	repairs  *repairs
	batcher  settleBatcher
	blocks   *blocks // nil without RedisOptions.Blocks

	reserve, settle, renew, read, reset, grant, grantRenew *redis.Script
}

var _ Ledger = (*RedisLedger)(nil)

// NewRedisLedger returns a ledger on the Redis client c, which the caller
// keeps and closes. c must be created with ContextTimeoutEnabled, so that
// Timeout bounds every call; a *redis.Client, *redis.ClusterClient or
// *redis.Ring without it is an error. NewRedisLedger does no I/O: call Load
// at start to load the scripts.
func NewRedisLedger(c redis.UniversalClient, opts RedisOptions) (*RedisLedger, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("budget: redis prefix %q: must not contain braces; the ledger wraps it in a hash tag itself", opts.Prefix)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRedisTimeout
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if !contextTimeouts(c) {
		return nil, errors.New("budget: the Redis client must set ContextTimeoutEnabled, so that the ledger's timeout bounds each call")
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	rp, err := newRepairs(opts.Logger, opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("budget: metrics: %w", err)
	}
	var bl *blocks
	if opts.Blocks > 0 {
		if bl, err = newBlocks(&opts); err != nil {
			return nil, fmt.Errorf("budget: metrics: %w", err)
		}
	}
	return &RedisLedger{
		blocks:   bl,
		c:        c,
		repairs:  rp,
		tag:      "{" + opts.Prefix + "}",
		timeout:  opts.Timeout,
		leaseTTL: opts.LeaseTTL,
		instance: hex.EncodeToString(b[:]),
		batcher:  settleBatcher{delay: max(opts.SettleBatch, 0)},
		reserve:  redis.NewScript(luaReserve),
		settle:   redis.NewScript(luaSettle),
		renew:    redis.NewScript(luaRenew),
		read:     redis.NewScript(luaRead),
		reset:    redis.NewScript(luaReset),

		grant:      redis.NewScript(luaGrant),
		grantRenew: redis.NewScript(luaGrantRenew),
	}, nil
}

// contextTimeouts reports whether c honours context deadlines on its
// sockets. Implementations it does not know are trusted.
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Load loads the scripts into Redis (SCRIPT LOAD), so that the first
// requests need no EVAL. A failure is not fatal: scripts load on first use.
func (l *RedisLedger) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*l.timeout)
	defer cancel()
	scripts := []*redis.Script{l.reserve, l.settle, l.renew, l.read, l.reset}
	if l.blocks != nil {
		scripts = append(scripts, l.grant, l.grantRenew)
	}
	for _, s := range scripts {
		if err := s.Load(ctx, l.c).Err(); err != nil {
			return unavailable("load scripts", err)
		}
	}
	return nil
}

// Tag returns the hash tag all of the ledger's keys start with.
func (l *RedisLedger) Tag() string { return l.tag }

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

func (l *RedisLedger) holdsKey() string   { return l.tag + ":holds" }
func (l *RedisLedger) expiredKey() string { return l.tag + ":expired" }
func (l *RedisLedger) endedKey() string   { return l.tag + ":ended" }

// keys returns the two keys of an item (the second repeats the first when
// the kind has one key).
func (l *RedisLedger) keys(it *item) (string, string) {
	var b strings.Builder
	b.Grow(len(l.tag) + len(it.scope.Name) + 32)
	b.WriteString(l.tag)
	switch it.kind {
	case kindCounter:
		b.WriteString(":c:")
	case kindRolling:
		b.WriteString(":r:")
	default:
		b.WriteString(":l:")
	}
	b.WriteString(it.scope.Kind.String())
	b.WriteByte(':')
	b.WriteString(escapeName(it.scope.Name))
	if it.kind == kindLease {
		k := b.String()
		return k, k
	}
	b.WriteByte(':')
	b.WriteString(it.limit.Unit.String())
	b.WriteByte(':')
	switch it.limit.Per {
	case Day:
		b.WriteByte('d')
		b.WriteString(strconv.Itoa(int(it.win)))
	case Week:
		b.WriteByte('w')
		b.WriteString(strconv.Itoa(int(it.win)))
	case Month:
		b.WriteByte('m')
		b.WriteString(strconv.Itoa(int(it.win)))
	default:
		b.WriteString(it.limit.Per.String())
	}
	k := b.String()
	if it.kind == kindRolling && !it.commit {
		return k, k + ":sum"
	}
	return k, k
}

// maxNameBytes bounds a scope name in a key; longer names are hashed.
const maxNameBytes = 96

// escapeName makes a scope name safe inside keys and hold members: bytes
// outside [A-Za-z0-9._@+=-] become %XX (so no ':', brace, tab or newline
// remains), and a name longer than maxNameBytes becomes "~" and 32 hex digits
// of its SHA-256.
func escapeName(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			safe = false
			break
		}
	}
	if !safe {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if c := s[i]; nameByte(c) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		s = b.String()
	}
	if len(s) > maxNameBytes {
		sum := sha256.Sum256([]byte(s))
		return "~" + hex.EncodeToString(sum[:16])
	}
	return s
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '@' || c == '+' || c == '='
}

// kindArg is the scripts' name of an item's kind.
func kindArg(it *item) string {
	switch {
	case it.kind == kindCounter && it.limit.Per == Session:
		return "e"
	case it.kind == kindCounter:
		return "c"
	case it.kind == kindRolling && it.commit:
		return "q"
	case it.kind == kindRolling:
		return "r"
	}
	return "l"
}

// keyTTL is how long the keys of an item live after a write: long enough to
// outlast the window (or the session, or the leases) and a settle that comes
// late. Redis's clock runs these TTLs; they only collect garbage.
func (l *RedisLedger) keyTTL(it *item) int64 {
	var d time.Duration
	switch {
	case it.kind == kindLease:
		d = 2 * l.leaseTTL
	case it.kind == kindRolling:
		d = it.limit.Per.length() + l.leaseTTL
	case it.limit.Per == Session:
		d = it.ttl + l.leaseTTL
	default:
		d = it.ttl
	}
	return max(d.Milliseconds(), 1)
}

func modeArg(it *item) string {
	if it.commit {
		return "s"
	}
	return "h"
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// leaseSweepEvery is how often (in reserves) a reserve removes the expired
// leases of its lease sets. They no longer count (the scripts count only
// live leases), so sweeping them only bounds the garbage a crashed replica
// leaves; every reserve did it before, at one command each.
const leaseSweepEvery = 16

// reserveCall is the script call of a Reserve.
type reserveCall struct {
	items   []item
	id      string
	member  string
	expires time.Time
	keys    []string
	args    []any
}

// reserveCall prepares the reserve script's keys and arguments, with no
// settles before the reserve (withSettles adds them).
func (l *RedisLedger) reserveCall(req *Request, now time.Time) *reserveCall {
	items := plan(req, now, l.leaseTTL, &l.windows)
	id := escapeName(req.ID)
	if len(id) > 32 {
		id = id[:32]
	}
	seq := l.seq.Add(1)
	id += "#" + l.instance + "." + strconv.FormatUint(seq, 36)
	c := &reserveCall{items: items, id: id, expires: now.Add(l.leaseTTL)}

	c.keys = make([]string, 3, 3+2*len(items))
	c.keys[0], c.keys[1], c.keys[2] = l.holdsKey(), l.expiredKey(), l.endedKey()
	c.args = make([]any, 7, 7+6*len(items))
	var member strings.Builder
	member.WriteString(id)
	for i := range items {
		it := &items[i]
		k1, k2 := l.keys(it)
		c.keys = appendKeys(c.keys, it, k1, k2)
		var p int64
		switch {
		case it.kind == kindRolling:
			p = it.limit.Per.length().Milliseconds()
		case it.limit.Per == Session:
			p = ms(it.expireAt())
		case it.kind == kindLease && seq%leaseSweepEvery == 0:
			p = 1 // sweep the leases that expired unsettled
		}
		c.args = append(c.args, kindArg(it), modeArg(it), it.limit.Max, it.need, l.keyTTL(it), p)
		if it.held() && it.need > 0 {
			member.WriteByte('\n')
			member.WriteString(k1)
			member.WriteByte('\t')
			member.WriteString(strconv.FormatInt(it.need, 10))
		}
	}
	c.member = member.String()
	c.args[0], c.args[1] = 0, l.endedTTL()
	c.args[2], c.args[3], c.args[4], c.args[5], c.args[6] = ms(now), c.member, id, ms(c.expires), len(items)
	return c
}

// withSettles returns the reserve script's keys and arguments with the
// settles and cancels of ops before the reserve of c.
func (c *reserveCall) withSettles(ops []*settleOp) ([]string, []any) {
	if len(ops) == 0 {
		return c.keys, c.args
	}
	nk, na := len(c.keys), len(c.args)
	for _, op := range ops {
		nk, na = nk+len(op.keys), na+len(op.args)
	}
	keys := append(make([]string, 0, nk), c.keys[:3]...)
	args := append(make([]any, 0, na), len(ops), c.args[1])
	for _, op := range ops {
		keys = append(keys, op.keys...)
		args = append(args, op.args...)
	}
	return append(keys, c.keys[3:]...), append(args, c.args[2:]...)
}

// endedTTL is the TTL (ms) of the ended set: longer than any lease a late
// reserve could be given.
func (l *RedisLedger) endedTTL() int64 { return (2*l.leaseTTL + time.Minute).Milliseconds() }

func (c *reserveCall) reservation(ttl time.Duration) *Reservation {
	r := &Reservation{id: c.id, items: c.items, member: c.member, ttl: ttl}
	r.expires.Store(c.expires.UnixNano())
	return r
}

// Reserve implements [Ledger.Reserve] in one round trip.
func (l *RedisLedger) Reserve(ctx context.Context, req Request, now time.Time) (Decision, error) {
	if req.Exempt || len(req.Scopes) == 0 {
		return exemptDecision(), nil
	}
	if l.blocks != nil {
		if items := plan(&req, now, l.leaseTTL, &l.windows); blockable(items) {
			return l.reserveBlock(ctx, &req, items, now)
		}
	}
	call := l.reserveCall(&req, now)
	items := call.items
	if len(items) == 0 {
		return exemptDecision(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	reply, _, err := l.runScript(ctx, l.reserve, call, nil)
	if err != nil {
		// The script may have run, or may still run (a paused Redis keeps it
		// in its input): undo it by its id, whatever happened to it.
		l.repairs.undoReserve(ctx, l, call, now, err)
		return Decision{}, unavailable("reserve", err)
	}
	return l.decide(call, reply, &req, now)
}

// decide turns the reserve script's reply into a Decision.
func (l *RedisLedger) decide(call *reserveCall, reply []int64, req *Request, now time.Time) (Decision, error) {
	items := call.items
	switch {
	case len(reply) == 1 && reply[0] == 2:
		return Decision{Allowed: true, Reservation: call.reservation(l.leaseTTL)}, nil
	case len(reply) == 1 && reply[0] == 3:
		return Decision{}, unavailable("reserve", errors.New("the reservation was cancelled before it was made"))
	case len(reply) == 1+2*len(items) && reply[0] == 1:
		used := make([]int64, len(items))
		for i := range items {
			used[i] = reply[1+2*i] + reply[2+2*i] + items[i].need
		}
		return Decision{Allowed: true, Reservation: call.reservation(l.leaseTTL), Remaining: tightest(items, used)}, nil
	case len(reply) == 5 && reply[0] == 0 && reply[1] >= 1 && int(reply[1]) <= len(items):
		return Decision{Denial: denial(items, reply, req, now)}, nil
	}
	return Decision{}, unavailable("reserve", fmt.Errorf("unexpected reply %v", reply))
}

// denial builds the Denial of a reserve or block script's reply {0, i, s,
// h, t}.
func denial(items []item, reply []int64, req *Request, now time.Time) *Denial {
	it := &items[reply[1]-1]
	used, held, t := reply[2]+reply[3], reply[3], reply[4]
	var fits, expiresAt time.Time
	switch {
	case it.kind == kindRolling && t >= 0:
		fits = time.UnixMilli(t)
	case it.limit.Per == Session && t > ms(now):
		expiresAt = time.UnixMilli(t)
	}
	return deny(it, used, held, fits, expiresAt, now, req.Location)
}

// Settle implements [Ledger.Settle] in one round trip.
func (l *RedisLedger) Settle(ctx context.Context, r *Reservation, actual Actual, now time.Time) error {
	return l.end(ctx, r, &actual, now)
}

// Cancel implements [Ledger.Cancel] in one round trip.
func (l *RedisLedger) Cancel(ctx context.Context, r *Reservation, now time.Time) error {
	return l.end(ctx, r, nil, now)
}

// end settles r with actual, or cancels it when actual is nil. A call that
// fails is retried in the background (repair.go); r counts as settled from
// the first call on.
func (l *RedisLedger) end(ctx context.Context, r *Reservation, actual *Actual, now time.Time) error {
	if r.settled() {
		return nil
	}
	if r.grant != nil {
		return l.endBlock(ctx, r, actual, now)
	}
	if err := l.runSettle(ctx, r, actual, now); err != nil {
		op := opSettle
		if actual == nil {
			op = opCancel
		}
		l.repairs.retry(ctx, l, op, r, actual, now, err)
		return fmt.Errorf("%w (retried in the background until its lease expires)", unavailable(op, err))
	}
	return nil
}

// runSettle runs the settle script once, within the ledger's timeout: in
// the current batch, or alone.
func (l *RedisLedger) runSettle(ctx context.Context, r *Reservation, actual *Actual, now time.Time) error {
	return l.runOp(ctx, l.settleOp(r, actual, now))
}

// runOp runs one settle script op (a settle, a cancel or a block's close)
// once, within the ledger's timeout: in the current batch, or alone.
func (l *RedisLedger) runOp(ctx context.Context, op *settleOp) error {
	if l.batcher.delay > 0 {
		ctx, cancel := context.WithTimeout(ctx, l.timeout+l.batcher.delay)
		defer cancel()
		return l.runBatched(ctx, op)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	keys, args := l.settleScriptCall([]*settleOp{op})
	return l.settle.Run(ctx, l.c, keys, args...).Err()
}

// settleOp is one settle's or cancel's share of a settle script call.
type settleOp struct {
	keys []string // one per limit, two for a rolling token window
	args []any    // member, id, now, n, refund, forget, then per limit up to six (luaSettleFn)
}

// settleOp prepares a settle with actual, or a cancel (the script's refund)
// when actual is nil.
func (l *RedisLedger) settleOp(r *Reservation, actual *Actual, now time.Time) *settleOp {
	op := &settleOp{keys: make([]string, 0, 2*len(r.items)), args: make([]any, 6, 6+6*len(r.items))}
	refund := 0
	if actual == nil {
		refund = 1
	}
	n := 0
	for i := range r.items {
		it := &r.items[i]
		if it.commit && actual != nil {
			// A request count is final at reserve: only a cancel takes it
			// back, so a settle leaves its keys out of the call.
			continue
		}
		n++
		k1, k2 := l.keys(it)
		op.keys = appendKeys(op.keys, it, k1, k2)
		var ttl, p, amount int64
		switch {
		case it.kind == kindRolling:
			ttl, p = it.limit.Per.length().Milliseconds(), ms(it.at)
		case it.limit.Per == Session:
			ttl, p = l.keyTTL(it), ms(now.Add(it.ttl))
		}
		if actual != nil {
			amount = it.settleAmount(actual)
		}
		// The settle script reads as many values as the kind uses.
		switch kind := kindArg(it); kind {
		case "l":
			op.args = append(op.args, kind)
		case "c":
			op.args = append(op.args, kind, modeArg(it), it.need, amount)
		default:
			op.args = append(op.args, kind, modeArg(it), it.need, amount, ttl, p)
		}
	}
	// A tombstone outlives any lease the reservation could have been given
	// by a reserve still on its way.
	forget := later(r.Expires(), now).Add(l.leaseTTL)
	op.args[0], op.args[1], op.args[2], op.args[3], op.args[4], op.args[5] = r.member, r.id, ms(now), n, refund, ms(forget)
	return op
}

// appendKeys appends the reserve and settle scripts' keys of item it: k1,
// and k2 too for a rolling token window (its sum).
func appendKeys(keys []string, it *item, k1, k2 string) []string {
	if it.kind == kindRolling && !it.commit {
		return append(keys, k1, k2)
	}
	return append(keys, k1)
}

// settleScriptCall is the keys and arguments of one settle script call that
// ends the reservations of ops, in order.
func (l *RedisLedger) settleScriptCall(ops []*settleOp) ([]string, []any) {
	nk, na := 3, 2
	for _, op := range ops {
		nk, na = nk+len(op.keys), na+len(op.args)
	}
	keys := make([]string, 3, nk)
	keys[0], keys[1], keys[2] = l.holdsKey(), l.expiredKey(), l.endedKey()
	args := make([]any, 2, na)
	args[0], args[1] = len(ops), l.endedTTL()
	for _, op := range ops {
		keys = append(keys, op.keys...)
		args = append(args, op.args...)
	}
	return keys, args
}

// Replace implements [Ledger.Replace]: the cancel and the reserve are one
// script call, in that order.
func (l *RedisLedger) Replace(ctx context.Context, old *Reservation, req Request, now time.Time) (Decision, error) {
	if l.blocks != nil && !req.Exempt && len(req.Scopes) > 0 &&
		(old.grant != nil || blockable(plan(&req, now, l.leaseTTL, &l.windows))) {
		// With blocks, the cancel and the reserve are each in memory unless
		// a block opens or closes: one after the other.
		if err := l.Cancel(ctx, old, now); err != nil && old.grant == nil {
			return Decision{}, err
		}
		return l.Reserve(ctx, req, now)
	}
	var call *reserveCall
	if !req.Exempt && len(req.Scopes) > 0 {
		call = l.reserveCall(&req, now)
	}
	if call == nil || len(call.items) == 0 {
		// Nothing to reserve: the cancel alone.
		return exemptDecision(), l.Cancel(ctx, old, now)
	}
	if old.settled() {
		return l.Reserve(ctx, req, now)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	reply, cancelErr, err := l.runScript(ctx, l.reserve, call, l.settleOp(old, nil, now))
	if cancelErr != nil {
		// The cancel may have run or may still run: retry it in the
		// background.
		l.repairs.retry(ctx, l, opCancel, old, nil, now, cancelErr)
	}
	if err != nil {
		l.repairs.undoReserve(ctx, l, call, now, err)
		return Decision{}, unavailable("replace", err)
	}
	return l.decide(call, reply, &req, now)
}

// runScript runs script, the reserve or the block script, with call.
// Settles and cancels waiting in a batch, and own (a Replace's cancel or a
// block's close) if given, go first in the same script call: one round
// trip, and one script for Redis, for all. It returns the reserve's reply,
// own's error, and the reserve's error.
func (l *RedisLedger) runScript(ctx context.Context, script *redis.Script, call *reserveCall, own *settleOp) ([]int64, error, error) {
	batch := l.batcher.take()
	var ops []*settleOp
	if batch != nil {
		ops = make([]*settleOp, 0, len(batch.jobs)+1)
		for _, j := range batch.jobs {
			ops = append(ops, j.op)
		}
		// The batch's settles are not the caller's: its going away must not
		// fail them.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
		defer cancel()
	}
	if own != nil {
		ops = append(ops, own)
	}
	keys, args := call.withSettles(ops)
	// Run loads the script again (EVAL) if a restarted Redis lost it. A
	// settle or cancel that ran the first time finds no hold the second,
	// and counts once.
	reply, err := script.Run(ctx, l.c, keys, args...).Int64Slice()
	if err == nil && len(reply) < len(ops) {
		err = fmt.Errorf("unexpected reply %v", reply)
	}
	if batch != nil {
		batch.finish(err)
	}
	if err != nil {
		if own == nil {
			return nil, nil, err
		}
		return nil, err, err
	}
	return reply[len(ops):], nil, nil
}

// Release implements [Ledger.Release].
func (l *RedisLedger) Release(ctx context.Context, r *Reservation, now time.Time) error {
	return l.Settle(ctx, r, Actual{}, now)
}

// Renew implements [Ledger.Renew] in one round trip.
func (l *RedisLedger) Renew(ctx context.Context, r *Reservation, now time.Time) error {
	if r == nil || r.exempt || r.done.Load() {
		return nil
	}
	if r.grant != nil {
		return l.renewBlock(ctx, r, now)
	}
	expires := now.Add(l.leaseTTL)
	keys := []string{l.holdsKey()}
	for i := range r.items {
		if it := &r.items[i]; it.kind == kindLease {
			k, _ := l.keys(it)
			keys = append(keys, k)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	ok, err := l.renew.Run(ctx, l.c, keys, r.member, r.id, ms(expires), (2 * l.leaseTTL).Milliseconds()).Int64()
	if err != nil {
		return unavailable("renew", err)
	}
	if ok == 0 {
		return ErrExpired
	}
	r.expires.Store(expires.UnixNano())
	return nil
}

// Read implements [Ledger.Read] in one round trip.
func (l *RedisLedger) Read(ctx context.Context, q Query, now time.Time) ([]Balance, error) {
	items := queryItems(&q, now, l.leaseTTL, &l.windows)
	if len(items) == 0 {
		return nil, nil
	}
	keys := []string{l.holdsKey(), l.expiredKey()}
	args := []any{ms(now), len(items)}
	for i := range items {
		k1, k2 := l.keys(&items[i])
		keys = append(keys, k1, k2)
		args = append(args, kindArg(&items[i]), items[i].limit.Per.length().Milliseconds())
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	reply, err := l.read.Run(ctx, l.c, keys, args...).Int64Slice()
	if err != nil {
		return nil, unavailable("read", err)
	}
	if len(reply) != 3*len(items) {
		return nil, unavailable("read", fmt.Errorf("unexpected reply %v", reply))
	}
	out := make([]Balance, len(items))
	for i := range items {
		it := &items[i]
		v := reply[3*i : 3*i+3]
		b := Balance{Scope: it.scope, Limit: it.limit, Used: v[0] + v[1], Held: v[1], Start: it.start(), ResetAt: it.end()}
		if it.limit.Per == Session {
			b.ResetAt = time.Time{}
			if v[2] > ms(now) {
				b.ResetAt = time.UnixMilli(v[2]).In(location(q.Location))
			}
		}
		out[i] = b
	}
	return out, nil
}

// Reset implements [Ledger.Reset] in one round trip.
func (l *RedisLedger) Reset(ctx context.Context, q Query, now time.Time) error {
	items := queryItems(&q, now, l.leaseTTL, &l.windows)
	if len(items) == 0 {
		return nil
	}
	keys := []string{l.holdsKey(), l.expiredKey()}
	args := []any{len(items)}
	for i := range items {
		k1, k2 := l.keys(&items[i])
		keys = append(keys, k1, k2)
		args = append(args, kindArg(&items[i]))
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.reset.Run(ctx, l.c, keys, args...).Err(); err != nil {
		return unavailable("reset", err)
	}
	return nil
}

package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Unit is what a limit counts.
type Unit uint8

const (
	// USD limits spend, counted in integer pico-USD (1e-12 USD), the unit of
	// package pricing.
	USD Unit = iota + 1
	// Tokens limits billed tokens: input (uncached, cache reads and writes)
	// and output.
	Tokens
	// Requests limits admitted requests. A request is counted when it is
	// admitted and stays counted, whatever happens to it later.
	Requests
	// Concurrent limits requests in flight at once. Each admitted request
	// holds a lease until it is settled, released or expires.
	Concurrent
)

var unitNames = [...]string{USD: "usd", Tokens: "tokens", Requests: "requests", Concurrent: "concurrent"}

// String returns the policy file's name of the unit: usd, tokens, requests
// or concurrent.
func (u Unit) String() string {
	if int(u) < len(unitNames) && unitNames[u] != "" {
		return unitNames[u]
	}
	return "Unit(" + strconv.Itoa(int(u)) + ")"
}

// ParseUnit parses the policy file's name of a unit.
func ParseUnit(s string) (Unit, error) {
	for u, name := range unitNames {
		if name != "" && name == s {
			return Unit(u), nil
		}
	}
	return 0, fmt.Errorf("unknown unit %q; use usd, tokens, requests or concurrent", s)
}

// Format formats an amount of the unit for people: USD as a decimal number of
// dollars ("20.00", "0.012345"), the others as integers.
func (u Unit) Format(amount int64) string {
	if u == USD {
		return formatUSD(amount)
	}
	return strconv.FormatInt(amount, 10)
}

// Window is the period over which a limit counts.
type Window uint8

const (
	// NoWindow is the window of concurrency limits, which count what is in
	// flight now.
	NoWindow Window = iota
	// Minute and Hour are rolling windows: a limit of N per minute admits no
	// more than N in any 60 seconds. They exist for requests and tokens.
	Minute
	Hour
	// Day, Week and Month are calendar windows in the policy's timezone. A
	// week starts on Monday. They reset at local midnight, so a day lasts 23
	// or 25 hours when daylight saving time starts or ends.
	Day
	Week
	Month
	// Session is the lifetime of a session (a trace or Claude Code session
	// id): its count starts with the session's first request and lives until
	// the session has been idle for the session TTL.
	Session
)

var windowNames = [...]string{NoWindow: "", Minute: "minute", Hour: "hour", Day: "day", Week: "week", Month: "month", Session: "session"}

// String returns the policy file's name of the window, or "" for NoWindow.
func (w Window) String() string {
	if int(w) < len(windowNames) {
		return windowNames[w]
	}
	return "Window(" + strconv.Itoa(int(w)) + ")"
}

// ParseWindow parses the policy file's name of a window.
func ParseWindow(s string) (Window, error) {
	for w, name := range windowNames {
		if name != "" && name == s {
			return Window(w), nil
		}
	}
	return 0, fmt.Errorf("unknown window %q; use minute, hour, day, week, month or session", s)
}

// Rolling reports whether w is a rolling window (minute or hour).
func (w Window) Rolling() bool { return w == Minute || w == Hour }

// length returns the length of a rolling window.
func (w Window) length() time.Duration {
	switch w {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	}
	return 0
}

// adjective names the window in messages: "daily", "per-minute".
func (w Window) adjective() string {
	switch w {
	case Minute:
		return "per-minute"
	case Hour:
		return "per-hour"
	case Day:
		return "daily"
	case Week:
		return "weekly"
	case Month:
		return "monthly"
	case Session:
		return "per-session"
	}
	return ""
}

// Windows returns the windows a limit of unit u may use, in documentation
// order. Concurrency limits take none; USD has no rolling windows.
func Windows(u Unit) []Window {
	switch u {
	case USD:
		return []Window{Day, Week, Month, Session}
	case Tokens, Requests:
		return []Window{Minute, Hour, Day, Week, Month, Session}
	}
	return nil
}

// Limit is one ceiling: at most Max of Unit per window.
type Limit struct {
	Unit Unit
	// Per is the window; NoWindow for Concurrent.
	Per Window
	// Max is the ceiling in the unit: pico-USD, tokens, requests, or requests
	// in flight. It is positive.
	Max int64
}

// String formats the limit as in the policy file: "usd 20.00 per day",
// "concurrent 8".
func (l Limit) String() string {
	s := l.Unit.String() + " " + l.Unit.Format(l.Max)
	if l.Per != NoWindow {
		s += " per " + l.Per.String()
	}
	return s
}

// Validate reports a limit whose unit, window or maximum does not fit.
func (l Limit) Validate() error {
	switch {
	case l.Unit < USD || l.Unit > Concurrent:
		return fmt.Errorf("limit %v: unknown unit", l)
	case l.Max <= 0:
		return fmt.Errorf("limit %v: the maximum must be positive", l)
	case l.Unit == Concurrent && l.Per != NoWindow:
		return fmt.Errorf("limit %v: a concurrency limit has no window", l)
	case l.Unit != Concurrent:
		for _, w := range Windows(l.Unit) {
			if w == l.Per {
				return nil
			}
		}
		return fmt.Errorf("limit %v: %s limits cannot be per %q", l, l.Unit, l.Per)
	}
	return nil
}

// ScopeKind is what a scope charges: a key, a user, a team, and so on.
type ScopeKind uint8

const (
	ScopeKey ScopeKind = iota + 1
	ScopeUser
	ScopeTeam
	ScopeProject
	ScopeProvider
	ScopeSession
	ScopeGlobal
)

var scopeNames = [...]string{ScopeKey: "key", ScopeUser: "user", ScopeTeam: "team", ScopeProject: "project",
	ScopeProvider: "provider", ScopeSession: "session", ScopeGlobal: "global"}

// String returns the kind's name: key, user, team, project, provider, session
// or global. It is also the scope label of metrics.
func (k ScopeKind) String() string {
	if int(k) < len(scopeNames) && scopeNames[k] != "" {
		return scopeNames[k]
	}
	return "ScopeKind(" + strconv.Itoa(int(k)) + ")"
}

// Scope is one thing requests are charged to, such as the key alice-laptop
// or the team platform. The global scope has no name.
type Scope struct {
	Kind ScopeKind
	Name string
}

// Global is the scope every request is charged to.
var Global = Scope{Kind: ScopeGlobal}

// String returns "kind:name", or "global".
func (s Scope) String() string {
	if s.Kind == ScopeGlobal {
		return "global"
	}
	return s.Kind.String() + ":" + s.Name
}

// ParseScope parses "kind:name" (key:alice-laptop, team:platform,
// session:abc) or "global".
func ParseScope(s string) (Scope, error) {
	if s == "global" {
		return Global, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return Scope{}, fmt.Errorf("scope %q: want kind:name (key, user, team, project, provider or session) or global", s)
	}
	for k, n := range scopeNames {
		if n != "" && n == kind && ScopeKind(k) != ScopeGlobal {
			return Scope{Kind: ScopeKind(k), Name: name}, nil
		}
	}
	return Scope{}, fmt.Errorf("scope %q: unknown kind %q; use key, user, team, project, provider, session or global", s, kind)
}

// ScopeLimits is a scope with the limits that apply to it.
type ScopeLimits struct {
	Scope  Scope
	Limits []Limit
}

// FailMode says what happens to requests when the ledger cannot decide
// (ErrUnavailable).
type FailMode uint8

const (
	// FailClosed refuses requests while the ledger is unavailable. It is the
	// default.
	FailClosed FailMode = iota
	// FailOpen serves requests unmetered while the ledger is unavailable.
	FailOpen
)

// String returns "closed" or "open", the policy file's spelling.
func (m FailMode) String() string {
	switch m {
	case FailClosed:
		return "closed"
	case FailOpen:
		return "open"
	}
	return "FailMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseFailMode parses "closed" or "open".
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	}
	return 0, fmt.Errorf("fail mode must be closed or open, not %q", s)
}

// DefaultSessionTTL is how long a session's windows outlive its last
// request when the policy sets no TTL.
const DefaultSessionTTL = 24 * time.Hour

// DefaultLeaseTTL is how long a reservation lives without Renew. A request
// that crashes its process holds its concurrency slot and its reserved spend
// this long at most.
const DefaultLeaseTTL = 10 * time.Minute

// ConcurrencyRetryAfter is the retry-after of a concurrency denial: a slot
// frees whenever a request in flight ends, which cannot be predicted.
const ConcurrencyRetryAfter = time.Second

// Request is one request's claim on the ledger: the scopes it is charged to
// and its worst-case cost. Build it with [Config.Request] and fill CostPicoUSD
// and Tokens (see [WorstCaseCost]).
type Request struct {
	// ID names the request in leases and logs, such as Envoy's x-request-id.
	// The ledger makes every reservation unique itself, so a repeated or
	// empty ID is harmless.
	ID string
	// Scopes lists the scopes the request is charged to, each with its limits.
	// Every limit of every scope must admit the request.
	Scopes []ScopeLimits
	// Location is the timezone of calendar windows; nil means UTC.
	Location *time.Location
	// SessionTTL is how long session windows live after their last use; zero
	// means DefaultSessionTTL.
	SessionTTL time.Duration
	// CostPicoUSD is the worst-case cost of the request, reserved in every USD
	// limit.
	CostPicoUSD int64
	// Tokens is the worst-case number of billed tokens, reserved in every
	// token limit.
	Tokens int64
	// Exempt marks a request no budget counts (by default count_tokens and
	// the models endpoints). Reserve admits it without touching the ledger,
	// and settling it does nothing.
	Exempt bool
}

// Limited reports whether some scope of r has a limit of unit u.
func (r *Request) Limited(u Unit) bool {
	for _, sl := range r.Scopes {
		for _, l := range sl.Limits {
			if l.Unit == u {
				return true
			}
		}
	}
	return false
}

// Actual is what a request really used, given to Settle.
type Actual struct {
	// CostPicoUSD is the request's cost, pricing.Cost of its usage.
	CostPicoUSD int64
	// Tokens is every billed token, pricing.Usage.TotalTokens.
	Tokens int64
	// Provider is the provider that served the request. Provider scopes of
	// other providers in the chain settle at zero; empty charges every
	// provider scope of the reservation (when it is unknown who served).
	Provider string
}

// Decision is the answer of Reserve.
type Decision struct {
	// Allowed reports whether the request may go on.
	Allowed bool
	// Reservation is the handle to Settle, Release or Renew an allowed
	// request. It is nil when the request was denied.
	Reservation *Reservation
	// Remaining is what is left in the tightest limit once the request's
	// reservation is counted, for the x-tollgate-budget-remaining header. It
	// is nil when no limit applies, or when an idempotent retry of Reserve
	// found the reservation already made.
	Remaining *Remaining
	// Denial says which limit refused the request; nil when allowed.
	Denial *Denial
}

// Denial describes the first limit that refused a request, in the order of
// the request's scopes and limits.
type Denial struct {
	Scope Scope
	Limit Limit
	// Used is what the window had used before the request, in the limit's
	// unit, reservations of requests in flight included; Held is the part of
	// it that is such reservations.
	Used, Held int64
	// Requested is what the request needed in the limit's unit: its
	// worst-case cost or tokens, or 1.
	Requested int64
	// ResetAt is when the window resets (calendar windows), when the request
	// would fit (rolling windows), or when the session expires (session
	// windows), in the request's timezone. It is zero for concurrency limits
	// and when the request can never fit.
	ResetAt time.Time
	// RetryAfter is set for rate limits (rolling windows) and concurrency
	// limits, for a retry-after header. Spend and token budgets have none: a
	// retry cannot succeed before ResetAt.
	RetryAfter time.Duration
}

// TooLarge reports whether the request alone exceeds the limit, so no wait
// helps.
func (d *Denial) TooLarge() bool { return d.Requested > d.Limit.Max }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, as a
// retry-after header wants it; 0 means send no header.
func (d *Denial) RetryAfterSeconds() int {
	if d.RetryAfter <= 0 {
		return 0
	}
	return int((d.RetryAfter + time.Second - 1) / time.Second)
}

// Message explains the denial to the client: the scope, the limit, what is
// used, and when the window resets.
func (d *Denial) Message() string {
	u, l := d.Limit.Unit, d.Limit
	who := d.Scope.String()
	var b strings.Builder
	switch {
	case u == Concurrent:
		fmt.Fprintf(&b, "concurrency limit: %s allows %d requests at once and %d are in flight", who, l.Max, d.Used)
	case l.Per.Rolling():
		fmt.Fprintf(&b, "rate limit: %s allows %s %s per %s and %s were used in the last %s",
			who, u.Format(l.Max), unitNoun(u), l.Per, u.Format(d.Used), l.Per)
	default:
		fmt.Fprintf(&b, "budget exceeded: %s has used %s of its %s budget of %s",
			who, amount(u, d.Used), l.Per.adjective(), amount(u, l.Max))
		if d.Held > 0 {
			fmt.Fprintf(&b, " (%s of it reserved by requests in flight)", amount(u, d.Held))
		}
	}
	if u == USD || u == Tokens {
		fmt.Fprintf(&b, "; this request may use up to %s", amount(u, d.Requested))
	}
	switch {
	case d.TooLarge():
		b.WriteString("; it exceeds the limit on its own")
		if u == Tokens || u == USD {
			b.WriteString(": lower max_tokens or shorten the request")
		}
	case !d.ResetAt.IsZero() && l.Per == Session:
		fmt.Fprintf(&b, "; the session's budget expires at %s", d.ResetAt.Format(time.RFC3339))
	case !d.ResetAt.IsZero() && !l.Per.Rolling():
		fmt.Fprintf(&b, "; it resets at %s", d.ResetAt.Format(time.RFC3339))
	}
	if s := d.RetryAfterSeconds(); s > 0 {
		fmt.Fprintf(&b, "; retry in %ds", s)
	}
	return b.String()
}

func unitNoun(u Unit) string {
	switch u {
	case USD:
		return "spend"
	case Tokens:
		return "tokens"
	case Requests:
		return "requests"
	}
	return ""
}

// amount formats an amount for a message: "$1.50", "5000 tokens".
func amount(u Unit, v int64) string {
	switch u {
	case USD:
		return "$" + formatUSD(v)
	case Tokens:
		return strconv.FormatInt(v, 10) + " tokens"
	case Requests:
		return strconv.FormatInt(v, 10) + " requests"
	}
	return strconv.FormatInt(v, 10)
}

// Remaining is what is left in one limit.
type Remaining struct {
	Scope Scope
	Limit Limit
	// Amount is Limit.Max minus what is used, reservations included, in the
	// limit's unit; never negative.
	Amount int64
	// ResetAt is when the window resets; zero when it does not (rolling
	// windows, concurrency).
	ResetAt time.Time
}

// Header formats r for the x-tollgate-budget-remaining response header:
// "12.50 usd; scope=key:alice-laptop; per=day; reset=2025-06-02T00:00:00+02:00".
func (r *Remaining) Header() string {
	s := r.Limit.Unit.Format(r.Amount) + " " + r.Limit.Unit.String() + "; scope=" + r.Scope.String()
	if r.Limit.Per != NoWindow {
		s += "; per=" + r.Limit.Per.String()
	}
	if !r.ResetAt.IsZero() {
		s += "; reset=" + r.ResetAt.Format(time.RFC3339)
	}
	return s
}

// Balance is the state of one limit's current window, as Read returns it.
type Balance struct {
	Scope Scope
	Limit Limit
	// Used is what the window has used, in the limit's unit: settled spend or
	// tokens plus the reservations of requests in flight, admitted requests,
	// or requests in flight (concurrency).
	Used int64
	// Held is the part of Used reserved by requests in flight, for calendar
	// and session windows; 0 otherwise.
	Held int64
	// Start is the window's start for calendar windows; zero otherwise.
	Start time.Time
	// ResetAt is the window's end for calendar windows and the expiry of a
	// session window; zero otherwise.
	ResetAt time.Time
}

// Remaining is Limit.Max minus Used, never negative.
func (b Balance) Remaining() int64 { return max(b.Limit.Max-b.Used, 0) }

// Query names the windows Read and Reset act on: the current window of each
// of Limits in Scope.
type Query struct {
	Scope  Scope
	Limits []Limit
	// Location and SessionTTL are as in Request.
	Location   *time.Location
	SessionTTL time.Duration
}

// Ledger errors.
var (
	// ErrUnavailable means the ledger could not decide: its store did not
	// answer in time or failed. The caller applies the policy's FailMode. The
	// error returned wraps it and the cause.
	ErrUnavailable = errors.New("budget ledger unavailable")
	// ErrExpired is returned by Renew when the reservation's lease already
	// expired and its slot and reserved spend were freed.
	ErrExpired = errors.New("budget reservation expired")
)

// Ledger keeps the counters of every budget and rate limit. Implementations
// are safe for concurrent use. Time is a parameter of every method, so that
// windows are decided by the caller's clock (and tests replay instants);
// replicas sharing a ledger should keep their clocks in sync (NTP), since
// rolling windows are as exact as the clocks that stamp them.
type Ledger interface {
	// Reserve admits or denies a request at instant now. It checks every limit
	// of every scope of req and, if all admit it, counts it in all of them at
	// once: its worst-case cost and tokens are held in USD and token limits,
	// one request is counted in request limits, and one lease is taken in
	// concurrency limits. A denied request changes no counter. Reserve is
	// atomic across all of req's scopes and windows, also between processes
	// sharing a store.
	Reserve(ctx context.Context, req Request, now time.Time) (Decision, error)
	// Settle replaces a reservation by what the request actually used, in
	// the windows chosen when it was reserved (even if now is in later
	// windows), and frees its concurrency leases. Only the first Settle or
	// Release of a reservation counts; later calls do nothing. A Settle,
	// Release or Cancel that fails (ErrUnavailable) is not for the caller to
	// repeat: the ledger retries it in the background until it succeeds or
	// the reservation's lease is gone, and a Reserve or Replace that fails
	// after its call may have reached the store is undone the same way, so
	// that a store that was briefly unreachable leaks no hold.
	Settle(ctx context.Context, r *Reservation, actual Actual, now time.Time) error
	// Release settles a reservation of a request that cost nothing, such as one
	// that never reached a provider. It is Settle with a zero Actual.
	Release(ctx context.Context, r *Reservation, now time.Time) error
	// Cancel undoes a reservation as if it had not been made: it gives back
	// its holds, the requests it counted and its leases, and charges nothing.
	// It is for a reservation made ahead of its request (from a guess, before
	// the body was read) that the request then did not use. Only the first
	// Settle, Release or Cancel of a reservation counts.
	Cancel(ctx context.Context, r *Reservation, now time.Time) error
	// Replace cancels old and reserves req, in one round trip: req is checked
	// without old's share, so a request never competes with its own guess.
	// The two steps are each atomic but not one transaction: another request
	// may take what old gave back before req is checked. old is cancelled
	// even when req is denied or the call fails after the cancel ran.
	Replace(ctx context.Context, old *Reservation, req Request, now time.Time) (Decision, error)
	// Renew extends the reservation's leases to now plus the lease TTL. A
	// request that may outlive the TTL renews before Reservation.Expires. It
	// returns ErrExpired if the leases already expired.
	Renew(ctx context.Context, r *Reservation, now time.Time) error
	// Read returns the current window of each limit of q.
	Read(ctx context.Context, q Query, now time.Time) ([]Balance, error)
	// Reset empties the current window of each limit of q: settled spend and
	// tokens, request counts, rolling logs, and leases of concurrency
	// limits. Reservations in flight stay held and settle normally.
	Reset(ctx context.Context, q Query, now time.Time) error
}

// Reservation is the handle of an admitted request. It records the windows
// chosen at Reserve, so that Settle charges them whenever it runs. It is safe
// to settle from another goroutine than the one that reserved, but a
// reservation belongs to the ledger that made it.
type Reservation struct {
	id      string
	items   []item
	expires atomic.Int64 // unix nanoseconds of the lease expiry
	done    atomic.Bool  // set by the first Settle or Release
	ttl     time.Duration
	exempt  bool

	// Redis ledger: the hold's member in the holds index, or the budget
	// block the reservation was admitted from.
	member string
	grant  *grant
	// Memory ledger: the reservation's state.
	hold memHold
}

// ID returns the reservation's unique id: the request's ID followed by a
// suffix that makes it unique.
func (r *Reservation) ID() string { return r.id }

// Expires returns when the reservation's leases expire unless renewed. It
// is zero for an exempt request.
func (r *Reservation) Expires() time.Time {
	ns := r.expires.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// RenewDue reports whether the leases are past half their TTL at now: the
// time to call Renew for a request still running. It is false for a nil,
// exempt or settled reservation.
func (r *Reservation) RenewDue(now time.Time) bool {
	if r == nil || r.exempt || r.done.Load() {
		return false
	}
	return !now.Before(r.Expires().Add(-r.ttl / 2))
}

// exemptDecision is the answer to an exempt request.
func exemptDecision() Decision {
	return Decision{Allowed: true, Reservation: &Reservation{exempt: true}}
}

// settled marks r as settled and reports whether it was already; an exempt
// or nil reservation counts as settled.
func (r *Reservation) settled() bool {
	if r == nil || r.exempt {
		return true
	}
	return r.done.Swap(true)
}

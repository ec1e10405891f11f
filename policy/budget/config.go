package budget

import (
	"fmt"
	"slices"
	"time"
)

// Config is the budget section of a policy: every limit by scope, and how
// windows and failures behave. The policy package builds it; a Config is not
// modified after that and is safe for concurrent use.
type Config struct {
	// Location is the timezone of calendar windows; nil means UTC.
	Location *time.Location
	// FailMode says what happens to requests while the ledger is unavailable.
	FailMode FailMode
	// SessionTTL is how long session windows live after their last request;
	// zero means DefaultSessionTTL.
	SessionTTL time.Duration
	// WhenShort is what happens to a request that a USD or token limit
	// cannot hold, for the limits that do not say: Refuse (the zero value's
	// meaning) or Fit.
	WhenShort WhenShort
	// LimitWhenShort holds the limits that say their own when_short.
	LimitWhenShort map[LimitRef]WhenShort
	// FitFloor is the smallest max_tokens that fitting may leave a request;
	// a request that would need less is refused. Zero means DefaultFitFloor.
	FitFloor int64
	// Limits holds the limits of each scope, in policy file order. The limits
	// under Scope{Kind: ScopeSession} (no name) apply to every session, each
	// counted on its own; those under Global to all requests together.
	Limits map[Scope][]Limit
}

// Subject is what a request is charged to. Empty fields have no scope.
type Subject struct {
	Key, User, Team, Project string
	// Providers lists the providers that may serve the request: the route's
	// chain. Each provider's limits must admit the request, since any of them
	// may serve it; Settle charges the one that did.
	Providers []string
	// Session is the request's session or trace id.
	Session string
}

// LimitsOf returns the limits of scope s. A session scope has the limits
// of every session.
func (c *Config) LimitsOf(s Scope) []Limit {
	if c == nil {
		return nil
	}
	if s.Kind == ScopeSession {
		if s.Name == "" {
			return nil
		}
		return c.Limits[Scope{Kind: ScopeSession}]
	}
	return c.Limits[s]
}

// Scopes returns the scopes of sub that have limits, in the order key, user,
// team, project, providers, session, global. This order is also the order in
// which limits are checked, so a denial names the first of them that refuses.
//
// Inheritance: every scope that applies is checked and charged, and none
// overrides another. A key of team platform is held to its own limits and to
// the team's, which the team's keys share; a request passes only if all of
// them admit it.
func (c *Config) Scopes(sub Subject) []ScopeLimits {
	if c == nil || len(c.Limits) == 0 {
		return nil
	}
	var out []ScopeLimits
	add := func(kind ScopeKind, name string) {
		if name == "" && kind != ScopeGlobal {
			return
		}
		s := Scope{Kind: kind, Name: name}
		if ls := c.LimitsOf(s); len(ls) > 0 {
			out = append(out, ScopeLimits{Scope: s, Limits: ls})
		}
	}
	add(ScopeKey, sub.Key)
	add(ScopeUser, sub.User)
	add(ScopeTeam, sub.Team)
	add(ScopeProject, sub.Project)
	for i, p := range sub.Providers {
		if !slices.Contains(sub.Providers[:i], p) {
			add(ScopeProvider, p)
		}
	}
	add(ScopeSession, sub.Session)
	add(ScopeGlobal, "")
	return out
}

// Request returns the request of sub with the Config's timezone and session
// TTL; the caller fills CostPicoUSD and Tokens.
func (c *Config) Request(id string, sub Subject) Request {
	r := Request{ID: id, Scopes: c.Scopes(sub)}
	if c != nil {
		r.Location, r.SessionTTL = c.Location, c.SessionTTL
	}
	return r
}

// Query returns the query of every limit of scope s.
func (c *Config) Query(s Scope) Query {
	q := Query{Scope: s, Limits: c.LimitsOf(s)}
	if c != nil {
		q.Location, q.SessionTTL = c.Location, c.SessionTTL
	}
	return q
}

// WhenShort is what happens to a request whose worst case a limit cannot
// hold.
type WhenShort uint8

const (
	// Inherit follows Config.WhenShort; a limit that names none inherits.
	Inherit WhenShort = iota
	// Refuse answers 429 (the default).
	Refuse
	// Fit lowers the request's max_tokens (and a thinking budget under it) so
	// that its worst case fits what is left, down to Config.FitFloor, and
	// refuses below it. It applies to USD and token limits only: a request
	// rate or concurrency limit is never fitted.
	Fit
)

// DefaultFitFloor is the smallest max_tokens Fit leaves a request when the
// policy names none: Anthropic's smallest thinking budget, and room for a
// short answer or a tool call.
const DefaultFitFloor = 1024

// String returns "refuse", "fit", or "" for Inherit.
func (w WhenShort) String() string {
	switch w {
	case Refuse:
		return "refuse"
	case Fit:
		return "fit"
	}
	return ""
}

// ParseWhenShort parses "refuse" or "fit".
func ParseWhenShort(s string) (WhenShort, error) {
	switch s {
	case "refuse":
		return Refuse, nil
	case "fit":
		return Fit, nil
	}
	return Inherit, fmt.Errorf("when_short must be refuse or fit, not %q", s)
}

// LimitRef names one limit of one scope, as in Config.Limits: the limits of
// every session are under Scope{Kind: ScopeSession}, without a name.
type LimitRef struct {
	Scope Scope
	Unit  Unit
	Per   Window
}

// Fits reports whether a request refused by limit l of scope s is fitted
// rather than refused: l counts USD or tokens and says fit, or says nothing
// and the Config says fit.
func (c *Config) Fits(s Scope, l Limit) bool {
	if c == nil || l.Unit != USD && l.Unit != Tokens {
		return false
	}
	if s.Kind == ScopeSession {
		s.Name = ""
	}
	if w := c.LimitWhenShort[LimitRef{s, l.Unit, l.Per}]; w != Inherit {
		return w == Fit
	}
	return c.WhenShort == Fit
}

// Floor returns FitFloor, or DefaultFitFloor when it is zero.
func (c *Config) Floor() int64 {
	if c == nil || c.FitFloor <= 0 {
		return DefaultFitFloor
	}
	return c.FitFloor
}

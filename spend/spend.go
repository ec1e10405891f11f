// Package spend answers "where does the money go" from the cost records:
// spend, tokens, requests, errors, cache savings and latency over time,
// grouped by team, user, key, project, route, provider, model or Claude Code
// request class; the sessions that cost most; and the use of every calendar
// budget of the policy with a forecast to the end of its window and the
// instant it runs out at the current pace.
//
// A [Store] does the aggregation: the PostgreSQL records table
// (records/pgstore implements it in SQL) or [Memory], a bounded ring of the
// latest records for a gateway without PostgreSQL. Both pass the same
// contract suite (spend/spendtest). [NewAPIHandler] serves it on the admin
// port as JSON and CSV, to the admin token and to the viewer tokens of a
// team, which see only their team.
package spend

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/records"
)

// Dim is a field of a record that aggregates are grouped or filtered by.
type Dim string

// The dimensions. DimClass is the Claude Code request class (see [Class]).
const (
	DimTeam     Dim = "team"
	DimUser     Dim = "user"
	DimKey      Dim = "key"
	DimProject  Dim = "project"
	DimRoute    Dim = "route"
	DimProvider Dim = "provider"
	DimModel    Dim = "model"
	DimClass    Dim = "class"
)

// Dims lists every dimension, in documentation order.
var Dims = []Dim{DimTeam, DimUser, DimKey, DimProject, DimRoute, DimProvider, DimModel, DimClass}

// ParseDim parses a dimension's name.
func ParseDim(s string) (Dim, error) {
	if d := Dim(s); slices.Contains(Dims, d) {
		return d, nil
	}
	names := make([]string, len(Dims))
	for i, d := range Dims {
		names[i] = string(d)
	}
	return "", fmt.Errorf("unknown dimension %q; use one of %s", s, strings.Join(names, ", "))
}

// The Claude Code request classes [Class] returns.
const (
	ClassMain     = "main"     // a session's own requests (no agent id)
	ClassSubagent = "subagent" // a subagent's requests (x-claude-code-agent-id)
	ClassNone     = "none"     // not from Claude Code: no session id
)

// Class is the Claude Code request class of a record: its RequestClass,
// the x-claude-code-request-class hint (main, subagent, workflow,
// compaction, auxiliary), when Claude Code sent one; else, from the headers
// it always sends, "subagent" when the request carries an agent id
// (x-claude-code-agent-id, nested agents included), "main" when it carries a
// session id (x-claude-code-session-id) and no agent id, and "none" without a
// session id.
func Class(r *records.Record) string { return class(r.RequestClass, r.SessionID, r.AgentID) }

func class(hint, session, agent string) string {
	switch {
	case hint != "":
		return hint
	case session == "":
		return ClassNone
	case agent == "":
		return ClassMain
	}
	return ClassSubagent
}

// value is r's value of dimension d.
func value(r *records.Record, d Dim) string {
	switch d {
	case DimTeam:
		return r.Team
	case DimUser:
		return r.User
	case DimKey:
		return r.KeyID
	case DimProject:
		return r.Project
	case DimRoute:
		return r.Route
	case DimProvider:
		return r.Provider
	case DimModel:
		return r.Model
	case DimClass:
		return Class(r)
	}
	return ""
}

// Step is the length of the buckets of a series.
type Step string

// The steps. Buckets start at local midnight (day), on Monday at local
// midnight (week) or on the local hour (hour), in the query's Location.
const (
	NoStep Step = ""
	Hour   Step = "hour"
	Day    Step = "day"
	Week   Step = "week"
)

// ParseStep parses hour, day or week.
func ParseStep(s string) (Step, error) {
	switch st := Step(s); st {
	case Hour, Day, Week:
		return st, nil
	}
	return "", fmt.Errorf("unknown step %q; use hour, day or week", s)
}

// Truncate returns the start of the bucket of step that t falls in, in loc.
// NoStep has a single bucket, and returns the zero time.
func (s Step) Truncate(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	switch s {
	case Hour:
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
	case Day:
		return midnight(y, m, d, loc)
	case Week:
		return midnight(y, m, d-(int(t.Weekday())+6)%7, loc)
	}
	return time.Time{}
}

// Next returns the start of the bucket after the one starting at start.
func (s Step) Next(start time.Time, loc *time.Location) time.Time {
	t := start.In(loc)
	y, m, d := t.Date()
	switch s {
	case Hour:
		return s.Truncate(start.Add(90*time.Minute), loc)
	case Day:
		return midnight(y, m, d+1, loc)
	case Week:
		return midnight(y, m, d+7, loc)
	}
	return time.Time{}
}

// midnight is the first instant of a local date (d may be out of range, as
// for time.Date). Where a DST change skips midnight, the day starts at the
// jump.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if _, _, td := t.Date(); td != time.Date(y, m, d, 12, 0, 0, 0, loc).Day() {
		_, t = t.ZoneBounds()
	}
	return t
}

// Filter keeps the records whose value of each dimension it names equals
// the value it gives. The empty Filter keeps every record.
type Filter map[Dim]string

func (f Filter) match(r *records.Record) bool {
	for d, v := range f {
		if value(r, d) != v {
			return false
		}
	}
	return true
}

// Query selects records by start time and filter, and asks for their
// aggregates per bucket and group.
type Query struct {
	// From and To bound the records' start: From <= start < To.
	From, To time.Time
	// Step cuts [From, To) into buckets; NoStep aggregates it whole.
	Step Step
	// Location is where days and weeks begin; nil is UTC.
	Location *time.Location
	// GroupBy lists the dimensions of the groups, none for one group.
	GroupBy []Dim
	Filter  Filter
	// Percentiles asks for the latency and TTFT percentiles, which cost a
	// sort of the samples of each row; without it they are 0.
	Percentiles bool
	// Rollup asks, beside the rows of each bucket and group, for the
	// totals of each group over every bucket, of each bucket over every
	// group, and of everything (as Postgres's GROUPING SETS): one pass over
	// the records for a chart and its legend. Row.Level tells them apart.
	Rollup bool
}

// Level says what a Row adds up.
type Level uint8

const (
	// LevelBucketGroup is one bucket of one group: every row of a query
	// without Rollup.
	LevelBucketGroup Level = iota
	// LevelGroup is one group over every bucket (Start is zero).
	LevelGroup
	// LevelBucket is one bucket over every group (Group is nil).
	LevelBucket
	// LevelAll is every record of the query (zero Start, nil Group).
	LevelAll
)

// At returns the query of one level of q's rollup, without Rollup.
func (q Query) At(l Level) Query {
	q.Rollup = false
	switch l {
	case LevelGroup:
		q.Step = NoStep
	case LevelBucket:
		q.GroupBy = nil
	case LevelAll:
		q.Step, q.GroupBy = NoStep, nil
	}
	return q
}

// Levels lists the levels of the rows a query returns: LevelBucketGroup,
// and with Rollup the coarser ones that differ from it.
func (q Query) Levels() []Level {
	if !q.Rollup {
		return []Level{LevelBucketGroup}
	}
	step, group := q.Step != NoStep, len(q.GroupBy) > 0
	switch {
	case step && group:
		return []Level{LevelBucketGroup, LevelGroup, LevelBucket, LevelAll}
	case step:
		return []Level{LevelBucketGroup, LevelAll}
	case group:
		return []Level{LevelBucketGroup, LevelAll}
	}
	return []Level{LevelBucketGroup}
}

// Loc returns q.Location, or UTC.
func (q Query) Loc() *time.Location {
	if q.Location == nil {
		return time.UTC
	}
	return q.Location
}

// Metrics add up the records of one bucket and group.
type Metrics struct {
	Requests int64
	// Errors counts the requests that failed on the way: outcome
	// provider_error, incomplete or unavailable.
	Errors int64
	// Refused counts the requests Tollgate refused: outcome denied (a key, a
	// budget or a rate limit) or invalid.
	Refused int64
	// Admitted counts the requests the budgets admitted and counted
	// (budget_outcome allowed): what a requests budget holds.
	Admitted int64

	CostPicoUSD      int64
	CostSavedPicoUSD int64
	// CacheHits counts the responses served from the response cache.
	CacheHits int64

	InputTokens      int64 // uncached input
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64 // 5-minute and 1-hour cache writes

	// Latency and TTFT are the percentiles of latency_ms and ttft_ms over
	// the completed requests (outcome ok) that have one (above 0), as
	// Postgres's percentile_disc: the smallest sample at or above the
	// fraction. N counts the samples; the percentiles are 0 without any,
	// and all are 0 unless the query asked for Percentiles.
	LatencyP50, LatencyP95 float64
	LatencyN               int64
	TTFTP50, TTFTP95       float64
	TTFTN                  int64
}

// add adds the counts and sums of o to m (not the percentiles).
func (m *Metrics) add(o *Metrics) {
	m.Requests += o.Requests
	m.Errors += o.Errors
	m.Refused += o.Refused
	m.Admitted += o.Admitted
	m.CostPicoUSD += o.CostPicoUSD
	m.CostSavedPicoUSD += o.CostSavedPicoUSD
	m.CacheHits += o.CacheHits
	m.InputTokens += o.InputTokens
	m.OutputTokens += o.OutputTokens
	m.CacheReadTokens += o.CacheReadTokens
	m.CacheWriteTokens += o.CacheWriteTokens
}

// Tokens is every billed token: what a tokens budget counts.
func (m *Metrics) Tokens() int64 {
	return m.InputTokens + m.OutputTokens + m.CacheReadTokens + m.CacheWriteTokens
}

// Row is the aggregate of one bucket and one group.
type Row struct {
	// Start is the bucket's start; zero for a query without a Step.
	Start time.Time
	// Group holds the values of the query's GroupBy, in its order.
	Group []string
	// Level says which totals the row holds (always LevelBucketGroup
	// without Rollup). A query without Step or GroupBy has its whole range
	// or all its records as LevelBucketGroup, and returns no separate
	// LevelGroup, LevelBucket or LevelAll row that would repeat it.
	Level Level
	Metrics
}

// SessionQuery selects Claude Code sessions (records with a session id)
// with a record starting in [From, To) that matches Filter.
type SessionQuery struct {
	From, To time.Time
	Filter   Filter
	// Limit is the most sessions returned, those of highest cost first.
	Limit int
}

// Session adds up the records of one session in the query's range.
type Session struct {
	ID string
	// Team, User, Key and Project are those of the session's records; when
	// they differ, the least in byte order.
	Team, User, Key, Project string
	// First and Last are the starts of its first and last records.
	First, Last time.Time
	// Subagents counts the distinct agent ids of its records.
	Subagents int64
	// Models lists the models of its records, sorted.
	Models []string
	Metrics
}

// Store aggregates cost records.
type Store interface {
	// Aggregate returns the non-empty buckets and groups of q, in no
	// particular order.
	Aggregate(ctx context.Context, q Query) ([]Row, error)
	// Sessions returns the sessions of q of highest cost first, ties by id,
	// at most q.Limit. Their Metrics hold no latency percentiles.
	Sessions(ctx context.Context, q SessionQuery) ([]Session, error)
}

// Percentile is Postgres's percentile_disc(p) of sorted: the first sample
// whose position in the order is at or above the fraction p; 0 for no
// samples.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Outcome classes of Metrics.
func isError(o records.Outcome) bool {
	return o == records.OutcomeProviderError || o == records.OutcomeIncomplete || o == records.OutcomeUnavailable
}

func isRefused(o records.Outcome) bool {
	return o == records.OutcomeDenied || o == records.OutcomeInvalid
}

// BudgetAllowed is the budget_outcome of a request the budgets admitted and
// counted.
const BudgetAllowed = "allowed"

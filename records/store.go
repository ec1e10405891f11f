package records

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Store reads cost records back, for the records API.
type Store interface {
	// Query returns the matching records, newest first.
	Query(ctx context.Context, q Query) ([]Record, error)
	// Trace returns every record of one trace with totals. It returns an error
	// wrapping ErrNotFound when the store holds no record of the trace.
	Trace(ctx context.Context, traceID string) (Trace, error)
}

// ErrNotFound says a store holds no record of a trace.
var ErrNotFound = errors.New("records: not found")

// Query limits.
const (
	DefaultQueryLimit = 100
	MaxQueryLimit     = 1000
)

// Query selects records. Empty fields match everything.
//
// A store picks the Limit matching records it received last and returns them
// sorted by Start, newest first. The two orders agree except for records that
// reached the store late, replayed from a spool after an outage: those count as
// recent for the Limit.
type Query struct {
	TraceID string
	KeyID   string
	// Team and SessionID keep the records of one team and one Claude Code
	// session (x-claude-code-session-id).
	Team      string
	SessionID string
	// Since keeps records whose Start is at or after it.
	Since time.Time
	// Until, when set, keeps records whose Start is before it: with Since,
	// the time range [Since, Until) the dashboard's Records page asks for.
	Until time.Time
	// Limit is the most records returned: DefaultQueryLimit when <= 0, at most
	// MaxQueryLimit.
	Limit int
}

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultQueryLimit
	case q.Limit > MaxQueryLimit:
		return MaxQueryLimit
	}
	return q.Limit
}

func (q Query) match(r *Record) bool {
	return (q.Until.IsZero() || r.Start.Before(q.Until)) &&
		(q.TraceID == "" || r.TraceID == q.TraceID) &&
		(q.KeyID == "" || r.KeyID == q.KeyID) &&
		(q.Team == "" || r.Team == q.Team) &&
		(q.SessionID == "" || r.SessionID == q.SessionID) &&
		(q.Since.IsZero() || !r.Start.Before(q.Since))
}

// Trace is one trace's requests and what they add up to.
type Trace struct {
	ID string `json:"id"`
	// Requests are in start order, oldest first.
	Requests []Record `json:"requests"`
	Totals   Totals   `json:"totals"`
}

// Totals adds up the requests of a trace.
type Totals struct {
	Requests    int           `json:"requests"`
	Usage       pricing.Usage `json:"usage"`
	CostPicoUSD int64         `json:"cost_pico_usd"`
	// Cost is CostPicoUSD as a decimal USD string.
	Cost string `json:"cost_usd"`
}

// newTrace orders the records of a trace and adds them up.
func newTrace(traceID string, recs []Record) (Trace, error) {
	if len(recs) == 0 {
		return Trace{}, fmt.Errorf("trace %q: %w", traceID, ErrNotFound)
	}
	slices.SortStableFunc(recs, func(a, b Record) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.ID, b.ID))
	})
	t := Trace{ID: traceID, Requests: recs}
	for i := range recs {
		t.Totals.Requests++
		t.Totals.Usage = addUsage(t.Totals.Usage, recs[i].Usage)
		t.Totals.CostPicoUSD += recs[i].CostPicoUSD
	}
	t.Totals.Cost = pricing.FormatUSD(t.Totals.CostPicoUSD)
	return t, nil
}

// addUsage adds two usages field by field. A test checks that it covers every
// field of pricing.Usage.
func addUsage(a, b pricing.Usage) pricing.Usage {
	a.InputTokens += b.InputTokens
	a.CacheReadTokens += b.CacheReadTokens
	a.CacheWrite5mTokens += b.CacheWrite5mTokens
	a.CacheWrite1hTokens += b.CacheWrite1hTokens
	a.OutputTokens += b.OutputTokens
	a.ReasoningTokens += b.ReasoningTokens
	a.WebSearchRequests += b.WebSearchRequests
	a.WebFetchRequests += b.WebFetchRequests
	return a
}

// sortNewestFirst orders records by Start, newest first, then by id.
func sortNewestFirst(recs []Record) {
	slices.SortStableFunc(recs, func(a, b Record) int {
		return cmp.Or(b.Start.Compare(a.Start), strings.Compare(a.ID, b.ID))
	})
}

// MemoryStore keeps the most recent records in memory, for a single instance
// without Redis. It is a ring of fixed capacity: when full, a new record evicts
// the oldest. It is both the Sink that fills it and the Store that reads it, and
// is safe for concurrent use. A record whose id it already holds is ignored.
type MemoryStore struct {
	mu    sync.Mutex
	ring  []Record
	next  int // where the next record goes
	count int
	ids   map[string]struct{}
}

var (
	_ Sink  = (*MemoryStore)(nil)
	_ Store = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty store that holds up to capacity records
// (at least one).
func NewMemoryStore(capacity int) *MemoryStore {
	capacity = max(capacity, 1)
	return &MemoryStore{ring: make([]Record, capacity), ids: make(map[string]struct{}, capacity)}
}

// Name implements [Sink.Name].
func (*MemoryStore) Name() string { return "memory" }

// Write implements [Sink.Write]. It never fails.
func (m *MemoryStore) Write(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range recs {
		if _, dup := m.ids[recs[i].ID]; dup {
			continue
		}
		if m.count == len(m.ring) {
			delete(m.ids, m.ring[m.next].ID)
		} else {
			m.count++
		}
		m.ring[m.next] = recs[i]
		m.ids[recs[i].ID] = struct{}{}
		m.next = (m.next + 1) % len(m.ring)
	}
	return nil
}

// Close implements [Sink.Close]. The records stay readable.
func (*MemoryStore) Close() error { return nil }

// Query implements [Store.Query].
func (m *MemoryStore) Query(ctx context.Context, q Query) ([]Record, error) {
	limit := q.limit()
	var out []Record
	m.each(func(r *Record) bool {
		if q.match(r) {
			out = append(out, *r)
		}
		return len(out) < limit
	})
	sortNewestFirst(out)
	return out, nil
}

// Trace implements [Store.Trace].
func (m *MemoryStore) Trace(ctx context.Context, traceID string) (Trace, error) {
	if traceID == "" {
		return Trace{}, errors.New("records: empty trace id")
	}
	var recs []Record
	m.each(func(r *Record) bool {
		if r.TraceID == traceID {
			recs = append(recs, *r)
		}
		return true
	})
	return newTrace(traceID, recs)
}

// each calls f with the stored records from the newest back, until f returns
// false.
func (m *MemoryStore) each(f func(*Record) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 1; i <= m.count; i++ {
		j := (m.next - i + len(m.ring)) % len(m.ring)
		if !f(&m.ring[j]) {
			return
		}
	}
}

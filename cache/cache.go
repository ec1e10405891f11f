// Package cache is Tollgate's exact-match response cache: a complete,
// successful response stored under a Key that hashes everything that decides
// the answer (the canonical request body, endpoint, client format, route,
// model, tenant scope and the headers that change responses; see NewKey),
// and replayed to the next identical request of the same tenant.
//
// Two stores keep entries: Memory, an LRU capped in bytes, for a single
// replica, and Redis, shared by every replica, with entries compressed and
// expired by Redis. Both pass one contract test suite. Neither ever fails a
// request: the policy role turns a store's error into a miss (Get) or a
// response not stored (Put), and the store counts it.
package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Key identifies a cached response: a SHA-256 digest made by NewKey.
type Key [32]byte

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Entry is one cached response.
type Entry struct {
	// ContentType is the response's content-type.
	ContentType string
	// Body is the response body as the client received it.
	Body []byte
	// Info is what the caller keeps beside the body (the policy role: what
	// prices the response again), opaque to the cache.
	Info []byte
	// Stored is when the entry was stored, and Expires when it stops being
	// served. Put sets both.
	Stored, Expires time.Time
}

// size is what an entry counts against a size cap: its bytes plus a fixed
// allowance for the bookkeeping around it.
func (e *Entry) size() int { return len(e.ContentType) + len(e.Body) + len(e.Info) + entryOverhead }

// entryOverhead is what an entry costs beyond its bytes: the key, the
// times, the list element and map slot of Memory.
const entryOverhead = 128

// Store is the contract both stores keep. The policy role declares the
// same methods as the interface it consumes.
type Store interface {
	// Get returns the entry stored under k that has not expired at now.
	// found is false for an entry never stored, expired or evicted; err is
	// set when the store could not answer (then found is false too).
	Get(ctx context.Context, k Key, now time.Time) (e Entry, found bool, err error)
	// Put stores e under k from now for ttl, replacing what was there. It
	// returns ErrTooLarge for an entry above the store's entry cap, and
	// an error when the store could not be written.
	Put(ctx context.Context, k Key, e Entry, ttl time.Duration, now time.Time) error
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
)

// ErrTooLarge is returned by Put for an entry above the store's cap.
var ErrTooLarge = errors.New("cache: entry above the size cap")

// DefaultMaxEntryBytes is the default cap of a stored entry: 4 MiB. A
// message response of a few thousand output tokens is tens of KB.
const DefaultMaxEntryBytes = 4 << 20

// Metrics are the cache's Prometheus metrics. Create them with NewMetrics;
// a nil *Metrics counts nothing.
type Metrics struct {
	hits, misses, storedBytes, evictions prometheus.Counter
	errors                               *prometheus.CounterVec
	bytes                                prometheus.Gauge
}

// NewMetrics returns the cache metrics, registered with reg when it is not
// nil:
//
//   - tollgate_cache_hits_total and tollgate_cache_misses_total: lookups
//     that found an entry, and those that found none (an error included);
//   - tollgate_cache_errors_total{op="get|put"}: store failures, each of
//     which became a miss or a response not stored;
//   - tollgate_cache_stored_bytes_total: bytes written to the store
//     (compressed, for Redis);
//   - tollgate_cache_bytes: bytes the memory store holds now;
//   - tollgate_cache_evictions_total: entries the memory store dropped to
//     stay under its byte cap.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hits:        prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_hits_total", Help: "Response cache lookups that found an entry."}),
		misses:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_misses_total", Help: "Response cache lookups that found no entry, store errors included."}),
		storedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_stored_bytes_total", Help: "Bytes written to the response cache store (compressed for Redis)."}),
		evictions:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_evictions_total", Help: "Entries the memory cache dropped to stay under its byte cap."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_cache_errors_total",
			Help: "Response cache store failures by operation (get, put); a failed get is a miss, a failed put stores nothing."}, []string{"op"}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_cache_bytes", Help: "Bytes the memory response cache holds."}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.storedBytes, m.evictions, m.errors, m.bytes)
	}
	return m
}

func (m *Metrics) lookup(found bool) {
	switch {
	case m == nil:
	case found:
		m.hits.Inc()
	default:
		m.misses.Inc()
	}
}

func (m *Metrics) failed(op string) {
	if m != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) stored(n int) {
	if m != nil {
		m.storedBytes.Add(float64(n))
	}
}

func (m *Metrics) evicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

func (m *Metrics) holding(n int) {
	if m != nil {
		m.bytes.Set(float64(n))
	}
}

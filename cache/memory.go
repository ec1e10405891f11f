package cache

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"
)

// DefaultMemoryBytes is the default byte cap of a Memory store: 256 MiB.
const DefaultMemoryBytes = 256 << 20

// MemoryOptions configure a Memory store. The zero value is the default.
type MemoryOptions struct {
	// MaxBytes caps the bytes held, entries counted by their size plus a
	// fixed overhead; the least recently used entries go first. Default
	// DefaultMemoryBytes.
	MaxBytes int
	// MaxEntryBytes caps one entry. Default DefaultMaxEntryBytes, and never
	// above MaxBytes.
	MaxEntryBytes int
	// Metrics receives the counts (none when nil).
	Metrics *Metrics
}

// Memory is a Store in process memory: a least-recently-used list capped in
// bytes. Expired entries are dropped when found. It is safe for concurrent
// use. Entries are copied in and out, so callers may reuse their buffers.
type Memory struct {
	mu       sync.Mutex
	maxBytes int
	maxEntry int
	bytes    int
	lru      *list.List // of *memEntry, most recently used first
	index    map[Key]*list.Element
	metrics  *Metrics
}

type memEntry struct {
	key Key
	e   Entry
}

// NewMemory returns an empty Memory store.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMemoryBytes
	}
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = DefaultMaxEntryBytes
	}
	return &Memory{maxBytes: opts.MaxBytes, maxEntry: min(opts.MaxEntryBytes, opts.MaxBytes),
		lru: list.New(), index: map[Key]*list.Element{}, metrics: opts.Metrics}
}

// Get implements [Store.Get].
func (m *Memory) Get(_ context.Context, k Key, now time.Time) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.index[k]
	if ok && !now.Before(el.Value.(*memEntry).e.Expires) {
		m.remove(el)
		ok = false
	}
	m.metrics.lookup(ok)
	if !ok {
		return Entry{}, false, nil
	}
	m.lru.MoveToFront(el)
	return clone(el.Value.(*memEntry).e), true, nil
}

// Put implements [Store.Put].
func (m *Memory) Put(_ context.Context, k Key, e Entry, ttl time.Duration, now time.Time) error {
	if e.size() > m.maxEntry {
		return ErrTooLarge
	}
	e = clone(e)
	e.Stored, e.Expires = now, now.Add(ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.index[k]; ok {
		m.remove(el)
	}
	m.index[k] = m.lru.PushFront(&memEntry{key: k, e: e})
	m.bytes += e.size()
	for m.bytes > m.maxBytes {
		m.remove(m.lru.Back())
		m.metrics.evicted()
	}
	m.metrics.stored(e.size())
	m.metrics.holding(m.bytes)
	return nil
}

// remove drops el; m.mu is held.
func (m *Memory) remove(el *list.Element) {
	me := m.lru.Remove(el).(*memEntry)
	delete(m.index, me.key)
	m.bytes -= me.e.size()
	m.metrics.holding(m.bytes)
}

// Len returns the number of entries held, expired ones not yet dropped
// included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

func clone(e Entry) Entry {
	e.Body, e.Info = slices.Clone(e.Body), slices.Clone(e.Info)
	return e
}

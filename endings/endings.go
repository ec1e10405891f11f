// Package endings keeps, for a few seconds, how Envoy ended each request, as
// Envoy's gRPC access log told it, so that the replica writing the request's
// record can read it whichever replica heard it.
//
// An ending is a short string under the request's record id. Memory holds
// them in one process (a single instance); Redis shares them between
// replicas. Both forget an ending after its TTL: it is read within seconds of
// being written, or never.
package endings

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTTL is how long an ending is kept: long enough for the reader's
// wait, short enough that nothing accumulates.
const DefaultTTL = 30 * time.Second

// maxEntries bounds Memory: an ending the policy role never reads (a replica
// without the wait, a request of another gateway) must not grow it without
// limit.
const maxEntries = 100_000

// Memory keeps endings in this process. It is safe for concurrent use.
type Memory struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	value   string
	expires time.Time
}

// NewMemory returns an empty Memory whose endings expire after ttl (DefaultTTL
// when ttl is 0), timed by now (time.Now when nil).
func NewMemory(ttl time.Duration, now func() time.Time) *Memory {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{ttl: ttl, now: now, m: map[string]memEntry{}}
}

// Put stores value under id, replacing what was there.
func (m *Memory) Put(_ context.Context, id, value string) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= maxEntries {
		for k, e := range m.m {
			if !now.Before(e.expires) {
				delete(m.m, k)
			}
		}
		if len(m.m) >= maxEntries {
			return errors.New("endings: memory full")
		}
	}
	m.m[id] = memEntry{value: value, expires: now.Add(m.ttl)}
	return nil
}

// Get returns the value stored under id, if it has not expired.
func (m *Memory) Get(_ context.Context, id string) (string, bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[id]
	if !ok {
		return "", false, nil
	}
	if !now.Before(e.expires) {
		delete(m.m, id)
		return "", false, nil
	}
	return e.value, true, nil
}

// KeyPrefix starts the Redis key of every ending; the record id follows.
const KeyPrefix = "tollgate:ending:"

// Redis keeps endings in Redis, one key per request with a TTL, shared by
// every replica on it.
type Redis struct {
	rdb redis.Cmdable
	ttl time.Duration
}

// NewRedis returns a Redis store on rdb whose endings expire after ttl
// (DefaultTTL when ttl is 0). Calls are bounded by their contexts.
func NewRedis(rdb redis.Cmdable, ttl time.Duration) *Redis {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Redis{rdb: rdb, ttl: ttl}
}

// Put stores value under id (SET with PX).
func (r *Redis) Put(ctx context.Context, id, value string) error {
	if err := r.rdb.Set(ctx, KeyPrefix+id, value, r.ttl).Err(); err != nil {
		return fmt.Errorf("endings: redis set: %w", err)
	}
	return nil
}

// Get returns the value stored under id, if any.
func (r *Redis) Get(ctx context.Context, id string) (string, bool, error) {
	v, err := r.rdb.Get(ctx, KeyPrefix+id).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("endings: redis get: %w", err)
	}
	return v, true, nil
}

package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the default prefix of the Redis store's keys.
const DefaultRedisPrefix = "tollgate:cache"

// DefaultRedisTimeout bounds each call of the Redis store by default. A
// lookup waits for it on the request path, so it is short: a Redis that has
// not answered by then is a miss.
const DefaultRedisTimeout = 50 * time.Millisecond

// RedisOptions configure a Redis store. The zero value is the default.
type RedisOptions struct {
	// Prefix starts every key: "Prefix:<hex of the Key>". Default
	// DefaultRedisPrefix.
	Prefix string
	// Timeout bounds each call. Default DefaultRedisTimeout.
	Timeout time.Duration
	// MaxEntryBytes caps one entry before compression. Default
	// DefaultMaxEntryBytes.
	MaxEntryBytes int
	// Metrics receives the counts (none when nil).
	Metrics *Metrics
}

// redisClient is the part of go-redis the store uses.
type redisClient interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
}

// Redis is a Store in Redis, shared by every replica that uses the same
// Redis and prefix. Each entry is one string key, written with SET PX (so
// Redis drops it when its TTL ends, and its maxmemory policy may evict it
// earlier) and read with GET: one round trip each. The body is stored
// compressed as one S2 block (github.com/klauspost/compress/s2, an
// extension of Snappy), which a hit decompresses at GB/s where DEFLATE
// took 5 to 10 ms a MB, for entries 10 to 25% larger. The expiry is also
// stored in the entry and checked against the caller's clock, so that
// tests and replicas with a skewed clock agree on it.
//
// Every failure to reach Redis, and an entry that does not decode, is
// returned as an error and counted (tollgate_cache_errors_total).
type Redis struct {
	c        redisClient
	prefix   string
	timeout  time.Duration
	maxEntry int
	metrics  *Metrics
}

// NewRedis returns a store on the Redis client c, which the caller keeps and
// closes. c must be created with ContextTimeoutEnabled, so that Timeout
// bounds every call.
func NewRedis(c redis.UniversalClient, opts RedisOptions) (*Redis, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRedisTimeout
	}
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if !contextTimeouts(c) {
		return nil, errors.New("cache: the Redis client must set ContextTimeoutEnabled, so that the cache's timeout bounds each call")
	}
	return &Redis{c: c, prefix: opts.Prefix, timeout: opts.Timeout, maxEntry: opts.MaxEntryBytes, metrics: opts.Metrics}, nil
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

func (r *Redis) key(k Key) string { return r.prefix + ":" + k.String() }

// Get implements [Store.Get].
func (r *Redis) Get(ctx context.Context, k Key, now time.Time) (Entry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.c.Get(ctx, r.key(k)).Bytes()
	if errors.Is(err, redis.Nil) {
		r.metrics.lookup(false)
		return Entry{}, false, nil
	}
	if err != nil {
		r.metrics.lookup(false)
		r.metrics.failed("get")
		return Entry{}, false, fmt.Errorf("cache: redis get: %w", err)
	}
	e, err := r.decodeEntry(b)
	if err != nil {
		r.metrics.lookup(false)
		r.metrics.failed("get")
		return Entry{}, false, fmt.Errorf("cache: redis entry %s: %w", k, err)
	}
	found := now.Before(e.Expires)
	r.metrics.lookup(found)
	if !found {
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Put implements [Store.Put].
func (r *Redis) Put(ctx context.Context, k Key, e Entry, ttl time.Duration, now time.Time) error {
	if e.size() > r.maxEntry {
		return ErrTooLarge
	}
	e.Stored, e.Expires = now, now.Add(ttl)
	b, err := r.encodeEntry(&e)
	if err != nil {
		r.metrics.failed("put")
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, r.key(k), b, max(ttl, time.Millisecond)).Err(); err != nil {
		r.metrics.failed("put")
		return fmt.Errorf("cache: redis set: %w", err)
	}
	r.metrics.stored(len(b))
	return nil
}

// entryVersion starts every encoded entry; an entry of another version
// reads as an error, which is a miss. Version 1 held the body compressed
// with DEFLATE; its entries are under keys of the first key version, which
// no lookup makes any more.
const entryVersion = 2

// entryHeader is the length of an entry's fixed part: the version and the
// two times.
const entryHeader = 17

// encodeEntry encodes e as: the version byte, Stored and Expires in Unix
// nanoseconds (8 bytes each, big endian), the lengths of ContentType, Info
// and Body as uvarints, ContentType, Info, and Body compressed as one S2
// block. The block is written in place, in the one allocation.
func (r *Redis) encodeEntry(e *Entry) ([]byte, error) {
	head := entryHeader + 3*binary.MaxVarintLen64 + len(e.ContentType) + len(e.Info)
	maxBody := s2.MaxEncodedLen(len(e.Body))
	if maxBody < 0 {
		return nil, ErrTooLarge
	}
	b := make([]byte, 0, head+maxBody)
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Stored.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Expires.UnixNano()))
	for _, n := range []int{len(e.ContentType), len(e.Info), len(e.Body)} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = append(b, e.ContentType...)
	b = append(b, e.Info...)
	enc := s2.EncodeBetter(b[len(b):cap(b)], e.Body)
	return b[:len(b)+len(enc)], nil
}

// decodeEntry reverses encodeEntry; an entry above r.maxEntry bytes is an
// error. The body is decompressed straight into its own slice, the one the
// caller replays.
func (r *Redis) decodeEntry(b []byte) (Entry, error) {
	maxEntry := r.maxEntry
	if len(b) < entryHeader || b[0] != entryVersion {
		return Entry{}, errors.New("unknown encoding")
	}
	e := Entry{
		Stored:  time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))),
		Expires: time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))),
	}
	rest := b[entryHeader:]
	var n [3]int
	for i := range n {
		v, w := binary.Uvarint(rest)
		if w <= 0 || v > uint64(maxEntry) {
			return Entry{}, errors.New("bad length")
		}
		n[i], rest = int(v), rest[w:]
	}
	if n[0]+n[1] > len(rest) || n[0]+n[1]+n[2] > maxEntry {
		return Entry{}, errors.New("bad length")
	}
	e.ContentType = string(rest[:n[0]])
	if n[1] > 0 {
		e.Info = bytes.Clone(rest[n[0] : n[0]+n[1]])
	}
	block := rest[n[0]+n[1]:]
	if l, err := s2.DecodedLen(block); err != nil || l != n[2] {
		return Entry{}, fmt.Errorf("decompress: body of %d bytes recorded, block holds %d (%v)", n[2], l, err)
	}
	body, err := s2.Decode(make([]byte, n[2]), block)
	if err != nil {
		return Entry{}, fmt.Errorf("decompress: %w", err)
	}
	e.Body = body
	return e, nil
}

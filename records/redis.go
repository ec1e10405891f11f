package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisStream is the conventional stream name. Its key in Redis is
// "{tollgate:records}" (see [RedisStreamKey]).
const DefaultRedisStream = "tollgate:records"

// redisDedupeTTL is how long the Redis sink remembers a record id. A replay of a
// record comes at the latest when its sink recovers, so a day covers any outage
// the spool is meant to bridge; the keys cost about 150 bytes per record.
const redisDedupeTTL = 24 * time.Hour

// redisScriptBatch caps the records of one script call, so that a large replay
// never holds Redis for long.
const redisScriptBatch = 256

// Stream entry fields. The record is the Record JSON; the id, trace and key are
// repeated so that readers filter without decoding.
const (
	fieldID     = "id"
	fieldTrace  = "trace_id"
	fieldKey    = "key_id"
	fieldRecord = "record"
)

// RedisStreamKey is the Redis key of the stream named stream. A name that already
// carries a hash tag ("{tollgate}:records") is the key itself; any other name is
// wrapped in braces ("tollgate:records" becomes "{tollgate:records}"). Either
// way the stream and the per-record id keys the sink writes next to it share a
// hash tag, so in Redis Cluster they live in one slot and one script touches
// them all.
func RedisStreamKey(stream string) string {
	if hasHashTag(stream) {
		return stream
	}
	return "{" + stream + "}"
}

// hasHashTag reports whether Redis Cluster would hash key by a tag: a '{'
// followed later by a '}' with at least one byte between them.
func hasHashTag(key string) bool {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(key[open+1:], '}')
	return end > 0
}

// redisIDKey is the key that marks a record id as written to the stream.
func redisIDKey(streamKey, id string) string { return streamKey + ":id:" + id }

// redisAppendScript adds records to a stream at most once each. KEYS[1] is the
// stream, KEYS[2..] the id keys of the records; ARGV[1] is MAXLEN (0: no trim),
// ARGV[2] the id-key TTL in milliseconds, then four values per record: id,
// trace id, key id, record JSON. A record whose id key exists is skipped. The
// id key is set before XADD and removed again if XADD fails, so a failed call
// never hides a record from its retry. It returns how many records it added.
const redisAppendScript = `
local maxlen = tonumber(ARGV[1])
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[2]) then
    local a = 3 + (i - 2) * 4
    local res
    if maxlen > 0 then
      res = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
        'id', ARGV[a], 'trace_id', ARGV[a+1], 'key_id', ARGV[a+2], 'record', ARGV[a+3])
    else
      res = redis.pcall('XADD', KEYS[1], '*',
        'id', ARGV[a], 'trace_id', ARGV[a+1], 'key_id', ARGV[a+2], 'record', ARGV[a+3])
    end
    if type(res) == 'table' and res.err then
      redis.call('DEL', KEYS[i])
      return redis.error_reply(res.err)
    end
    added = added + 1
  end
end
return added
`

// redisSink appends records to a Redis stream.
type redisSink struct {
	c         redis.UniversalClient
	script    *redis.Script
	streamKey string
	maxLen    int64
}

// NewRedisSink returns a sink that appends each record to a Redis stream with
// XADD, trimmed with an approximate MAXLEN of maxLen entries (maxLen <= 0: no
// trimming). The stream's key is RedisStreamKey(stream).
//
// Writes are idempotent by Record.ID: one Lua script per batch sets a per-id key
// (SET NX with a TTL of a day) and adds only the records whose key was new, so a
// replayed record is never added twice. Close does not close c, which belongs to
// the caller.
func NewRedisSink(c redis.UniversalClient, stream string, maxLen int64) Sink {
	return &redisSink{
		c:         c,
		script:    redis.NewScript(redisAppendScript),
		streamKey: RedisStreamKey(stream),
		maxLen:    max(maxLen, 0),
	}
}

// Name implements [Sink.Name].
func (*redisSink) Name() string { return "redis" }

// Write implements [Sink.Write]. It runs one script per 256 records. A record
// without an id, or one that cannot be encoded, can never be stored: Write
// stores the others and returns a [*RejectedError] naming it.
func (s *redisSink) Write(ctx context.Context, recs []Record) error {
	ttl := strconv.FormatInt(redisDedupeTTL.Milliseconds(), 10)
	maxLen := strconv.FormatInt(s.maxLen, 10)
	var rejected []Rejection
	for i := 0; i < len(recs); {
		keys := make([]string, 1, 1+min(len(recs)-i, redisScriptBatch))
		args := make([]any, 2, 2+4*cap(keys))
		keys[0], args[0], args[1] = s.streamKey, maxLen, ttl
		for ; i < len(recs) && len(keys) <= redisScriptBatch; i++ {
			r := &recs[i]
			if r.ID == "" {
				rejected = append(rejected, Rejection{Index: i, Reason: fmt.Errorf("record without an id (trace %q)", r.TraceID)})
				continue
			}
			b, err := json.Marshal(r)
			if err != nil {
				rejected = append(rejected, Rejection{Index: i, Reason: fmt.Errorf("encode record %q: %w", r.ID, err)})
				continue
			}
			keys = append(keys, redisIDKey(s.streamKey, r.ID))
			args = append(args, r.ID, r.TraceID, r.KeyID, string(b))
		}
		if len(keys) == 1 {
			continue
		}
		if err := s.script.Run(ctx, s.c, keys, args...).Err(); err != nil {
			return fmt.Errorf("records: redis sink %s: %w", s.streamKey, err)
		}
	}
	if len(rejected) > 0 {
		return &RejectedError{Records: rejected}
	}
	return nil
}

// Close implements [Sink.Close].
func (*redisSink) Close() error { return nil }

// RedisStore reads records back from the stream a Redis sink writes.
type RedisStore struct {
	c         redis.UniversalClient
	streamKey string
}

var _ Store = (*RedisStore)(nil)

// redisPage is how many entries one XREVRANGE reads.
const redisPage = 500

// redisClockSkew is how far a replica's clock may run ahead of Redis's. Records
// reach the stream after they end, so an entry's stream id (Redis time) is no
// earlier than its Start minus this skew; a query with Since stops scanning at
// entries older than Since minus the skew.
const redisClockSkew = 5 * time.Minute

// NewRedisStore returns a store that reads the stream named stream (the name
// given to NewRedisSink). It scans the stream from its newest entry with
// XREVRANGE, filtering by the trace and key ids stored beside each record, so a
// query costs at most one pass over the stream, whose length the sink's MAXLEN
// bounds. Records seen twice are returned once. It needs Redis 6.2 or later
// (exclusive ranges).
func NewRedisStore(c redis.UniversalClient, stream string) *RedisStore {
	return &RedisStore{c: c, streamKey: RedisStreamKey(stream)}
}

// Query implements [Store.Query].
func (s *RedisStore) Query(ctx context.Context, q Query) ([]Record, error) {
	limit := q.limit()
	var out []Record
	err := s.scan(ctx, q.TraceID, q.KeyID, q.Since, func(r Record) bool {
		if !q.match(&r) {
			return true
		}
		out = append(out, r)
		return len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out)
	return out, nil
}

// Trace implements [Store.Trace].
func (s *RedisStore) Trace(ctx context.Context, traceID string) (Trace, error) {
	if traceID == "" {
		return Trace{}, errors.New("records: empty trace id")
	}
	var recs []Record
	err := s.scan(ctx, traceID, "", time.Time{}, func(r Record) bool {
		recs = append(recs, r)
		return true
	})
	if err != nil {
		return Trace{}, err
	}
	return newTrace(traceID, recs)
}

// scan calls yield with every matching record from the newest entry back,
// each id once, until yield returns false or the stream ends.
func (s *RedisStore) scan(ctx context.Context, traceID, keyID string, since time.Time, yield func(Record) bool) error {
	var cutoffMS int64
	if !since.IsZero() {
		cutoffMS = since.Add(-redisClockSkew).UnixMilli()
	}
	seen := make(map[string]struct{})
	end := "+"
	for {
		msgs, err := s.c.XRevRangeN(ctx, s.streamKey, end, "-", redisPage).Result()
		if err != nil {
			return fmt.Errorf("records: read stream %s: %w", s.streamKey, err)
		}
		for _, m := range msgs {
			if cutoffMS > 0 && streamIDMillis(m.ID) < cutoffMS {
				return nil
			}
			if traceID != "" && stringValue(m.Values, fieldTrace) != traceID {
				continue
			}
			if keyID != "" && stringValue(m.Values, fieldKey) != keyID {
				continue
			}
			raw := stringValue(m.Values, fieldRecord)
			if raw == "" {
				continue // not written by the sink
			}
			var r Record
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return fmt.Errorf("records: stream %s entry %s: %w", s.streamKey, m.ID, err)
			}
			if !since.IsZero() && r.Start.Before(since) {
				continue
			}
			if _, dup := seen[r.ID]; dup {
				continue
			}
			seen[r.ID] = struct{}{}
			if !yield(r) {
				return nil
			}
		}
		if len(msgs) < redisPage {
			return nil
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
}

// streamIDMillis is the time part of a stream entry id ("1700000000000-0").
func streamIDMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func stringValue(m map[string]any, field string) string {
	s, _ := m[field].(string)
	return s
}

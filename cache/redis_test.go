package cache

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

func newRedisClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func newRedis(t testing.TB, c redis.UniversalClient, opts RedisOptions) *Redis {
	t.Helper()
	r, err := NewRedis(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, maxEntry int, m *Metrics) Store {
		// Each test has a prefix of its own on the shared server. The
		// generous timeout keeps -race runs from reading as an outage.
		prefix := fmt.Sprintf("test%d", n.Add(1))
		return newRedis(t, newRedisClient(t, srv.Addr()), RedisOptions{Prefix: prefix, MaxEntryBytes: maxEntry, Metrics: m, Timeout: 10 * time.Second})
	})
}

// TestRedisStoredCompressedWithTTL checks what Redis holds: the entry under
// "prefix:<hex key>", smaller than the body it keeps, with Redis's own TTL.
func TestRedisStoredCompressedWithTTL(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	s := newRedis(t, c, RedisOptions{Timeout: 10 * time.Second})
	body := bytes.Repeat([]byte(`data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"hello"}}`+"\n\n"), 500)
	mustPut(t, s, key("a"), Entry{ContentType: "text/event-stream", Body: body}, time.Hour, time.Now())
	name := DefaultRedisPrefix + ":" + key("a").String()
	n, err := c.StrLen(bg, name).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= int64(len(body))/4 {
		t.Errorf("stored %d bytes for a body of %d; want it compressed", n, len(body))
	}
	ttl, err := c.PTTL(bg, name).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("Redis TTL %v, want in (0, 1h]", ttl)
	}
}

// TestRedisOutage checks that a stopped Redis makes a lookup a miss with an
// error and a store an error, both counted, and that the store works again
// once Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	m := NewMetrics(nil)
	s := newRedis(t, newRedisClient(t, srv.Addr()), RedisOptions{Timeout: 500 * time.Millisecond, Metrics: m})
	mustPut(t, s, key("a"), entry("A"), time.Hour, t0)
	srv.Stop()
	if _, ok, err := s.Get(bg, key("a"), t0); ok || err == nil {
		t.Fatalf("Get with Redis down: found %v, err %v; want a miss with an error", ok, err)
	}
	if err := s.Put(bg, key("b"), entry("B"), time.Hour, t0); err == nil || errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put with Redis down: %v, want an error", err)
	}
	if g, p := testutil.ToFloat64(m.errors.WithLabelValues("get")), testutil.ToFloat64(m.errors.WithLabelValues("put")); g != 1 || p != 1 {
		t.Errorf("errors get %v put %v, want 1 and 1", g, p)
	}
	if mi := testutil.ToFloat64(m.misses); mi != 1 {
		t.Errorf("misses %v, want 1", mi)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Put(bg, key("c"), entry("C"), time.Hour, t0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, ok := mustGet(t, s, key("c"), t0); !ok || string(got.Body) != "C" {
		t.Fatalf("after restart: %v %q", ok, got.Body)
	}
}

// TestRedisBadEntry checks that an entry that does not decode is a miss
// with an error, never a reply.
func TestRedisBadEntry(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	m := NewMetrics(nil)
	s := newRedis(t, c, RedisOptions{Timeout: 10 * time.Second, Metrics: m})
	good, err := s.encodeEntry(&Entry{Body: []byte("hello"), Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for i, bad := range [][]byte{[]byte("junk"), good[:len(good)-2], append([]byte{entryVersion + 1}, good[1:]...), append([]byte{1}, good[1:]...)} {
		k := key(fmt.Sprint("bad", i))
		if err := c.Set(bg, DefaultRedisPrefix+":"+k.String(), bad, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Get(bg, k, t0); ok || err == nil {
			t.Errorf("entry %d: found %v err %v; want a miss with an error", i, ok, err)
		}
	}
	if g := testutil.ToFloat64(m.errors.WithLabelValues("get")); g != 4 {
		t.Errorf("get errors %v, want 4", g)
	}
	// Good entries read whole, each its own body, between bad ones.
	for i := range 4 {
		k, body := key(fmt.Sprint("good", i)), bytes.Repeat([]byte(fmt.Sprint(i)), 1000*(i+1))
		if err := s.Put(bg, k, Entry{ContentType: "application/json", Body: body}, time.Hour, t0); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Get(bg, key(fmt.Sprint("bad", i%3)), t0); ok || err == nil {
			t.Errorf("bad entry %d again: found %v err %v", i%3, ok, err)
		}
		if got, ok := mustGet(t, s, k, t0); !ok || !bytes.Equal(got.Body, body) {
			t.Errorf("good entry %d after bad ones: found %v, %d bytes", i, ok, len(got.Body))
		}
	}
}

func TestNewRedisNeedsContextTimeouts(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := NewRedis(c, RedisOptions{}); err == nil {
		t.Fatal("NewRedis accepted a client without ContextTimeoutEnabled")
	}
}

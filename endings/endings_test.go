package endings

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

type store interface {
	Put(ctx context.Context, id, value string) error
	Get(ctx context.Context, id string) (string, bool, error)
}

// Both stores keep a value under its id, replace it, and know nothing of
// other ids.
func TestStores(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	for name, s := range map[string]store{"memory": NewMemory(0, nil), "redis": NewRedis(rdb, 0)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, ok, err := s.Get(ctx, "r1"); ok || err != nil {
				t.Fatalf("empty store: ok %v err %v", ok, err)
			}
			for _, v := range []string{"UC", "UT\tupstream_per_try_idle_timeout"} {
				if err := s.Put(ctx, "r1", v); err != nil {
					t.Fatal(err)
				}
				if got, ok, err := s.Get(ctx, "r1"); got != v || !ok || err != nil {
					t.Fatalf("got %q %v %v; want %q", got, ok, err, v)
				}
			}
			if _, ok, _ := s.Get(ctx, "r2"); ok {
				t.Error("r2 found")
			}
		})
	}
	if ttl := rdb.PTTL(context.Background(), KeyPrefix+"r1").Val(); ttl <= 0 || ttl > DefaultTTL {
		t.Errorf("redis key TTL %v; want at most %v", ttl, DefaultTTL)
	}
}

// A memory ending is gone once its TTL passed.
func TestMemoryExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemory(time.Second, func() time.Time { return now })
	ctx := context.Background()
	if err := m.Put(ctx, "r", "DC"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(999 * time.Millisecond)
	if _, ok, _ := m.Get(ctx, "r"); !ok {
		t.Fatal("gone before its TTL")
	}
	now = now.Add(time.Millisecond)
	if _, ok, _ := m.Get(ctx, "r"); ok {
		t.Fatal("kept past its TTL")
	}
}

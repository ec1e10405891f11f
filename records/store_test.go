package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// storeUnderTest is a Store with the Sink that fills it.
type storeUnderTest struct {
	store Store
	sink  Sink
}

// stores returns every Store implementation, empty, for the contract tests.
func stores(t *testing.T) map[string]func(t *testing.T) storeUnderTest {
	return map[string]func(t *testing.T) storeUnderTest{
		"memory": func(t *testing.T) storeUnderTest {
			m := NewMemoryStore(2 * MaxQueryLimit)
			return storeUnderTest{m, m}
		},
		"redis": func(t *testing.T) storeUnderTest {
			_, c := startRedis(t)
			return storeUnderTest{NewRedisStore(c, DefaultRedisStream), NewRedisSink(c, DefaultRedisStream, 0)}
		},
	}
}

// TestStoreContract runs the same checks against every Store.
func TestStoreContract(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			// Three traces and two keys, written in an order that differs from
			// start order, with a record written twice (a replay).
			a := testRecords(5, "trace-a", "key-1") // req-0001 .. req-0005
			b := []Record{testRecord(6, "trace-b", "key-2"), testRecord(7, "trace-b", "key-1")}
			b[0].Team, b[1].SessionID = "research", "sess-1"
			late := testRecord(0, "trace-a", "key-1") // started first, stored last
			for _, batch := range [][]Record{a[2:], b, a[:2], a[3:4], {late}} {
				if err := s.sink.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}

			for _, tc := range []struct {
				name string
				q    Query
				want []string
			}{
				{"all", Query{}, []string{"req-0007", "req-0006", "req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}},
				{"trace", Query{TraceID: "trace-b"}, []string{"req-0007", "req-0006"}},
				{"key", Query{KeyID: "key-1"}, []string{"req-0007", "req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}},
				{"trace and key", Query{TraceID: "trace-b", KeyID: "key-1"}, []string{"req-0007"}},
				{"since", Query{Since: t0.Add(5 * time.Second)}, []string{"req-0007", "req-0006", "req-0005"}},
				{"since excludes earlier starts", Query{Since: t0.Add(5*time.Second + 1)}, []string{"req-0007", "req-0006"}},
				{"until", Query{Until: t0.Add(2 * time.Second)}, []string{"req-0001", "req-0000"}},
				{"since and until", Query{Since: t0.Add(2 * time.Second), Until: t0.Add(4 * time.Second)}, []string{"req-0003", "req-0002"}},
				{"until and key", Query{KeyID: "key-2", Until: t0.Add(6 * time.Second)}, nil},
				// The limit takes the records stored last, shown newest first.
				{"limit", Query{Limit: 3}, []string{"req-0002", "req-0001", "req-0000"}},
				{"unknown trace", Query{TraceID: "nope"}, nil},
				{"team", Query{Team: "research"}, []string{"req-0006"}},
				{"team and key", Query{Team: "platform", KeyID: "key-2"}, nil},
				{"session", Query{SessionID: "sess-1"}, []string{"req-0007"}},
			} {
				got, err := s.store.Query(ctx, tc.q)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
					t.Errorf("%s: ids (-want +got):\n%s", tc.name, diff)
				}
			}
			got, err := s.store.Query(ctx, Query{TraceID: "trace-b"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Record{b[1], b[0]}, got); diff != "" {
				t.Errorf("records differ from those written (-want +got):\n%s", diff)
			}

			tr, err := s.store.Trace(ctx, "trace-a")
			if err != nil {
				t.Fatal(err)
			}
			want := Trace{ID: "trace-a", Requests: append([]Record{late}, a...)}
			for _, r := range want.Requests {
				want.Totals.Requests++
				want.Totals.CostPicoUSD += r.CostPicoUSD
			}
			// Records 0..5: input 10*i, cache read i, 5m 2, 1h 1, output 5*i, reasoning 1.
			want.Totals.Usage = pricing.Usage{
				InputTokens: 150, CacheReadTokens: 15, CacheWrite5mTokens: 12,
				CacheWrite1hTokens: 6, OutputTokens: 75, ReasoningTokens: 6,
			}
			want.Totals.Cost = "0.05625" // 15 * 0.00375
			if diff := cmp.Diff(want, tr); diff != "" {
				t.Errorf("Trace (-want +got):\n%s", diff)
			}
			if _, err := s.store.Trace(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Trace of an unknown id: %v, want ErrNotFound", err)
			}
			if _, err := s.store.Trace(ctx, ""); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Trace of an empty id: %v, want an error other than ErrNotFound", err)
			}
		})
	}
}

func TestStoreLimits(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			// More than MaxQueryLimit records, and more than one XREVRANGE page.
			if err := s.sink.Write(ctx, testRecords(MaxQueryLimit+1, "t", "k")); err != nil {
				t.Fatal(err)
			}
			for limit, want := range map[int]int{0: DefaultQueryLimit, -1: DefaultQueryLimit, 7: 7, MaxQueryLimit + 500: MaxQueryLimit} {
				got, err := s.store.Query(ctx, Query{Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != want {
					t.Errorf("Limit %d: %d records, want %d", limit, len(got), want)
				}
				if len(got) > 0 && got[0].ID != "req-1001" {
					t.Errorf("Limit %d: first record %s, want the newest, req-1001", limit, got[0].ID)
				}
			}
			tr, err := s.store.Trace(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Totals.Requests != MaxQueryLimit+1 || tr.Requests[0].ID != "req-0001" {
				t.Errorf("Trace: %d requests starting with %s, want %d from req-0001", tr.Totals.Requests, tr.Requests[0].ID, MaxQueryLimit+1)
			}
		})
	}
}

func TestMemoryStoreRing(t *testing.T) {
	m := NewMemoryStore(3)
	ctx := context.Background()
	if err := m.Write(ctx, testRecords(5, "t", "k")); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Query(ctx, Query{})
	if diff := cmp.Diff([]string{"req-0005", "req-0004", "req-0003"}, ids(got)); diff != "" {
		t.Errorf("ring keeps the newest 3 (-want +got):\n%s", diff)
	}
	// An evicted id may come back; a held one may not.
	if err := m.Write(ctx, []Record{testRecord(1, "t", "k"), testRecord(5, "t", "k")}); err != nil {
		t.Fatal(err)
	}
	got, _ = m.Query(ctx, Query{})
	if diff := cmp.Diff([]string{"req-0005", "req-0004", "req-0001"}, ids(got)); diff != "" {
		t.Errorf("after rewriting 1 and 5 (-want +got):\n%s", diff)
	}
	if m.Name() != "memory" || m.Close() != nil {
		t.Error("Name or Close")
	}
	if NewMemoryStore(0).Write(ctx, testRecords(2, "t", "k")) != nil {
		t.Error("a store of capacity 0 (made 1) failed")
	}
}

func TestRedisStoreSinceStopsEarly(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	key := RedisStreamKey("s")
	add := func(id string, values ...any) {
		t.Helper()
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: id, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(r Record) []any {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return []any{"id", r.ID, "trace_id", r.TraceID, "key_id", r.KeyID, "record", string(b)}
	}
	// An entry stored in 1970 whose record claims a recent start (as if the
	// clocks disagreed wildly): a query with since stops at the entry's stream
	// time and never reads it. Then a recent entry, and one another program
	// added to the stream, which has no record and is skipped.
	old := testRecord(1, "t", "k")
	old.Start = t0.Add(time.Hour)
	recent := testRecord(2, "t", "k")
	recent.Start = t0.Add(time.Hour + time.Second)
	add("1000-0", entry(old)...)
	add(fmt.Sprintf("%d-0", t0.Add(time.Hour).UnixMilli()), entry(recent)...)
	add(fmt.Sprintf("%d-1", t0.Add(time.Hour).UnixMilli()), "note", "not a record")

	store := NewRedisStore(c, "s")
	got, err := store.Query(ctx, Query{Since: t0})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"req-0002"}, ids(got)); diff != "" {
		t.Errorf("since: (-want +got):\n%s", diff)
	}
	got, err = store.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"req-0002", "req-0001"}, ids(got)); diff != "" {
		t.Errorf("no since: (-want +got):\n%s", diff)
	}

	// A corrupt record is an error, not a silent gap.
	add(fmt.Sprintf("%d-2", t0.Add(time.Hour).UnixMilli()), "id", "bad", "trace_id", "t", "key_id", "k", "record", "{not json")
	if _, err := store.Query(ctx, Query{}); err == nil {
		t.Error("a corrupt record was skipped silently")
	}
}

func TestAddUsageCoversEveryField(t *testing.T) {
	var one pricing.Usage
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		if v.Field(i).Kind() != reflect.Int64 {
			t.Fatalf("pricing.Usage.%s is %v: addUsage and this test need updating", v.Type().Field(i).Name, v.Field(i).Kind())
		}
		v.Field(i).SetInt(1)
	}
	sum := reflect.ValueOf(addUsage(one, one))
	for i := range sum.NumField() {
		if sum.Field(i).Int() != 2 {
			t.Errorf("addUsage does not add pricing.Usage.%s", sum.Type().Field(i).Name)
		}
	}
}

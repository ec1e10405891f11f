package cache

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// opener makes a fresh, empty store for one test, with entries capped at
// maxEntry bytes and counting into m.
type opener func(t *testing.T, maxEntry int, m *Metrics) Store

// t0 is the clock's start in contract tests.
var t0 = time.Date(2026, 3, 12, 10, 0, 0, 0, time.UTC)

var bg = context.Background()

func key(s string) Key {
	var k Key
	copy(k[:], s)
	return k
}

func entry(body string) Entry {
	return Entry{ContentType: "application/json", Body: []byte(body), Info: []byte(`{"usage":1}`)}
}

// runContract runs the store contract against the stores of open.
func runContract(t *testing.T, open opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"MissOnEmpty", testMissOnEmpty},
		{"PutGet", testPutGet},
		{"Replace", testReplace},
		{"KeysApart", testKeysApart},
		{"TTL", testTTL},
		{"TooLarge", testTooLarge},
		{"BuffersCopied", testBuffersCopied},
		{"Metrics", testMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func mustGet(t *testing.T, s Store, k Key, now time.Time) (Entry, bool) {
	t.Helper()
	e, ok, err := s.Get(bg, k, now)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return e, ok
}

func mustPut(t *testing.T, s Store, k Key, e Entry, ttl time.Duration, now time.Time) {
	t.Helper()
	if err := s.Put(bg, k, e, ttl, now); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func testMissOnEmpty(t *testing.T, open opener) {
	s := open(t, 0, nil)
	if _, ok := mustGet(t, s, key("a"), t0); ok {
		t.Fatal("found an entry in an empty store")
	}
}

func testPutGet(t *testing.T, open opener) {
	s := open(t, 0, nil)
	body := bytes.Repeat([]byte(`event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n`), 200)
	want := Entry{ContentType: "text/event-stream; charset=utf-8", Body: body, Info: []byte("info")}
	mustPut(t, s, key("a"), want, time.Hour, t0)
	got, ok := mustGet(t, s, key("a"), t0.Add(time.Minute))
	if !ok {
		t.Fatal("miss after Put")
	}
	if got.ContentType != want.ContentType || !bytes.Equal(got.Body, want.Body) || !bytes.Equal(got.Info, want.Info) {
		t.Fatalf("got %q %d bytes %q; want %q %d bytes %q", got.ContentType, len(got.Body), got.Info, want.ContentType, len(want.Body), want.Info)
	}
	if !got.Stored.Equal(t0) || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("stored %v expires %v; want %v and %v", got.Stored, got.Expires, t0, t0.Add(time.Hour))
	}
	// An entry without info or body round-trips as well.
	mustPut(t, s, key("b"), Entry{ContentType: "application/json"}, time.Hour, t0)
	if got, ok := mustGet(t, s, key("b"), t0); !ok || len(got.Body) != 0 || len(got.Info) != 0 {
		t.Fatalf("empty entry: %v %+v", ok, got)
	}
}

func testReplace(t *testing.T, open opener) {
	s := open(t, 0, nil)
	mustPut(t, s, key("a"), entry("first"), time.Hour, t0)
	mustPut(t, s, key("a"), entry("second"), time.Hour, t0.Add(time.Second))
	got, ok := mustGet(t, s, key("a"), t0.Add(2*time.Second))
	if !ok || string(got.Body) != "second" || !got.Stored.Equal(t0.Add(time.Second)) {
		t.Fatalf("got %v %q stored %v; want the second entry", ok, got.Body, got.Stored)
	}
}

func testKeysApart(t *testing.T, open opener) {
	s := open(t, 0, nil)
	mustPut(t, s, key("a"), entry("A"), time.Hour, t0)
	mustPut(t, s, key("b"), entry("B"), time.Hour, t0)
	for k, want := range map[string]string{"a": "A", "b": "B"} {
		if got, ok := mustGet(t, s, key(k), t0); !ok || string(got.Body) != want {
			t.Errorf("key %s: %v %q, want %q", k, ok, got.Body, want)
		}
	}
	if _, ok := mustGet(t, s, key("c"), t0); ok {
		t.Error("key c found")
	}
}

// testTTL checks expiry on the caller's clock: served up to the instant
// before Stored+ttl, not at it; a refresh (Put again) starts a new TTL.
func testTTL(t *testing.T, open opener) {
	s := open(t, 0, nil)
	mustPut(t, s, key("a"), entry("A"), time.Hour, t0)
	if _, ok := mustGet(t, s, key("a"), t0.Add(time.Hour-time.Millisecond)); !ok {
		t.Fatal("expired before its TTL")
	}
	if _, ok := mustGet(t, s, key("a"), t0.Add(time.Hour)); ok {
		t.Fatal("served at its expiry")
	}
	mustPut(t, s, key("a"), entry("A2"), time.Hour, t0.Add(time.Hour))
	if got, ok := mustGet(t, s, key("a"), t0.Add(90*time.Minute)); !ok || string(got.Body) != "A2" {
		t.Fatalf("after refresh: %v %q", ok, got.Body)
	}
}

func testTooLarge(t *testing.T, open opener) {
	s := open(t, 1000, nil)
	big := entry(string(bytes.Repeat([]byte("x"), 1000)))
	if err := s.Put(bg, key("a"), big, time.Hour, t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put of %d bytes: %v, want ErrTooLarge", big.size(), err)
	}
	if _, ok := mustGet(t, s, key("a"), t0); ok {
		t.Fatal("an entry over the cap was stored")
	}
	small := entry("ok")
	mustPut(t, s, key("b"), small, time.Hour, t0)
	if _, ok := mustGet(t, s, key("b"), t0); !ok {
		t.Fatal("an entry under the cap was not stored")
	}
}

func testBuffersCopied(t *testing.T, open opener) {
	s := open(t, 0, nil)
	e := entry("body")
	mustPut(t, s, key("a"), e, time.Hour, t0)
	e.Body[0] = 'X'
	got, _ := mustGet(t, s, key("a"), t0)
	got.Body[1] = 'Y'
	again, _ := mustGet(t, s, key("a"), t0)
	if string(again.Body) != "body" {
		t.Fatalf("stored body changed through a caller's buffer: %q", again.Body)
	}
}

func testMetrics(t *testing.T, open opener) {
	m := NewMetrics(nil)
	s := open(t, 0, m)
	mustGet(t, s, key("a"), t0)
	mustPut(t, s, key("a"), entry("A"), time.Hour, t0)
	mustGet(t, s, key("a"), t0)
	mustGet(t, s, key("a"), t0)
	mustGet(t, s, key("a"), t0.Add(time.Hour)) // expired: a miss
	if h, mi := testutil.ToFloat64(m.hits), testutil.ToFloat64(m.misses); h != 2 || mi != 2 {
		t.Errorf("hits %v misses %v, want 2 and 2", h, mi)
	}
	if b := testutil.ToFloat64(m.storedBytes); b <= 0 {
		t.Errorf("stored bytes %v, want > 0", b)
	}
}

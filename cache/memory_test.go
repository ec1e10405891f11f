package cache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T, maxEntry int, m *Metrics) Store {
		return NewMemory(MemoryOptions{MaxEntryBytes: maxEntry, Metrics: m})
	})
}

// TestMemoryLRU checks the byte cap: the least recently used entries go
// first, a Get makes an entry recent, and evictions and bytes are counted.
func TestMemoryLRU(t *testing.T) {
	m := NewMetrics(nil)
	one := entry(strings.Repeat("x", 1000))
	s := NewMemory(MemoryOptions{MaxBytes: 3 * one.size(), Metrics: m})
	for i := range 3 {
		mustPut(t, s, key(fmt.Sprint(i)), one, time.Hour, t0)
	}
	mustGet(t, s, key("0"), t0) // 0 is now the most recent; 1 the least
	mustPut(t, s, key("3"), one, time.Hour, t0)
	for k, want := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
		if _, ok := mustGet(t, s, key(k), t0); ok != want {
			t.Errorf("key %s found %v, want %v", k, ok, want)
		}
	}
	if got := testutil.ToFloat64(m.evictions); got != 1 {
		t.Errorf("evictions %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bytes); got != float64(3*one.size()) {
		t.Errorf("bytes %v, want %d", got, 3*one.size())
	}
	if s.Len() != 3 {
		t.Errorf("len %d, want 3", s.Len())
	}
}

// TestMemoryExpiredDropped checks that an expired entry found by Get is
// dropped and its bytes given back.
func TestMemoryExpiredDropped(t *testing.T) {
	m := NewMetrics(nil)
	s := NewMemory(MemoryOptions{Metrics: m})
	mustPut(t, s, key("a"), entry("A"), time.Minute, t0)
	mustGet(t, s, key("a"), t0.Add(time.Minute))
	if s.Len() != 0 || testutil.ToFloat64(m.bytes) != 0 {
		t.Fatalf("len %d bytes %v after expiry; want 0 and 0", s.Len(), testutil.ToFloat64(m.bytes))
	}
}

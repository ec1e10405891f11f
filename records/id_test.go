package records

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	prev := ""
	for i := range 10_000 {
		at := t0.Add(time.Duration(i/10) * time.Millisecond) // ten ids per millisecond
		id := NewID(at)
		if !uuidV7.MatchString(id) {
			t.Fatalf("NewID = %q, not a UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
		ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
		if err != nil || ms != at.UnixMilli() {
			t.Fatalf("NewID(%v) = %q: time part %d, want %d", at, id, ms, at.UnixMilli())
		}
		if i%10 == 0 && id < prev {
			t.Fatalf("NewID(%v) = %q sorts before %q of the previous millisecond", at, id, prev)
		}
		prev = id
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = NewID(t0.Add(time.Duration(i) * time.Millisecond))
	}
}

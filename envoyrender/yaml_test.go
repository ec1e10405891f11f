package envoyrender

import (
	"testing"
	"time"
)

// Durations are written in seconds, the only unit protojson accepts.
func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		200 * time.Millisecond:  "0.2s",
		1500 * time.Millisecond: "1.5s",
		120 * time.Second:       "120s",
		2*time.Minute + 30*time.Second + 5*time.Millisecond: "150.005s",
	} {
		if got := duration(d).Value; got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

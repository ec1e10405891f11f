package extproc

import "testing"

// TestEarlyBodyBytes: an early reservation assumes the announced size only
// up to the largest body of the guess's size class and 1 MiB, so a client
// cannot make it hold a 32 MB request's worst case by announcing one.
func TestEarlyBodyBytes(t *testing.T) {
	for _, tt := range []struct {
		announced int
		previous  int // the guess's body size
		want      int
	}{
		{announced: 100_000, previous: 90_000, want: 100_000},            // same class: the request is the guess
		{announced: 131_071, previous: 65_536, want: 131_071},            // the top of the class
		{announced: 32 << 20, previous: 120, want: 127},                  // a small key announcing 32 MB
		{announced: 200_000, previous: 90_000, want: 131_071},            // a larger class than any seen
		{announced: 3 << 20, previous: 3 << 20, want: earlyMaxBodyBytes}, // above the cap
		{announced: 50, previous: 5_000, want: 50},
	} {
		g := guess{class: sizeClass(tt.previous)}
		if got := earlyBodyBytes(tt.announced, g); got != tt.want {
			t.Errorf("announced %d after %d: %d, want %d", tt.announced, tt.previous, got, tt.want)
		}
	}
}

package extproc

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/policy"
)

// TestStalled: a response that started is a stall when its stream ended
// after three quarters of the route's per_try_idle_timeout in silence, and
// never without the timeout or before the response began.
func TestStalled(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	route := func(idle time.Duration) *policy.Route {
		return &policy.Route{Fallback: policy.Fallback{PerTryIdleTimeout: idle}}
	}
	for _, tt := range []struct {
		name  string
		p     *policyProcessor
		after time.Duration
		want  bool
	}{
		{"silent for the timeout", &policyProcessor{route: route(120 * time.Second), lastResponse: t0}, 120 * time.Second, true},
		{"three quarters of it", &policyProcessor{route: route(120 * time.Second), lastResponse: t0}, 90 * time.Second, true},
		{"less", &policyProcessor{route: route(120 * time.Second), lastResponse: t0}, 90*time.Second - time.Millisecond, false},
		{"no timeout", &policyProcessor{route: route(0), lastResponse: t0}, time.Hour, false},
		{"no response yet", &policyProcessor{route: route(time.Second)}, time.Hour, false},
		{"no route", &policyProcessor{lastResponse: t0}, time.Hour, false},
	} {
		if got := tt.p.stalled(t0.Add(tt.after)); got != tt.want {
			t.Errorf("%s: stalled = %v, want %v", tt.name, got, tt.want)
		}
	}
}

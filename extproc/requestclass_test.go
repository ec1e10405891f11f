package extproc

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestRequestClassHint: Claude Code's x-claude-code-request-class hint is
// kept when it is a short lowercase token and dropped otherwise, never
// refused.
func TestRequestClassHint(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"main", "main"},
		{"subagent", "subagent"},
		{"compaction", "compaction"},
		{"new_class-2", "new_class-2"},
		{"", ""},
		{"Main", ""},
		{"main agent", ""},
		{strings.Repeat("a", 33), ""},
		{"main\x00", ""},
	} {
		h := headers{{Key: "x-claude-code-session-id", RawValue: []byte("s1")}}
		if tt.in != "" {
			h = append(h, &corev3.HeaderValue{Key: hdrRequestClass, RawValue: []byte(tt.in)})
		}
		tr, cerr := readTrace(h)
		if cerr != nil || tr.RequestClass != tt.want {
			t.Errorf("%q: class %q (%v), want %q", tt.in, tr.RequestClass, cerr, tt.want)
		}
	}
}

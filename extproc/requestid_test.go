package extproc

import "testing"

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 4, ""},
		{"abcd", 4, "abcd"},
		{"abcde", 4, "abcd"},
		{"ab\u00e9", 3, "ab"}, // the cut splits é: its first byte goes too
		{"a\xffb", 8, "ab"},   // invalid UTF-8 never reaches a record
		{"\u00e9\u00e9", 4, "\u00e9\u00e9"},
	} {
		if got := clip(tt.in, tt.n); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

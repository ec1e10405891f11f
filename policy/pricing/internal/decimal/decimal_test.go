package decimal

import (
	"math"
	"testing"
)

func TestScale(t *testing.T) {
	for _, tt := range []struct {
		text  string
		mult  int64
		want  int64
		exact bool
	}{
		{"3e-06", 1e12, 3_000_000, true},
		{"0.000003", 1e12, 3_000_000, true},
		{"3.75e-06", 1e12, 3_750_000, true},
		{"0.0000029999900000000002", 1e12, 2_999_990, false},
		{"3.0001999999999996E-7", 1e12, 300_020, false},
		{"4.6875e-09", 1e12, 4_688, false}, // half rounds away from zero
		{"0.00007499999999999999", 1e10, 750_000, false},
		{"0.0003", 1e10, 3_000_000, true},
		{"-0.5", 1, -1, false},
		{"0.30", 1e6, 300_000, true},
		{".5", 2, 1, true},
		{"0", 1e12, 0, true},
		{"1e3", 1, 1000, true},
	} {
		got, exact, err := Scale(tt.text, tt.mult)
		if err != nil || got != tt.want || exact != tt.exact {
			t.Errorf("Scale(%q, %d) = %d, %v, %v; want %d, %v", tt.text, tt.mult, got, exact, err, tt.want, tt.exact)
		}
	}
	for _, bad := range []string{"", "-", ".", "e5", "1/3", "abc", "1.2.3", "0x10", "Inf", "NaN", "1e30"} {
		if _, _, err := Scale(bad, 1e12); err == nil {
			t.Errorf("Scale(%q) accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		v              int64
		scale, minFrac int
		want           string
	}{
		{0, 12, 2, "0.00"},
		{1_500_000_000_000, 12, 2, "1.50"},
		{12_345_000_000, 12, 2, "0.012345"},
		{1, 12, 2, "0.000000000001"},
		{-2_250_000_000_000, 12, 2, "-2.25"},
		{math.MinInt64, 12, 2, "-9223372.036854775808"},
		{300_000, 6, 2, "0.30"},
		{4_125_000, 6, 2, "4.125"},
		{75_000, 6, 2, "0.075"},
	} {
		if got := Format(tt.v, tt.scale, tt.minFrac); got != tt.want {
			t.Errorf("Format(%d, %d, %d) = %q, want %q", tt.v, tt.scale, tt.minFrac, got, tt.want)
		}
	}
}

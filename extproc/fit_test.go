package extproc

import "testing"

func TestFitThinking(t *testing.T) {
	for _, tt := range []struct{ think, asked, m, want int64 }{
		{31_999, 128_000, 20_000, 4_999},   // a quarter stays a quarter
		{31_999, 128_000, 2_000, 1_024},    // never below Anthropic's minimum
		{200_000, 128_000, 8_000, 7_999},   // a budget above max_tokens stays below the new one
		{1_024, 1_100, 1_025, 1_024},       // the smallest request that can think
		{100_000, 100_001, 50_000, 49_999}, // almost all thinking
	} {
		got := fitThinking(tt.think, tt.asked, tt.m)
		if got != tt.want || got < minThinkingBudget || got >= tt.m {
			t.Errorf("fitThinking(%d, %d, %d) = %d, want %d", tt.think, tt.asked, tt.m, got, tt.want)
		}
	}
}

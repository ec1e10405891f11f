package spend

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPercentilesOfEqualsSorting checks the quickselect against
// Percentile of the sorted samples, over sizes around the insertion-sort
// cutoff, many duplicates, sorted and reversed input, and samples split
// into parts.
func TestPercentilesOfEqualsSorting(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 16, 17, 18, 19, 20, 33, 100, 1000, 12345} {
		for _, shape := range []string{"random", "few values", "sorted", "reversed", "equal"} {
			s := make([]float64, n)
			for i := range s {
				switch shape {
				case "random":
					s[i] = rnd.Float64() * 1000
				case "few values":
					s[i] = float64(rnd.IntN(4))
				case "sorted":
					s[i] = float64(i)
				case "reversed":
					s[i] = float64(n - i)
				case "equal":
					s[i] = 7
				}
			}
			sorted := slices.Sorted(slices.Values(s))
			wantP50, wantP95 := Percentile(sorted, 0.5), Percentile(sorted, 0.95)
			cut := rnd.IntN(n + 1)
			for _, parts := range [][][]float64{{slices.Clone(s)}, {slices.Clone(s[:cut]), slices.Clone(s[cut:])}} {
				gotN, p50, p95, _ := percentilesOf(parts, nil)
				if gotN != int64(n) || p50 != wantP50 || p95 != wantP95 {
					t.Errorf("%d %s in %d parts: n %d p50 %v p95 %v, want %v %v", n, shape, len(parts), gotN, p50, p95, wantP50, wantP95)
				}
			}
		}
	}
	if n, p50, p95, _ := percentilesOf([][]float64{nil, {}}, nil); n != 0 || p50 != 0 || p95 != 0 {
		t.Errorf("no samples: %d %v %v", n, p50, p95)
	}
}

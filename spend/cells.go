package spend

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cell is one row of a query's finest level (LevelBucketGroup): one bucket
// of one group, with the latency and TTFT samples its percentiles come
// from. A Store computes the cells of a query, and [Finish] the rest.
type Cell struct {
	Start time.Time
	Group []string
	// Metrics holds the counts and sums; Finish fills in the percentiles.
	Metrics
	// Latency and TTFT are the samples of the percentiles (see Metrics), in
	// any order; Finish reorders them. A query without Percentiles needs
	// none.
	Latency, TTFT []float64
}

// Finish returns the rows of q from its cells (the rows of
// q.At(LevelBucketGroup), each bucket and group at most once), for a Store
// that computes cells only: each cell, and with q.Rollup the coarser levels
// of q.Levels added up from them; with q.Percentiles, the percentiles of
// every row from the samples of its cells. It is exact: a coarser row's
// sums are its cells' sums, and its percentiles are those of all its cells'
// samples. It reorders the samples.
func Finish(q Query, cells []Cell) []Row {
	out := make([]Row, 0, len(cells))
	var scratch []float64
	finish := func(r *Row, lat, ttft [][]float64) {
		if !q.Percentiles {
			return
		}
		r.LatencyN, r.LatencyP50, r.LatencyP95, scratch = percentilesOf(lat, scratch)
		r.TTFTN, r.TTFTP50, r.TTFTP95, scratch = percentilesOf(ttft, scratch)
	}
	for i := range cells {
		c := &cells[i]
		r := Row{Start: c.Start, Group: c.Group, Metrics: c.Metrics}
		r.LatencyN, r.LatencyP50, r.LatencyP95, r.TTFTN, r.TTFTP50, r.TTFTP95 = 0, 0, 0, 0, 0, 0
		finish(&r, [][]float64{c.Latency}, [][]float64{c.TTFT})
		out = append(out, r)
	}
	type level struct {
		row       Row
		lat, ttft [][]float64
	}
	for _, l := range q.Levels() {
		if l == LevelBucketGroup {
			continue
		}
		byKey := map[string]*level{}
		var order []*level
		for i := range cells {
			c := &cells[i]
			var k string
			switch l {
			case LevelGroup:
				k = strings.Join(c.Group, "\x00")
			case LevelBucket:
				k = strconv.FormatInt(c.Start.UnixMicro(), 10)
			}
			lv := byKey[k]
			if lv == nil {
				lv = &level{row: Row{Level: l}}
				if l == LevelGroup {
					lv.row.Group = c.Group
				}
				if l == LevelBucket {
					lv.row.Start = c.Start
				}
				byKey[k] = lv
				order = append(order, lv)
			}
			lv.row.add(&c.Metrics)
			lv.lat = append(lv.lat, c.Latency)
			lv.ttft = append(lv.ttft, c.TTFT)
		}
		for _, lv := range order {
			finish(&lv.row, lv.lat, lv.ttft)
			out = append(out, lv.row)
		}
	}
	return out
}

// percentilesOf returns the count, p50 and p95 of the samples of parts,
// as Percentile, using buf as scratch space (returned, maybe grown). A
// single part is reordered in place.
func percentilesOf(parts [][]float64, buf []float64) (n int64, p50, p95 float64, _ []float64) {
	var s []float64
	if len(parts) == 1 {
		s = parts[0]
	} else {
		buf = buf[:0]
		for _, p := range parts {
			buf = append(buf, p...)
		}
		s = buf
	}
	if len(s) == 0 {
		return 0, 0, 0, buf
	}
	i50, i95 := rankOf(len(s), 0.5), rankOf(len(s), 0.95)
	nth(s, i95)
	nth(s[:i95+1], i50)
	return int64(len(s)), s[i50], s[i95], buf
}

// rankOf is the index in n sorted samples of Percentile's p.
func rankOf(n int, p float64) int {
	return min(max(int(math.Ceil(p*float64(n)))-1, 0), n-1)
}

// nth reorders s so that s[k] holds the value it has when s is sorted,
// with nothing greater before it and nothing smaller after it: a
// quickselect, linear on average, where a sort is n log n.
func nth(s []float64, k int) {
	lo, hi := 0, len(s)-1
	for hi-lo > 16 {
		// The median of three as the pivot.
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		p := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < p {
				i++
			}
			for s[j] > p {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		// Now s[lo..j] <= p <= s[i..hi], and what lies between equals p.
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return
		}
	}
	slices.Sort(s[lo : hi+1])
}

// Add adds the counts, sums and samples of o to c: for a Store that
// computes a cell in parts (its rollup and its records).
func (c *Cell) Add(o *Cell) {
	c.Metrics.add(&o.Metrics)
	c.Latency = append(c.Latency, o.Latency...)
	c.TTFT = append(c.TTFT, o.TTFT...)
}

package report

import (
	"math"
	"slices"
	"strconv"
)

// Quantiles are the usual summary of a distribution.
type Quantiles struct {
	N             int
	P50, P95, Max float64
}

// quantiles sorts vs (in place) and returns p50, p95 and max (nearest rank).
func quantiles(vs []float64) Quantiles {
	if len(vs) == 0 {
		return Quantiles{}
	}
	slices.Sort(vs)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(vs)))) - 1
		return vs[min(max(i, 0), len(vs)-1)]
	}
	return Quantiles{N: len(vs), P50: rank(0.5), P95: rank(0.95), Max: vs[len(vs)-1]}
}

// histogram counts vs in bins of width step from 0 up to top, plus one bin for values ≥ top (and
// one for negative values when there are any). It returns labels and counts.
func histogram(vs []float64, step, top float64, unit string) ([]string, []float64) {
	n := int(math.Round(top / step))
	counts := make([]float64, n+1)
	neg := 0.0
	for _, v := range vs {
		switch {
		case v < 0:
			neg++
		case v >= top:
			counts[n]++
		default:
			counts[min(int(v/step), n-1)]++
		}
	}
	labels := make([]string, 0, n+2)
	vals := make([]float64, 0, n+2)
	if neg > 0 {
		labels, vals = append(labels, "<0"), append(vals, neg)
	}
	for i := range n {
		labels = append(labels, unit+trimZero(strconv.FormatFloat(float64(i)*step, 'f', 2, 64)))
		vals = append(vals, counts[i])
	}
	labels = append(labels, unit+trimZero(strconv.FormatFloat(top, 'f', 2, 64))+"+")
	vals = append(vals, counts[n])
	return labels, vals
}

// bucket is one bin of a histogram over counts (records per request, user records per aggregate).
type bucket struct {
	label  string
	lo, hi int // inclusive
}

// countBuckets spreads a count distribution (value → how often) over fixed buckets.
func countBuckets(dist map[int]int64, buckets []bucket) ([]string, []float64) {
	labels := make([]string, len(buckets))
	vals := make([]float64, len(buckets))
	for i, b := range buckets {
		labels[i] = b.label
		for v, n := range dist {
			if v >= b.lo && v <= b.hi {
				vals[i] += float64(n)
			}
		}
	}
	return labels, vals
}

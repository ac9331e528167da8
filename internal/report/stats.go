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
	h := newBins(step, top)
	for _, v := range vs {
		h.add(v)
	}
	return h.labels(unit)
}

// bins is a histogram counted as values arrive (see histogram).
type bins struct {
	step, top float64
	counts    []float64
	neg       float64
}

func newBins(step, top float64) *bins {
	return &bins{step: step, top: top, counts: make([]float64, int(math.Round(top/step))+1)}
}

func (h *bins) add(v float64) {
	n := len(h.counts) - 1
	switch {
	case v < 0:
		h.neg++
	case v >= h.top:
		h.counts[n]++
	default:
		h.counts[min(int(v/h.step), n-1)]++
	}
}

func (h *bins) labels(unit string) ([]string, []float64) {
	n := len(h.counts) - 1
	labels := make([]string, 0, n+2)
	vals := make([]float64, 0, n+2)
	if h.neg > 0 {
		labels, vals = append(labels, "<0"), append(vals, h.neg)
	}
	for i := range n {
		labels = append(labels, unit+trimZero(strconv.FormatFloat(float64(i)*h.step, 'f', 2, 64)))
		vals = append(vals, h.counts[i])
	}
	labels = append(labels, unit+trimZero(strconv.FormatFloat(h.top, 'f', 2, 64))+"+")
	vals = append(vals, h.counts[n])
	return labels, vals
}

// maxSample bounds the values a distribution keeps for its quantiles.
const maxSample = 1 << 17

// sample is a distribution in bounded memory, whatever the number of trips: the count, the maximum
// and the histogram (when it has bins) are exact; the median and p95 come from a uniform sample of at
// most maxSample values (reservoir sampling, seeded: the same trips give the same report).
type sample struct {
	vs   []float64
	n    int
	max  float64
	rng  uint64
	bins *bins
}

func newSample(step, top float64) sample {
	var s sample
	if step > 0 {
		s.bins = newBins(step, top)
	}
	return s
}

func (s *sample) add(v float64) {
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.n++
	if s.bins != nil {
		s.bins.add(v)
	}
	if len(s.vs) < maxSample {
		s.vs = append(s.vs, v)
		return
	}
	// Algorithm R: the n-th value replaces a random one with probability maxSample/n.
	if s.rng == 0 {
		s.rng = 0x9e3779b97f4a7c15 // a fixed seed (xorshift64 needs a non-zero state)
	}
	s.rng ^= s.rng << 13
	s.rng ^= s.rng >> 7
	s.rng ^= s.rng << 17
	if j := s.rng % uint64(s.n); j < maxSample {
		s.vs[j] = v
	}
}

// quantiles of the sample, with the exact count and maximum.
func (s *sample) quantiles() Quantiles {
	q := quantiles(s.vs)
	if s.n > 0 {
		q.N, q.Max = s.n, s.max
	}
	return q
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

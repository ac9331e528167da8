package report

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNiceTicksCoverTheRange(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{0, 23.1, []float64{0, 5, 10, 15, 20, 25}},
		{0, 864, []float64{0, 200, 400, 600, 800, 1000}},
		{0, 1, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{0, 0, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{3, 47, []float64{0, 10, 20, 30, 40, 50}},
	} {
		got := niceTicks(tc.lo, tc.hi, 5)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("niceTicks(%v, %v) (-want +got):\n%s", tc.lo, tc.hi, diff)
		}
		if got[0] > tc.lo || got[len(got)-1] < tc.hi {
			t.Errorf("niceTicks(%v, %v) = %v does not cover the range", tc.lo, tc.hi, got)
		}
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200", 2.5: "2.50"} {
		if got := fmtCount(in); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0: "0", 0.25: "0.25", 1.5: "1.5", 250: "250", 12000: "12k", 2.5e6: "2.5M"} {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	labels, counts := histogram([]float64{-1, 0, 4.9, 5, 99, 100, 250}, 5, 100, "$")
	if labels[0] != "<0" || counts[0] != 1 || labels[1] != "$0" || counts[1] != 2 || counts[2] != 1 ||
		labels[len(labels)-1] != "$100+" || counts[len(counts)-1] != 2 || counts[len(counts)-2] != 1 {
		t.Errorf("histogram: %v %v", labels, counts)
	}
	total := 0.0
	for _, c := range counts {
		total += c
	}
	if total != 7 {
		t.Errorf("histogram counts %v values, want 7", total)
	}
}

// TestChartsHaveWhatTheBrowserTestLooksFor: axis labels, a legend and marks, and text is escaped.
func TestChartsHaveWhatTheBrowserTestLooksFor(t *testing.T) {
	charts := map[string]string{
		"line": string(LineChart{ID: "l", XLabel: "x <axis>", YLabel: "y", Series: []Series{{Name: "a&b", X: []float64{0, 1}, Y: []float64{1, 2}}},
			Limits: []Limit{{Y: 3, Label: "limit"}}}.SVG()),
		"bar":  string(BarChart{ID: "b", XLabel: "x", YLabel: "y", Labels: []string{"one", "two"}, Series: []BarSeries{{Name: "n", Values: []float64{1, 0}}}}.SVG()),
		"hbar": string(BarChart{ID: "h", XLabel: "x", YLabel: "y", Labels: []string{"<b>"}, Horizontal: true, Series: []BarSeries{{Name: "n", Values: []float64{5}}}}.SVG()),
		"span": string(SpanChart{ID: "s", XLabel: "x", YLabel: "y", XMax: 10, Lanes: []Lane{{Name: "f", Spans: []Span{{Start: 1, End: 2}, {Start: 1.5, End: 3, Error: true}}}}}.SVG()),
	}
	for kind, svg := range charts {
		for _, want := range []string{`class="chart"`, `class="axis-label" data-axis="x"`, `data-axis="y"`, `<g class="legend">`, `class="mark`} {
			if !strings.Contains(svg, want) {
				t.Errorf("%s chart lacks %s:\n%s", kind, want, svg)
			}
		}
		if strings.Contains(svg, "<axis>") || strings.Contains(svg, "<b>") || strings.Contains(svg, "a&b") {
			t.Errorf("%s chart has unescaped text:\n%s", kind, svg)
		}
	}
	// Overlapping spans go on separate rows.
	if strings.Count(charts["span"], `class="mark span"`) != 2 || !strings.Contains(charts["span"], errColor) {
		t.Errorf("span chart:\n%s", charts["span"])
	}
}

// TestSpanChartMergesWhatItCannotShow: 10,000 short invocations back to back do not become 10,000 rects.
func TestSpanChartMergesWhatItCannotShow(t *testing.T) {
	var spans []Span
	for i := range 10000 {
		spans = append(spans, Span{Start: float64(i) * 0.1, End: float64(i)*0.1 + 0.05, Error: i == 5000})
	}
	svg := string(SpanChart{ID: "s", XLabel: "x", YLabel: "y", XMax: 1000, Lanes: []Lane{{Name: "f", Spans: spans}}}.SVG())
	n := strings.Count(svg, `class="mark span"`)
	if n == 0 || n > 1200 {
		t.Errorf("%d rects for 10,000 spans on a 1,000 s axis", n)
	}
	if !strings.Contains(svg, errColor) || !strings.Contains(svg, "invocations from") {
		t.Error("the merged spans lost the error or their count")
	}
}

// TestSampleIsBounded: a distribution of many values keeps at most maxSample of them, with the exact
// count, maximum and histogram, and quantiles close to the exact ones.
func TestSampleIsBounded(t *testing.T) {
	const n = 5 * maxSample
	s := newSample(5, 100)
	var all []float64
	for i := range n {
		v := float64((i*7919)%n) / float64(n) * 120 // uniform on [0, 120)
		s.add(v)
		all = append(all, v)
	}
	if len(s.vs) != maxSample || s.n != n {
		t.Fatalf("kept %d values of %d, want %d", len(s.vs), s.n, maxSample)
	}
	want := quantiles(all)
	got := s.quantiles()
	if got.N != want.N || got.Max != want.Max || math.Abs(got.P50-want.P50) > 1.2 || math.Abs(got.P95-want.P95) > 1.2 {
		t.Errorf("quantiles %+v, exact %+v", got, want)
	}
	_, exact := histogram(all, 5, 100, "$")
	_, counted := s.bins.labels("$")
	if !slices.Equal(exact, counted) {
		t.Errorf("histogram %v, exact %v", counted, exact)
	}
}

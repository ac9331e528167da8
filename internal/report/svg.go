package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The charts are inline SVG written here from the report's numbers: no script, no external file. Every
// chart is an <svg class="chart" data-chart="ID"> with axis labels (text.axis-label), a legend
// (g.legend) and its marks (.mark), which is what the browser test checks.

// Chart geometry (SVG user units; the page scales the viewBox to its column).
const (
	chartW   = 560
	chartH   = 250
	padLeft  = 62
	padRight = 16
	padTop   = 30 // the legend's row
	padBot   = 46
)

// Colors of series, in order; limitColor marks a service limit, errColor errors and throttling.
var palette = []string{"#2563eb", "#16a34a", "#f59e0b", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9a3412"}

const (
	limitColor = "#dc2626"
	errColor   = "#dc2626"
	gridColor  = "#e5e7eb"
	axisColor  = "#6b7280"
)

// Series is one line of a line chart.
type Series struct {
	Name   string
	Color  string
	X, Y   []float64
	Dashed bool
}

// Limit is a horizontal reference line (a service limit).
type Limit struct {
	Y     float64
	Label string
}

// LineChart plots series over a numeric x axis.
type LineChart struct {
	ID, XLabel, YLabel string
	Series             []Series
	Limits             []Limit
	YFormat            func(float64) string // tick labels; fmtNum when nil
	Step               bool                 // draw steps (per-second buckets) instead of slopes
}

// BarChart draws one bar (or one group of bars) per label.
type BarChart struct {
	ID, XLabel, YLabel string
	Labels             []string
	Series             []BarSeries
	Horizontal         bool // labels on the y axis (long names)
	YFormat            func(float64) string
}

// BarSeries is one set of bars of a BarChart.
type BarSeries struct {
	Name   string
	Color  string
	Values []float64
}

// SpanChart draws intervals on lanes (a Gantt chart of invocations).
type SpanChart struct {
	ID, XLabel, YLabel string
	Width              float64 // viewBox width; chartW when zero (a chart that spans the page: 1160)
	Lanes              []Lane
	XMax               float64
}

// Lane is one row group of a SpanChart; spans that overlap are stacked on sub-rows.
type Lane struct {
	Name  string
	Color string
	Spans []Span
}

// Span is one interval, in x units.
type Span struct {
	Start, End float64
	Error      bool
	Title      string
}

type svgBuf struct{ strings.Builder }

func (b *svgBuf) f(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

func esc(s string) string { return html.EscapeString(s) }

func (b *svgBuf) open(id string, w, h float64, kind string) {
	b.f(`<svg class="chart" data-chart="%s" data-kind="%s" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		esc(id), kind, w, h, esc(id))
}

// legend writes the legend row at the top, from x.
func (b *svgBuf) legend(x float64, items []legendItem) {
	b.f(`<g class="legend">`)
	for _, it := range items {
		if it.dashed {
			b.f(`<line x1="%.1f" y1="12" x2="%.1f" y2="12" stroke="%s" stroke-width="2" stroke-dasharray="5 3"/>`, x, x+16, it.color)
		} else {
			b.f(`<rect x="%.1f" y="7" width="16" height="10" rx="2" fill="%s"/>`, x, it.color)
		}
		b.f(`<text class="legend-label" x="%.1f" y="16">%s</text>`, x+21, esc(it.name))
		x += 21 + textWidth(it.name) + 16
	}
	b.f(`</g>`)
}

type legendItem struct {
	name, color string
	dashed      bool
}

// textWidth estimates the width of s at the charts' 11 px font.
func textWidth(s string) float64 { return float64(len([]rune(s))) * 6.2 }

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	first, last := math.Floor(lo/step+1e-9), math.Ceil(hi/step-1e-9)
	out := make([]float64, 0, int(last-first)+1)
	for i := first; i <= last; i++ {
		out = append(out, i*step)
	}
	return out
}

// fmtNum formats a tick or value compactly: 1.2k, 3.4M, 0.25.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trimZero(strconv.FormatFloat(v/1e9, 'f', 1, 64)) + "G"
	case a >= 1e6:
		return trimZero(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4:
		return trimZero(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 100 || a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return trimZero(strconv.FormatFloat(v, 'f', 1, 64))
	default:
		return trimZero(strconv.FormatFloat(v, 'f', 2, 64))
	}
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// frame draws the grid, the ticks and the axis labels of a plot area and returns the scale functions.
type frame struct {
	x0, x1, y0, y1         float64 // plot area in SVG units (y0 top, y1 bottom)
	xmin, xmax, ymin, ymax float64
}

func (f frame) sx(v float64) float64 {
	return f.x0 + (v-f.xmin)/(f.xmax-f.xmin)*(f.x1-f.x0)
}
func (f frame) sy(v float64) float64 {
	return f.y1 - (v-f.ymin)/(f.ymax-f.ymin)*(f.y1-f.y0)
}

func (b *svgBuf) axes(f frame, xticks, yticks []float64, xfmt, yfmt func(float64) string, xlabel, ylabel string) {
	b.f(`<g class="grid">`)
	for _, t := range yticks {
		y := f.sy(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, y, f.x1, y, gridColor)
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, f.x0-6, y+4, esc(yfmt(t)))
	}
	for _, t := range xticks {
		x := f.sx(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, x, f.y1, x, f.y1+4, axisColor)
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, f.y1+16, esc(xfmt(t)))
	}
	b.f(`</g>`)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, f.y1, f.x1, f.y1, axisColor)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, f.y0, f.x0, f.y1, axisColor)
	b.f(`<text class="axis-label" data-axis="x" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (f.x0+f.x1)/2, f.y1+36, esc(xlabel))
	b.f(`<text class="axis-label" data-axis="y" transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, (f.y0+f.y1)/2, esc(ylabel))
}

// SVG renders the line chart.
func (c LineChart) SVG() template.HTML {
	var b svgBuf
	b.open(c.ID, chartW, chartH, "line")
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.Series {
		for i := range s.X {
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	for _, l := range c.Limits {
		ymax = math.Max(ymax, l.Y)
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	yticks := niceTicks(0, ymax*1.08, 5)
	f := frame{x0: padLeft, x1: chartW - padRight, y0: padTop, y1: chartH - padBot, xmin: xmin, xmax: xmax, ymin: 0, ymax: yticks[len(yticks)-1]}
	yfmt := c.YFormat
	if yfmt == nil {
		yfmt = fmtNum
	}
	xticks := niceTicks(xmin, xmax, 6)
	xticks = clip(xticks, xmin, xmax)
	b.axes(f, xticks, yticks, fmtNum, yfmt, c.XLabel, c.YLabel)
	var items []legendItem
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		items = append(items, legendItem{s.Name, color, s.Dashed})
		var d strings.Builder
		for j := range s.X {
			x, y := f.sx(s.X[j]), f.sy(s.Y[j])
			switch {
			case j == 0:
				fmt.Fprintf(&d, "M%.1f %.1f", x, y)
			case c.Step:
				fmt.Fprintf(&d, "H%.1fV%.1f", x, y)
			default:
				fmt.Fprintf(&d, "L%.1f %.1f", x, y)
			}
		}
		if len(s.X) == 1 { // a single point: a short tick so it shows
			fmt.Fprintf(&d, "h2")
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		b.f(`<path class="mark series" data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="1.6"%s><title>%s</title></path>`,
			esc(s.Name), d.String(), color, dash, esc(s.Name))
	}
	for _, l := range c.Limits {
		y := f.sy(l.Y)
		b.f(`<line class="limit" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`, f.x0, y, f.x1, y, limitColor)
		items = append(items, legendItem{l.Label, limitColor, true})
	}
	b.legend(padLeft, items)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

func clip(ts []float64, lo, hi float64) []float64 {
	var out []float64
	for _, t := range ts {
		if t >= lo-1e-9 && t <= hi+1e-9 {
			out = append(out, t)
		}
	}
	return out
}

// SVG renders the bar chart.
func (c BarChart) SVG() template.HTML {
	if c.Horizontal {
		return c.horizontal()
	}
	var b svgBuf
	b.open(c.ID, chartW, chartH, "bar")
	ymax := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			ymax = math.Max(ymax, v)
		}
	}
	if ymax <= 0 {
		ymax = 1
	}
	yticks := niceTicks(0, ymax*1.05, 5)
	n := max(len(c.Labels), 1)
	f := frame{x0: padLeft, x1: chartW - padRight, y0: padTop, y1: chartH - padBot, xmin: 0, xmax: float64(n), ymin: 0, ymax: yticks[len(yticks)-1]}
	yfmt := c.YFormat
	if yfmt == nil {
		yfmt = fmtNum
	}
	// x tick labels: every k-th label so that they do not overlap.
	slot := (f.x1 - f.x0) / float64(n)
	longest := 0.0
	for _, l := range c.Labels {
		longest = math.Max(longest, textWidth(l))
	}
	every := max(1, int(math.Ceil((longest+6)/slot)))
	b.f(`<g class="grid">`)
	for _, t := range yticks {
		y := f.sy(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, y, f.x1, y, gridColor)
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, f.x0-6, y+4, esc(yfmt(t)))
	}
	for i, l := range c.Labels {
		if i%every != 0 {
			continue
		}
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, f.x0+slot*(float64(i)+0.5), f.y1+16, esc(l))
	}
	b.f(`</g>`)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, f.y1, f.x1, f.y1, axisColor)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, f.y0, f.x0, f.y1, axisColor)
	b.f(`<text class="axis-label" data-axis="x" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (f.x0+f.x1)/2, f.y1+36, esc(c.XLabel))
	b.f(`<text class="axis-label" data-axis="y" transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, (f.y0+f.y1)/2, esc(c.YLabel))
	ns := max(len(c.Series), 1)
	bw := slot * 0.8 / float64(ns)
	var items []legendItem
	for si, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[si%len(palette)]
		}
		items = append(items, legendItem{s.Name, color, false})
		for i, v := range s.Values {
			if i >= len(c.Labels) {
				break
			}
			x := f.x0 + slot*float64(i) + slot*0.1 + bw*float64(si)
			y := f.sy(v)
			h := f.y1 - y
			if v > 0 && h < 1 {
				h, y = 1, f.y1-1
			}
			b.f(`<rect class="mark bar" x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
				x, y, math.Max(bw, 0.5), h, color, esc(c.Labels[i]), esc(fmtCount(v)))
		}
	}
	b.legend(padLeft, items)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// horizontal draws one bar per label, labels on the left (top lists: zones, reasons).
func (c BarChart) horizontal() template.HTML {
	var b svgBuf
	n := max(len(c.Labels), 1)
	row := 20.0
	h := padTop + row*float64(n) + padBot
	b.open(c.ID, chartW, h, "hbar")
	longest := 0.0
	for _, l := range c.Labels {
		longest = math.Max(longest, textWidth(l))
	}
	left := math.Min(math.Max(math.Max(longest+14, textWidth(c.YLabel)+12), 60), 250)
	xmax := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			xmax = math.Max(xmax, v)
		}
	}
	if xmax <= 0 {
		xmax = 1
	}
	xticks := niceTicks(0, xmax, 5)
	valueW := textWidth(fmtCount(xmax)) + 8 // room for the value printed after the longest bar
	f := frame{x0: left, x1: chartW - padRight - valueW, y0: padTop, y1: padTop + row*float64(n), xmin: 0, xmax: xticks[len(xticks)-1], ymin: 0, ymax: 1}
	xfmt := c.YFormat
	if xfmt == nil {
		xfmt = fmtNum
	}
	b.f(`<g class="grid">`)
	for _, t := range xticks {
		x := f.sx(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, x, f.y0, x, f.y1, gridColor)
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, f.y1+16, esc(xfmt(t)))
	}
	b.f(`</g>`)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, f.y0, f.x0, f.y1, axisColor)
	b.f(`<text class="axis-label" data-axis="x" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (f.x0+f.x1)/2, f.y1+36, esc(c.XLabel))
	b.f(`<text class="axis-label" data-axis="y" x="%.1f" y="16" text-anchor="end">%s</text>`, f.x0-6, esc(c.YLabel))
	var items []legendItem
	ns := max(len(c.Series), 1)
	bh := row * 0.75 / float64(ns)
	for i, l := range c.Labels {
		label := l
		if textWidth(label) > left-10 {
			r := []rune(label)
			label = string(r[:max(int((left-10)/6.2)-1, 1)]) + "…"
		}
		b.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s<title>%s</title></text>`, f.x0-6, f.y0+row*float64(i)+row/2+4, esc(label), esc(l))
	}
	for si, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[si%len(palette)]
		}
		items = append(items, legendItem{s.Name, color, false})
		for i, v := range s.Values {
			if i >= len(c.Labels) {
				break
			}
			y := f.y0 + row*float64(i) + row*0.125 + bh*float64(si)
			w := f.sx(v) - f.x0
			if v > 0 && w < 1 {
				w = 1
			}
			b.f(`<rect class="mark bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
				f.x0, y, w, bh, color, esc(c.Labels[i]), esc(fmtCount(v)))
			b.f(`<text class="value" x="%.1f" y="%.1f">%s</text>`, f.x0+w+4, y+bh/2+4, esc(fmtCount(v)))
		}
	}
	b.legend(f.x0, items)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// SVG renders the span chart: one lane group per function, overlapping spans on sub-rows.
func (c SpanChart) SVG() template.HTML {
	type placed struct {
		Span
		row int
	}
	type group struct {
		lane  Lane
		spans []placed
		rows  int
	}
	groups := make([]group, len(c.Lanes))
	total := 0
	const maxRows = 12
	for gi, l := range c.Lanes {
		var ends []float64 // end of the last span per sub-row
		g := group{lane: l}
		for _, s := range l.Spans {
			r := -1
			for i, e := range ends {
				if e <= s.Start {
					r = i
					break
				}
			}
			if r < 0 {
				if len(ends) < maxRows {
					ends = append(ends, 0)
					r = len(ends) - 1
				} else {
					r = len(ends) - 1 // more overlap than rows: draw on the last row
				}
			}
			ends[r] = math.Max(ends[r], s.End)
			g.spans = append(g.spans, placed{s, r})
		}
		g.rows = max(len(ends), 1)
		total += g.rows
		groups[gi] = g
	}
	rowH, gap := 11.0, 12.0
	h := padTop + float64(total)*rowH + gap*float64(len(groups)) + padBot
	w := c.Width
	if w <= 0 {
		w = chartW
	}
	var b svgBuf
	b.open(c.ID, w, h, "span")
	left := 120.0
	xmax := c.XMax
	if xmax <= 0 {
		xmax = 1
	}
	xticks := niceTicks(0, xmax, 6)
	f := frame{x0: left, x1: w - padRight, y0: padTop, y1: h - padBot, xmin: 0, xmax: xticks[len(xticks)-1], ymin: 0, ymax: 1}
	b.axes(f, xticks, nil, fmtNum, fmtNum, c.XLabel, c.YLabel)
	y := f.y0 + gap/2
	var items []legendItem
	for gi, g := range groups {
		color := g.lane.Color
		if color == "" {
			color = palette[gi%len(palette)]
		}
		items = append(items, legendItem{g.lane.Name, color, false})
		b.f(`<text class="tick lane" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, f.x0-6, y+float64(g.rows)*rowH/2+4, esc(g.lane.Name))
		for _, s := range mergeSpans(g.spans, f, func(p placed) (int, Span) { return p.row, p.Span }) {
			x0, x1 := f.sx(s.Start), f.sx(s.End)
			fill := color
			if s.Error {
				fill = errColor
			}
			b.f(`<rect class="mark span" x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="%s" fill-opacity="0.8"><title>%s</title></rect>`,
				x0, y+float64(s.row)*rowH+1, math.Max(x1-x0, 0.8), rowH-2, fill, esc(s.Title))
		}
		y += float64(g.rows)*rowH + gap
		if gi < len(groups)-1 {
			b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x0, y-gap/2, f.x1, y-gap/2, gridColor)
		}
	}
	items = append(items, legendItem{"error or timeout", errColor, false})
	b.legend(f.x0, items)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// rowSpan is a span on a sub-row, as drawn.
type rowSpan struct {
	Span
	row int
}

// mergeSpans joins, per sub-row, spans less than a unit apart on the screen (a long run has many
// thousands of short invocations; drawing each would only make the file big). A merged span is an error
// when any of its spans is; its title counts them.
func mergeSpans[T any](spans []T, f frame, get func(T) (int, Span)) []rowSpan {
	const minGap = 1.0 // SVG units
	var out []rowSpan
	last := map[int]int{} // sub-row → index in out of its last span
	count := map[int]int{}
	for _, x := range spans {
		row, s := get(x)
		if i, ok := last[row]; ok && f.sx(s.Start)-f.sx(out[i].End) < minGap {
			m := &out[i]
			m.End = math.Max(m.End, s.End)
			m.Error = m.Error || s.Error
			count[i]++
			continue
		}
		out = append(out, rowSpan{s, row})
		last[row] = len(out) - 1
	}
	for i, n := range count {
		out[i].Title = fmt.Sprintf("%d invocations from %.1f s to %.1f s (drawn as one)", n+1, out[i].Start, out[i].End)
	}
	return out
}

// fmtCount formats a count with thousands separators (non-integers keep two decimals).
func fmtCount(v float64) string {
	if v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return groupDigits(strconv.FormatInt(int64(v), 10))
}

func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

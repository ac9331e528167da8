package report

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/esm"
)

// Chart is one chart of the page with its title and a line that says how to read it.
type Chart struct {
	Title, Note string
	SVG         template.HTML
	Wide        bool // spans both columns
}

// Pipeline is the pipeline section.
type Pipeline struct {
	Timeline   bool   // the local cloud's timeline was available
	NoTimeline string // why not, and where to look instead

	Charts      []Chart // stream and consumer over time (timeline)
	Invocations *Chart  // every handler execution on a time axis (timeline)
	Functions   []FunctionRow
	Consumer    *ConsumerRow

	Latency      []LatencyRow
	LatencyChart *Chart
	LatencyNote  string

	Rejected    Reasons
	Quarantined Reasons

	Reconciliation []RecLine
	Reconciled     bool
}

// FunctionRow is one function's invocations (timeline).
type FunctionRow struct {
	Name                          string
	Invocations, Errors, Timeouts int
	Retries, Continuations        int
	P50, P95, Max                 string // durations
	Busy                          string // total time in invocations
	durations                     []float64
}

// ConsumerRow is the event source mapping's batches (timeline).
type ConsumerRow struct {
	Batches, Records, Retries int
	Outcomes                  string
	RecordsPerBatch           Quantiles
	IteratorAge               [3]string // p50, p95, max
}

// LatencyRow is one stage of the end-to-end latency.
type LatencyRow struct {
	Stage         string
	N             int
	P50, P95, Max string
	q             Quantiles
}

// Reasons are rejected rows or quarantined trips by reason, with examples.
type Reasons struct {
	Total    int64
	Chart    *Chart
	Examples []Example
}

// Example is one rejected row or quarantined trip.
type Example struct {
	Reason string
	Object string // the raw/ object it came from
	Line   int64  // line (rejected rows) or data row (quarantined trips)
	Where  string // "line 12, fare_amount" or "row 41"
	Detail string
	Raw    string
}

// RecLine is one reconciliation check.
type RecLine struct {
	OK   bool
	Text string
}

// maxPoints bounds the points of a time series; longer runs are averaged into wider buckets.
const maxPoints = 1200

func fmtDur(seconds float64) string {
	a := math.Abs(seconds)
	switch {
	case a < 1:
		return fmt.Sprintf("%.0f ms", seconds*1000)
	case a < 120:
		return fmt.Sprintf("%.2f s", seconds)
	case a < 7200:
		return fmt.Sprintf("%.1f min", seconds/60)
	default:
		return fmt.Sprintf("%.1f h", seconds/3600)
	}
}

// timeAxis turns per-second values into an x/y series in seconds since start, averaged into buckets of
// k seconds when the run is long.
type timeAxis struct {
	start, n, k int64
}

func newTimeAxis(start, end int64) timeAxis {
	n := max(end-start+1, 1)
	k := max(int64(math.Ceil(float64(n)/maxPoints)), 1)
	return timeAxis{start: start, n: n, k: k}
}

func (a timeAxis) series(values map[int64]float64) (xs, ys []float64) {
	buckets := (a.n + a.k - 1) / a.k
	ys = make([]float64, buckets)
	xs = make([]float64, buckets)
	for i := range buckets {
		xs[i] = float64(i * a.k)
	}
	for t, v := range values {
		i := (t - a.start) / a.k
		if i >= 0 && i < buckets {
			ys[i] += v / float64(a.k)
		}
	}
	return xs, ys
}

func (a timeAxis) label() string {
	if a.k == 1 {
		return "seconds since the run started"
	}
	return fmt.Sprintf("seconds since the run started (averaged over %d s)", a.k)
}

// pipelineFromTimeline builds the timeline's charts and tables.
func pipelineFromTimeline(p *Pipeline, tl *local.TimelineData) {
	m := tl.Meta
	start := m.Started.Unix()
	end := start
	for _, s := range tl.Seconds {
		end = max(end, s.T)
	}
	for _, b := range tl.Batches {
		end = max(end, b.End/1000)
	}
	if !m.Ended.IsZero() {
		end = max(end, m.Ended.Unix())
	}
	ax := newTimeAxis(start, end)

	shards := slices.Clone(m.Shards)
	perShardBytes := map[string]map[int64]float64{}
	perShardRecs := map[string]map[int64]float64{}
	throttled, retried, failed := map[int64]float64{}, map[int64]float64{}, map[int64]float64{}
	written := map[int64]float64{}
	anyFailed := false
	for _, s := range tl.Seconds {
		if perShardBytes[s.Shard] == nil {
			perShardBytes[s.Shard], perShardRecs[s.Shard] = map[int64]float64{}, map[int64]float64{}
			if !slices.Contains(shards, s.Shard) {
				shards = append(shards, s.Shard)
			}
		}
		perShardBytes[s.Shard][s.T] += float64(s.Bytes) / (1 << 20)
		perShardRecs[s.Shard][s.T] += float64(s.Records)
		throttled[s.T] += float64(s.Throttled)
		retried[s.T] += float64(s.Retried)
		failed[s.T] += float64(s.Failed)
		written[s.T] += float64(s.Records)
		anyFailed = anyFailed || s.Failed > 0
	}
	var bytesSeries, recSeries []Series
	for i, sh := range shards {
		x, y := ax.series(perShardBytes[sh])
		bytesSeries = append(bytesSeries, Series{Name: sh, Color: palette[i%len(palette)], X: x, Y: y})
		x, y = ax.series(perShardRecs[sh])
		recSeries = append(recSeries, Series{Name: sh, Color: palette[i%len(palette)], X: x, Y: y})
	}
	limits := "limits on"
	if !m.LimitsOn {
		limits = "limits OFF (--limits-off): the lines show what AWS would allow"
	}
	p.Charts = append(p.Charts,
		Chart{
			Title: "Stream write throughput per shard",
			Note:  fmt.Sprintf("MiB/s stored (data + partition key) against the %s limit per shard; %d shard(s), %s", fmtMiB(m.ShardBytesPerSecond), len(shards), limits),
			SVG: LineChart{ID: "shard-bytes", XLabel: ax.label(), YLabel: "MiB/s written", Series: bytesSeries, Step: true,
				Limits: []Limit{{float64(m.ShardBytesPerSecond) / (1 << 20), "limit " + fmtMiB(m.ShardBytesPerSecond) + " per shard"}}}.SVG(),
		},
		Chart{
			Title: "Stream write records per shard",
			Note:  fmt.Sprintf("Kinesis records/s stored against the %d records/s limit per shard (an aggregate counts once)", m.ShardRecordsPerSecond),
			SVG: LineChart{ID: "shard-records", XLabel: ax.label(), YLabel: "records/s written", Series: recSeries, Step: true,
				Limits: []Limit{{float64(m.ShardRecordsPerSecond), fmt.Sprintf("limit %d/s per shard", m.ShardRecordsPerSecond)}}}.SVG(),
		})
	tx, ty := ax.series(throttled)
	rx, ry := ax.series(retried)
	errSeries := []Series{{Name: "throttled entries", Color: errColor, X: tx, Y: ty}, {Name: "retried entries", Color: palette[0], X: rx, Y: ry, Dashed: true}}
	if anyFailed {
		fx, fy := ax.series(failed)
		errSeries = append(errSeries, Series{Name: "InternalFailure entries", Color: palette[2], X: fx, Y: fy})
	}
	var nThrottled, nRetried float64
	for _, v := range throttled {
		nThrottled += v
	}
	for _, v := range retried {
		nRetried += v
	}
	p.Charts = append(p.Charts, Chart{
		Title: "Throttled and retried entries",
		Note: fmt.Sprintf("%s entries throttled (ProvisionedThroughputExceeded), %s entries sent again after a failure or a timeout, all shards",
			fmtCount(nThrottled), fmtCount(nRetried)),
		SVG: LineChart{ID: "throttles", XLabel: ax.label(), YLabel: "entries/s", Series: errSeries, Step: true}.SVG(),
	})

	perReq := map[int]int64{}
	for _, r := range tl.Puts {
		perReq[r.Entries]++
	}
	reqLabels, reqVals := countBuckets(perReq, []bucket{{"1", 1, 1}, {"2–10", 2, 10}, {"11–50", 11, 50}, {"51–100", 51, 100}, {"101–250", 101, 250}, {"251–499", 251, 499}, {"500", 500, 500}})
	p.Charts = append(p.Charts, Chart{
		Title: "Kinesis records per request",
		Note:  fmt.Sprintf("%s PutRecords requests (500 entries at most)", fmtCount(float64(len(tl.Puts)))),
		SVG:   BarChart{ID: "records-per-request", XLabel: "entries in one PutRecords request", YLabel: "requests", Labels: reqLabels, Series: []BarSeries{{Name: "requests", Color: palette[4], Values: reqVals}}}.SVG(),
	})
	var kin, users float64
	for n, c := range tl.Aggregates {
		kin += float64(c)
		users += float64(n) * float64(c)
	}
	aggLabels, aggVals := countBuckets(tl.Aggregates, []bucket{{"1", 1, 1}, {"2–10", 2, 10}, {"11–50", 11, 50}, {"51–100", 51, 100}, {"101–200", 101, 200}, {"201–500", 201, 500}, {"501–1000", 501, 1000}, {">1000", 1001, math.MaxInt}})
	aggNote := "KPL aggregation"
	if kin > 0 {
		aggNote = fmt.Sprintf("%s user records in %s Kinesis records stored: %.1f per record on average (KPL aggregation; 1 = not aggregated)", fmtCount(users), fmtCount(kin), users/kin)
	}
	p.Charts = append(p.Charts, Chart{
		Title: "User records per Kinesis record",
		Note:  aggNote,
		SVG:   BarChart{ID: "user-records-per-aggregate", XLabel: "user records in one Kinesis record", YLabel: "Kinesis records", Labels: aggLabels, Series: []BarSeries{{Name: "Kinesis records", Color: palette[3], Values: aggVals}}}.SVG(),
	})

	// Consumer: Kinesis records delivered to ProcessFunction per second against the records written.
	if len(tl.Batches) > 0 {
		delivered := map[int64]float64{}
		var ages, sizes []float64
		c := &ConsumerRow{}
		outcomes := map[string]int{}
		for _, b := range tl.Batches {
			c.Batches++
			c.Records += b.Records
			if b.Retry {
				c.Retries++
			}
			outcomes[b.Outcome]++
			if b.Outcome == esm.OutcomeOK || b.Outcome == esm.OutcomePartial {
				delivered[b.End/1000] += float64(b.Records)
			}
			ages = append(ages, float64(b.IteratorAgeMS)/1000)
			sizes = append(sizes, float64(b.Records))
		}
		var parts []string
		for _, o := range []string{esm.OutcomeOK, esm.OutcomePartial, esm.OutcomeFunctionError, esm.OutcomeInvalidResponse} {
			if outcomes[o] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", outcomes[o], o))
			}
		}
		c.Outcomes = strings.Join(parts, ", ")
		c.RecordsPerBatch = quantiles(sizes)
		q := quantiles(ages)
		c.IteratorAge = [3]string{fmtDur(q.P50), fmtDur(q.P95), fmtDur(q.Max)}
		p.Consumer = c
		wx, wy := ax.series(written)
		dx, dy := ax.series(delivered)
		p.Charts = append(p.Charts, Chart{
			Title: "Stream in, consumer out",
			Note: fmt.Sprintf("Kinesis records written (all shards) and processed by ProcessFunction so far: the gap is the consumer's lag; iterator age p50 %s, max %s",
				c.IteratorAge[0], c.IteratorAge[2]),
			SVG: LineChart{ID: "consumer", XLabel: ax.label(), YLabel: "Kinesis records (cumulative)", Step: true,
				Series: []Series{{Name: "written", Color: palette[0], X: wx, Y: cumulative(wy, float64(ax.k))},
					{Name: "processed by ProcessFunction", Color: palette[1], X: dx, Y: cumulative(dy, float64(ax.k)), Dashed: true}}}.SVG(),
		})
	}

	// Functions: every execution on a time axis, and a table.
	byFn := map[string]*FunctionRow{}
	var names []string
	lanes := map[string]*Lane{}
	for _, inv := range tl.Invocations {
		r := byFn[inv.Function]
		if r == nil {
			r = &FunctionRow{Name: inv.Function}
			byFn[inv.Function] = r
			names = append(names, inv.Function)
			lanes[inv.Function] = &Lane{Name: strings.TrimSuffix(inv.Function, "Function")}
		}
		r.Invocations++
		d := float64(inv.End-inv.Start) / 1000
		r.durations = append(r.durations, d)
		if inv.Error != "" {
			r.Errors++
		}
		if inv.Error == "Sandbox.Timedout" {
			r.Timeouts++
		}
		if inv.Attempt > 1 {
			r.Retries++
		}
		if inv.Continuation {
			r.Continuations++
		}
		title := fmt.Sprintf("%s %s: %s", inv.Function, inv.RequestID, fmtDur(d))
		if inv.Error != "" {
			title += " — " + inv.Error
		}
		lanes[inv.Function].Spans = append(lanes[inv.Function].Spans, Span{
			Start: float64(inv.Start)/1000 - float64(start), End: float64(inv.End)/1000 - float64(start), Error: inv.Error != "", Title: title,
		})
	}
	order := map[string]int{local.IngestFunction: 0, local.ProcessFunction: 1, local.ReplayFunction: 2}
	slices.SortFunc(names, func(a, b string) int {
		oa, ok := order[a]
		if !ok {
			oa = 9
		}
		ob, ok := order[b]
		if !ok {
			ob = 9
		}
		return cmp.Or(cmp.Compare(oa, ob), cmp.Compare(a, b))
	})
	var laneList []Lane
	for i, n := range names {
		r := byFn[n]
		var busy float64
		for _, d := range r.durations {
			busy += d
		}
		q := quantiles(r.durations)
		r.P50, r.P95, r.Max, r.Busy = fmtDur(q.P50), fmtDur(q.P95), fmtDur(q.Max), fmtDur(busy)
		p.Functions = append(p.Functions, *r)
		l := *lanes[n]
		l.Color = palette[i%len(palette)]
		laneList = append(laneList, l)
	}
	if len(laneList) > 0 {
		p.Invocations = &Chart{
			Title: "Function invocations",
			Note:  "every handler execution from start to end; overlapping executions (concurrency) on separate rows; red: an error or a timeout",
			SVG:   SpanChart{ID: "invocations", XLabel: ax.label(), YLabel: "function", Lanes: laneList, XMax: float64(ax.n), Width: 1160}.SVG(),
			Wide:  true,
		}
	}
}

// cumulative turns per-second rates averaged over buckets of k seconds into running totals.
func cumulative(ys []float64, k float64) []float64 {
	out := make([]float64, len(ys))
	sum := 0.0
	for i, y := range ys {
		sum += y * k
		out[i] = math.Round(sum)
	}
	return out
}

func fmtMiB(b int) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB/s", b>>20)
	}
	return fmt.Sprintf("%.2f MiB/s", float64(b)/(1<<20))
}

// latency builds the end-to-end latency rows from the trips.
func (p *Pipeline) latency(l *latencyAcc, timeline bool) {
	rows := []struct {
		stage string
		vs    *sample
	}{
		{"object put → record in the stream", &l.putToStream},
		{"record in the stream → trip in Parquet", &l.streamToParquet},
		{"object put → trip in Parquet (end to end)", &l.putToParquet},
	}
	var labels []string
	var p50, p95, mx []float64
	for _, r := range rows {
		if r.vs.n == 0 {
			continue
		}
		q := r.vs.quantiles()
		p.Latency = append(p.Latency, LatencyRow{Stage: r.stage, N: q.N, P50: fmtDur(q.P50), P95: fmtDur(q.P95), Max: fmtDur(q.Max), q: q})
		labels = append(labels, strings.SplitN(r.stage, " (", 2)[0])
		p50, p95, mx = append(p50, q.P50), append(p95, q.P95), append(mx, q.Max)
	}
	p.LatencyNote = "object put: the raw object's LastModified; trip in Parquet: the Parquet object's LastModified"
	if timeline {
		p.LatencyNote += "; record in the stream: the PutRecords request that stored it (timeline)"
	} else {
		p.LatencyNote += "; the stream stage needs the local cloud's timeline"
	}
	if l.noSource > 0 {
		p.LatencyNote += fmt.Sprintf("; %s trips without their raw object (deleted or replayed from elsewhere) are left out", fmtCount(float64(l.noSource)))
	}
	if len(labels) > 0 {
		short := make([]string, len(labels))
		for i, s := range labels {
			short[i] = map[string]string{
				"object put → record in the stream":      "put → stream",
				"record in the stream → trip in Parquet": "stream → Parquet",
				"object put → trip in Parquet":           "put → Parquet",
			}[s]
		}
		p.LatencyChart = &Chart{
			Title: "End-to-end latency",
			Note:  "per trip, in seconds: half the trips took less than p50, 95 % less than p95",
			SVG: BarChart{ID: "latency", XLabel: "stage", YLabel: "seconds", Labels: short, Series: []BarSeries{
				{Name: "p50", Color: palette[1], Values: p50}, {Name: "p95", Color: palette[2], Values: p95}, {Name: "max", Color: errColor, Values: mx},
			}}.SVG(),
		}
	}
}

// reasons builds a Reasons block from counts and examples.
func reasons(id, what string, counts map[string]int64, examples map[string][]Example, color string) Reasons {
	r := Reasons{}
	kvs := sortedByCount(counts)
	for _, x := range kvs {
		r.Total += x.v
		r.Examples = append(r.Examples, examples[x.k]...)
	}
	if len(kvs) > 0 {
		l, v := labelsValues(kvs)
		r.Chart = &Chart{
			Title: what,
			SVG:   BarChart{ID: id, XLabel: "count", YLabel: "reason", Labels: l, Horizontal: true, Series: []BarSeries{{Name: "count", Color: color, Values: v}}}.SVG(),
		}
	}
	return r
}

// RunWindow is the run the timeline covers.
type RunWindow struct {
	Started, Ended time.Time
	Wall           string
	Shards         int
	LimitsOn       bool
}

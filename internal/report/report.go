// Package report builds the run report: one self-contained HTML page (inline SVG charts drawn from
// numbers inlined in the page; no script, no font, no stylesheet or image from elsewhere) that shows what
// a run of the pipeline did.
//
//   - The pipeline: per-shard write throughput against the shard limits, throttled and retried entries,
//     records per request and user records per aggregate, the consumer against the stream, every
//     function invocation, end-to-end latency, rejected rows and quarantined trips by reason with
//     examples, and the reconciliation. The charts over time need the local cloud's timeline
//     (local.TimelineFile); a deployed bucket has none (CloudWatch has those metrics on AWS).
//   - The data: trips per pickup date and hour, top pickup zones and boroughs, fare, tip, distance and
//     speed distributions, payment and taxi types — read from processed/trips/ itself.
//   - The outputs: objects, bytes and folders under each area of the bucket, and the Parquet file sizes.
//
// Build reads a bucket through the S3 API (the local bucket of a run, or a deployed one) and Render
// writes the page. The headline numbers are local.Summary's, so the page and `--summary-json` agree.
package report

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"path"
	"strings"
	"time"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/version"
)

// Input is what a report is built from.
type Input struct {
	Bucket     BucketReader
	BucketName string
	Location   string // what the page names as the source: a folder or s3://bucket

	// Timeline is the local cloud's record of the run; nil for a deployed bucket.
	Timeline *local.TimelineData
	// Summary, when set, is used as is (the summary `taxistream local` just printed); otherwise the
	// report computes it from the bucket with local.SummarizeBucket.
	Summary *local.Summary
	// FailureRecords is the number of on-failure records (local: files under <dir>/failures/); negative
	// when they cannot be read (a deployed stack's queue). Used only when Summary is nil.
	FailureRecords int

	Now func() time.Time // default time.Now
}

// Report is everything the page shows.
type Report struct {
	Location  string
	Generated time.Time
	Version   string
	Run       *RunWindow // from the timeline
	Summary   local.Summary
	Tiles     []Tile
	Pipeline  Pipeline
	Data      Data
	Outputs   Outputs
}

// Tile is one headline number. Metric is the key of the number in the summary JSON
// (`taxistream local --summary-json`): the browser test compares the two.
type Tile struct {
	Label, Metric string
	Value         int64
	Text          string
	Bad           bool // shown in red (non-zero rejects, failures)
	Note          string
}

// Outputs is the outputs section.
type Outputs struct {
	Rows      []OutputRow
	FileSizes *Chart
	// Compaction is the effect of compacting processed/trips/ (files and bytes before and after), from
	// the summary of a local run that compacted (taxistream local runs CompactFunction once idle); nil
	// otherwise, and the page says so.
	Compaction *Compaction
}

// Compaction is what compaction did to processed/trips/ (see Outputs.Compaction).
type Compaction struct {
	FilesBefore, FilesAfter int
	BytesBefore, BytesAfter int64
}

// OutputRow is one area of the bucket.
type OutputRow struct {
	Prefix, What string
	Objects      int
	Bytes        int64
	Folders      int // distinct folders holding objects (partitions, for processed/trips/)
	Size         string
	AvgSize      string
}

// Build reads the bucket (and the timeline, when given) and computes the report.
func Build(ctx context.Context, in Input) (*Report, error) {
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	r := &Report{Location: in.Location, Generated: now().UTC(), Version: version.Get().Short()}
	archive, consumer := true, true // a deployed stack has both
	if tl := in.Timeline; tl != nil {
		archive, consumer = tl.Meta.Archive, tl.Meta.Consumer
		r.Run = &RunWindow{Started: tl.Meta.Started, Ended: tl.Meta.Ended, Shards: len(tl.Meta.Shards), LimitsOn: tl.Meta.LimitsOn}
		if !tl.Meta.Ended.IsZero() {
			r.Run.Wall = fmtDur(tl.Meta.Ended.Sub(tl.Meta.Started).Seconds())
		}
	}
	if in.Summary != nil {
		r.Summary = *in.Summary
		if c := in.Summary.Compaction; c != nil {
			r.Outputs.Compaction = &Compaction{FilesBefore: c.FilesBefore, FilesAfter: c.FilesAfter, BytesBefore: c.BytesBefore, BytesAfter: c.BytesAfter}
		}
	} else {
		s, err := local.SummarizeBucket(ctx, in.Bucket, in.BucketName, archive, consumer, in.FailureRecords)
		if err != nil {
			return nil, fmt.Errorf("summarizing the bucket: %w", err)
		}
		r.Summary = s
	}
	var arrive arrivals
	if tl := in.Timeline; tl != nil {
		var pts []putPoint
		for _, p := range tl.Puts {
			if p.Stored > 0 {
				pts = append(pts, putPoint{time.UnixMilli(p.T), p.Counter})
			}
		}
		arrive = arrivalsFrom(pts)
	}
	sc, err := scanBucket(ctx, in.Bucket, in.BucketName, arrive)
	if err != nil {
		return nil, err
	}
	r.tiles()
	r.Pipeline.Timeline = in.Timeline != nil
	if in.Timeline != nil {
		pipelineFromTimeline(&r.Pipeline, in.Timeline)
	} else {
		r.Pipeline.NoTimeline = "The charts over time (per-shard throughput against the limits, throttling, invocations, the consumer) " +
			"come from the timeline the local cloud records: run `taxistream report` on a local run's folder for them. " +
			"On AWS, CloudWatch has the same metrics: the stream's IncomingBytes, IncomingRecords and " +
			"WriteProvisionedThroughputExceeded, the functions' Invocations, Duration, Errors and IteratorAge " +
			"(the stack's dashboard, when it has one). Latency below is from object timestamps only."
	}
	r.Pipeline.latency(&sc.lat, in.Timeline != nil)
	r.Pipeline.Rejected = reasons("rejected-reasons", "Rejected rows by reason", sc.rejected, sc.rejectedEx, palette[2])
	r.Pipeline.Quarantined = reasons("quarantine-rules", "Quarantined trips by rule", sc.quarantined, sc.quarantineEx, palette[5])
	r.Pipeline.Quarantined.Total = sc.quarantineN
	for _, l := range r.Summary.Reconciliation {
		r.Pipeline.Reconciliation = append(r.Pipeline.Reconciliation, RecLine{OK: !strings.HasPrefix(l, "MISMATCH"), Text: l})
	}
	r.Pipeline.Reconciled = r.Summary.Reconciled
	r.Data = sc.data.section()
	r.outputs(sc)
	return r, nil
}

func (r *Report) tiles() {
	s := r.Summary
	add := func(label, metric string, v int64, bad bool, note string) {
		r.Tiles = append(r.Tiles, Tile{Label: label, Metric: metric, Value: v, Text: fmtCount(float64(v)), Bad: bad, Note: note})
	}
	add("objects ingested", "objects", int64(s.Objects), s.ObjectsFailed > 0, fmt.Sprintf("%d done, %d failed", s.ObjectsDone, s.ObjectsFailed))
	add("rows read", "rows_read", s.RowsRead, false, "data rows in raw/")
	add("records sent", "records_sent", s.RecordsSent, false, fmt.Sprintf("in %s Kinesis records", fmtCount(float64(s.KinesisRecords))))
	add("rows rejected", "rejected", s.Rejected, s.Rejected > 0, "not convertible, under rejected/")
	add("entries throttled", "throttled", s.Throttled, false, fmt.Sprintf("%s PutRecords retries", fmtCount(float64(s.Retries))))
	add("trips in Parquet", "trips_processed", s.TripsProcessed, false, fmt.Sprintf("in %s files", fmtCount(float64(s.TripObjects))))
	add("trips quarantined", "quarantined", s.Quarantined, s.Quarantined > 0, "failed validation")
	add("archived records", "archive_records", s.ArchiveRecords, false, fmt.Sprintf("in %d Firehose objects", s.ArchiveObjects))
	add("continuations", "continuations", int64(s.Continuations), false, "ingest hand-overs")
	add("failure records", "failure_records", int64(s.FailureRecords), s.FailureRecords > 0, "batches or events given up")
}

func (r *Report) outputs(sc *scan) {
	for _, p := range prefixes {
		objs := sc.listed[p.prefix]
		row := OutputRow{Prefix: p.prefix, What: p.what, Objects: len(objs)}
		folders := map[string]bool{}
		for _, o := range objs {
			row.Bytes += o.size
			folders[path.Dir(o.key)] = true
		}
		row.Folders = len(folders)
		row.Size = fmtBytes(row.Bytes)
		if row.Objects > 0 {
			row.AvgSize = fmtBytes(row.Bytes / int64(row.Objects))
		}
		r.Outputs.Rows = append(r.Outputs.Rows, row)
	}
	var sizes []int64
	for _, o := range sc.listed[process.TripsPrefix] {
		if strings.HasSuffix(o.key, ".parquet") {
			sizes = append(sizes, o.size)
		}
	}
	if len(sizes) == 0 {
		return
	}
	bounds := []struct {
		label string
		hi    int64
	}{{"< 4 KB", 4 << 10}, {"4–16 KB", 16 << 10}, {"16–64 KB", 64 << 10}, {"64–256 KB", 256 << 10}, {"256 KB–1 MB", 1 << 20},
		{"1–16 MB", 16 << 20}, {"16–128 MB", 128 << 20}, {"≥ 128 MB", math.MaxInt64}}
	labels := make([]string, len(bounds))
	vals := make([]float64, len(bounds))
	var total int64
	for i, b := range bounds {
		labels[i] = b.label
	}
	for _, s := range sizes {
		total += s
		for i, b := range bounds {
			if s < b.hi {
				vals[i]++
				break
			}
		}
	}
	r.Outputs.FileSizes = &Chart{
		Title: "Parquet file sizes under processed/trips/",
		Note: fmt.Sprintf("%s files, %s on average; query engines (Athena, Spark) read many small files slowly — 128 MB or more is the usual target",
			fmtCount(float64(len(sizes))), fmtBytes(total/int64(len(sizes)))),
		SVG: BarChart{ID: "file-sizes", XLabel: "file size", YLabel: "files", Labels: labels, Series: []BarSeries{{Name: "Parquet files", Color: palette[4], Values: vals}}}.SVG(),
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

//go:embed page.html.tmpl
var pageFS embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"count": func(v any) string {
		switch n := v.(type) {
		case int:
			return fmtCount(float64(n))
		case int64:
			return fmtCount(float64(n))
		case float64:
			return fmtCount(n)
		}
		return fmt.Sprint(v)
	},
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct":  func(v float64) string { return fmt.Sprintf("%.1f %%", v) },
}).ParseFS(pageFS, "page.html.tmpl"))

// Render writes the page.
func (r *Report) Render(w io.Writer) error {
	if err := page.Execute(w, r); err != nil {
		return fmt.Errorf("rendering the report: %w", err)
	}
	return nil
}

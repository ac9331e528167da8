package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/producer"
)

// LocalSection is whole local-cloud runs (`taxistream local`), each in its own process: with limits
// off (issue 17 goal 2: the fast local mode, and goal 4: the local run's own CPU), or with limits on
// across several shards (goal 1: how much of the stream's write capacity ingestion uses).
type LocalSection struct {
	Skipped string     `json:"skipped,omitempty"`
	Setup   string     `json:"setup,omitempty"`
	Runs    []LocalRun `json:"runs,omitempty"`
}

// LocalRun is one run of the local cloud from the first put until the summary is read.
type LocalRun struct {
	Label     string `json:"label"`
	Input     string `json:"input"`
	Shards    int    `json:"shards"`
	Routing   string `json:"routing"`
	LimitsOff bool   `json:"limits_off"`

	Rows       int64 `json:"rows"` // rows read (all objects)
	Sent       int64 `json:"records_sent"`
	Rejected   int64 `json:"rejected"`
	Reconciled bool  `json:"reconciled"`

	// Pipeline is the time from the first put to the last output object written (processed/,
	// quarantine/, archive/, rejected/, state/); Drained until the local cloud reported itself idle
	// (which takes a few quiet polls more); Summary is reading the bucket back and reconciling.
	Pipeline float64 `json:"pipeline_s"`
	Drained  float64 `json:"drained_s"`
	Summary  float64 `json:"summary_s"`
	// Ingest is IngestFunction's own time: its first invocation's start to its last one's end.
	Ingest     float64 `json:"ingest_s"`
	RowsPerSec float64 `json:"rows_per_s"` // rows ÷ Pipeline

	// CPU seconds of the whole process (every function, the stream, Firehose, the bucket) until
	// drained, and for the summary; per million rows read.
	CPUPipeline        float64 `json:"cpu_pipeline_s"`
	CPUSummary         float64 `json:"cpu_summary_s"`
	CPUPerMRows        float64 `json:"cpu_per_million_rows_s"`
	SummaryCPUPerMRows float64 `json:"summary_cpu_per_million_rows_s"`
	PeakRSS            int64   `json:"peak_rss_bytes"`

	// The stream: bytes and Kinesis records stored, entries throttled, the share of the bytes each
	// shard got, and the uniform bound: bytes ÷ (shards × 1 MiB/s), the least time any producer needs.
	StreamBytes     int64     `json:"stream_bytes"`
	StreamRecords   int64     `json:"stream_records"`
	Throttled       int64     `json:"throttled_entries"`
	ThrottledShare  float64   `json:"throttled_share"` // of entries (stored + throttled)
	ShardShares     []float64 `json:"shard_byte_shares"`
	UniformBound    float64   `json:"uniform_bound_s"`
	OverBound       float64   `json:"ingest_over_bound"` // Ingest ÷ UniformBound − 1
	StreamShareUsed float64   `json:"write_capacity_used"`
	Objects         int       `json:"objects"`
}

func localSetup(limitsOff bool) string {
	if limitsOff {
		return "`taxistream local --limits-off` in a child process: local.Start with the repository's template.yaml (limits off: no stream limits, " +
			"no producer pacing, 20 ms polls, no batching window), a fresh bucket folder, the input put into raw/, Drain, then Summarize; " +
			"pipeline time = first put to the newest output object"
	}
	return "`taxistream local --param ShardCount=N --param ShardRouting=R` in a child process, limits on (as AWS): IngestFunction's time " +
		"(first invocation start to last end, continuations included) against the uniform bound bytes ÷ (shards × 1 MiB/s)"
}

// runLocal runs the limits-off runs: the demo and the generated file, on one and two shards.
func runLocal(ctx context.Context, opts *Options, work string) (*LocalSection, error) {
	sec := &LocalSection{Setup: localSetup(true)}
	if len(opts.Child) == 0 {
		sec.Skipped = skipf(opts, "%v", errNoChild)
		return sec, nil
	}
	demoRows := int64(60000)
	if opts.Quick {
		demoRows = 6000
	}
	runsDir, err := runsFolder(work)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(runsDir)
	run := func(a localArgs) error {
		r, err := runLocalChild(ctx, opts, runsDir, a)
		if err == nil {
			sec.Runs = append(sec.Runs, r)
		}
		return err
	}
	// The demo first: it needs no input file, and writing the 100 MB one just before it would take the
	// machine's recently used free memory for its page cache; on the VMs this runs on, a page that has
	// not been used for a while costs tens of microseconds the first time it is touched
	// (docs/performance.md), and a sub-second run touches tens of thousands.
	if err := run(localArgs{label: "demo", demoRows: demoRows, shards: 1, routing: "balanced", limitsOff: true}); err != nil {
		return nil, err
	}
	path, err := localInput(opts, work)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	for _, n := range []int{1, 2} {
		if err := run(localArgs{label: fmt.Sprintf("%d MB file, %d shard(s)", opts.MB, n), file: path, shards: n, routing: "balanced", limitsOff: true}); err != nil {
			return nil, err
		}
	}
	return sec, nil
}

// runShards runs the generated file with limits on over 4 and 8 shards, balanced and routed by key.
func runShards(ctx context.Context, opts *Options, work string) (*LocalSection, error) {
	sec := &LocalSection{Setup: localSetup(false)}
	if len(opts.Child) == 0 {
		sec.Skipped = skipf(opts, "%v", errNoChild)
		return sec, nil
	}
	path, err := localInput(opts, work)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	runsDir, err := runsFolder(work)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(runsDir)
	for _, n := range opts.ShardCounts {
		for _, routing := range opts.Routings {
			r, err := runLocalChild(ctx, opts, runsDir, localArgs{label: fmt.Sprintf("%d MB file, %d shards, %s", opts.MB, n, routing),
				file: path, shards: n, routing: routing})
			if err != nil {
				return nil, err
			}
			sec.Runs = append(sec.Runs, r)
		}
	}
	return sec, nil
}

func localInput(opts *Options, work string) (string, error) {
	path := filepath.Join(work, "yellow_tripdata_2019-01.csv")
	if fileExists(path) {
		return path, nil
	}
	fmt.Fprintf(opts.Log, "   generating %d MB of yellow 2019 CSV\n", opts.MB)
	_, err := genFile(path, int64(opts.MB)*1e6)
	return path, err
}

type localArgs struct {
	label     string
	file      string
	demoRows  int64
	shards    int
	routing   string
	limitsOff bool
}

// runsFolder makes the folder of a section's local runs. Each run keeps its folder until the section
// ends: deleting a run's thousand files just before the next run starts would make the next one pay
// for it. For some seconds after a delete, ext4 skips the inodes it freed when it creates files and
// folders (recently_deleted), and with thousands of them every new object file and pickup_date
// folder of the next run scanned past them: 10–17 % of a demo run's CPU in openat and mkdirat instead
// of 1–4 % (docs/performance.md). A run on a machine that did not just delete a run does not see it.
func runsFolder(work string) (string, error) {
	return os.MkdirTemp(work, "local-runs-")
}

// runLocalChild runs one local run in a new folder under dir, which it leaves for the caller to delete.
func runLocalChild(ctx context.Context, opts *Options, dir string, a localArgs) (LocalRun, error) {
	dir, err := os.MkdirTemp(dir, "local-")
	if err != nil {
		return LocalRun{}, err
	}
	args := []string{childLocal, "-dir", dir, "-template", filepath.Join(opts.RepoDir, "template.yaml"),
		"-shards", fmt.Sprint(a.shards), "-routing", a.routing, fmt.Sprintf("-limits-off=%v", a.limitsOff)}
	if a.file != "" {
		args = append(args, "-file", a.file)
	} else {
		args = append(args, "-demo-rows", fmt.Sprint(a.demoRows))
	}
	fmt.Fprintf(opts.Log, "   %s (limits %s) ...\n", a.label, onOff(!a.limitsOff))
	r, err := runChild(ctx, opts, args...)
	if err != nil {
		return LocalRun{}, err
	}
	if r.Local == nil {
		return LocalRun{}, fmt.Errorf("local child %s: no result", a.label)
	}
	lr := *r.Local
	lr.Label, lr.PeakRSS = a.label, r.PeakRSS
	fmt.Fprintf(opts.Log, "   %s: %.0f rows/s (pipeline %.1f s, ingest %.1f s, bound %.1f s, %.1f %% over, throttled %.2f %%), CPU %.1f s per million rows + summary %.1f s; reconciled %v\n",
		lr.Label, lr.RowsPerSec, lr.Pipeline, lr.Ingest, lr.UniformBound, 100*lr.OverBound, 100*lr.ThrottledShare, lr.CPUPerMRows, lr.SummaryCPUPerMRows, lr.Reconciled)
	if !lr.Reconciled {
		return lr, fmt.Errorf("local run %s: not every row is accounted for", a.label)
	}
	return lr, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// childLocalRun is the child side of a local run.
func childLocalRun(ctx context.Context, args []string) (childResult, error) {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	dir := fs.String("dir", "", "local cloud folder (emptied)")
	tpl := fs.String("template", "template.yaml", "SAM template")
	shards := fs.Int("shards", 1, "ShardCount")
	routing := fs.String("routing", "balanced", "ShardRouting")
	limitsOff := fs.Bool("limits-off", false, "limits off")
	file := fs.String("file", "", "file to put into raw/")
	demoRows := fs.Int64("demo-rows", 0, "rows of demo files to put into raw/ (instead of -file)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline (until drained) to this file, and of the summary to FILE.summary")
	if err := fs.Parse(args); err != nil {
		return childResult{}, err
	}
	if *dir == "" || (*file == "") == (*demoRows == 0) {
		return childResult{}, errors.New("child local: want -dir and one of -file, -demo-rows")
	}
	if _, err := producer.ParseRouting(*routing); err != nil {
		return childResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var ingestStart, ingestEnd time.Time
	cloud, err := local.Start(ctx, local.Options{
		Dir: *dir, TemplatePath: *tpl, Fresh: true, LimitsOff: *limitsOff,
		Overrides: map[string]string{"ShardCount": fmt.Sprint(*shards), "ShardRouting": *routing},
		WrapHandler: func(id string, h lambda.Handler) lambda.Handler {
			if id != local.IngestFunction {
				return h
			}
			return timedHandler{h, func(start, end time.Time) {
				mu.Lock()
				defer mu.Unlock()
				if ingestStart.IsZero() || start.Before(ingestStart) {
					ingestStart = start
				}
				if end.After(ingestEnd) {
					ingestEnd = end
				}
			}}
		},
	})
	if err != nil {
		return childResult{}, err
	}
	defer cloud.Close()

	lr := &LocalRun{Shards: *shards, Routing: *routing, LimitsOff: *limitsOff}
	if *profile != "" {
		pf, err := os.Create(*profile)
		if err != nil {
			return childResult{}, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return childResult{}, err
		}
	}
	start, cpu0 := time.Now(), cpuNow()
	if *file != "" {
		lr.Input = filepath.Base(*file)
		f, err := os.Open(*file)
		if err != nil {
			return childResult{}, err
		}
		_, err = cloud.Bucket.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cloud.Bucket.Name()), Key: aws.String("raw/" + filepath.Base(*file)), Body: f})
		f.Close()
		if err != nil {
			return childResult{}, err
		}
	} else {
		lr.Input = fmt.Sprintf("the demo files (%d rows)", *demoRows)
		if _, err := local.PutDemo(ctx, cloud, *demoRows); err != nil {
			return childResult{}, err
		}
	}
	if err := cloud.Drain(ctx); err != nil {
		return childResult{}, fmt.Errorf("draining: %w", err)
	}
	drained, cpuDrained := time.Since(start), cpuNow()
	if *profile != "" {
		pprof.StopCPUProfile()
		pf, err := os.Create(*profile + ".summary")
		if err != nil {
			return childResult{}, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return childResult{}, err
		}
	}
	last, err := newestOutput(cloud.Bucket.Dir())
	if err != nil {
		return childResult{}, err
	}
	sum, err := cloud.Summarize(ctx)
	if err != nil {
		return childResult{}, fmt.Errorf("summarizing: %w", err)
	}
	summary, cpuSum := time.Since(start)-drained, cpuNow()
	if *profile != "" {
		pprof.StopCPUProfile()
	}

	lr.Rows, lr.Sent, lr.Rejected, lr.Reconciled, lr.Objects = sum.RowsRead, sum.RecordsSent, sum.Rejected, sum.Reconciled, sum.Objects
	lr.Pipeline, lr.Drained, lr.Summary = last.Sub(start).Seconds(), drained.Seconds(), summary.Seconds()
	if !ingestEnd.IsZero() {
		lr.Ingest = ingestEnd.Sub(ingestStart).Seconds()
	}
	lr.CPUPipeline, lr.CPUSummary = (cpuDrained - cpu0).Seconds(), (cpuSum - cpuDrained).Seconds()
	if lr.Rows > 0 {
		lr.CPUPerMRows = lr.CPUPipeline / float64(lr.Rows) * 1e6
		lr.SummaryCPUPerMRows = lr.CPUSummary / float64(lr.Rows) * 1e6
	}
	if lr.Pipeline > 0 {
		lr.RowsPerSec = float64(lr.Rows) / lr.Pipeline
	}
	st := cloud.Stream.Stats()
	lr.StreamBytes, lr.StreamRecords, lr.Throttled = st.BytesStored, st.RecordsStored, st.Throttled
	if n := st.RecordsStored + st.Throttled; n > 0 {
		lr.ThrottledShare = float64(st.Throttled) / float64(n)
	}
	for _, sh := range st.Shards {
		if st.BytesStored > 0 {
			lr.ShardShares = append(lr.ShardShares, float64(sh.BytesStored)/float64(st.BytesStored))
		}
	}
	lr.UniformBound = float64(st.BytesStored) / (float64(*shards) * kinesislimit.ShardWriteBytesPerSecond)
	if lr.UniformBound > 0 && lr.Ingest > 0 {
		lr.OverBound = lr.Ingest/lr.UniformBound - 1
		lr.StreamShareUsed = lr.UniformBound / lr.Ingest
	}
	return childResult{Rows: lr.Rows, Records: lr.Sent, Rejected: lr.Rejected, Wall: lr.Pipeline, CPU: lr.CPUPipeline, Local: lr}, nil
}

// timedHandler reports each invocation's start and end.
type timedHandler struct {
	next lambda.Handler
	done func(start, end time.Time)
}

func (h timedHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	start := time.Now()
	out, err := h.next.Invoke(ctx, payload)
	h.done(start, time.Now())
	return out, err
}

// newestOutput returns the modification time of the newest object the pipeline wrote (everything in
// the bucket folder but raw/ and the bucket's own .meta/ and .tmp/).
func newestOutput(dir string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == "raw" || strings.HasPrefix(rel, ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	if newest.IsZero() && err == nil {
		err = errors.New("no output objects")
	}
	return newest, err
}

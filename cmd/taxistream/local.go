package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/schollz/progressbar/v3"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/feed"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/local/wire"
)

// localFlags are the flags shared by `local` and `invoke`.
type localFlags struct {
	dir, template, zones string
	zoneShapes           string
	params               multiFlag
	limitsOff            bool
	faults               stream.Faults
	s3Faults             local.S3Faults
	s3FaultFunction      string
	timeouts, env        multiFlag
}

func (f *localFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "dir", ".taxistream", "folder of the local cloud (the bucket is <dir>/bucket)")
	fs.StringVar(&f.template, "template", "template.yaml", "the SAM template the local cloud reads its settings from")
	fs.StringVar(&f.zones, "zones", "", "taxi zone lookup CSV for ProcessFunction (file path)")
	fs.StringVar(&f.zoneShapes, "zone-shapes", "", "TLC's taxi_zones.zip (or a WGS 84 GeoJSON of the zones) for ProcessFunction: trips with coordinates but no zone ids get them from it (file path)")
	fs.Var(&f.params, "param", "template parameter override Key=Value (repeatable), e.g. --param ShardCount=2")
	fs.BoolVar(&f.limitsOff, "limits-off", false, "turn the stream's per-shard throughput limits off (on by default, like AWS)")
	fs.Float64Var(&f.faults.InternalFailureRate, "internal-failure-rate", 0, "share of PutRecords entries failed with InternalFailure")
	fs.Float64Var(&f.faults.RequestErrorRate, "request-error-rate", 0, "share of stream requests failed with a 5xx")
	fs.Float64Var(&f.faults.StoreThenFailRate, "store-then-fail-rate", 0, "share of PutRecords requests stored but answered with a timeout")
	fs.DurationVar(&f.faults.Latency, "latency", 0, "latency added to every stream call")
	fs.Int64Var(&f.faults.Seed, "seed", 1, "seed of the fault injection")
	fs.Float64Var(&f.s3Faults.PutErrorRate, "s3-put-error-rate", 0, "share of the S3 PutObject calls of --s3-fault-function failed with a 500 (nothing stored)")
	fs.Float64Var(&f.s3Faults.PutStoreThenFailRate, "s3-store-then-fail-rate", 0, "share of the S3 PutObject calls of --s3-fault-function stored but answered with a 500")
	fs.StringVar(&f.s3FaultFunction, "s3-fault-function", "process", "function whose S3 writes fail: ingest, process, replay or a logical id")
	fs.Var(&f.timeouts, "function-timeout", "override a function's template Timeout, FUNCTION=DURATION (repeatable), e.g. --function-timeout ingest=10s")
	fs.Var(&f.env, "env", "override a function's environment variable, FUNCTION:NAME=VALUE (repeatable), e.g. --env ingest:DEADLINE_MARGIN=2s")
}

// logicalID maps a short function name (ingest, process, replay) to its logical id.
func logicalID(name string) string {
	if v, ok := functionIDs[name]; ok {
		return v
	}
	return name
}

func (f *localFlags) options() (local.Options, error) {
	overrides := map[string]string{}
	for _, p := range f.params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return local.Options{}, fmt.Errorf("%w: --param %q: want Key=Value", errUsage, p)
		}
		overrides[k] = v
	}
	opts := local.Options{
		Dir: f.dir, TemplatePath: f.template, Overrides: overrides, LimitsOff: f.limitsOff, Faults: f.faults,
		ZoneLookup: f.zones, S3Faults: f.s3Faults,
	}
	opts.S3Faults.Function = logicalID(f.s3FaultFunction)
	if f.zoneShapes != "" {
		abs, err := filepath.Abs(f.zoneShapes)
		if err != nil {
			return local.Options{}, fmt.Errorf("--zone-shapes %q: %w", f.zoneShapes, err)
		}
		opts.Env = map[string]map[string]string{local.ProcessFunction: {"ZONE_SHAPES": abs}} // --env may override it
	}
	opts.S3Faults.Seed = uint64(f.faults.Seed)
	for _, t := range f.timeouts {
		fn, v, ok := strings.Cut(t, "=")
		d, err := time.ParseDuration(v)
		if !ok || fn == "" || err != nil || d <= 0 {
			return local.Options{}, fmt.Errorf("%w: --function-timeout %q: want FUNCTION=DURATION, e.g. ingest=10s", errUsage, t)
		}
		if opts.FunctionTimeouts == nil {
			opts.FunctionTimeouts = map[string]time.Duration{}
		}
		opts.FunctionTimeouts[logicalID(fn)] = d
	}
	for _, e := range f.env {
		fn, kv, ok1 := strings.Cut(e, ":")
		k, v, ok2 := strings.Cut(kv, "=")
		if !ok1 || !ok2 || fn == "" || k == "" {
			return local.Options{}, fmt.Errorf("%w: --env %q: want FUNCTION:NAME=VALUE, e.g. ingest:DEADLINE_MARGIN=2s", errUsage, e)
		}
		if opts.Env == nil {
			opts.Env = map[string]map[string]string{}
		}
		id := logicalID(fn)
		if opts.Env[id] == nil {
			opts.Env[id] = map[string]string{}
		}
		opts.Env[id][k] = v
	}
	return opts, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdLocal runs the whole pipeline on the embedded local cloud.
func cmdLocal(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf localFlags
	lf.register(fs)
	demo := fs.Bool("demo", false, "generate realistic demo files and drop them into raw/")
	demoRows := fs.Int64("demo-rows", 60000, "rows across the demo files")
	watch := fs.Bool("watch", false, "keep running: files copied into <dir>/bucket/raw/ flow through the pipeline (Ctrl-C stops)")
	keep := fs.Bool("keep", false, "keep what an earlier run left in <dir> (by default --demo starts afresh)")
	summaryJSON := fs.String("summary-json", "", "also write the summary as JSON to this file")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up when the pipeline is not idle after this long")
	quiet := fs.Bool("quiet", false, "no progress bar")
	compactIdle := fs.Bool("compact", true, "once the pipeline is idle, run CompactFunction over processed/trips/ (as its schedule does on AWS)")
	serve := fs.Bool("serve", false, "keep running and serve the bucket (S3) and the stream (Kinesis) on --addr to the AWS CLI, boto3 and the SDKs (AWS_ENDPOINT_URL); Ctrl-C stops")
	addr := fs.String("addr", wire.DefaultAddr, "address of --serve (loopback only by default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (pipeline, compaction, summary) to this file, for `go tool pprof`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream local [--demo] [--watch] [--serve [--addr HOST:PORT]] [flags] [FILE...]\n\nRuns IngestFunction, Firehose, ProcessFunction, ReplayFunction and CompactFunction on the embedded local\ncloud with the settings of template.yaml. FILEs are copied into raw/ (which triggers ingestion, as on AWS);\nonce the pipeline is idle, CompactFunction merges processed/trips/ (--compact=false skips it).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !*demo && !*watch && !*serve && fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: give files, --demo, --watch or --serve", errUsage)
	}
	for _, name := range fs.Args() { // before the cloud starts
		if _, err := feed.StatInput(name); err != nil {
			return err
		}
	}
	opts, err := lf.options()
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	opts.Fresh = *demo && !*keep
	cloud, err := local.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer cloud.Close()
	fmt.Fprintf(stderr, "local cloud up: bucket %s (%s), stream %s (%d shard(s), limits %s), template %s\n",
		cloud.Bucket.Name(), cloud.Bucket.Dir(), cloud.Stream.Name(), cloud.Settings.Stream.ShardCount, onOff(!opts.LimitsOff), opts.TemplatePath)

	stopServe := func() {}
	if *serve {
		if stopServe, err = startServe(cloud, *addr, stderr); err != nil {
			return err
		}
		defer stopServe()
	}
	runCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	stopProgress := startProgress(runCtx, cloud, stderr, *quiet)
	if *demo {
		if _, err := local.PutDemo(runCtx, cloud, *demoRows); err != nil {
			stopProgress()
			return err
		}
	}
	for _, name := range fs.Args() {
		if err := putFile(runCtx, cloud, name); err != nil {
			stopProgress()
			return err
		}
	}
	if *watch || *serve {
		if *watch {
			fmt.Fprintf(stderr, "watching %s: copy trip files there; Ctrl-C to stop\n", filepath.Join(cloud.Bucket.Dir(), "raw"))
			werr := cloud.Bucket.Watch(ctx, "raw/", time.Second, func(err error) { fmt.Fprintln(stderr, "watch:", err) })
			if werr != nil && !errors.Is(werr, context.Canceled) {
				stopProgress()
				return werr
			}
		} else {
			<-ctx.Done()
		}
		stopServe() // nothing new arrives while the pipeline drains
		// Ctrl-C: finish what is in flight with a fresh deadline.
		runCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), *timeout)
		defer cancel()
	}
	err = cloud.Drain(runCtx)
	stopProgress()
	if err != nil {
		return fmt.Errorf("waiting for the pipeline to finish: %w", err)
	}
	var compaction *local.CompactionSummary
	if *compactIdle {
		if compaction, err = cloud.Compact(runCtx, compact.Request{}); err != nil {
			return fmt.Errorf("compacting processed/trips/: %w", err)
		}
	}
	sum, err := cloud.Summarize(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	sum.Compaction = compaction
	printSummary(stdout, sum, cloud)
	if *summaryJSON != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(*summaryJSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	report, err := writeRunReport(context.WithoutCancel(ctx), cloud, lf.dir, &sum)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", report)
	if !sum.Reconciled {
		return errors.New("not every row is accounted for (see the reconciliation above)")
	}
	return nil
}

// startCPUProfile writes a CPU profile to path until the returned func is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// putFile copies a local file into raw/<base name>.
func putFile(ctx context.Context, cloud *local.Cloud, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	key := "raw/" + filepath.Base(name)
	if _, err := cloud.Bucket.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cloud.Bucket.Name()), Key: aws.String(key), Body: f}); err != nil {
		return fmt.Errorf("putting %s as %s: %w", name, key, err)
	}
	return nil
}

// startProgress shows a spinner with the live counters until the returned func is called.
func startProgress(ctx context.Context, cloud *local.Cloud, w io.Writer, quiet bool) (stop func()) {
	if quiet {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st := cloud.Stream.Stats()
			desc := fmt.Sprintf("stream: %d records, %.1f MB, %d throttled", st.RecordsStored, float64(st.BytesStored)/1e6, st.Throttled)
			if cloud.ESM != nil {
				desc += fmt.Sprintf(" | consumer: %d records", cloud.ESM.Stats().RecordsProcessed)
			}
			if cloud.Firehose != nil {
				desc += fmt.Sprintf(" | archive: %d objects", cloud.Firehose.Stats().ObjectsWritten)
			}
			bar.Describe(desc)
			bar.Add(1)
		}
	}()
	return func() {
		select {
		case <-done:
		default:
			close(done)
		}
		<-finished
		bar.Finish()
	}
}

func printSummary(w io.Writer, s local.Summary, cloud *local.Cloud) {
	fmt.Fprintf(w, "\ntaxistream local — summary\n")
	fmt.Fprintf(w, "  objects            %d (%d done, %d failed)\n", s.Objects, s.ObjectsDone, s.ObjectsFailed)
	for _, r := range s.FailedReasons {
		fmt.Fprintf(w, "    failed: %s\n", r)
	}
	fmt.Fprintf(w, "  rows read          %d\n", s.RowsRead)
	fmt.Fprintf(w, "  records sent       %d (%d Kinesis records)\n", s.RecordsSent, s.KinesisRecords)
	fmt.Fprintf(w, "  rejected rows      %d", s.Rejected)
	if len(s.RejectedByReason) > 0 {
		var parts []string
		for r, n := range s.RejectedByReason {
			parts = append(parts, fmt.Sprintf("%s %d", r, n))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  throttled, retried %d entries throttled, %d retries\n", s.Throttled, s.Retries)
	fmt.Fprintf(w, "  continuations      %d\n", s.Continuations)
	fmt.Fprintf(w, "  archive            %d objects, %d records (%d distinct), %d error objects\n", s.ArchiveObjects, s.ArchiveRecords, s.ArchiveDistinct, s.ArchiveErrors)
	fmt.Fprintf(w, "  trips processed    %d in %d Parquet objects (%d distinct, %d processed_duplicates)\n", s.TripsProcessed, s.TripObjects, s.TripsDistinct, s.ProcessedDuplicates)
	if c := s.Compaction; c != nil {
		r := c.Result
		fmt.Fprintf(w, "  compaction         %d → %d Parquet objects in %d partitions (%d rows merged, %d duplicates dropped, %.1f s)\n",
			c.FilesBefore, c.FilesAfter, c.Partitions, r.RowsIn, r.Duplicates, c.Seconds)
	}
	fmt.Fprintf(w, "  quarantined        %d\n", s.Quarantined)
	fmt.Fprintf(w, "  windows written    %d\n", s.Windows)
	fmt.Fprintf(w, "  failure records    %d\n", s.FailureRecords)
	for _, l := range s.Reconciliation {
		fmt.Fprintf(w, "  %s\n", l)
	}
	verdict := "every row is accounted for"
	if !s.Reconciled {
		verdict = "NOT every row is accounted for"
	}
	fmt.Fprintf(w, "reconciliation: %s\n", verdict)
	dir := cloud.Bucket.Dir()
	fmt.Fprintf(w, "outputs: %s/{processed,quarantine,archive,rejected,state}/  logs: %s\n", dir, filepath.Join(filepath.Dir(dir), "logs", "functions.log"))
}

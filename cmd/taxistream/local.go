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

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/ingest"
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
	fs.StringVar(&f.template, "template", "", "the SAM template the local cloud reads its settings from (default ./template.yaml, else the one built into this binary)")
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
//
// The folder (--dir) keeps everything between runs: the bucket, the stream's records and sequence
// numbers, Firehose's and the event source mapping's checkpoints, the failure records. A run adds to
// it; `--reset` empties it first. Whatever way a run ends — done, Ctrl-C, --timeout, a crash — the next
// run in the folder resumes what was left unfinished; `taxistream local` with nothing else does only
// that.
func cmdLocal(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf localFlags
	lf.register(fs)
	demo := fs.Bool("demo", false, "generate realistic demo files and drop them into raw/ (a second demo in the folder adds new files)")
	demoRows := fs.Int64("demo-rows", 60000, "rows across the demo files")
	watch := fs.Bool("watch", false, "keep running: files copied into <dir>/bucket/raw/ flow through the pipeline (Ctrl-C stops)")
	reset := fs.Bool("reset", false, "empty <dir> first: delete what earlier runs left (outputs, stream, checkpoints)")
	keep := fs.Bool("keep", false, "no effect: the folder is always kept (use --reset to start afresh)")
	summaryJSON := fs.String("summary-json", "", "also write the summary as JSON to this file")
	timeout := fs.Duration("timeout", 15*time.Minute, "stop when the pipeline is not idle after this long (the next run resumes)")
	quiet := fs.Bool("quiet", false, "no progress display (lines about files picked up and done are still printed)")
	compactIdle := fs.Bool("compact", true, "once the pipeline is idle, run CompactFunction over processed/trips/ (as its schedule does on AWS)")
	serve := fs.Bool("serve", false, "keep running and serve the bucket (S3) and the stream (Kinesis) on --addr to the AWS CLI, boto3 and the SDKs (AWS_ENDPOINT_URL); Ctrl-C stops")
	addr := fs.String("addr", wire.DefaultAddr, "address of --serve (loopback only by default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (pipeline, compaction, summary) to this file, for `go tool pprof`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream local [--demo] [--watch] [--serve [--addr HOST:PORT]] [--reset] [flags] [FILE...]\n\n"+
			"Runs IngestFunction, Firehose, ProcessFunction, ReplayFunction and CompactFunction on the embedded local\n"+
			"cloud with the settings of template.yaml. FILEs are copied into raw/ (which triggers ingestion, as on AWS);\n"+
			"once the pipeline is idle, CompactFunction merges processed/trips/ (--compact=false skips it).\n"+
			"The folder --dir is kept between runs; a run resumes what an earlier one left unfinished, and\n"+
			"`taxistream local` with no files resumes only. Ctrl-C stops (twice: at once); the next run resumes.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(stderr, "note: --keep is the default now (the folder is always kept); --reset starts afresh")
	}
	files, skipped := checkInputs("local", fs.Args(), stderr) // every argument, before the cloud starts
	feeding := *demo || *watch || *serve || len(files) > 0
	if !feeding {
		if len(skipped) > 0 {
			return skippedError(skipped)
		}
		if _, err := os.Stat(filepath.Join(lf.dir, "bucket")); err != nil || *reset {
			fs.Usage()
			return fmt.Errorf("%w: give files, --demo, --watch or --serve (%s holds no local cloud to resume)", errUsage, lf.dir)
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
	opts.Fresh = *reset
	cloud, err := local.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer cloud.Close()
	fmt.Fprintf(stderr, "local cloud up: bucket %s (%s), stream %s (%d shard(s), limits %s), template %s\n",
		cloud.Bucket.Name(), cloud.Bucket.Dir(), cloud.Stream.Name(), cloud.Settings.Stream.ShardCount, onOff(!opts.LimitsOff), cloud.TemplatePath)
	tr := newTracker(cloud, stderr, *quiet)
	for _, o := range cloud.Recovered() {
		verb := "resuming"
		if o.Outcome != ingest.OutcomeResumed {
			verb = "sweeper: " + o.Outcome
		}
		tr.trackManifest(o.Manifest, o.Key, verb)
	}
	for _, ev := range cloud.Renotified() {
		tr.track(ev.Key, ev.ETag, ev.Size, "notifying again (never started)")
	}
	if cloud.Stream.Reopened() && !feeding {
		fmt.Fprintf(stderr, "resuming the folder %s: %d object(s) in flight, %d never started\n", lf.dir, len(cloud.Recovered()), len(cloud.Renotified()))
	}

	stopServe := func() {}
	if *serve {
		if stopServe, err = startServe(cloud, *addr, stderr); err != nil {
			return err
		}
		defer stopServe()
	}
	rawDir := filepath.Join(cloud.Bucket.Dir(), "raw")
	watchDir := ""
	if *watch {
		watchDir = rawDir
	}
	trCtx, stopTracker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTracker()
	go tr.run(trCtx, watchDir)

	// runCtx ends with Ctrl-C or --timeout; what follows tells which.
	runCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var feedErr error
	if *demo {
		if _, err := local.PutDemo(runCtx, cloud, *demoRows); err != nil && runCtx.Err() == nil {
			feedErr = err
		}
	}
	for _, name := range files {
		if runCtx.Err() != nil || feedErr != nil {
			break
		}
		if err := putFile(runCtx, cloud, name); err != nil && runCtx.Err() == nil {
			// A file that could not be copied in (it vanished, a read error): the others go on.
			fmt.Fprintf(stderr, "taxistream local: skipping %s: %v\n", name, err)
			skipped = append(skipped, name)
		}
	}
	if feedErr != nil {
		tr.stopAndWait()
		return feedErr
	}
	if *watch || *serve {
		if *watch {
			if err := os.MkdirAll(rawDir, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", rawDir, err)
			}
			fmt.Fprintf(stderr, "watching %s: copy trip files there (%s); Ctrl-C to stop\n", rawDir, tr.filters())
			werr := cloud.Bucket.Watch(ctx, "raw/", time.Second, func(err error) { tr.printf("watch: %v", err) })
			if werr != nil && !errors.Is(werr, context.Canceled) {
				tr.stopAndWait()
				return werr
			}
		} else {
			<-ctx.Done()
		}
		stopServe() // nothing new arrives while the pipeline drains
		// Ctrl-C: finish what is in flight with a fresh deadline (a second Ctrl-C exits at once).
		fmt.Fprintln(stderr, "stopping: finishing what is in flight (Ctrl-C again to exit at once; the next run resumes)")
		runCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), *timeout)
		defer cancel()
	}
	ending := endDone
	var drainErr error
	if runCtx.Err() == nil {
		if err := cloud.Drain(runCtx); err != nil && runCtx.Err() == nil {
			drainErr = fmt.Errorf("waiting for the pipeline to finish: %w", err)
			ending = endFailed
		}
	}
	// Once the pipeline is idle, CompactFunction, as its schedule would run on AWS.
	var compaction *local.CompactionSummary
	if *compactIdle && ending == endDone && runCtx.Err() == nil {
		tr.printf("pipeline idle: CompactFunction merges processed/trips/ (as its schedule does on AWS; --compact=false skips it)")
		var err error
		if compaction, err = cloud.Compact(runCtx, compact.Request{}); err != nil && runCtx.Err() == nil {
			drainErr = fmt.Errorf("compacting processed/trips/: %w", err)
			ending = endFailed
		}
	}
	switch {
	case ending != endDone:
	case ctx.Err() != nil && !*watch && !*serve:
		ending = endInterrupted
	case runCtx.Err() != nil:
		ending = endTimedOut
	}
	if ending != endDone {
		// Stop where we are: the objects in flight are released at their checkpoints, the stream,
		// Firehose and the event source mapping keep theirs in the folder.
		fmt.Fprintf(stderr, "%s: stopping the pipeline and releasing the objects in flight\n", ending)
		ictx, icancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := cloud.Interrupt(ictx); err != nil {
			fmt.Fprintln(stderr, "warning:", err)
		}
		icancel()
	}
	tr.stopAndWait()
	sum, err := cloud.Summarize(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	sum.PeakRSSBytes = peakRSS()
	sum.Compaction = compaction
	printSummary(stdout, sum, cloud)
	printEnding(stdout, sum, ending, *timeout, lf.dir)
	if *summaryJSON != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(*summaryJSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	// The run report, whatever way the run ended.
	report, err := writeRunReport(context.WithoutCancel(ctx), cloud, lf.dir, &sum)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", report)
	switch {
	case drainErr != nil:
		return drainErr
	case ending == endInterrupted:
		return fmt.Errorf("%w: %d object(s) in flight; run `taxistream local --dir %s` to resume", errInterrupted, len(sum.InFlight), lf.dir)
	case ending == endTimedOut:
		return fmt.Errorf("timed out after %s with %d object(s) in flight; run `taxistream local --dir %s` to resume", *timeout, len(sum.InFlight), lf.dir)
	case len(skipped) > 0:
		return skippedError(skipped)
	case !sum.Reconciled:
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

// How a run ended.
const (
	endDone        = "done"
	endInterrupted = "interrupted"
	endTimedOut    = "timed out"
	endFailed      = "stopped after an error"
)

// printEnding says what is not finished and how to go on.
func printEnding(w io.Writer, s local.Summary, ending string, timeout time.Duration, dir string) {
	if len(s.InFlight) == 0 {
		return
	}
	switch ending {
	case endInterrupted:
		fmt.Fprintf(w, "interrupted with %d object(s) in flight (released at their checkpoints):\n", len(s.InFlight))
	case endTimedOut:
		fmt.Fprintf(w, "timed out after %s with %d object(s) in flight (released at their checkpoints):\n", timeout, len(s.InFlight))
	default:
		fmt.Fprintf(w, "%d object(s) not finished:\n", len(s.InFlight))
	}
	for _, o := range s.InFlight {
		line := fmt.Sprintf("  %s: %d rows read", o.Key, o.RowsRead)
		if o.Sweeps > 0 {
			line += fmt.Sprintf(", resumed %d time(s) by the sweeper", o.Sweeps)
		}
		if !o.NextSweepAt.IsZero() {
			line += ", next attempt " + o.NextSweepAt.Local().Format("15:04:05")
		}
		if o.Reason != "" {
			line += "; last error: " + o.Reason
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "resume with: taxistream local --dir %s   (or any run in that folder)\n", dir)
}

// peakRSS is the process's resident high-water mark (VmHWM of /proc/self/status; 0 where there is none).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
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

func printSummary(w io.Writer, s local.Summary, cloud *local.Cloud) {
	fmt.Fprintf(w, "\ntaxistream local — summary of the folder %s (every run in it)\n", cloud.Dir())
	r := s.ThisRun
	fmt.Fprintf(w, "  this run           %d object(s) (%d done, %d failed): %d rows read, %d records sent, %d rejected\n",
		r.Objects, r.ObjectsDone, r.ObjectsFailed, r.RowsRead, r.RecordsSent, r.Rejected)
	fmt.Fprintf(w, "  objects            %d (%d done, %d failed, %d in flight)\n", s.Objects, s.ObjectsDone, s.ObjectsFailed, len(s.InFlight))
	for _, r := range s.FailedReasons {
		fmt.Fprintf(w, "    failed: %s\n", r)
	}
	for _, wn := range s.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", wn)
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

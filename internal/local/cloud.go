// Package local is the embedded local cloud: it wires the in-process S3 bucket, Kinesis stream,
// Firehose, Lambda runtime, S3 trigger and event source mapping together with the real handlers, with
// every setting read from template.yaml, so that `taxistream local` (and `make run`) runs the pipeline
// that `sam deploy` deploys.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream"
	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/local/esm"
	"github.com/taxistream/taxistream/internal/local/firehose"
	locallambda "github.com/taxistream/taxistream/internal/local/lambda"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/local/trigger"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/samtemplate"
)

// Logical ids of the template's functions.
const (
	IngestFunction  = "IngestFunction"
	ProcessFunction = "ProcessFunction"
	ReplayFunction  = "ReplayFunction"
	CompactFunction = "CompactFunction"
)

// Options configure a local cloud.
type Options struct {
	Dir          string            // state folder; default .taxistream
	TemplatePath string            // default: ./template.yaml if present, else the built-in template
	Overrides    map[string]string // template parameter overrides (ParameterKey → value)
	StackName    string            // default taxistream
	// LimitsOff turns every throughput limit off (they are on by default, like AWS): the stream's
	// per-shard write and read limits, the producer's pacing and the waits they cause (limits.go).
	LimitsOff bool
	Faults    stream.Faults
	// ZoneLookup is a zone lookup CSV for ProcessFunction: a file path, or a key in the bucket. It
	// overrides the template's ZONE_LOOKUP.
	ZoneLookup string
	// Logs receives the functions' JSON logs and EMF lines; default <Dir>/logs/functions.log.
	Logs io.Writer
	// Fresh empties the bucket folder first.
	Fresh bool
	// PollInterval of Firehose and the event source mapping; default 500 ms. The two share the shard's
	// read limit of 5 GetRecords calls per second, as on AWS: faster polling only gets throttled.
	PollInterval time.Duration
	// AsyncRetryDelays of the Lambda runtime; default 1 s, 2 s (AWS waits about 1 and 2 minutes).
	AsyncRetryDelays []time.Duration
	// S3Faults makes one function's S3 calls fail (see S3Faults).
	S3Faults S3Faults
	// FunctionFaults makes one function's invocations fail after its handler ran (see FunctionFaults).
	FunctionFaults FunctionFaults
	// FunctionTimeouts override the template's Timeout of functions, by logical id.
	FunctionTimeouts map[string]time.Duration
	// Env overrides or adds environment variables of functions, by logical id, e.g.
	// {IngestFunction: {DEADLINE_MARGIN: "1s"}}.
	Env map[string]map[string]string
	// WrapHandler, if set, wraps every function's handler (by logical id) before it is registered: a
	// hook for tests and fault injection (a poison record, a function that fails for a while).
	WrapHandler func(logicalID string, h lambda.Handler) lambda.Handler
	// ScheduleEvery is how often the template's schedules (the sweeper) run; default 5 s.
	ScheduleEvery time.Duration
}

// Cloud is a running local cloud.
type Cloud struct {
	Settings *samtemplate.Settings
	// TemplatePath is the template the settings came from (EmbeddedTemplate for the built-in one).
	TemplatePath string
	Bucket       *bucket.Bucket
	Stream       *stream.Stream
	Firehose     *firehose.Firehose // nil when the template has none
	ESM          *esm.ESM           // nil when ProcessFunction has no Kinesis event
	Lambda       *locallambda.Runtime
	Trigger      *trigger.Trigger
	Timeline     *Timeline // what the services did, per second and per call (timeline.go)

	dir          string
	pollInterval time.Duration
	idleCheck    time.Duration // WaitIdle's interval between looks
	logs         io.Writer
	logFile      *os.File
	mu           sync.Mutex
	failures     []string // on-failure records under <Dir>/failures/, earlier runs' included
	failureSeq   int      // number of the last one
	recovered    []ingest.ObjectResult
	renotified   []bucket.ObjectCreated
	startedAt    time.Time // when Start began: what this run touched is newer
	unlock       func()
	quiet        map[string]int // keys whose next ObjectCreated is not notified (PutObjectQuietly)
	faulty       *faultyBucket  // the bucket of S3Faults.Function, nil without S3 faults
	faultyFn     *faultyHandler // the handler of FunctionFaults.Function, nil without function faults
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// Start builds the local cloud from the template and starts Firehose and the event source mapping.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	if opts.Dir == "" {
		opts.Dir = ".taxistream"
	}
	if opts.StackName == "" {
		opts.StackName = "taxistream"
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 500 * time.Millisecond
		if opts.LimitsOff {
			opts.PollInterval = limitsOffPollInterval
		}
	}
	if len(opts.AsyncRetryDelays) == 0 {
		opts.AsyncRetryDelays = []time.Duration{time.Second, 2 * time.Second}
	}
	if opts.ScheduleEvery == 0 {
		opts.ScheduleEvery = defaultScheduleEvery
	}
	tpl, err := loadTemplate(&opts)
	if err != nil {
		return nil, err
	}
	settings, err := tpl.ResolveWith(opts.Overrides, samtemplate.Resolver{StackName: opts.StackName, Region: "us-east-1", AccountID: "000000000000", Partition: "aws"})
	if err != nil {
		return nil, fmt.Errorf("resolving the template: %w", err)
	}
	c := &Cloud{Settings: settings, TemplatePath: opts.TemplatePath, dir: opts.Dir, pollInterval: opts.PollInterval, startedAt: time.Now(),
		idleCheck: idleCheckInterval(opts.LimitsOff)}
	if opts.Logs != nil {
		c.logs = &syncWriter{w: opts.Logs}
	}
	if err := c.open(ctx, opts); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.recover(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("resuming what an earlier run left running: %w", err)
	}
	return c, nil
}

// EmbeddedTemplate is the TemplatePath reported when the template built into the binary is used.
const EmbeddedTemplate = "(built-in template.yaml)"

// loadTemplate reads opts.TemplatePath; when it is empty, ./template.yaml if there is one (the
// repository), else the template built into the binary (after `go install`, anywhere). It sets
// opts.TemplatePath to what it read.
func loadTemplate(opts *Options) (*samtemplate.Template, error) {
	if opts.TemplatePath == "" {
		if _, err := os.Stat("template.yaml"); err == nil {
			opts.TemplatePath = "template.yaml"
		} else {
			opts.TemplatePath = EmbeddedTemplate
			tpl, err := samtemplate.Parse(taxistream.Template)
			if err != nil {
				return nil, fmt.Errorf("parsing the built-in template: %w", err)
			}
			return tpl, nil
		}
	}
	tpl, err := samtemplate.Load(opts.TemplatePath)
	if err != nil {
		return nil, fmt.Errorf("reading the template: %w", err)
	}
	return tpl, nil
}

func (c *Cloud) open(ctx context.Context, opts Options) error {
	s := c.Settings
	bucketDir := filepath.Join(opts.Dir, "bucket")
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return err
	}
	// One local cloud per folder: its leases, sequence numbers and buffers are this process's alone.
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return err
	}
	c.unlock = unlock
	if opts.Fresh {
		if err := emptyDir(opts.Dir, "lock"); err != nil {
			return fmt.Errorf("emptying %s: %w", opts.Dir, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return err
	}
	if c.failures, err = existingFailures(opts.Dir); err != nil {
		return err
	}
	for _, f := range c.failures {
		if n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".json")); err == nil {
			c.failureSeq = max(c.failureSeq, n)
		}
	}
	if c.logs == nil {
		f, err := os.OpenFile(filepath.Join(opts.Dir, "logs", "functions.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening the function log: %w", err)
		}
		c.logFile, c.logs = f, &syncWriter{w: f}
	}
	if c.Bucket, err = bucket.Open(bucketDir, s.Bucket.Name); err != nil {
		return fmt.Errorf("opening the local bucket: %w", err)
	}
	shards := s.Stream.ShardCount
	if shards == 0 {
		shards = 1 // ON_DEMAND starts with a few shards on AWS; one is enough locally
	}
	c.startTimeline(opts, shards)
	if c.Stream, err = stream.New(stream.Config{
		Name: s.Stream.Name, Region: s.Region, ShardCount: shards, RetentionHours: s.Stream.RetentionHours,
		LimitsOff: opts.LimitsOff, Faults: opts.Faults, Observer: c.Timeline, Dir: filepath.Join(opts.Dir, "stream"),
	}); err != nil {
		if errors.Is(err, stream.ErrLayoutChanged) {
			return fmt.Errorf("opening the local stream: %w (the folder keeps its stream between runs: use another --dir, or --reset to empty this one)", err)
		}
		return fmt.Errorf("opening the local stream: %w", err)
	}
	c.Lambda = locallambda.New(locallambda.Config{
		Region: s.Region, AccountID: s.AccountID, RetryDelays: opts.AsyncRetryDelays,
		// The event source mapping runs one batch per shard at a time: a function's concurrency must
		// allow one per shard (AWS's default account limit is 1,000), or a stream of more than 10 shards
		// would throttle ProcessFunction into its failure destination.
		DefaultConcurrency: max(locallambda.DefaultConcurrency, shards),
		MaxSyncPayload:     syncPayloadLimit(opts.LimitsOff),
		Logger:             slog.New(slog.NewJSONHandler(c.logs, nil)), Observer: c.Timeline.observeInvocation,
	})
	if err := c.registerFunctions(ctx, opts); err != nil {
		return err
	}
	if fh := s.Firehose; fh != nil {
		if c.Firehose, err = firehose.New(firehose.Config{
			DeliveryStreamName: fh.Name, StreamName: c.Stream.Name(), StreamARN: c.Stream.ARN(), Bucket: c.Bucket.Name(),
			Prefix: fh.Prefix, ErrorOutputPrefix: fh.ErrorOutputPrefix, BufferSizeMiB: fh.BufferSizeMB,
			BufferIntervalSeconds: fh.BufferIntervalSeconds, CompressionFormat: fh.CompressionFormat,
			StatePath:    filepath.Join(opts.Dir, "firehose", fh.Name+".json"),
			SpoolDir:     filepath.Join(opts.Dir, "firehose", fh.Name+".buffer"),
			PollInterval: opts.PollInterval, Logger: slog.New(slog.NewJSONHandler(c.logs, nil)),
		}, c.Stream, c.Bucket); err != nil {
			return fmt.Errorf("creating the local Firehose: %w", err)
		}
	}
	if fn, ok := s.Functions[ProcessFunction]; ok && len(fn.KinesisEvents) > 0 {
		ev := fn.KinesisEvents[0]
		if c.ESM, err = esm.New(esm.Config{
			FunctionName: fn.Name, FunctionARN: c.Lambda.ARN(fn.Name), StreamARN: c.Stream.ARN(),
			BatchSize: ev.BatchSize, MaximumBatchingWindowInSeconds: batchingWindow(ev.MaximumBatchingWindowInSeconds, opts.LimitsOff),
			StartingPosition: ev.StartingPosition, FunctionResponseTypes: ev.FunctionResponseTypes,
			BisectBatchOnFunctionError: ev.BisectBatchOnFunctionError, MaximumRetryAttempts: ev.MaximumRetryAttempts,
			MaximumRecordAgeInSeconds: ev.MaximumRecordAgeInSeconds, TumblingWindowInSeconds: ev.TumblingWindowInSeconds,
			MaxPayloadBytes: syncPayloadLimit(opts.LimitsOff), ReadAhead: opts.LimitsOff,
			Invoke:       c.syncInvoker(fn.Name),
			OnFailure:    c.onFailure("esm"),
			StatePath:    filepath.Join(opts.Dir, "esm", fn.Name+".json"),
			PollInterval: opts.PollInterval,
			Logger:       slog.New(slog.NewJSONHandler(c.logs, nil)),
			Observer:     c.Timeline.observeBatch,
		}, c.Stream); err != nil {
			return fmt.Errorf("creating the local event source mapping: %w", err)
		}
	}
	if fn, ok := s.Functions[IngestFunction]; ok {
		rules := make([]trigger.Rule, 0, len(fn.S3Events))
		for _, e := range fn.S3Events {
			rules = append(rules, trigger.Rule{ID: e.Name, Function: fn.Name, Events: e.Events, Prefix: e.Prefix, Suffix: e.Suffix})
		}
		if c.Trigger, err = trigger.New(trigger.Config{
			Region: s.Region, Bucket: c.Bucket.Name(), Rules: rules, Logger: slog.New(slog.NewJSONHandler(c.logs, nil)),
		}, c.Lambda); err != nil {
			return fmt.Errorf("creating the local S3 trigger: %w", err)
		}
		c.Bucket.OnCreate(c.notify)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runSchedules(runCtx, opts.ScheduleEvery)
	}()
	for _, r := range []interface{ Run(context.Context) error }{c.Firehose, c.ESM} {
		if r == nil || isNil(r) {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := r.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(c.logs, "{\"level\":\"ERROR\",\"message\":\"local service stopped\",\"error\":%q}\n", err.Error())
			}
		}()
	}
	return nil
}

// emptyDir removes everything in dir but the entry named keep.
func emptyDir(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func isNil(r any) bool {
	switch v := r.(type) {
	case *firehose.Firehose:
		return v == nil
	case *esm.ESM:
		return v == nil
	}
	return false
}

// registerFunctions builds the real handlers with the template's environment and registers them.
func (c *Cloud) registerFunctions(ctx context.Context, opts Options) error {
	s := c.Settings
	for id := range opts.FunctionTimeouts {
		if _, ok := s.Functions[id]; !ok {
			return fmt.Errorf("function timeout for %s: no such function in the template", id)
		}
	}
	for id := range opts.Env {
		if _, ok := s.Functions[id]; !ok {
			return fmt.Errorf("environment for %s: no such function in the template", id)
		}
	}
	if opts.S3Faults.on() {
		if opts.S3Faults.Function == "" {
			opts.S3Faults.Function = ProcessFunction
		}
		if _, ok := s.Functions[opts.S3Faults.Function]; !ok {
			return fmt.Errorf("S3 faults for %s: no such function in the template", opts.S3Faults.Function)
		}
	}
	if opts.FunctionFaults.on() {
		if opts.FunctionFaults.Function == "" {
			opts.FunctionFaults.Function = ProcessFunction
		}
		if _, ok := s.Functions[opts.FunctionFaults.Function]; !ok {
			return fmt.Errorf("function faults for %s: no such function in the template", opts.FunctionFaults.Function)
		}
	}
	for id, fn := range s.Functions {
		env := map[string]string{}
		for k, v := range fn.Env {
			env[k] = v
		}
		env["AWS_LAMBDA_LOG_LEVEL"] = fn.ApplicationLogLevel
		env["AWS_LAMBDA_LOG_FORMAT"] = fn.LogFormat
		if id == ProcessFunction && opts.ZoneLookup != "" {
			env["ZONE_LOOKUP"] = opts.ZoneLookup
		}
		if id == IngestFunction {
			env["SWEEP_GRACE"] = localSweepGrace(opts.AsyncRetryDelays).String()
		}
		for k, v := range opts.Env[id] {
			env[k] = v
		}
		timeout := time.Duration(fn.TimeoutSeconds) * time.Second
		if d, ok := opts.FunctionTimeouts[id]; ok {
			timeout = d
		}
		// The function's view of the bucket: the plain one, or one whose writes fail.
		var store interface {
			ingest.ObjectStore
			ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
		} = c.Bucket
		if opts.S3Faults.on() && opts.S3Faults.Function == id {
			c.faulty = newFaultyBucket(c.Bucket, opts.S3Faults)
			store = c.faulty
		}
		lf := locallambda.Function{
			Timeout:              timeout,
			MemoryMB:             fn.MemoryMB,
			Env:                  env,
			MaximumRetryAttempts: &fn.Async.MaximumRetryAttempts,
			MaximumEventAge:      time.Duration(fn.Async.MaximumEventAgeInSeconds) * time.Second,
			OnFailure: func(ev locallambda.FailedEvent) {
				c.onFailure("lambda-"+id)(context.Background(), ev.Record())
			},
		}
		if fn.ReservedConcurrency != nil {
			lf.ReservedConcurrency = *fn.ReservedConcurrency
		}
		getenv := c.Lambda.Getenv(fn.Name, lf)
		var kind config.Function
		switch id {
		case IngestFunction:
			kind = config.Ingest
		case ProcessFunction:
			kind = config.Process
		case ReplayFunction:
			kind = config.Replay
		case CompactFunction:
			kind = config.Compact
		default:
			continue // not a function of ours
		}
		cfg, err := config.Load(getenv, kind)
		if err != nil {
			return fmt.Errorf("configuring %s from the template: %w", id, err)
		}
		log := obs.NewFormatLogger(c.logs, cfg.LogLevel, cfg.LogFormat).With("function", fn.Name)
		switch id {
		case IngestFunction:
			deps := ingest.Deps{S3: store, Kinesis: c.Stream, Lambda: c.Lambda, Log: log, Metrics: c.logs}
			if opts.LimitsOff {
				deps.NewProducer = unpacedProducer
			}
			h, err := ingest.New(ctx, cfg, deps)
			if err != nil {
				return fmt.Errorf("starting %s: %w", id, err)
			}
			lf.Handler = h // the payload as sent, as functions/ingest's lambda.Start(h) on AWS
		case ProcessFunction:
			h, err := process.New(ctx, cfg, process.Deps{S3: store, Log: log, Metrics: c.logs})
			if err != nil {
				return fmt.Errorf("starting %s: %w", id, err)
			}
			lf.Handler = h // its own event decoder, as functions/process's lambda.Start(h) uses on AWS
		case ReplayFunction:
			h, err := newReplay(ctx, cfg, c, store, log)
			if err != nil {
				return fmt.Errorf("starting %s: %w", id, err)
			}
			lf.Handler = h
		case CompactFunction:
			h, err := newCompact(ctx, cfg, c, store, log)
			if err != nil {
				return fmt.Errorf("starting %s: %w", id, err)
			}
			lf.Handler = h
		}
		if (opts.S3Faults.on() && opts.S3Faults.Function == id) || (opts.FunctionFaults.on() && opts.FunctionFaults.Function == id) {
			ff := opts.FunctionFaults
			if ff.Function != id {
				ff = FunctionFaults{} // only the invocation context, for S3Faults' hung calls
			}
			fh := newFaultyHandler(lf.Handler, ff)
			if ff.on() {
				c.faultyFn = fh
			}
			lf.Handler = fh
		}
		if opts.WrapHandler != nil {
			lf.Handler = opts.WrapHandler(id, lf.Handler)
		}
		if err := c.Lambda.Register(fn.Name, lf); err != nil {
			return fmt.Errorf("registering %s: %w", id, err)
		}
	}
	return nil
}

// notify is the bucket's ObjectCreated hook: S3's notification to the trigger, unless the object was
// put with PutObjectQuietly.
func (c *Cloud) notify(ev bucket.ObjectCreated) {
	c.mu.Lock()
	n := c.quiet[ev.Key]
	c.mu.Unlock()
	if n > 0 {
		return
	}
	c.Trigger.Handle(ev)
}

// PutObjectQuietly puts an object without sending the S3 event notification, as if the bucket's
// notification configuration did not match it: `taxistream invoke --object` uses it so that the one
// invocation it makes is the only one.
func (c *Cloud) PutObjectQuietly(ctx context.Context, key string, body io.Reader) (*s3.PutObjectOutput, error) {
	c.mu.Lock()
	if c.quiet == nil {
		c.quiet = map[string]int{}
	}
	c.quiet[key]++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.quiet[key]--; c.quiet[key] == 0 {
			delete(c.quiet, key)
		}
		c.mu.Unlock()
	}()
	return c.Bucket.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(key), Body: body})
}

// S3FaultStats returns the counters of the injected S3 failures (zero without Options.S3Faults).
func (c *Cloud) S3FaultStats() S3FaultStats { return c.faulty.stats() }

// FunctionFaultStats returns the counters of the injected function errors (zero without
// Options.FunctionFaults).
func (c *Cloud) FunctionFaultStats() FunctionFaultStats { return c.faultyFn.stats() }

// Logs is where the functions and the services log (<Dir>/logs/functions.log unless Options.Logs), for
// services started beside the cloud, such as the wire server of `taxistream local --serve`.
func (c *Cloud) Logs() io.Writer { return c.logs }

// FunctionName returns the deployed name of a function by logical id.
func (c *Cloud) FunctionName(logicalID string) string { return c.Settings.Functions[logicalID].Name }

// syncInvoker invokes a function synchronously through the runtime, as the event source mapping does.
func (c *Cloud) syncInvoker(name string) func(ctx context.Context, payload []byte) ([]byte, error) {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		out, err := c.Lambda.Invoke(ctx, &awslambda.InvokeInput{
			FunctionName: aws.String(name), InvocationType: lambdatypes.InvocationTypeRequestResponse, Payload: payload,
		})
		if err != nil {
			return nil, err
		}
		if out.FunctionError != nil {
			return nil, fmt.Errorf("%s: %s: %s", name, aws.ToString(out.FunctionError), out.Payload)
		}
		return out.Payload, nil
	}
}

// onFailure writes on-failure destination records as files under <Dir>/failures/<source>/: the local
// stand-in for the SQS failure queue.
func (c *Cloud) onFailure(source string) func(ctx context.Context, record []byte) error {
	return func(ctx context.Context, record []byte) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		dir := filepath.Join(c.dir, "failures", source)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		c.failureSeq++
		name := filepath.Join(dir, fmt.Sprintf("%06d.json", c.failureSeq))
		if err := os.WriteFile(name, record, 0o644); err != nil {
			return err
		}
		c.failures = append(c.failures, name)
		return nil
	}
}

// existingFailures lists the on-failure records earlier runs left in dir (<dir>/failures/*/NNNNNN.json),
// in order.
func existingFailures(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "failures", "*", "[0-9]*.json"))
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return filepath.Base(names[i]) < filepath.Base(names[j]) })
	return names, nil
}

// Failures returns the files of the on-failure records in the folder: earlier runs' and this one's.
func (c *Cloud) Failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

// Busy reports whether anything is still moving: async invocations queued or running, records not yet
// consumed by the event source mapping, Firehose reads pending.
func (c *Cloud) Busy() bool {
	if c.Lambda.Busy() {
		return true
	}
	if c.ESM != nil && c.ESM.Busy() {
		return true
	}
	if c.Firehose != nil && c.Firehose.Busy() {
		return true
	}
	return false
}

// WaitIdle blocks until the pipeline has been idle for three looks in a row, idleCheck apart (or ctx
// ends).
func (c *Cloud) WaitIdle(ctx context.Context) error {
	quiet := 0
	t := time.NewTicker(c.idleCheck)
	defer t.Stop()
	for quiet < 3 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if c.Busy() {
			quiet = 0
		} else {
			quiet++
		}
	}
	return nil
}

// Drain waits until idle, then delivers what Firehose still buffers and closes the open tumbling
// windows (locally at shutdown, without waiting for the window's wall-clock end), and waits again.
func (c *Cloud) Drain(ctx context.Context) error {
	if err := c.WaitIdle(ctx); err != nil {
		return err
	}
	// The event source mapping closes its windows while Firehose reads what is left and delivers: the
	// two do not wait for each other (each is the last output of a run).
	var esmErr error
	var wg sync.WaitGroup
	if c.ESM != nil {
		wg.Go(func() {
			if err := c.ESM.Drain(ctx); err != nil {
				esmErr = fmt.Errorf("draining the event source mapping: %w", err)
			}
		})
	}
	fhErr := c.drainFirehose(ctx)
	wg.Wait()
	if err := errors.Join(esmErr, fhErr); err != nil {
		return err
	}
	if err := c.WaitIdle(ctx); err != nil {
		return err
	}
	// Objects whose invocations all ended before they finished: the sweeper resumes or fails them.
	if err := c.sweepUntilSettled(ctx); err != nil {
		return err
	}
	if c.Firehose != nil {
		if err := c.Firehose.Flush(ctx); err != nil {
			return fmt.Errorf("flushing Firehose: %w", err)
		}
	}
	return c.WaitIdle(ctx)
}

// drainFirehose polls Firehose until a round that started now read everything, then flushes it.
func (c *Cloud) drainFirehose(ctx context.Context) error {
	if c.Firehose == nil {
		return nil
	}
	// Busy describes the last poll: poll until a round that started now read everything (a read may
	// be throttled or fail, injected faults included: poll again), then flush.
	for {
		err := c.Firehose.Poll(ctx)
		if err == nil && !c.Firehose.Busy() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("polling Firehose: %w", errors.Join(ctx.Err(), err))
		case <-time.After(c.pollInterval):
		}
	}
	if err := c.Firehose.Flush(ctx); err != nil {
		return fmt.Errorf("flushing Firehose: %w", err)
	}
	return nil
}

// Interrupt stops the cloud where it is, for a Ctrl-C or a timeout: Firehose, the event source mapping
// and the schedules stop polling (their checkpoints are in the folder), running invocations see their
// context cancelled (IngestFunction releases its object at its last checkpoint) and queued events are
// dropped (Start notifies again what never started). It waits until the running handlers returned or
// ctx ends. Summarize still works; Close must follow.
func (c *Cloud) Interrupt(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.Lambda == nil {
		return nil
	}
	c.Lambda.Close()
	if err := c.Lambda.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for running invocations to release their objects: %w", err)
	}
	return nil
}

// StartedAt is when this run's cloud started: manifests updated since belong to this run.
func (c *Cloud) StartedAt() time.Time { return c.startedAt }

// Dir is the folder of the local cloud.
func (c *Cloud) Dir() string { return c.dir }

// Close stops the background services.
func (c *Cloud) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.Lambda != nil {
		c.Lambda.Close()
	}
	if c.Firehose != nil {
		c.Firehose.Close()
	}
	if c.Stream != nil {
		c.Stream.Close()
	}
	err := c.saveTimelineOnClose()
	if c.Bucket != nil {
		err = errors.Join(err, c.Bucket.Close())
	}
	if c.logFile != nil {
		c.logFile.Close()
	}
	if c.unlock != nil {
		c.unlock()
	}
	return err
}

// syncWriter serialises writes of whole lines from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

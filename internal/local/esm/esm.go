// Package esm is an in-process emulation of a Lambda event source mapping for a Kinesis data stream
// (shared-throughput polling), for the local cloud. It reads every shard in order, builds the event
// JSON exactly as Lambda does (events.KinesisEvent, or events.KinesisTimeWindowEvent with tumbling
// windows), invokes the function through Config.Invoke and applies Lambda's failure handling.
//
// Behaviour, as documented for Lambda (and where Lambda is silent, the choice made here):
//
//   - One poller per shard; within a shard batches are invoked one at a time, in order. Child shards
//     (after a reshard) are read from TRIM_HORIZON once their parents are fully processed.
//   - A batch holds up to BatchSize records and is trimmed so that the event JSON fits in 6 MB
//     (MaxPayloadBytes; Config.MaxPayloadBytes overrides it). With MaximumBatchingWindowInSeconds > 0 a
//     batch waits until it is full, reaches 6 MB or the window has passed since its first record was read.
//   - Each round reads a shard once (GetRecords) and invokes the batches that this gives; with
//     Config.ReadAhead (no read limit to respect) it reads again before a batch that is not full while
//     the shard has more, so that batches are full and no round waits for the next poll.
//   - A function error (Invoke returns an error) fails the whole batch. With
//     FunctionResponseTypes [ReportBatchItemFailures], a response {"batchItemFailures":[{"itemIdentifier":
//     "<seq>"}]} checkpoints at the lowest failed sequence number: the records before it are done, it
//     and the ones after are retried. An empty or null itemIdentifier, or one that is not a sequence number
//     of the batch, fails the whole batch. Without ReportBatchItemFailures the response is ignored.
//   - BisectBatchOnFunctionError splits a failed batch in two (first half ⌈n/2⌉) and retries the halves
//     in order; splitting does not count as a retry. A batch of one record is retried.
//   - MaximumRetryAttempts (-1 infinite; 0 means no retry — Lambda's default is -1, set it) and
//     MaximumRecordAgeInSeconds (-1 or 0 infinite) bound the work on a batch; a batch that runs out goes
//     to OnFailure as Lambda's on-failure invocation record (condition RetryAttemptsExhausted or
//     RecordAgeExceeded) and processing goes on after it. With no OnFailure the records are dropped.
//     Locally a failed batch is retried on the next round (Poll), without Lambda's backoff.
//   - Tumbling windows: windows are aligned to multiples of TumblingWindowInSeconds since the Unix epoch
//     and a record belongs to the window of its approximate arrival time; a batch never spans two windows.
//     The state returned by one invoke is passed to the next invoke of the same window. The response must
//     contain "state" (a map of strings; null counts as empty) or the invoke failed; a state of 1 MB or
//     more is a failed invoke too (AWS terminates the window early instead). When the shard reaches a
//     record of a later window, or the clock passes the window end while the shard is caught up, the
//     window gets a final invoke with no records and isFinalInvokeForWindow=true; the state returned by
//     a final invoke is discarded, and a failed final invoke blocks the shard until it succeeds.
//     Drain closes the windows still open at shutdown at once, without waiting for the clock, with
//     isFinalInvokeForWindow=true and isWindowTerminatedEarly=true.
package esm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Lambda limits and defaults for Kinesis event source mappings.
const (
	// MaxPayloadBytes is Lambda's synchronous invocation payload limit (6 MB).
	MaxPayloadBytes = 6 << 20
	// MaxStateBytes is the tumbling window state limit per shard (1 MB).
	MaxStateBytes = 1 << 20
	// DefaultBatchSize is Lambda's default BatchSize for Kinesis.
	DefaultBatchSize = 100
	// MaxBatchSize is the largest BatchSize for Kinesis.
	MaxBatchSize = 10000
	// Infinite is the MaximumRetryAttempts / MaximumRecordAgeInSeconds value for "no limit".
	Infinite = -1
	// ReportBatchItemFailures is the FunctionResponseTypes value that enables partial batch responses.
	ReportBatchItemFailures = "ReportBatchItemFailures"
	// DefaultPollInterval is how often Run polls each shard (Lambda polls once per second).
	DefaultPollInterval = time.Second
	// getRecordsLimit is the Limit of one GetRecords call.
	getRecordsLimit = 10000
)

// Starting positions.
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
	AtTimestamp = "AT_TIMESTAMP"
)

// shardReader is the part of the Kinesis API the mapping reads with; *kinesis.Client and
// *stream.Stream fit it.
type shardReader interface {
	ListShards(ctx context.Context, params *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, params *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, params *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ shardReader = (*kinesis.Client)(nil)

// Config configures an event source mapping. Field names follow AWS::Lambda::EventSourceMapping.
type Config struct {
	FunctionName string // used for the default FunctionARN and RoleARN
	FunctionARN  string // default arn:aws:lambda:<region>:000000000000:function:<FunctionName>
	RoleARN      string // the event's invokeIdentityArn; default arn:aws:iam::000000000000:role/<FunctionName>-role
	StreamARN    string // EventSourceArn (required)

	BatchSize                      int    // default 100, at most 10,000
	MaximumBatchingWindowInSeconds int    // 0..300
	StartingPosition               string // TRIM_HORIZON, LATEST or AT_TIMESTAMP (required)
	StartingPositionTimestamp      time.Time
	FunctionResponseTypes          []string // [ReportBatchItemFailures] enables partial batch responses
	BisectBatchOnFunctionError     bool
	MaximumRetryAttempts           int // -1 infinite (Lambda's default); 0 = no retries
	MaximumRecordAgeInSeconds      int // -1 or 0 infinite, else 60..604800
	TumblingWindowInSeconds        int // 0 (off) .. 900

	// MaxPayloadBytes bounds the event JSON of a batch (MaxPayloadBytes when zero, Lambda's limit);
	// the local cloud lifts it with its limits off, where batches are bounded by BatchSize alone.
	MaxPayloadBytes int
	// ReadAhead reads the shard again before every batch that is not full, as long as the shard has
	// more records (limits off: no 5 reads per second per shard to respect). Off, a round reads once.
	ReadAhead bool

	// Invoke runs the function synchronously with the event JSON and returns its response; an error is a
	// function error. It is called from one goroutine per shard.
	Invoke func(ctx context.Context, payload []byte) ([]byte, error)
	// OnFailure receives the on-failure invocation record (JSON of FailureRecord) of a discarded batch.
	// An error keeps the batch and retries the delivery on the next round. Nil drops discarded batches.
	OnFailure func(ctx context.Context, record []byte) error

	// StatePath, if set, is the file that keeps the mapping's checkpoints and windows across restarts
	// (state.go). New resumes from it when it exists.
	StatePath string

	PollInterval time.Duration    // Run's pause between rounds, default 1 s
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
	// Observer, if set, is called after every invoke of a batch of records; it must be quick.
	Observer func(Batch)
}

// Stats counts what the mapping did.
type Stats struct {
	Invocations      int64 // every invoke, final window invokes included
	RecordsInvoked   int64 // records sent, retries included
	RecordsProcessed int64 // records checkpointed as processed
	Batches          int64 // batches that succeeded (fully or up to a partial failure)
	FunctionErrors   int64
	PartialFailures  int64 // responses with valid batchItemFailures
	InvalidResponses int64 // responses that fail the batch (bad itemIdentifier, missing or too large state)
	Retries          int64 // invokes of a batch that was invoked before
	Bisects          int64
	Exhausted        int64 // batches discarded after MaximumRetryAttempts
	AgeExpired       int64 // batches discarded after MaximumRecordAgeInSeconds
	RecordsDiscarded int64
	WindowsClosed    int64 // successful final invokes
	ReadThrottles    int64
	Errors           int64 // failed calls to the stream or OnFailure
}

// ESM is one event source mapping.
type ESM struct {
	cfg        Config
	src        shardReader
	region     string
	streamName string
	created    time.Time
	reportFail bool
	maxAge     time.Duration
	window     time.Duration

	roundMu sync.Mutex // one round at a time
	mu      sync.Mutex // stats, shards map, busy, saved
	stats   Stats
	shards  map[string]*shardState
	order   []string
	polled  bool
	saveMu  sync.Mutex            // one write of the state file at a time
	saved   map[string]shardSaved // what the state file says of each shard
}

// New validates cfg and positions the mapping on every shard of the source.
func New(cfg Config, src shardReader) (*ESM, error) {
	var errs []error
	region, name, err := parseStreamARN(cfg.StreamARN)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Invoke == nil {
		errs = append(errs, errors.New("no Invoke function in the configuration"))
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("BatchSize %d out of range 1..%d", cfg.BatchSize, MaxBatchSize))
	}
	if cfg.MaximumBatchingWindowInSeconds < 0 || cfg.MaximumBatchingWindowInSeconds > 300 {
		errs = append(errs, fmt.Errorf("MaximumBatchingWindowInSeconds %d out of range 0..300", cfg.MaximumBatchingWindowInSeconds))
	}
	switch cfg.StartingPosition {
	case TrimHorizon, Latest:
	case AtTimestamp:
		if cfg.StartingPositionTimestamp.IsZero() {
			errs = append(errs, errors.New("StartingPositionTimestamp is required with AT_TIMESTAMP"))
		}
	default:
		errs = append(errs, fmt.Errorf("StartingPosition %q: want TRIM_HORIZON, LATEST or AT_TIMESTAMP", cfg.StartingPosition))
	}
	reportFail := false
	for _, t := range cfg.FunctionResponseTypes {
		if t != ReportBatchItemFailures {
			errs = append(errs, fmt.Errorf("FunctionResponseTypes: unknown %q", t))
		}
		reportFail = true
	}
	if cfg.MaximumRetryAttempts < -1 || cfg.MaximumRetryAttempts > 10000 {
		errs = append(errs, fmt.Errorf("MaximumRetryAttempts %d out of range -1..10000", cfg.MaximumRetryAttempts))
	}
	if a := cfg.MaximumRecordAgeInSeconds; a < -1 || a > 604800 || (a > 0 && a < 60) {
		errs = append(errs, fmt.Errorf("MaximumRecordAgeInSeconds %d: want -1 or 60..604800", a))
	}
	if cfg.TumblingWindowInSeconds < 0 || cfg.TumblingWindowInSeconds > 900 {
		errs = append(errs, fmt.Errorf("TumblingWindowInSeconds %d out of range 0..900", cfg.TumblingWindowInSeconds))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("creating event source mapping for %s: %w", cfg.FunctionName, err)
	}
	if cfg.FunctionARN == "" {
		cfg.FunctionARN = fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", region, cfg.FunctionName)
	}
	if cfg.RoleARN == "" {
		cfg.RoleARN = fmt.Sprintf("arn:aws:iam::000000000000:role/%s-role", cfg.FunctionName)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}

	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &ESM{
		cfg: cfg, src: src, region: region, streamName: name, created: cfg.Now(), reportFail: reportFail,
		window: time.Duration(cfg.TumblingWindowInSeconds) * time.Second,
		shards: map[string]*shardState{},
	}
	if cfg.MaximumRecordAgeInSeconds > 0 {
		e.maxAge = time.Duration(cfg.MaximumRecordAgeInSeconds) * time.Second
	}
	resumed, err := e.loadState()
	if err != nil {
		return nil, fmt.Errorf("creating event source mapping for %s: %w", cfg.FunctionName, err)
	}
	// Resumed, the shards it does not know were created after it: TRIM_HORIZON.
	if err := e.discover(context.Background(), !resumed); err != nil {
		return nil, fmt.Errorf("creating event source mapping for %s: %w", cfg.FunctionName, err)
	}
	if err := e.saveState(); err != nil {
		return nil, fmt.Errorf("creating event source mapping for %s: %w", cfg.FunctionName, err)
	}
	return e, nil
}

func parseStreamARN(arn string) (region, name string, err error) {
	// arn:aws:kinesis:<region>:<account>:stream/<name>
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") {
		return "", "", fmt.Errorf("StreamARN %q is not a Kinesis stream ARN", arn)
	}
	return parts[3], strings.TrimPrefix(parts[5], "stream/"), nil
}

// discover lists the shards and adds the ones not known yet. At creation the starting position applies;
// shards found later were created after the mapping and are read from TRIM_HORIZON.
func (e *ESM) discover(ctx context.Context, initial bool) error {
	in := &kinesis.ListShardsInput{StreamARN: aws.String(e.cfg.StreamARN)}
	for {
		out, err := e.src.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("listing shards: %w", err)
		}
		for _, sh := range out.Shards {
			id := aws.ToString(sh.ShardId)
			e.mu.Lock()
			_, known := e.shards[id]
			e.mu.Unlock()
			if known {
				continue
			}
			st := &shardState{e: e, id: id, start: TrimHorizon}
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if p != nil {
					st.parents = append(st.parents, *p)
				}
			}
			if initial {
				st.start = e.cfg.StartingPosition
				closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
				if closed && st.start == Latest {
					st.done = true // nothing will ever be written to it
				}
				if st.start != TrimHorizon {
					st.parents = nil // LATEST/AT_TIMESTAMP do not wait for parents
					if !st.done {
						if err := st.acquire(ctx); err != nil {
							return err
						}
					}
				}
			}
			e.mu.Lock()
			e.shards[id] = st
			e.order = append(e.order, id)
			e.mu.Unlock()
		}
		if out.NextToken == nil {
			return nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// Poll runs one round: every shard reads once (if it needs records) and invokes the function for the
// batches it has, until a batch fails (retried next round) or the shard must wait for more records.
func (e *ESM) Poll(ctx context.Context) error {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	_, err := e.round(ctx, false)
	return err
}

// round runs one round; force ignores the batching window. It reports whether anything happened.
func (e *ESM) round(ctx context.Context, force bool) (bool, error) {
	var errs []error
	if err := e.discover(ctx, false); err != nil {
		e.count(func(s *Stats) { s.Errors++ })
		errs = append(errs, err)
	}
	e.mu.Lock()
	shards := make([]*shardState, 0, len(e.order))
	for _, id := range e.order {
		shards = append(shards, e.shards[id])
	}
	e.mu.Unlock()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		progress bool
	)
	for _, st := range shards {
		if st.done || !e.parentsDone(st) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := st.process(ctx, force)
			mu.Lock()
			defer mu.Unlock()
			progress = progress || p
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", st.id, err))
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	e.polled = true
	e.mu.Unlock()
	return progress, errors.Join(errs...)
}

func (e *ESM) parentsDone(st *shardState) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range st.parents {
		if ps, ok := e.shards[p]; ok && !ps.done {
			return false
		}
	}
	return true
}

// Run polls every PollInterval until ctx is done.
func (e *ESM) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := e.Poll(ctx); err != nil && ctx.Err() == nil {
			e.cfg.Logger.WarnContext(ctx, "event source mapping poll", "function", e.cfg.FunctionName, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Drain processes everything available, ignoring the batching window, until every shard is caught up,
// then closes the open tumbling windows at once (final invoke marked isWindowTerminatedEarly, see the
// package comment). With a record that always fails and infinite retries it runs until ctx is done, as
// such a record blocks its shard on AWS. It returns ctx.Err() in that case.
func (e *ESM) Drain(ctx context.Context) error {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	idle := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress, err := e.round(ctx, true)
		if err != nil {
			e.cfg.Logger.WarnContext(ctx, "event source mapping drain", "function", e.cfg.FunctionName, "err", err)
		}
		if !e.Busy() {
			break
		}
		if progress {
			idle = 0
			continue
		}
		idle++ // throttled or waiting: back off a little, in real time
		if err := sleepCtx(ctx, min(time.Duration(idle)*20*time.Millisecond, e.cfg.PollInterval)); err != nil {
			return err
		}
	}
	e.mu.Lock()
	shards := make([]*shardState, 0, len(e.order))
	for _, id := range e.order {
		shards = append(shards, e.shards[id])
	}
	e.mu.Unlock()
	for _, st := range shards {
		for st.win != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			if ok, _ := st.closeWindow(ctx, true); !ok {
				if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Busy reports whether the mapping has work it knows of, as of the last round: before the first round,
// records read but not yet processed, a shard behind the tip of the stream (or throttled, or failing), a
// shard waiting for its parents, or an on-failure record waiting for delivery. Open tumbling windows do
// not make it busy; Drain closes them.
func (e *ESM) Busy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.polled {
		return true
	}
	for _, st := range e.shards {
		if st.done {
			continue
		}
		if st.busy() {
			return true
		}
	}
	return false
}

// Stats returns the counters.
func (e *ESM) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *ESM) count(f func(*Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// getRecords reads once from the shard into pending.
func (st *shardState) fetch(ctx context.Context) error {
	e := st.e
	if st.iterator == nil {
		if st.readEnd {
			return nil
		}
		if err := st.acquire(ctx); err != nil {
			return err
		}
	}
	out, err := e.src.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: st.iterator, Limit: aws.Int32(getRecordsLimit)})
	var expired *types.ExpiredIteratorException
	if errors.As(err, &expired) {
		st.iterator = nil
		if err := st.acquire(ctx); err != nil {
			return err
		}
		out, err = e.src.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: st.iterator, Limit: aws.Int32(getRecordsLimit)})
	}
	var throttled *types.ProvisionedThroughputExceededException
	switch {
	case errors.As(err, &throttled):
		e.count(func(s *Stats) { s.ReadThrottles++ })
		st.setBehind(true)
		return nil
	case err != nil:
		e.count(func(s *Stats) { s.Errors++ })
		st.setBehind(true)
		return fmt.Errorf("getting records: %w", err)
	}
	now := e.cfg.Now()
	if len(st.pending) == 0 && len(out.Records) > 0 {
		st.firstRead = now
	}
	st.pending = append(st.pending, out.Records...)
	st.gotRecords = len(out.Records) > 0 || aws.ToInt64(out.MillisBehindLatest) > 0
	if n := len(out.Records); n > 0 {
		st.lastSeq = aws.ToString(out.Records[n-1].SequenceNumber)
	}
	st.iterator = out.NextShardIterator
	if st.iterator == nil {
		st.readEnd = true
	}
	st.setBehind(aws.ToInt64(out.MillisBehindLatest) > 0)
	return nil
}

// acquire gets an iterator: after the last record read, else at the starting position.
func (st *shardState) acquire(ctx context.Context) error {
	e := st.e
	in := &kinesis.GetShardIteratorInput{StreamARN: aws.String(e.cfg.StreamARN), ShardId: aws.String(st.id)}
	switch {
	case st.lastSeq != "":
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(st.lastSeq)
	case st.start == Latest && st.acquired:
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(e.created) // LATEST as of creation
	case st.start == AtTimestamp:
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(e.cfg.StartingPositionTimestamp)
	default:
		in.ShardIteratorType = types.ShardIteratorType(st.start)
	}
	out, err := e.src.GetShardIterator(ctx, in)
	if err != nil {
		e.count(func(s *Stats) { s.Errors++ })
		return fmt.Errorf("getting %s iterator for %s: %w", in.ShardIteratorType, st.id, err)
	}
	st.iterator, st.acquired = out.ShardIterator, true
	return nil
}

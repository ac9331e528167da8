// Package producer writes records to a Kinesis data stream: KPL aggregation, routing to shards (by
// partition key, or balanced over every shard), exact limits, token-bucket pacing and retries of failed
// entries only. Everything happens inside Put and Flush: no goroutine outlives a call.
//
// How a user record travels:
//
//   - Put checks it (partition key 1-256 characters; data + key within the stream's record size, else
//     it is a Failure, never truncated) and copies it.
//   - RouteByKey predicts its shard: the MD5 of the partition key as a 128-bit big-endian integer,
//     looked up in the hash key ranges of the open shards (ListShards); with Aggregate it joins that
//     shard's open KPL aggregate. RouteBalanced has one open aggregate for records of any key, and a
//     sealed Kinesis record goes to the least loaded shard whose pacing has room, with an
//     ExplicitHashKey in that shard's range. Either way the aggregate's table keeps every record's own
//     partition key. An aggregate is sealed when the next record would take it past AggregateMaxBytes
//     (magic, protobuf varints and MD5 counted exactly); a record that does not fit an empty aggregate
//     goes alone, as does a sealed aggregate of one record.
//   - Sealed Kinesis records wait in their shard's queue (RouteBalanced: in one queue every shard takes
//     from). Each shard is paced (pacing.go) by token buckets for bytes and records at its write limit,
//     holding up to half a second's worth, and by a ledger of what it wrote in the last second, so that
//     no one-second interval, however aligned, carries more than the limit. A request goes when some
//     shard's pacing allows a batch (5 % of a second's worth, or all it holds) and takes from every shard
//     what its pacing allows, up to 500 entries and 5 MiB (data + partition keys). Put writes when a
//     request's worth is ready or too much is buffered; Flush writes everything.
//   - Of a response, only failed entries are retried: ProvisionedThroughputExceededException and
//     InternalFailure go back to the front of their queue and the shard (for a throttle, the one named
//     in the message) backs off once per response with full jitter: at most a second after throttles,
//     up to 5 s after internal failures; a stored write resets the shard's backoff. Any other entry
//     error code is a Failure. An entry that succeeded is never sent again.
//   - A whole-request error is classified: throttling (nothing stored) and 5xx/timeouts/resets (the
//     records may have been stored) are retried with backoff; anything else (validation, access
//     denied, resource not found, …) fails the request's records and is returned. Resending after an
//     ambiguous error can store a record twice: this is unavoidable with PutRecords (there is no
//     idempotency token); the copies are counted in Stats.PossibleDuplicates and consumers drop them
//     by record_id.
//   - When a write lands on a shard other than the predicted one (or a throttle names an unknown
//     shard) the stream has been resharded: the shard map is listed again and everything not yet
//     written is re-aggregated, so no RouteByKey aggregate mixes keys of different shards.
//
// Backoffs never run past the context deadline: a wait that would end after it returns ErrDeadline
// at once. A Producer is not safe for concurrent use.
package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// Client is the part of *kinesis.Client the producer uses.
type Client interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ Client = (*kinesis.Client)(nil)

// Config configures a Producer.
type Config struct {
	StreamName string // name or
	StreamARN  string // ARN (either)
	Aggregate  bool   // KPL aggregation (default on in every caller)
	// Routing assigns Kinesis records to shards: RouteByKey (the zero value, Kinesis's own rule) or
	// RouteBalanced.
	Routing Routing
	// Per-shard pacing; zero means the Kinesis write limit (1 MiB/s, 1,000 records/s).
	ShardBytesPerSecond   float64
	ShardRecordsPerSecond float64
	Ordered               bool // one request in flight per shard, retried before the next

	// AggregateMaxBytes is the largest aggregate built (default DefaultAggregateMaxBytes, at most the
	// stream's record size).
	AggregateMaxBytes int
	// MaxBufferedBytes bounds the data Put holds before writing (default DefaultMaxBufferedBytes).
	MaxBufferedBytes int
	// MaxRetries is how often one Kinesis record is retried (0: DefaultMaxRetries; < 0: until the
	// context ends).
	MaxRetries int
	// Now, Sleep and Rand replace the clock, the wait and the jitter source (tests, benchmarks on a
	// simulated stream). Rand returns a number in [0, 1).
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Rand   func() float64
	Logger *slog.Logger // default: discard
}

// Routing is how Kinesis records are assigned to shards.
type Routing int

const (
	// RouteByKey sends each record to the shard its partition key hashes to (Kinesis's own rule), with
	// one open KPL aggregate per predicted shard: records with the same key stay on one shard, in order,
	// and a skewed key (most trips start in a few zones) loads the shards unevenly, so the stream's
	// throughput is the hottest shard's limit divided by its share.
	RouteByKey Routing = iota
	// RouteBalanced fills KPL aggregates with records of any key and hands each sealed Kinesis record
	// to whichever shard's pacing has room for it next, with an ExplicitHashKey in that shard's hash
	// range: every shard runs at its limit whatever the skew of the keys. Each user record keeps its own
	// partition key in the aggregate's table (de-aggregation gives it back), but records with the same
	// key may land on different shards, so there is no per-key order.
	RouteBalanced
)

func (r Routing) String() string {
	switch r {
	case RouteByKey:
		return "key"
	case RouteBalanced:
		return "balanced"
	}
	return fmt.Sprintf("Routing(%d)", int(r))
}

// ParseRouting reads "key" or "balanced".
func ParseRouting(s string) (Routing, error) {
	switch s {
	case "key":
		return RouteByKey, nil
	case "balanced":
		return RouteBalanced, nil
	}
	return 0, fmt.Errorf("unknown shard routing %q (want balanced or key)", s)
}

func (c Config) stream() string {
	if c.StreamARN != "" {
		return c.StreamARN
	}
	return c.StreamName
}

// Entry is one user record. Tag is the caller's own identifier (e.g. a row number) reported back
// in failures.
type Entry struct {
	Data         []byte
	PartitionKey string
	Tag          int64
}

// Failure is an entry that was not written, with the reason.
type Failure struct {
	Tag    int64
	Reason string
	Err    error
}

// Stats are the counters of the producer since New (cumulative). Per call: subtract two snapshots.
type Stats struct {
	UserRecords    int64 `json:"user_records"`    // user records written (acknowledged)
	KinesisRecords int64 `json:"kinesis_records"` // Kinesis records written (an aggregate counts once)
	Bytes          int64 `json:"bytes"`           // data + partition key of the Kinesis records written
	Requests       int64 `json:"requests"`        // PutRecords calls
	Retries        int64 `json:"retries"`         // Kinesis records sent again
	Throttled      int64 `json:"throttled"`       // entries refused with ProvisionedThroughputExceededException
	Failed         int64 `json:"failed"`          // user records that failed for good
	// PossibleDuplicates counts user records resent after a request whose outcome is unknown (5xx,
	// timeout): Kinesis may hold them twice; record_id lets consumers drop the copy.
	PossibleDuplicates int64 `json:"possible_duplicates"`
	// Reshards counts shard map refreshes after a write landed on an unexpected shard.
	Reshards int64 `json:"reshards"`
}

// Producer buffers entries and writes them.
type Producer struct {
	c           Client
	cfg         Config
	maxRecord   int
	aggMax      int
	maxBuffered int
	maxRetries  int
	bytesRate   float64
	recordsRate float64
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error
	rand        func() float64
	log         *slog.Logger

	shards *shardMap
	stale  bool
	states map[string]*shardState
	order  []string // round-robin order of states
	// pool holds RouteBalanced's open aggregate and the sealed records no shard has taken yet (its id
	// is ""; it has no pacing of its own).
	pool       shardState
	next       int // round-robin start
	buffered   int // bytes held (user records, data + key)
	readyCount int
	readyBytes int
	failures   []Failure
	stats      Stats
}

// New describes the stream (MaxRecordSizeInKiB, shards) and returns a producer.
func New(ctx context.Context, c Client, cfg Config) (*Producer, error) {
	if cfg.StreamName == "" && cfg.StreamARN == "" {
		return nil, errors.New("new producer: no stream name or ARN")
	}
	if cfg.Routing != RouteByKey && cfg.Routing != RouteBalanced {
		return nil, fmt.Errorf("new producer: %v", cfg.Routing)
	}
	if cfg.Ordered && cfg.Routing == RouteBalanced {
		return nil, errors.New("new producer: Ordered needs RouteByKey (balanced routing keeps no per-key order)")
	}
	p := &Producer{c: c, cfg: cfg, states: map[string]*shardState{}}
	p.now, p.sleep, p.rand, p.log = cfg.Now, cfg.Sleep, cfg.Rand, cfg.Logger
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = realSleep
	}
	if p.rand == nil {
		p.rand = rand.Float64
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p.bytesRate, p.recordsRate = cfg.ShardBytesPerSecond, cfg.ShardRecordsPerSecond
	if p.bytesRate <= 0 {
		p.bytesRate = kinesislimit.ShardWriteBytesPerSecond
	}
	if p.recordsRate <= 0 {
		p.recordsRate = kinesislimit.ShardWriteRecordsPerSecond
	}
	p.maxRetries = cfg.MaxRetries
	if p.maxRetries == 0 {
		p.maxRetries = DefaultMaxRetries
	}
	p.maxBuffered = cfg.MaxBufferedBytes
	if p.maxBuffered <= 0 {
		p.maxBuffered = DefaultMaxBufferedBytes
	}

	in := &kinesis.DescribeStreamSummaryInput{}
	if cfg.StreamARN != "" {
		in.StreamARN = &cfg.StreamARN
	} else {
		in.StreamName = &cfg.StreamName
	}
	out, err := c.DescribeStreamSummary(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("describing stream %s: %w", cfg.stream(), err)
	}
	kib := kinesislimit.DefaultMaxRecordSizeInKiB
	if d := out.StreamDescriptionSummary; d != nil && d.MaxRecordSizeInKiB != nil && *d.MaxRecordSizeInKiB > 0 {
		kib = int(*d.MaxRecordSizeInKiB)
	}
	// A record must also fit a request.
	p.maxRecord = min(kib<<10, kinesislimit.MaxRequestBytes)
	p.aggMax = cfg.AggregateMaxBytes
	if p.aggMax <= 0 {
		p.aggMax = DefaultAggregateMaxBytes
	}
	p.aggMax = min(p.aggMax, p.maxRecord)

	if p.shards, err = listOpenShards(ctx, c, cfg); err != nil {
		return nil, err
	}
	if err := p.openStates(); err != nil {
		return nil, err
	}
	return p, nil
}

// MaxRecordBytes returns the largest user record accepted: data + partition key.
func (p *Producer) MaxRecordBytes() int { return p.maxRecord }

// Put adds an entry (Data is copied). It may write full requests synchronously (and wait for pacing).
// Entries that cannot be written (too large) come back from Flush as failures; Put returns an error only
// when ctx ends or a non-retryable request error occurs. After an error, Flush returns every entry not
// written as a Failure.
func (p *Producer) Put(ctx context.Context, e Entry) error {
	if n := utf8.RuneCountInString(e.PartitionKey); n < kinesislimit.MinPartitionKeyLength || n > kinesislimit.MaxPartitionKeyLength {
		p.fail(userRec{tag: e.Tag}, ErrInvalidPartitionKey,
			fmt.Sprintf("partition key of %d characters (Kinesis allows %d-%d)", n, kinesislimit.MinPartitionKeyLength, kinesislimit.MaxPartitionKeyLength))
		return nil
	}
	if size := len(e.Data) + len(e.PartitionKey); size > p.maxRecord {
		p.fail(userRec{tag: e.Tag}, ErrRecordTooLarge,
			fmt.Sprintf("record of %d bytes (data + partition key) exceeds the stream's record size of %d bytes", size, p.maxRecord))
		return nil
	}
	// Buffered first: whatever Put returns, the entry is the producer's (a refresh re-routes every
	// queued record), so a caller that stops on an error can still Flush it.
	p.add(userRec{data: append([]byte(nil), e.Data...), pk: e.PartitionKey, tag: e.Tag})
	if p.stale {
		if err := p.refresh(ctx); err != nil {
			return err
		}
	}
	for p.readyCount >= kinesislimit.MaxRecordsPerRequest || p.readyBytes >= kinesislimit.MaxRequestBytes || p.buffered >= p.maxBuffered {
		if p.readyCount == 0 {
			if p.sealAll(); p.readyCount == 0 {
				break
			}
		}
		if err := p.sendOne(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes everything buffered and returns the entries that failed for good since the last Flush.
// On an error (context ended, non-retryable request error) the entries not written are returned as
// failures too, and the producer is empty.
func (p *Producer) Flush(ctx context.Context) ([]Failure, error) {
	p.sealAll()
	var err error
	for p.readyCount > 0 {
		if err = ctx.Err(); err != nil {
			break
		}
		if err = p.sendOne(ctx); err != nil {
			break
		}
	}
	if err != nil {
		p.failPending(err)
	}
	f := p.failures
	p.failures = nil
	return f, err
}

// Stats returns the cumulative counters.
func (p *Producer) Stats() Stats { return p.stats }

func (p *Producer) fail(u userRec, err error, reason string) {
	p.failures = append(p.failures, Failure{Tag: u.tag, Reason: reason, Err: err})
	p.stats.Failed++
}

// failPending turns everything buffered into failures (after an error ends a Flush).
func (p *Producer) failPending(err error) {
	p.sealAll()
	for _, s := range p.queues() {
		for _, r := range s.ready {
			for _, u := range r.users {
				p.fail(u, err, "not written: "+err.Error())
			}
		}
		s.ready = nil
	}
	p.readyCount, p.readyBytes, p.buffered = 0, 0, 0
}

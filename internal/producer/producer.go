// Package producer writes records to a Kinesis data stream: per-shard KPL aggregation, exact limits,
// token-bucket pacing and retries of failed entries only. Everything happens inside Put and Flush:
// no goroutine outlives a call.
//
// How a user record travels:
//
//   - Put checks it (partition key 1-256 characters; data + key within the stream's record size, else
//     it is a Failure, never truncated), copies it and predicts its shard: the MD5 of the partition
//     key as a 128-bit big-endian integer, looked up in the hash key ranges of the open shards
//     (ListShards).
//   - With Aggregate it joins that shard's open KPL aggregate, which keeps the record's own partition
//     key in its table. An aggregate is sealed when the next record would take it past
//     AggregateMaxBytes (magic, protobuf varints and MD5 counted exactly); a record that does not fit
//     an empty aggregate goes alone, as does a sealed aggregate of one record.
//   - Sealed Kinesis records wait in their shard's queue. Each shard is paced (pacing.go) by token
//     buckets for bytes and records at its write limit with a burst of a tenth of a second's worth,
//     and by a ledger of what it wrote in the last second, so that no one-second interval, however
//     aligned, carries more than the limit. A request goes when some shard's pacing allows a batch
//     (5 % of a second's worth, or all it holds) and takes from every shard what its pacing allows,
//     up to 500 entries and 5 MiB (data + partition keys). Put writes when a request's worth is
//     ready or too much is buffered; Flush writes everything.
//   - Of a response, only failed entries are retried: ProvisionedThroughputExceededException and
//     InternalFailure go back to the front of their shard's queue and the shard (for a throttle, the
//     one named in the message) backs off once per response with full jitter: at most a second
//     after throttles, up to 5 s after internal failures; a stored write resets the shard's backoff.
//     Any other entry error code is a Failure. An entry that succeeded is never sent again.
//   - A whole-request error is classified: throttling (nothing stored) and 5xx/timeouts/resets (the
//     records may have been stored) are retried with backoff; anything else (validation, access
//     denied, resource not found, …) fails the request's records and is returned. Resending after an
//     ambiguous error can store a record twice: this is unavoidable with PutRecords (there is no
//     idempotency token); the copies are counted in Stats.PossibleDuplicates and consumers drop them
//     by record_id.
//   - When a write lands on a shard other than the predicted one (or a throttle names an unknown
//     shard) the stream has been resharded: the shard map is listed again and everything not yet
//     written is re-aggregated per new shard, so no aggregate mixes keys of different shards.
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/taxistream/taxistream/internal/kpl"
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

// userRec is a buffered user record (its data is our copy).
type userRec struct {
	data []byte
	pk   string
	tag  int64
}

// kRecord is one Kinesis record: an aggregate or a single user record.
type kRecord struct {
	data      []byte
	pk        string
	users     []userRec
	shard     string // predicted
	retries   int
	maybeSent bool
}

func (r *kRecord) size() int { return len(r.data) + len(r.pk) }

type shardState struct {
	id       string
	agg      kpl.Aggregator
	aggUsers []userRec
	ready    []*kRecord
	// Pacing (pacing.go): token buckets and the one-second ledger.
	bytes   bucket
	records bucket
	written ledger
	// Backoff: no write before notBefore. throttles counts the consecutive responses that throttled
	// the shard, failures those with internal failures or request errors; a response with a write
	// stored on the shard resets both.
	notBefore time.Time
	throttles int
	failures  int
}

// pacing is the part of a shardState that outlives a shard map refresh.
func (s *shardState) pacing() *shardState {
	return &shardState{id: s.id, bytes: s.bytes, records: s.records, written: s.written,
		notBefore: s.notBefore, throttles: s.throttles, failures: s.failures}
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

	shards     *shardMap
	stale      bool
	states     map[string]*shardState
	order      []string // round-robin order of states
	next       int      // round-robin start
	buffered   int      // bytes held (user records, data + key)
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
		p.bytesRate = ShardBytesPerSecond
	}
	if p.recordsRate <= 0 {
		p.recordsRate = ShardRecordsPerSecond
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
	kib := DefaultMaxRecordSizeInKiB
	if d := out.StreamDescriptionSummary; d != nil && d.MaxRecordSizeInKiB != nil && *d.MaxRecordSizeInKiB > 0 {
		kib = int(*d.MaxRecordSizeInKiB)
	}
	// A record must also fit a request.
	p.maxRecord = min(kib<<10, MaxRequestBytes)
	p.aggMax = cfg.AggregateMaxBytes
	if p.aggMax <= 0 {
		p.aggMax = DefaultAggregateMaxBytes
	}
	p.aggMax = min(p.aggMax, p.maxRecord)

	if p.shards, err = listOpenShards(ctx, c, cfg); err != nil {
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
	if n := utf8.RuneCountInString(e.PartitionKey); n < MinPartitionKeyLength || n > MaxPartitionKeyLength {
		p.fail(userRec{tag: e.Tag}, ErrInvalidPartitionKey,
			fmt.Sprintf("partition key of %d characters (Kinesis allows %d-%d)", n, MinPartitionKeyLength, MaxPartitionKeyLength))
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
	for p.readyCount >= MaxRecordsPerRequest || p.readyBytes >= MaxRequestBytes || p.buffered >= p.maxBuffered {
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

func (p *Producer) state(id string) *shardState {
	s, ok := p.states[id]
	if !ok {
		now := p.now()
		s = &shardState{
			id:      id,
			bytes:   newBucket(p.bytesRate, p.bytesRate*BurstFraction, now),
			records: newBucket(p.recordsRate, max(1, p.recordsRate*BurstFraction), now),
			written: ledger{recordsLimit: p.recordsRate, bytesLimit: p.bytesRate},
		}
		p.states[id] = s
		p.order = append(p.order, id)
	}
	return s
}

// add puts a user record into its predicted shard's aggregate or queue.
func (p *Producer) add(u userRec) {
	s := p.state(p.shards.predict(u.pk))
	p.buffered += len(u.data) + len(u.pk)
	if !p.cfg.Aggregate {
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
		return
	}
	r := kpl.UserRecord{PartitionKey: u.pk, Data: u.data}
	if s.agg.Len() > 0 && s.agg.SizeWith(r)+len(s.aggUsers[0].pk) > p.aggMax {
		p.seal(s)
	}
	if s.agg.Len() == 0 && s.agg.SizeWith(r)+len(u.pk) > p.aggMax {
		// Too big for an aggregate: alone, as a plain record.
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
		return
	}
	s.agg.Add(r)
	s.aggUsers = append(s.aggUsers, u)
}

func (p *Producer) enqueue(s *shardState, r *kRecord) {
	s.ready = append(s.ready, r)
	p.readyCount++
	p.readyBytes += r.size()
}

// seal turns a shard's open aggregate into a Kinesis record. An aggregate of one user record goes
// as the plain record (as the KPL does).
func (p *Producer) seal(s *shardState) {
	switch len(s.aggUsers) {
	case 0:
		return
	case 1:
		u := s.aggUsers[0]
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
	default:
		p.enqueue(s, &kRecord{data: s.agg.Bytes(), pk: s.aggUsers[0].pk, users: s.aggUsers, shard: s.id})
	}
	s.aggUsers = nil
	s.agg.Reset()
}

func (p *Producer) sealAll() {
	for _, id := range p.order {
		p.seal(p.states[id])
	}
}

func (p *Producer) fail(u userRec, err error, reason string) {
	p.failures = append(p.failures, Failure{Tag: u.tag, Reason: reason, Err: err})
	p.stats.Failed++
}

// failPending turns everything buffered into failures (after an error ends a Flush).
func (p *Producer) failPending(err error) {
	p.sealAll()
	for _, id := range p.order {
		s := p.states[id]
		for _, r := range s.ready {
			for _, u := range r.users {
				p.fail(u, err, "not written: "+err.Error())
			}
		}
		s.ready = nil
	}
	p.readyCount, p.readyBytes, p.buffered = 0, 0, 0
}

// refresh lists the shards again and re-aggregates everything not yet written per new shard.
func (p *Producer) refresh(ctx context.Context) error {
	m, err := listOpenShards(ctx, p.c, p.cfg)
	if err != nil {
		return err
	}
	p.shards, p.stale = m, false
	p.stats.Reshards++
	p.log.InfoContext(ctx, "kinesis shard map refreshed", "stream", p.cfg.stream(), "open_shards", len(m.ranges))

	var users []userRec
	old, oldOrder := p.states, p.order
	for _, id := range oldOrder {
		s := old[id]
		for _, r := range s.ready {
			users = append(users, r.users...)
		}
		users = append(users, s.aggUsers...)
	}
	p.states, p.order, p.next = map[string]*shardState{}, nil, 0
	p.buffered, p.readyCount, p.readyBytes = 0, 0, 0
	for _, id := range oldOrder { // keep the pacing state of shards that still exist
		if m.has(id) {
			p.states[id] = old[id].pacing()
			p.order = append(p.order, id)
		}
	}
	for _, u := range users {
		p.add(u)
	}
	return nil
}

// sendOne writes one request: waits (bounded by ctx) until some shard may send, then sends what the
// token buckets and request limits allow, and handles the response. It returns an error only when
// ctx ends or the request failed for good.
func (p *Producer) sendOne(ctx context.Context) error {
	for {
		if p.stale {
			if err := p.refresh(ctx); err != nil {
				return err
			}
			p.sealAll()
		}
		if p.readyCount == 0 {
			return nil
		}
		req, wake := p.build(p.now())
		if len(req) > 0 {
			return p.send(ctx, req)
		}
		if err := p.sleepUntil(ctx, wake); err != nil {
			return err
		}
	}
}

// build takes records for one request from the shard queues, round robin from p.next. A request
// goes when at least one shard may send a whole batch (see batchReadyAt); it then also takes from
// every other shard what its pacing allows at once, so that shards share requests. When nothing may
// be sent now it returns the earliest time something may.
func (p *Producer) build(now time.Time) (req []*kRecord, wake time.Time) {
	n := len(p.order)
	due := false
	for _, id := range p.order {
		s := p.states[id]
		if len(s.ready) == 0 {
			continue
		}
		at := p.batchReadyAt(s, now)
		if s.notBefore.After(at) {
			at = s.notBefore
		}
		if at.After(now) {
			wake = earliest(wake, at)
			continue
		}
		due = true
	}
	if !due {
		return nil, wake
	}
	bytes := 0
	for k := 0; k < n && len(req) < MaxRecordsPerRequest; k++ {
		s := p.states[p.order[(p.next+k)%n]]
		if len(s.ready) == 0 || now.Before(s.notBefore) {
			continue
		}
		taken, takenBytes := 0, 0.0
		for len(s.ready) > 0 && len(req) < MaxRecordsPerRequest {
			r := s.ready[0]
			size := float64(r.size())
			if bytes+r.size() > MaxRequestBytes || (taken > 0 && !p.inBatch(taken, takenBytes, size)) {
				break
			}
			if s.bytes.readyAt(now, size).After(now) || s.records.readyAt(now, 1).After(now) ||
				s.written.readyAt(now, 1, size).After(now) {
				break
			}
			s.bytes.take(now, size)
			s.records.take(now, 1)
			s.written.take(1, size)
			s.ready = s.ready[1:]
			p.readyCount--
			p.readyBytes -= r.size()
			bytes += r.size()
			req = append(req, r)
			taken++
			takenBytes += size
		}
	}
	if n > 0 {
		p.next = (p.next + 1) % n
	}
	return req, wake
}

// A shard's batch is the records at the head of its queue within batchFraction of its limits (at
// least one record; one in Ordered mode) and one request. A shard sends when its pacing allows a
// whole batch, and at most a batch per request: requests stay at a few dozen records per shard
// rather than one each, and a shard that waited does not send a double batch that the ledger then
// makes it wait for a second later (a cycle that costs throughput for good).

// inBatch says whether a record of size bytes joins a batch that has records and bytes already.
func (p *Producer) inBatch(records int, bytes, size float64) bool {
	return !p.cfg.Ordered && float64(records+1) <= max(1, p.recordsRate*batchFraction) &&
		bytes+size <= p.bytesRate*batchFraction && records < MaxRecordsPerRequest &&
		bytes+size <= MaxRequestBytes
}

// batchReadyAt returns when shard s may send its next batch.
func (p *Producer) batchReadyAt(s *shardState, now time.Time) time.Time {
	var records int
	var bytes float64
	for _, r := range s.ready {
		size := float64(r.size())
		if records > 0 && !p.inBatch(records, bytes, size) {
			break
		}
		records++
		bytes += size
	}
	at := s.bytes.readyAt(now, bytes)
	if t := s.records.readyAt(now, float64(records)); t.After(at) {
		at = t
	}
	if t := s.written.readyAt(now, float64(records), bytes); t.After(at) {
		at = t
	}
	return at
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// requeue puts records back at the front of their shards' queues, keeping their order.
func (p *Producer) requeue(recs []*kRecord) {
	byShard := map[string][]*kRecord{}
	var ids []string
	for _, r := range recs {
		if _, ok := byShard[r.shard]; !ok {
			ids = append(ids, r.shard)
		}
		byShard[r.shard] = append(byShard[r.shard], r)
		p.readyCount++
		p.readyBytes += r.size()
	}
	for _, id := range ids {
		s := p.state(id)
		s.ready = append(byShard[id], s.ready...)
	}
}

// backOff delays a shard after a response that throttled it (throttle) or failed its records
// otherwise (internal failure, request error): full jitter, capped at throttleBackoffCap for throttles
// (the shard's second is full; the next one is at most a second away) and at backoffCap otherwise.
// Called once per shard and response, so the exponent counts responses, not entries.
func (p *Producer) backOff(id string, throttle bool, now time.Time) {
	s := p.state(id)
	var d time.Duration
	if throttle {
		s.throttles++
		d = p.jitter(s.throttles, throttleBackoffCap)
	} else {
		s.failures++
		d = p.jitter(s.failures, backoffCap)
	}
	if t := now.Add(d); t.After(s.notBefore) {
		s.notBefore = t
	}
}

// retryOrFail requeues r for another try or, past MaxRetries, fails its user records.
func (p *Producer) retryOrFail(r *kRecord, why string, retry *[]*kRecord) {
	r.retries++
	if p.maxRetries >= 0 && r.retries > p.maxRetries {
		for _, u := range r.users {
			p.fail(u, ErrRetriesExhausted, fmt.Sprintf("still failing after %d retries: %s", p.maxRetries, why))
		}
		p.buffered -= r.userBytes()
		return
	}
	p.stats.Retries++
	*retry = append(*retry, r)
}

func (r *kRecord) userBytes() int {
	n := 0
	for _, u := range r.users {
		n += len(u.data) + len(u.pk)
	}
	return n
}

func (p *Producer) send(ctx context.Context, req []*kRecord) error {
	in := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(req))}
	if p.cfg.StreamARN != "" {
		in.StreamARN = &p.cfg.StreamARN
	} else {
		in.StreamName = &p.cfg.StreamName
	}
	for i, r := range req {
		in.Records[i] = types.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.pk)}
	}
	p.stats.Requests++
	out, err := p.c.PutRecords(ctx, in, putOptions)
	now := p.now()
	// Whatever the outcome, the stream may have counted the request by now: it counts in the
	// shards' ledgers until a second from now.
	for _, r := range req {
		if s, ok := p.states[r.shard]; ok {
			s.written.commit(now)
		}
	}
	if err == nil && len(out.Records) != len(req) {
		err = fmt.Errorf("putting records: %d results for %d entries: %w", len(out.Records), len(req),
			errMalformedResponse)
	}
	if err != nil {
		return p.requestFailed(ctx, req, err, now)
	}

	var (
		retry []*kRecord
		// Per shard: stored a record, throttled, failed otherwise (in order of appearance).
		stored          = map[string]bool{}
		throttled       = map[string]bool{}
		failed          = map[string]bool{}
		throttledShards []string
		failedShards    []string
	)
	for i, res := range out.Records {
		r := req[i]
		if res.ErrorCode == nil {
			p.stats.KinesisRecords++
			p.stats.UserRecords += int64(len(r.users))
			p.stats.Bytes += int64(r.size())
			p.buffered -= r.userBytes()
			stored[r.shard] = true
			if res.ShardId != nil && r.shard != "" && *res.ShardId != r.shard {
				p.markStale(ctx, "write landed on another shard", r.shard, *res.ShardId)
			}
			continue
		}
		code, msg := *res.ErrorCode, aws.ToString(res.ErrorMessage)
		switch code {
		case codeThroughputExceeded:
			p.stats.Throttled++
			shard := throttledShard(msg)
			if shard == "" {
				shard = r.shard
			} else if !p.shards.has(shard) {
				p.markStale(ctx, "throttle names an unknown shard", r.shard, shard)
			}
			if !throttled[shard] {
				throttled[shard] = true
				throttledShards = append(throttledShards, shard)
			}
			p.retryOrFail(r, code+": "+msg, &retry)
		case codeInternalFailure:
			if !failed[r.shard] {
				failed[r.shard] = true
				failedShards = append(failedShards, r.shard)
			}
			p.retryOrFail(r, code+": "+msg, &retry)
		default:
			for _, u := range r.users {
				p.fail(u, fmt.Errorf("%w: %s: %s", ErrEntryRejected, code, msg), code+": "+msg)
			}
			p.buffered -= r.userBytes()
		}
	}
	// A shard that stored a record is not congested: its backoff starts over. One that was throttled
	// (the shard the message names) or failed backs off once for this response.
	for id := range stored {
		if s, ok := p.states[id]; ok {
			s.throttles, s.failures = 0, 0
		}
	}
	for _, id := range throttledShards {
		p.backOff(id, true, now)
	}
	for _, id := range failedShards {
		if !throttled[id] {
			p.backOff(id, false, now)
		}
	}
	p.requeue(retry)
	return nil
}

var errMalformedResponse = errors.New("malformed PutRecords response")

func (p *Producer) markStale(ctx context.Context, why, predicted, actual string) {
	if !p.stale {
		p.log.InfoContext(ctx, "kinesis shard map is stale", "reason", why, "predicted", predicted, "shard_id", actual)
	}
	p.stale = true
}

// requestFailed handles a whole-request error.
func (p *Producer) requestFailed(ctx context.Context, req []*kRecord, err error, now time.Time) error {
	if ctx.Err() != nil {
		// The request may or may not have been stored; it goes back so Flush reports it as not written.
		for _, r := range req {
			r.maybeSent = true
		}
		p.requeue(req)
		return fmt.Errorf("putting records to %s: %w", p.cfg.stream(), ctx.Err())
	}
	class := classify(err)
	if errors.Is(err, errMalformedResponse) {
		class = retryMaybeSent
	}
	if class == terminal {
		for _, r := range req {
			for _, u := range r.users {
				p.fail(u, err, "request failed: "+err.Error())
			}
			p.buffered -= r.userBytes()
		}
		return fmt.Errorf("putting records to %s: %w", p.cfg.stream(), err)
	}
	p.log.WarnContext(ctx, "kinesis request failed; retrying", "stream", p.cfg.stream(), "records", len(req), "err", err)
	var retry []*kRecord
	seen := map[string]bool{}
	for _, r := range req {
		if class == retryMaybeSent {
			r.maybeSent = true
			p.stats.PossibleDuplicates += int64(len(r.users))
		}
		if !seen[r.shard] {
			seen[r.shard] = true
			p.backOff(r.shard, class == retryNotStored, now)
		}
		p.retryOrFail(r, "request error: "+err.Error(), &retry)
	}
	p.requeue(retry)
	return nil
}

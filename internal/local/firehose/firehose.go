// Package firehose is an in-process emulation of an Amazon Data Firehose delivery stream with a Kinesis
// data stream as source and S3 as destination, for the local cloud.
//
// What it does like the real service:
//
//   - It starts reading every shard at LATEST when it is created (New): records written to the stream
//     before are not archived. Shards that appear later (resharding) are read from TRIM_HORIZON.
//   - It de-aggregates KPL aggregated records (Config.Deaggregate); a corrupt aggregate is not archived
//     but written, as one JSON error record per Kinesis record, under ErrorOutputPrefix with
//     !{firehose:error-output-type} = "processing-failed".
//   - It buffers by size (BufferSizeMiB) and time (BufferIntervalSeconds, counted from the first record
//     in the buffer) and delivers when either is reached; an object never exceeds the size hint unless a
//     single record does.
//   - It compresses with GZIP when asked and names objects
//     <evaluated prefix><DeliveryStreamName>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid>[.gz]; the prefix
//     expressions !{timestamp:<java pattern>}, !{firehose:random-string} and
//     !{firehose:error-output-type} are evaluated with the approximate arrival timestamp of the oldest
//     record in the object, in UTC (the documented rule). The timestamp in the object name uses the same
//     instant (AWS does not document which time it uses there).
//   - Records are concatenated as they are, with no delimiter.
//   - A failed S3 write keeps the buffer and is retried on the next round (delivery is at least once).
//   - With Config.StatePath it keeps its read position per shard in that file (state.go), advanced only
//     past records whose every user record is in a delivered object: a delivery stream created again
//     on the same file (a restart, a crash) re-reads what it had buffered but not delivered, and
//     continues where it stopped. Records may be archived twice that way, never lost.
package firehose

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"

	"github.com/taxistream/taxistream/internal/kpl"
)

// Firehose defaults and limits (ExtendedS3DestinationConfiguration BufferingHints).
const (
	DefaultBufferSizeMiB         = 5
	DefaultBufferIntervalSeconds = 300
	DefaultPollInterval          = time.Second
	// getRecordsLimit is what one GetRecords call asks for.
	getRecordsLimit = 10000
)

// Compression formats.
const (
	CompressionUncompressed = "UNCOMPRESSED"
	CompressionGZIP         = "GZIP"
)

// shardReader is the part of the Kinesis API Firehose reads with; *kinesis.Client and *stream.Stream
// fit it.
type shardReader interface {
	ListShards(ctx context.Context, params *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, params *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, params *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// objectPutter writes the delivered objects; *s3.Client fits it.
type objectPutter interface {
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var (
	_ shardReader  = (*kinesis.Client)(nil)
	_ objectPutter = (*s3.Client)(nil)
)

// DeaggregateFunc splits a Kinesis record into its KPL user records; kpl.Deaggregate is the default.
// It returns an error wrapping kpl.ErrCorrupt for a corrupt aggregate.
type DeaggregateFunc func(data []byte, partitionKey, explicitHashKey string) ([]kpl.UserRecord, error)

// Config configures a delivery stream.
type Config struct {
	DeliveryStreamName    string // required
	DeliveryStreamVersion int    // default 1
	StreamName            string // source stream name (or StreamARN)
	StreamARN             string
	Bucket                string // destination bucket (required)
	Prefix                string // default "YYYY/MM/dd/HH/" evaluated
	// ErrorOutputPrefix is required when Prefix has expressions, as Firehose requires; default
	// "!{firehose:error-output-type}/YYYY/MM/dd/HH/" otherwise.
	ErrorOutputPrefix     string
	BufferSizeMiB         int    // SizeInMBs, default 5
	BufferIntervalSeconds int    // IntervalInSeconds, default 300
	CompressionFormat     string // GZIP or UNCOMPRESSED (default)

	// StatePath, if set, is the file that keeps the delivery stream's read positions across restarts
	// (state.go). New resumes from it when it exists.
	StatePath string
	// SpoolDir, if set, is a folder where uncompressed buffers are kept as files instead of in memory
	// (a 64 MiB buffer costs no memory; GZIP buffers are compressed as records come in and stay in
	// memory). They are scratch: after a restart the records are read again from the stream
	// (StatePath), so New empties them.
	SpoolDir string

	PollInterval time.Duration    // Run's pause between rounds, default 1 s
	Deaggregate  DeaggregateFunc  // default kpl.Deaggregate
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
}

// Stats counts what the delivery stream did.
type Stats struct {
	RecordsIn        int64 // Kinesis records read
	UserRecords      int64 // user records after de-aggregation, put in the buffer
	RecordsDelivered int64 // user records in delivered objects
	ObjectsWritten   int64
	BytesIn          int64 // uncompressed bytes delivered
	BytesWritten     int64 // object bytes written (after compression)
	ErrorRecords     int64 // Kinesis records sent to the error prefix
	ErrorObjects     int64
	ReadThrottles    int64 // GetRecords calls throttled
	Errors           int64 // other failed calls (GetRecords, PutObject, ...)
	BufferedRecords  int64 // user records waiting in the buffer
	BufferedBytes    int64
}

// Firehose is one local delivery stream. Poll, Flush and Run may be called from several goroutines;
// rounds are serialised.
type Firehose struct {
	cfg      Config
	src      shardReader
	dst      objectPutter
	prefix   prefix
	errPfx   prefix
	bufLimit int
	interval time.Duration
	created  time.Time

	mu     sync.Mutex
	shards map[string]*shardState
	order  []string
	main   buffer
	errs   buffer
	stats  Stats
	polled bool
	behind bool
}

type shardState struct {
	iterator *string
	lastSeq  string // the last record read whole: all its user records are in a buffer
	done     bool
	// checkpoint is the last record whose user records are all in delivered objects ("" none yet);
	// start is where reading began when none is ("AT_TIMESTAMP" of the creation, or TRIM_HORIZON).
	checkpoint string
	start      types.ShardIteratorType
}

type buffer struct {
	data    bytes.Buffer
	spool   *spool // instead of data, with Config.SpoolDir
	records int64
	oldest  time.Time // approximate arrival of the oldest record
	opened  time.Time // when the first record went in
	// from is, per shard with records in the buffer, the shard's lastSeq when its first one went in:
	// the position a restart must read from again while the buffer is not delivered.
	from map[string]string

	// With GZIP the records are compressed as they come in (zw), not when the buffer is delivered: a
	// delivery then only closes the stream, and the compression runs while records arrive instead of
	// on the way out (a run's last object was ~80 ms of gzip on the critical path of a local run).
	// n counts the bytes before compression: the size hint applies to them, as on AWS.
	gzip   bool
	zw     *gzip.Writer
	zopen  bool // zw is writing a member
	sealed bool // the member is closed: data or spool holds one complete gzip member
	n      int
}

// sink is where the buffered bytes go: the spool file or memory.
func (b *buffer) sink() io.Writer {
	if b.spool != nil {
		return spoolWriter{b.spool}
	}
	return &b.data
}

func (b *buffer) add(p []byte, shardID, lastSeq string, arrival, now time.Time) error {
	if b.records == 0 {
		b.oldest, b.opened = arrival, now
	}
	if _, ok := b.from[shardID]; !ok {
		if b.from == nil {
			b.from = map[string]string{}
		}
		b.from[shardID] = lastSeq
	}
	if arrival.Before(b.oldest) {
		b.oldest = arrival
	}
	if err := b.write(p); err != nil {
		return err
	}
	b.records++
	return nil
}

func (b *buffer) write(p []byte) error {
	b.n += len(p)
	if !b.gzip {
		_, err := b.sink().Write(p)
		return err
	}
	if b.sealed {
		if err := b.unseal(); err != nil {
			return err
		}
	}
	b.open()
	_, err := b.zw.Write(p)
	return err
}

// open starts a gzip member if none is being written.
func (b *buffer) open() {
	switch {
	case b.zopen:
		return
	case b.zw == nil:
		// The fastest level: AWS does not document Firehose's, and locally CPU matters more than the
		// archive's size (8.4 % of the JSON instead of 6.7 %, 1.6× faster than the default level).
		b.zw, _ = gzip.NewWriterLevel(b.sink(), gzip.BestSpeed)
	default:
		b.zw.Reset(b.sink())
	}
	b.zopen = true
}

// unseal reopens a sealed buffer (its delivery failed and more records came): the member written so
// far is decompressed and compressed again as the start of a new one, so that an object is always a
// single gzip member. Rare: it takes a failed PutObject.
func (b *buffer) unseal() error {
	src, _, err := b.stored()
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return fmt.Errorf("reopening the buffer: %w", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("reopening the buffer: %w", err)
	}
	if err := b.clear(); err != nil {
		return err
	}
	b.sealed = false
	b.open()
	_, err = b.zw.Write(plain)
	return err
}

// size is the bytes buffered, before compression.
func (b *buffer) size() int { return b.n }

// content returns what a delivery sends and its length: the records, compressed with GZIP.
func (b *buffer) content() (io.Reader, int64, error) {
	if b.zopen {
		b.zopen = false
		if err := b.zw.Close(); err != nil {
			return nil, 0, fmt.Errorf("compressing the buffer: %w", err)
		}
		b.sealed = true
	}
	return b.stored()
}

func (b *buffer) stored() (io.Reader, int64, error) {
	if b.spool != nil {
		r, err := b.spool.reader()
		return r, b.spool.n, err
	}
	return bytes.NewReader(b.data.Bytes()), int64(b.data.Len()), nil
}

func (b *buffer) clear() error {
	b.data.Reset()
	if b.spool != nil {
		return b.spool.reset()
	}
	return nil
}

func (b *buffer) reset() error {
	b.records, b.n, b.sealed, b.zopen = 0, 0, false, false
	clear(b.from)
	return b.clear()
}

// New creates the delivery stream and positions it at LATEST on every open shard of the source.
func New(cfg Config, src shardReader, dst objectPutter) (*Firehose, error) {
	var errs []error
	if cfg.DeliveryStreamName == "" {
		errs = append(errs, errors.New("DeliveryStreamName is required"))
	}
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("no bucket in the configuration"))
	}
	if cfg.StreamName == "" && cfg.StreamARN == "" {
		errs = append(errs, errors.New("StreamName or StreamARN is required"))
	}
	if cfg.DeliveryStreamVersion == 0 {
		cfg.DeliveryStreamVersion = 1
	}
	if cfg.BufferSizeMiB == 0 {
		cfg.BufferSizeMiB = DefaultBufferSizeMiB
	}
	if cfg.BufferIntervalSeconds == 0 {
		cfg.BufferIntervalSeconds = DefaultBufferIntervalSeconds
	}
	if cfg.BufferSizeMiB < 1 || cfg.BufferSizeMiB > 128 {
		errs = append(errs, fmt.Errorf("BufferSizeMiB %d out of range 1..128", cfg.BufferSizeMiB))
	}
	if cfg.BufferIntervalSeconds < 0 || cfg.BufferIntervalSeconds > 900 {
		errs = append(errs, fmt.Errorf("BufferIntervalSeconds %d out of range 0..900", cfg.BufferIntervalSeconds))
	}
	switch cfg.CompressionFormat {
	case "":
		cfg.CompressionFormat = CompressionUncompressed
	case CompressionUncompressed, CompressionGZIP:
	default:
		errs = append(errs, fmt.Errorf("CompressionFormat %q not supported (GZIP, UNCOMPRESSED)", cfg.CompressionFormat))
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Deaggregate == nil {
		cfg.Deaggregate = kpl.Deaggregate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pfx, errPfx := cfg.Prefix, cfg.ErrorOutputPrefix
	if pfx == "" {
		pfx = defaultPrefix
	}
	p, err := compilePrefix(pfx, false)
	if err != nil {
		errs = append(errs, fmt.Errorf("evaluating the prefix: %w", err))
	}
	if errPfx == "" {
		if cfg.Prefix != "" && p.expressions {
			errs = append(errs, errors.New("ErrorOutputPrefix is required when Prefix has expressions"))
		}
		errPfx = defaultErrorPrefix
	}
	ep, err := compilePrefix(errPfx, true)
	if err != nil {
		errs = append(errs, fmt.Errorf("ErrorOutputPrefix: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("creating delivery stream %s: %w", cfg.DeliveryStreamName, err)
	}
	f := &Firehose{
		cfg: cfg, src: src, dst: dst, prefix: p, errPfx: ep,
		bufLimit: cfg.BufferSizeMiB << 20,
		interval: time.Duration(cfg.BufferIntervalSeconds) * time.Second,
		created:  cfg.Now(),
		shards:   map[string]*shardState{},
		behind:   true,
	}
	f.main.gzip = cfg.CompressionFormat == CompressionGZIP
	f.errs.gzip = f.main.gzip
	// With GZIP a buffer holds the compressed records (~8 % of a full buffer's 128 MiB at most for
	// JSON lines): it stays in memory, and a delivery does not read back a file it has just written.
	if cfg.SpoolDir != "" && !f.main.gzip {
		var err error
		if f.main.spool, err = openSpool(cfg.SpoolDir, "main.buffer"); err == nil {
			f.errs.spool, err = openSpool(cfg.SpoolDir, "errors.buffer")
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("creating delivery stream %s: %w", cfg.DeliveryStreamName, err)
		}
	}
	resumed, err := f.loadState()
	if err != nil {
		return nil, fmt.Errorf("creating delivery stream %s: %w", cfg.DeliveryStreamName, err)
	}
	pos := types.ShardIteratorTypeLatest
	if resumed {
		pos = types.ShardIteratorTypeTrimHorizon // shards it does not know were created after it
	}
	if err := f.discover(context.Background(), pos); err != nil {
		return nil, fmt.Errorf("creating delivery stream %s: %w", cfg.DeliveryStreamName, err)
	}
	if err := f.saveState(); err != nil {
		return nil, fmt.Errorf("creating delivery stream %s: %w", cfg.DeliveryStreamName, err)
	}
	return f, nil
}

func (f *Firehose) streamRef() (name, arn *string) {
	if f.cfg.StreamARN != "" {
		return nil, aws.String(f.cfg.StreamARN)
	}
	return aws.String(f.cfg.StreamName), nil
}

// discover lists the shards and starts reading the ones not seen yet at the given position.
func (f *Firehose) discover(ctx context.Context, pos types.ShardIteratorType) error {
	name, arn := f.streamRef()
	in := &kinesis.ListShardsInput{StreamName: name, StreamARN: arn}
	for {
		out, err := f.src.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("listing shards: %w", err)
		}
		for _, sh := range out.Shards {
			id := aws.ToString(sh.ShardId)
			st, ok := f.shards[id]
			if ok && (st.iterator != nil || st.done) {
				continue
			}
			if !ok {
				st = &shardState{start: pos}
				if pos == types.ShardIteratorTypeLatest {
					st.start = types.ShardIteratorTypeAtTimestamp // LATEST as of the creation
				}
			}
			if !ok && pos == types.ShardIteratorTypeLatest && sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				st.done = true // closed before we existed: nothing new will arrive
			} else if !st.done {
				in := &kinesis.GetShardIteratorInput{StreamName: name, StreamARN: arn, ShardId: sh.ShardId, ShardIteratorType: pos}
				switch {
				case ok && st.checkpoint != "": // resumed from the state file
					in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(st.checkpoint)
				case ok && st.start == types.ShardIteratorTypeAtTimestamp:
					in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(f.created)
				case ok:
					in.ShardIteratorType = st.start
				}
				it, err := f.src.GetShardIterator(ctx, in)
				if err != nil {
					return fmt.Errorf("getting %s iterator for %s: %w", in.ShardIteratorType, id, err)
				}
				st.iterator = it.ShardIterator
				st.lastSeq = st.checkpoint
			}
			if ok {
				continue
			}
			f.shards[id] = st
			f.order = append(f.order, id)
		}
		if out.NextToken == nil {
			return nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// Poll runs one round: one GetRecords call per shard, buffering, and delivery of every buffer that
// reached its size or interval. Errors of single calls are counted, joined and returned; the round goes
// on with the other shards.
func (f *Firehose) Poll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	if err := f.discover(ctx, types.ShardIteratorTypeTrimHorizon); err != nil {
		f.stats.Errors++
		errs = append(errs, err)
	}
	behind := false
	for _, id := range f.order {
		st := f.shards[id]
		if st.done {
			continue
		}
		b, err := f.readShard(ctx, id, st)
		if err != nil {
			errs = append(errs, err)
		}
		behind = behind || b
	}
	now := f.cfg.Now()
	for _, b := range []*buffer{&f.main, &f.errs} {
		if b.records > 0 && now.Sub(b.opened) >= f.interval {
			if err := f.deliver(ctx, b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := f.advance(); err != nil {
		errs = append(errs, err)
	}
	f.polled, f.behind = true, behind || len(errs) > 0
	return errors.Join(errs...)
}

// readShard makes one GetRecords call and buffers what it returns. It reports whether the shard may
// have more to read.
func (f *Firehose) readShard(ctx context.Context, id string, st *shardState) (bool, error) {
	out, err := f.src.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: st.iterator, Limit: aws.Int32(getRecordsLimit)})
	var expired *types.ExpiredIteratorException
	if errors.As(err, &expired) {
		if err := f.renewIterator(ctx, id, st); err != nil {
			return true, err
		}
		out, err = f.src.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: st.iterator, Limit: aws.Int32(getRecordsLimit)})
	}
	var throttled *types.ProvisionedThroughputExceededException
	switch {
	case errors.As(err, &throttled):
		f.stats.ReadThrottles++
		return true, nil
	case err != nil:
		f.stats.Errors++
		return true, fmt.Errorf("getting records from %s: %w", id, err)
	}
	for _, r := range out.Records {
		if err := f.ingest(ctx, id, r); err != nil {
			return true, err
		}
		st.lastSeq = aws.ToString(r.SequenceNumber)
	}
	st.iterator = out.NextShardIterator
	if st.iterator == nil {
		st.done = true
		return false, nil
	}
	return aws.ToInt64(out.MillisBehindLatest) > 0, nil
}

// renewIterator replaces an expired iterator: after the last record read, or, when none was read yet,
// at the creation time of the delivery stream.
func (f *Firehose) renewIterator(ctx context.Context, id string, st *shardState) error {
	name, arn := f.streamRef()
	in := &kinesis.GetShardIteratorInput{StreamName: name, StreamARN: arn, ShardId: aws.String(id)}
	if st.lastSeq != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(st.lastSeq)
	} else {
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(f.created)
	}
	it, err := f.src.GetShardIterator(ctx, in)
	if err != nil {
		f.stats.Errors++
		return fmt.Errorf("renewing expired iterator of %s: %w", id, err)
	}
	st.iterator = it.ShardIterator
	return nil
}

// errorRecord is what a record that could not be processed becomes under ErrorOutputPrefix, after the
// shape of Firehose's processing-failed records.
type errorRecord struct {
	AttemptsMade           int    `json:"attemptsMade"`
	ArrivalTimestamp       int64  `json:"arrivalTimestamp"`
	ErrorCode              string `json:"errorCode"`
	ErrorMessage           string `json:"errorMessage"`
	AttemptEndingTimestamp int64  `json:"attemptEndingTimestamp"`
	RawData                string `json:"rawData"`
	ShardID                string `json:"shardId"`
	SequenceNumber         string `json:"sequenceNumber"`
	PartitionKey           string `json:"partitionKey"`
}

func (f *Firehose) ingest(ctx context.Context, shardID string, r types.Record) error {
	f.stats.RecordsIn++
	now := f.cfg.Now()
	arrival := aws.ToTime(r.ApproximateArrivalTimestamp)
	users, err := f.cfg.Deaggregate(r.Data, aws.ToString(r.PartitionKey), "")
	if err != nil {
		f.stats.ErrorRecords++
		line, _ := json.Marshal(errorRecord{
			AttemptsMade: 1, ArrivalTimestamp: arrival.UnixMilli(), ErrorCode: "Kinesis.DeaggregationFailed",
			ErrorMessage: err.Error(), AttemptEndingTimestamp: now.UnixMilli(),
			RawData: base64.StdEncoding.EncodeToString(r.Data), ShardID: shardID,
			SequenceNumber: aws.ToString(r.SequenceNumber), PartitionKey: aws.ToString(r.PartitionKey),
		})
		return f.add(ctx, &f.errs, append(line, '\n'), shardID, arrival, now)
	}
	for _, u := range users {
		f.stats.UserRecords++
		if err := f.add(ctx, &f.main, u.Data, shardID, arrival, now); err != nil {
			return err
		}
	}
	return nil
}

// add puts p in b, delivering first if p would push b past the size hint, and after if b reached it.
func (f *Firehose) add(ctx context.Context, b *buffer, p []byte, shardID string, arrival, now time.Time) error {
	if b.records > 0 && b.size()+len(p) > f.bufLimit {
		if err := f.deliver(ctx, b); err != nil {
			return err
		}
	}
	if err := b.add(p, shardID, f.shards[shardID].lastSeq, arrival, now); err != nil {
		f.stats.Errors++
		return fmt.Errorf("buffering: %w", err)
	}
	if b.size() >= f.bufLimit {
		return f.deliver(ctx, b)
	}
	return nil
}

// deliver writes b as one object and empties it; on failure b is kept for the next attempt.
func (f *Firehose) deliver(ctx context.Context, b *buffer) error {
	if b.records == 0 {
		return nil
	}
	isErr := b == &f.errs
	src, n, err := b.content()
	if err != nil {
		f.stats.Errors++
		return fmt.Errorf("reading the buffer: %w", err)
	}
	body := &countingReader{r: src}
	ext := ""
	if b.gzip {
		ext = ".gz"
	}
	ts := b.oldest.UTC()
	p := f.prefix
	if isErr {
		p = f.errPfx
	}
	key := p.eval(ts, ErrorOutputTypeProcessingFailed) +
		fmt.Sprintf("%s-%d-%s-%s%s", f.cfg.DeliveryStreamName, f.cfg.DeliveryStreamVersion, ts.Format("2006-01-02-15-04-05"), uuid.NewString(), ext)
	_, err = f.dst.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(f.cfg.Bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(n),
	})
	if err != nil {
		f.stats.Errors++
		f.cfg.Logger.WarnContext(ctx, "firehose delivery failed; will retry", "delivery_stream", f.cfg.DeliveryStreamName, "bucket", f.cfg.Bucket, "key", key, "err", err)
		return fmt.Errorf("putting s3://%s/%s: %w", f.cfg.Bucket, key, err)
	}
	if isErr {
		f.stats.ErrorObjects++
	} else {
		f.stats.ObjectsWritten++
		f.stats.RecordsDelivered += b.records
		f.stats.BytesIn += int64(b.size())
		f.stats.BytesWritten += body.n
	}
	if err := b.reset(); err != nil {
		return err
	}
	return f.advance()
}

// Flush delivers both buffers now, whatever their size and age (used at shutdown).
func (f *Firehose) Flush(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.deliver(ctx, &f.main), f.deliver(ctx, &f.errs))
}

// Run polls every PollInterval until ctx is done. It does not flush: call Flush after it returns to
// deliver what is still buffered.
func (f *Firehose) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := f.Poll(ctx); err != nil && ctx.Err() == nil {
			f.cfg.Logger.WarnContext(ctx, "firehose poll", "delivery_stream", f.cfg.DeliveryStreamName, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Stats returns the counters.
func (f *Firehose) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.BufferedRecords = f.main.records + f.errs.records
	s.BufferedBytes = int64(f.main.size() + f.errs.size())
	return s
}

// Busy reports whether the source may still hold records this delivery stream has not read, as seen by
// the last completed Poll: true before the first Poll, when a shard was behind (MillisBehindLatest > 0),
// throttled or failed. To know that records written before some moment are read, run a Poll that started
// after it and then ask.
func (f *Firehose) Busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.polled || f.behind
}

// Idle reports whether everything read has been delivered and the source is caught up: !Busy() and both
// buffers empty.
func (f *Firehose) Idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polled && !f.behind && f.main.records == 0 && f.errs.records == 0
}

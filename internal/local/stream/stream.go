// Package stream is an in-process emulation of an Amazon Kinesis data stream (provisioned mode) for the
// local cloud: shards with hash key ranges, MD5 routing, sequence numbers, iterators, retention, the
// real per-shard write and read limits and fault injection. Its methods have the exact signatures of
// *kinesis.Client, so code written against the SDK client runs on it unchanged, and it returns the SDK's
// own error types (types.ProvisionedThroughputExceededException, ...) so callers classify them as they
// would real ones.
//
// Emulation choices (the real service does not document every detail):
//
//   - Write limits are measured in fixed one-second windows aligned to the Unix second of the injected
//     clock, per shard: within one window a shard accepts 1,000 records and 1 MiB (data + partition key);
//     the 1,001st record, or the byte that crosses 1 MiB, is rejected with a per-entry
//     ProvisionedThroughputExceededException. Rejected entries consume no capacity. A record larger than
//     1 MiB (possible when MaxRecordSizeInKiB > 1024) is accepted only as the first write of a window.
//   - Read limits: 5 GetRecords calls per shard per one-second window, and 2 MiB/s per shard as a token
//     bucket of 2 MiB that may go into debt: a call that returns 10 MiB makes the following calls on that
//     shard throttle for about 4 s (AWS says "for the next 5 seconds"). Both are shared by every consumer of
//     the shard, as with shared-throughput consumers on AWS.
//   - Records live in per-shard append-only segment files under Config.Dir (log.go), or in memory
//     without one; only a sparse index is held in memory either way. A stream opened on a Dir that
//     holds one continues it: same shards, records, sequence numbers (durable.go). A PutRecords
//     answered is written to its files first, so a process killed after the answer loses nothing
//     (the files are not synced: a machine that loses power may). Records older than the retention
//     period are trimmed on every call; set Config.MaxBytes to bound what is kept further (oldest
//     records trimmed first, a deviation from AWS).
//   - Sequence numbers are 56 decimal digits: "4959", a 20-digit counter shared by the whole stream, and the
//     shard's index in 32 digits, so they increase with time in every shard and compare as big integers.
//     A new stream starts its counter at the clock's Unix nanoseconds, so even a stream created afresh
//     in a folder numbers its records above those of any earlier stream there.
//   - Shard iterators are opaque strings that expire 5 minutes after they were issued.
package stream

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// The Kinesis limits the stream enforces are internal/kinesislimit's.

const (
	// AccountID is the account every local ARN names.
	AccountID = "000000000000"
	// DefaultRegion is used when Config.Region is empty.
	DefaultRegion = "us-east-1"
)

// Config configures a Stream.
type Config struct {
	Name               string // stream name (required)
	Region             string // default DefaultRegion
	ShardCount         int    // default 1
	RetentionHours     int    // default kinesislimit.DefaultRetentionHours
	MaxRecordSizeInKiB int    // default kinesislimit.DefaultMaxRecordSizeInKiB; at most kinesislimit.MaxMaxRecordSizeInKiB

	// LimitsOff disables the per-shard write and read throughput limits (request and record size
	// validation stays on), for unit tests of other packages.
	LimitsOff bool
	// MaxBytes bounds the data kept (0 = only retention trims). Beyond it the oldest records are
	// trimmed, which AWS never does: set it large enough that consumers keep up.
	MaxBytes int64
	// Dir, if set, is the folder the stream keeps its records and layout in (durable.go): a stream
	// opened on a folder that holds one continues it. Empty: in memory.
	Dir string

	Faults Faults

	// Observer, if set, sees every answered PutRecord(s) request (the local cloud's timeline).
	Observer PutObserver

	// Now is the clock (default time.Now). Tests inject one to control time without sleeping.
	Now func() time.Time
	// Sleep waits for Faults.Latency (default: a timer that honours ctx).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Faults injects failures. Draws come from one RNG seeded with Seed, in call order, so a test that
// makes the same calls sees the same faults.
type Faults struct {
	Seed int64
	// InternalFailureRate is the probability that one PutRecords entry fails with ErrorCode
	// "InternalFailure" (not stored).
	InternalFailureRate float64
	// RequestErrorRate is the probability that a whole PutRecord(s) or GetRecords request fails with a
	// server error (InternalFailure or ServiceUnavailable); nothing is stored.
	RequestErrorRate float64
	// StoreThenFailRate is the probability that a PutRecord(s) request is stored but returns a timeout
	// error, like a request that timed out on the client after the service processed it.
	StoreThenFailRate float64
	// Latency is added to every PutRecord, PutRecords and GetRecords call.
	Latency time.Duration
}

// Stream is one local Kinesis data stream. It is safe for concurrent use.
type Stream struct {
	name, region, arn string
	created           time.Time
	retention         time.Duration
	maxRecordBytes    int
	limitsOff         bool
	maxBytes          int64
	faults            Faults
	observer          PutObserver
	now               func() time.Time
	sleep             func(context.Context, time.Duration) error

	dir     string
	mu      sync.Mutex
	rng     *rand.Rand
	shards  []*shard // every shard ever created, in creation order; index = shard number
	counter uint64   // sequence number counter
	bytes   int64    // data + key bytes held
	stats   Stats
	// reopened is true when New continued a stream found in Dir.
	reopened bool
}

type shard struct {
	id         string
	index      int
	start, end *big.Int
	parent     string
	adjParent  string
	startSeq   string
	endSeq     string // set when closed
	children   []int

	log *shardLog // the records (log.go)

	winSec   int64
	winRecs  int
	winBytes int
	// prevRecs and prevBytes are what the second before winSec held (WriteUse).
	prevRecs, prevBytes int

	// Counters since creation (Stats.Shards).
	storedRecs, storedBytes, throttled int64

	readSec    int64
	readCalls  int
	readTokens float64
	readAt     time.Time
}

func (sh *shard) closed() bool { return sh.endSeq != "" }
func (sh *shard) endPos() int  { return sh.log.end }

var (
	maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	hashSpace  = new(big.Int).Lsh(big.NewInt(1), 128)
)

// New creates an ACTIVE stream whose shards split the 128-bit hash key space evenly, as CreateStream
// does; with Config.Dir holding a stream, it opens that one instead (its open shards must be
// Config.ShardCount: ErrLayoutChanged otherwise). Close releases its files.
func New(cfg Config) (*Stream, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("creating stream: name is required")
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.ShardCount == 0 {
		cfg.ShardCount = 1
	}
	if cfg.ShardCount < 0 {
		return nil, fmt.Errorf("creating stream %s: shard count %d < 1", cfg.Name, cfg.ShardCount)
	}
	if cfg.RetentionHours == 0 {
		cfg.RetentionHours = kinesislimit.DefaultRetentionHours
	}
	if cfg.MaxRecordSizeInKiB == 0 {
		cfg.MaxRecordSizeInKiB = kinesislimit.DefaultMaxRecordSizeInKiB
	}
	if cfg.MaxRecordSizeInKiB < 0 || cfg.MaxRecordSizeInKiB > kinesislimit.MaxMaxRecordSizeInKiB {
		return nil, fmt.Errorf("creating stream %s: MaxRecordSizeInKiB %d out of range 1..%d", cfg.Name, cfg.MaxRecordSizeInKiB, kinesislimit.MaxMaxRecordSizeInKiB)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	s := &Stream{
		name:           cfg.Name,
		region:         cfg.Region,
		arn:            fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", cfg.Region, AccountID, cfg.Name),
		retention:      time.Duration(cfg.RetentionHours) * time.Hour,
		maxRecordBytes: cfg.MaxRecordSizeInKiB << 10,
		limitsOff:      cfg.LimitsOff,
		maxBytes:       cfg.MaxBytes,
		faults:         cfg.Faults,
		observer:       cfg.Observer,
		now:            cfg.Now,
		sleep:          cfg.Sleep,
		rng:            rand.New(rand.NewSource(cfg.Faults.Seed)),
		dir:            cfg.Dir,
	}
	if cfg.Dir != "" {
		found, err := s.reopen(cfg.ShardCount)
		if err != nil {
			return nil, err
		}
		if found {
			return s, nil
		}
	}
	s.created = s.now().UTC().Truncate(time.Millisecond)
	s.counter = max(s.counter, uint64(s.now().UnixNano()))
	step := new(big.Int).Div(hashSpace, big.NewInt(int64(cfg.ShardCount)))
	for i := 0; i < cfg.ShardCount; i++ {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		if i == cfg.ShardCount-1 {
			end = new(big.Int).Set(maxHashKey)
		}
		s.addShard(start, end, "", "")
	}
	if err := s.saveLayout(); err != nil {
		return nil, err
	}
	return s, nil
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

// Name returns the stream name.
func (s *Stream) Name() string { return s.name }

// ARN returns the stream ARN, arn:aws:kinesis:<region>:000000000000:stream/<name>.
func (s *Stream) ARN() string { return s.arn }

// Region returns the stream's region.
func (s *Stream) Region() string { return s.region }

// ShardID formats the id of shard number i, e.g. shardId-000000000000.
func ShardID(i int) string { return fmt.Sprintf("shardId-%012d", i) }

func (s *Stream) addShard(start, end *big.Int, parent, adj string) *shard {
	idx := len(s.shards)
	s.counter++
	sh := &shard{
		id: ShardID(idx), index: idx, start: start, end: end, parent: parent, adjParent: adj,
		startSeq:   s.seqString(s.counter, idx),
		readTokens: kinesislimit.ShardReadBytesPerSecond,
		log:        newShardLog(s.shardDir(ShardID(idx))),
	}
	s.shards = append(s.shards, sh)
	return sh
}

func (s *Stream) seqString(counter uint64, shardIdx int) string {
	return fmt.Sprintf("4959%020d%032d", counter, shardIdx)
}

// nextSeq must be called with mu held.
func (s *Stream) nextSeq(sh *shard) string {
	s.counter++
	return s.seqString(s.counter, sh.index)
}

// resolve checks the stream name or ARN of a request. Both empty is an InvalidArgumentException.
func (s *Stream) resolve(name, arn *string) error {
	n, a := aws.ToString(name), aws.ToString(arn)
	switch {
	case n == "" && a == "":
		return invalidArg("Either StreamName or StreamARN should be provided.")
	case a != "" && a != s.arn:
		if strings.HasPrefix(a, "arn:aws:kinesis:") {
			return notFound(a)
		}
		return invalidArg(fmt.Sprintf("StreamARN %s is not a valid Kinesis stream ARN.", a))
	case n != "" && n != s.name:
		return notFound(n)
	}
	return nil
}

func notFound(name string) error {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Stream %s under account %s not found.", name, AccountID))}
}

func invalidArg(msg string) error {
	return &types.InvalidArgumentException{Message: aws.String(msg)}
}

func validation(msg string) error {
	return &types.ValidationException{Message: aws.String(msg)}
}

// shardByID returns the shard with that id, or nil.
func (s *Stream) shardByID(id string) *shard {
	var n int
	if _, err := fmt.Sscanf(id, "shardId-%d", &n); err != nil || n < 0 || n >= len(s.shards) || s.shards[n].id != id {
		return nil
	}
	return s.shards[n]
}

// HashKey returns the 128-bit hash key Kinesis derives from a partition key: MD5, read big endian.
func HashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// route returns the open shard whose range holds the hash key. Must be called with mu held.
func (s *Stream) route(h *big.Int) *shard {
	for _, sh := range s.shards {
		if !sh.closed() && sh.start.Cmp(h) <= 0 && h.Cmp(sh.end) <= 0 {
			return sh
		}
	}
	return nil // unreachable: open shards cover the space
}

// trim drops records beyond retention (and beyond MaxBytes). Must be called with mu held. A failure
// to read a segment back is logged in the stats and leaves the records as they are.
func (s *Stream) trim(now time.Time) {
	horizon := now.Add(-s.retention).UnixMilli()
	for _, sh := range s.shards {
		l := sh.log
		if l.start == l.end || l.startArrival >= horizon {
			continue
		}
		before := l.bytes
		if _, err := l.trimWhile(func(r logRecord) bool { return r.arrival < horizon }); err != nil {
			s.stats.StorageErrors++
		}
		s.bytes -= before - l.bytes
	}
	for s.maxBytes > 0 && s.bytes > s.maxBytes {
		var oldest *shard
		for _, sh := range s.shards {
			if sh.log.len() > 0 && (oldest == nil || sh.log.startArrival < oldest.log.startArrival) {
				oldest = sh
			}
		}
		if oldest == nil {
			break
		}
		l := oldest.log
		before := l.bytes
		// Trim in steps of at least 1/8 of the excess, so that a full stream does not read one record
		// per call.
		excess := s.bytes - s.maxBytes + s.maxBytes/8
		var dropped int64
		n, err := l.trimWhile(func(r logRecord) bool {
			if dropped >= excess {
				return false
			}
			dropped += int64(r.size)
			return true
		})
		s.bytes -= before - l.bytes
		if err != nil || n == 0 {
			s.stats.StorageErrors++
			break
		}
	}
}

// Iterator tokens. They are opaque to callers: base64 of a small JSON document.
type iterToken struct {
	Stream string `json:"s"`
	Shard  int    `json:"h"`
	Pos    int    `json:"p"`
	Issued int64  `json:"t"` // unix nanos
}

func (s *Stream) makeIterator(sh *shard, pos int, now time.Time) *string {
	b, _ := json.Marshal(iterToken{Stream: s.arn, Shard: sh.index, Pos: pos, Issued: now.UnixNano()})
	return aws.String(base64.StdEncoding.EncodeToString(b))
}

func (s *Stream) parseIterator(it string) (iterToken, error) {
	var t iterToken
	b, err := base64.StdEncoding.DecodeString(it)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Shard < 0 || t.Shard >= len(s.shards) || t.Stream != s.arn {
		return t, invalidArg("Invalid ShardIterator.")
	}
	return t, nil
}

package producer

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/taxistream/taxistream/internal/kpl"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

type (
	kinesisPutRecordsInput  = kinesis.PutRecordsInput
	kinesisPutRecordsOutput = kinesis.PutRecordsOutput
	kinesisOptFn            = func(*kinesis.Options)
)

// fakeClient implements Client with func fields (the SDK's own signatures).
type fakeClient struct {
	putRecords            func(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	listShards            func(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	describeStreamSummary func(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

func (f *fakeClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return f.putRecords(ctx, in, optFns...)
}

func (f *fakeClient) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return f.listShards(ctx, in, optFns...)
}

func (f *fakeClient) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return f.describeStreamSummary(ctx, in, optFns...)
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

type fakeShard struct {
	id         string
	start, end *big.Int
	closed     bool
}

// stored is a Kinesis record the fake stream accepted.
type stored struct {
	shard string
	seq   int
	pk    string
	ehk   string // ExplicitHashKey ("" when none)
	data  []byte
	call  int // PutRecords call that stored it (1-based)
}

// fakeStream is a small Kinesis stream: it routes entries by the MD5 of their partition key to the
// open shards, stores them, and records every call. Hooks inject failures.
type fakeStream struct {
	t         *testing.T
	mu        sync.Mutex
	shards    []*fakeShard
	maxKiB    int32
	records   []stored
	calls     [][]types.PutRecordsRequestEntry
	succeeded map[string]bool // data of every entry stored, to catch a resend of a stored entry
	seq       int
	// entryError decides an entry's fate: "" stores it, else the error code (message made here).
	entryError func(call, i int, e types.PutRecordsRequestEntry) string
	// requestError, when it returns an error, fails the whole call; stored says whether the records
	// were stored first (a 5xx after the write).
	requestError    func(call int) (err error, stored bool)
	allowDuplicates bool
}

func newFakeStream(t *testing.T, shards int) *fakeStream {
	f := &fakeStream{t: t, maxKiB: 1024, succeeded: map[string]bool{}}
	width := new(big.Int).Div(new(big.Int).Add(maxHash, big.NewInt(1)), big.NewInt(int64(shards)))
	for i := range shards {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == shards-1 {
			end = new(big.Int).Set(maxHash)
		}
		f.shards = append(f.shards, &fakeShard{id: fmt.Sprintf("shardId-%012d", i), start: start, end: end})
	}
	return f
}

// split closes shard id and opens two children halving its range.
func (f *fakeStream) split(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.shards {
		if s.id == id && !s.closed {
			s.closed = true
			mid := new(big.Int).Rsh(new(big.Int).Add(s.start, s.end), 1)
			n := len(f.shards)
			f.shards = append(f.shards,
				&fakeShard{id: fmt.Sprintf("shardId-%012d", n), start: s.start, end: mid},
				&fakeShard{id: fmt.Sprintf("shardId-%012d", n+1), start: new(big.Int).Add(mid, big.NewInt(1)), end: s.end})
			return
		}
	}
	f.t.Fatalf("split: no open shard %s", id)
}

func (f *fakeStream) route(pk string) string {
	h := hashOf(pk)
	var b [16]byte
	for i := range 8 {
		b[i] = byte(h.hi >> (56 - 8*i))
		b[8+i] = byte(h.lo >> (56 - 8*i))
	}
	return f.routeHash(new(big.Int).SetBytes(b[:]), pk)
}

// routeEntry routes an entry as Kinesis does: by its ExplicitHashKey when it has one, else by the MD5
// of its partition key.
func (f *fakeStream) routeEntry(e types.PutRecordsRequestEntry) string {
	if e.ExplicitHashKey == nil {
		return f.route(*e.PartitionKey)
	}
	n, ok := new(big.Int).SetString(*e.ExplicitHashKey, 10)
	if !ok || n.Sign() < 0 || n.Cmp(maxHash) > 0 {
		f.t.Fatalf("invalid ExplicitHashKey %q", *e.ExplicitHashKey)
	}
	return f.routeHash(n, *e.PartitionKey)
}

func (f *fakeStream) routeHash(n *big.Int, pk string) string {
	for _, s := range f.shards {
		if !s.closed && n.Cmp(s.start) >= 0 && n.Cmp(s.end) <= 0 {
			return s.id
		}
	}
	f.t.Fatalf("no open shard for %q", pk)
	return ""
}

func (f *fakeStream) client() *fakeClient {
	return &fakeClient{
		describeStreamSummary: func(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
			return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
				StreamName: in.StreamName, MaxRecordSizeInKiB: aws.Int32(f.maxKiB)}}, nil
		},
		listShards: func(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			// Two pages, to exercise NextToken (which must come without the stream name).
			var from int
			if in.NextToken != nil {
				if in.StreamName != nil {
					f.t.Error("ListShards with both NextToken and StreamName")
				}
				fmt.Sscan(*in.NextToken, &from)
			}
			out := &kinesis.ListShardsOutput{}
			for i := from; i < len(f.shards) && i < from+2; i++ {
				s := f.shards[i]
				sh := types.Shard{ShardId: aws.String(s.id),
					HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String())},
					SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
				if s.closed {
					sh.SequenceNumberRange.EndingSequenceNumber = aws.String("99")
				}
				out.Shards = append(out.Shards, sh)
			}
			if from+2 < len(f.shards) {
				out.NextToken = aws.String(fmt.Sprint(from + 2))
			}
			return out, nil
		},
		putRecords: f.putRecords,
	}
}

func (f *fakeStream) putRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]types.PutRecordsRequestEntry(nil), in.Records...))
	call := len(f.calls)
	// The request limits, checked on every call.
	if len(in.Records) > kinesislimit.MaxRecordsPerRequest || len(in.Records) == 0 {
		f.t.Errorf("call %d: %d entries", call, len(in.Records))
	}
	total := 0
	for _, e := range in.Records {
		size := len(e.Data) + len(*e.PartitionKey)
		total += size
		if size > int(f.maxKiB)<<10 {
			f.t.Errorf("call %d: record of %d bytes over the %d KiB limit", call, size, f.maxKiB)
		}
		if f.succeeded[string(e.Data)] && !f.allowDuplicates {
			f.t.Errorf("call %d: resent an entry that was stored before (key %q)", call, *e.PartitionKey)
		}
	}
	if total > kinesislimit.MaxRequestBytes {
		f.t.Errorf("call %d: %d bytes over the request limit", call, total)
	}
	var reqErr error
	storeAll := true
	if f.requestError != nil {
		reqErr, storeAll = f.requestError(call)
	}
	out := &kinesis.PutRecordsOutput{}
	var failed int32
	for i, e := range in.Records {
		shard := f.routeEntry(e)
		code := ""
		if reqErr == nil && f.entryError != nil {
			code = f.entryError(call, i, e)
		}
		if reqErr != nil && !storeAll {
			continue
		}
		if code != "" {
			failed++
			msg := "Internal Service Failure"
			if code == codeThroughputExceeded {
				msg = fmt.Sprintf("Rate exceeded for shard %s in stream test under account 123456789012.", shard)
			}
			out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String(msg)})
			continue
		}
		f.seq++
		f.records = append(f.records, stored{shard: shard, seq: f.seq, pk: *e.PartitionKey, ehk: aws.ToString(e.ExplicitHashKey), data: e.Data, call: call})
		f.succeeded[string(e.Data)] = true
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String(shard), SequenceNumber: aws.String(fmt.Sprint(f.seq))})
	}
	if reqErr != nil {
		return nil, reqErr
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// userRecords de-aggregates everything stored, in storage order.
func (f *fakeStream) userRecords(t *testing.T) []storedUser {
	t.Helper()
	var out []storedUser
	for _, r := range f.records {
		users, err := kpl.Deaggregate(r.data, r.pk, "")
		if err != nil {
			t.Fatalf("stored record %d: %v", r.seq, err)
		}
		for _, u := range users {
			out = append(out, storedUser{UserRecord: u, shard: r.shard, call: r.call, aggregated: kpl.IsAggregated(r.data)})
		}
	}
	return out
}

type storedUser struct {
	kpl.UserRecord
	shard      string
	call       int
	aggregated bool
}

// fakeClock is a clock that only moves when the producer sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// kinesisAPI is the SDK client's shape for the operations the Stream emulates.
type kinesisAPI interface {
	PutRecord(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	DescribeStream(context.Context, *kinesis.DescribeStreamInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	SplitShard(context.Context, *kinesis.SplitShardInput, ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(context.Context, *kinesis.MergeShardsInput, ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

var (
	_ kinesisAPI = (*kinesis.Client)(nil)
	_ kinesisAPI = (*Stream)(nil)
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newStream(t *testing.T, cfg Config) (*Stream, *clock) {
	t.Helper()
	c := &clock{t: t0}
	if cfg.Name == "" {
		cfg.Name = "trips"
	}
	cfg.Now = c.Now
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

var ctx = context.Background()

func entries(n, dataLen int, key string) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{Data: make([]byte, dataLen), PartitionKey: aws.String(key)}
	}
	return out
}

func put(t *testing.T, s *Stream, recs []types.PutRecordsRequestEntry) *kinesis.PutRecordsOutput {
	t.Helper()
	out, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.Name()), Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func iter(t *testing.T, s *Stream, shard string, typ types.ShardIteratorType, seq string, ts *time.Time) *string {
	t.Helper()
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.Name()), ShardId: aws.String(shard), ShardIteratorType: typ, Timestamp: ts}
	if seq != "" {
		in.StartingSequenceNumber = aws.String(seq)
	}
	out, err := s.GetShardIterator(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return out.ShardIterator
}

func get(t *testing.T, s *Stream, it *string) *kinesis.GetRecordsOutput {
	t.Helper()
	out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func failedCodes(out *kinesis.PutRecordsOutput) []string {
	var codes []string
	for _, r := range out.Records {
		codes = append(codes, aws.ToString(r.ErrorCode))
	}
	return codes
}

func TestHashKeyRangesSplitEvenly(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7} {
		s, _ := newStream(t, Config{ShardCount: n})
		out, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Shards) != n {
			t.Fatalf("%d shards: got %d", n, len(out.Shards))
		}
		next := big.NewInt(0)
		step := new(big.Int).Div(hashSpace, big.NewInt(int64(n)))
		for i, sh := range out.Shards {
			if got, want := aws.ToString(sh.ShardId), fmt.Sprintf("shardId-%012d", i); got != want {
				t.Errorf("shard id = %s, want %s", got, want)
			}
			start, _ := new(big.Int).SetString(*sh.HashKeyRange.StartingHashKey, 10)
			end, _ := new(big.Int).SetString(*sh.HashKeyRange.EndingHashKey, 10)
			if start.Cmp(next) != 0 {
				t.Errorf("%d shards: shard %d starts at %s, want %s", n, i, start, next)
			}
			if want := new(big.Int).Mul(step, big.NewInt(int64(i))); start.Cmp(want) != 0 {
				t.Errorf("%d shards: shard %d start %s, want %s", n, i, start, want)
			}
			next = new(big.Int).Add(end, big.NewInt(1))
		}
		if next.Cmp(hashSpace) != 0 {
			t.Errorf("%d shards: ranges end at %s, want 2^128", n, next)
		}
	}
	// The two-shard split Kinesis creates.
	s, _ := newStream(t, Config{ShardCount: 2})
	out, _ := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips")})
	if got := *out.Shards[1].HashKeyRange.StartingHashKey; got != "170141183460469231731687303715884105728" {
		t.Errorf("second shard starts at %s", got)
	}
}

func TestRoutingMD5AndExplicitHashKey(t *testing.T) {
	s, _ := newStream(t, Config{ShardCount: 4, LimitsOff: true})
	quarter := new(big.Int).Div(hashSpace, big.NewInt(4))
	for _, key := range []string{"1", "132", "265", "a", "zone-7", "ü"} {
		out := put(t, s, []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String(key)}})
		want := ShardID(int(new(big.Int).Div(HashKey(key), quarter).Int64()))
		if got := aws.ToString(out.Records[0].ShardId); got != want {
			t.Errorf("key %q: shard %s, want %s", key, got, want)
		}
	}
	// Known MD5: md5("a") = 0cc175b9c0f1b6a831c399e269772661 → first quarter.
	if got := HashKey("a").Text(16); got != "cc175b9c0f1b6a831c399e269772661" {
		t.Errorf("HashKey(a) = %s", got)
	}
	for _, tc := range []struct {
		ehk  string
		want string
	}{
		{"0", ShardID(0)},
		{new(big.Int).Sub(quarter, big.NewInt(1)).String(), ShardID(0)},
		{quarter.String(), ShardID(1)},
		{"170141183460469231731687303715884105728", ShardID(2)},
		{maxHashKey.String(), ShardID(3)},
	} {
		out := put(t, s, []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("a"), ExplicitHashKey: aws.String(tc.ehk)}})
		if got := aws.ToString(out.Records[0].ShardId); got != tc.want {
			t.Errorf("explicit hash key %s: shard %s, want %s", tc.ehk, got, tc.want)
		}
	}
	for _, bad := range []string{hashSpace.String(), "-1", "abc"} {
		_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("a"), ExplicitHashKey: aws.String(bad)}}})
		var ia *types.InvalidArgumentException
		if !errors.As(err, &ia) {
			t.Errorf("explicit hash key %s: err = %v, want InvalidArgumentException", bad, err)
		}
	}
}

func TestWriteRecordLimitPerSecond(t *testing.T) {
	s, c := newStream(t, Config{})
	c.Advance(100 * time.Millisecond)
	for i := 0; i < 2; i++ {
		if out := put(t, s, entries(500, 10, "k")); *out.FailedRecordCount != 0 {
			t.Fatalf("batch %d: %d failed within the first 1000 records", i, *out.FailedRecordCount)
		}
		c.Advance(400 * time.Millisecond) // still inside the same second (12:00:00.100 .. .900)
	}
	out := put(t, s, entries(2, 10, "k"))
	if *out.FailedRecordCount != 2 {
		t.Fatalf("record 1001: FailedRecordCount = %d, want 2", *out.FailedRecordCount)
	}
	r := out.Records[0]
	if got, want := aws.ToString(r.ErrorCode), "ProvisionedThroughputExceededException"; got != want {
		t.Errorf("ErrorCode = %q, want %q", got, want)
	}
	shard := aws.ToString(s.toShardID("k"))
	if got, want := aws.ToString(r.ErrorMessage), "Rate exceeded for shard "+shard+" in stream trips under account 000000000000."; got != want {
		t.Errorf("ErrorMessage = %q, want %q", got, want)
	}
	if r.SequenceNumber != nil {
		t.Errorf("throttled entry has a sequence number")
	}
	c.Advance(100 * time.Millisecond) // next second
	if out := put(t, s, entries(1, 10, "k")); *out.FailedRecordCount != 0 {
		t.Errorf("next second: still throttled")
	}
	if got := s.Stats().Throttled; got != 2 {
		t.Errorf("Stats().Throttled = %d, want 2", got)
	}
	// PutRecord surfaces the same throttle as the SDK error type.
	put(t, s, entries(999, 1, "k")[:500])
	put(t, s, entries(499, 1, "k"))
	_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("trips"), Data: []byte("x"), PartitionKey: aws.String("k")})
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Errorf("PutRecord over the limit: err = %v, want ProvisionedThroughputExceededException", err)
	}
}

func (s *Stream) toShardID(key string) *string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return aws.String(s.route(HashKey(key)).id)
}

func TestWriteByteLimitCountsPartitionKey(t *testing.T) {
	const quarter = kinesislimit.ShardWriteBytesPerSecond / 4
	t.Run("exactly 1 MiB passes", func(t *testing.T) {
		s, _ := newStream(t, Config{})
		out := put(t, s, entries(4, quarter-1, "k")) // 4 × (262143 + 1) = 1 MiB
		if *out.FailedRecordCount != 0 {
			t.Fatalf("FailedRecordCount = %d, want 0", *out.FailedRecordCount)
		}
		out = put(t, s, []types.PutRecordsRequestEntry{{Data: nil, PartitionKey: aws.String("k")}})
		if *out.FailedRecordCount != 1 {
			t.Errorf("one more byte: FailedRecordCount = %d, want 1", *out.FailedRecordCount)
		}
	})
	t.Run("key bytes push it over", func(t *testing.T) {
		s, _ := newStream(t, Config{})
		out := put(t, s, entries(4, quarter-1, "kk")) // 4 × (262143 + 2) = 1 MiB + 4
		if got := failedCodes(out); got[3] != ErrCodeThroughput || got[2] != "" {
			t.Errorf("codes = %v, want only the 4th throttled", got)
		}
	})
}

func TestRequestLimits(t *testing.T) {
	s, _ := newStream(t, Config{LimitsOff: true})
	var ve *types.ValidationException
	if _, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: entries(501, 1, "k")}); !errors.As(err, &ve) {
		t.Errorf("501 entries: err = %v, want ValidationException", err)
	}
	if s.Stats().RecordsStored != 0 {
		t.Errorf("501 entries: something was stored")
	}
	if out := put(t, s, entries(500, 1, "k")); *out.FailedRecordCount != 0 {
		t.Errorf("500 entries failed")
	}
	mib := entries(5, (1<<20)-1, "k") // 5 × 1 MiB = 5 MiB exactly
	if out := put(t, s, mib); *out.FailedRecordCount != 0 {
		t.Errorf("5 MiB request failed")
	}
	over := append(mib, types.PutRecordsRequestEntry{PartitionKey: aws.String("k")}) // 5 MiB + 1
	var ia *types.InvalidArgumentException
	if _, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: over}); !errors.As(err, &ia) {
		t.Errorf("5 MiB + 1: err = %v, want InvalidArgumentException", err)
	}
}

func TestRecordSizeIncludesKey(t *testing.T) {
	tests := []struct {
		name    string
		kib     int
		data    int
		key     string
		wantErr bool
	}{
		{"1 MiB with key", 0, 1<<20 - 3, "abc", false},
		{"1 MiB + 1 with key", 0, 1<<20 - 2, "abc", true},
		{"2 MiB stream accepts 2 MiB", 2048, 2<<20 - 1, "k", false},
		{"2 MiB stream refuses 2 MiB + 1", 2048, 2 << 20, "k", true},
		{"empty key", 0, 1, "", true},
		{"256 chars multibyte", 0, 1, strings.Repeat("é", 256), false},
		{"257 chars", 0, 1, strings.Repeat("k", 257), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStream(t, Config{LimitsOff: true, MaxRecordSizeInKiB: tc.kib})
			_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: entries(1, tc.data, tc.key)})
			var ve *types.ValidationException
			if tc.wantErr != errors.As(err, &ve) {
				t.Errorf("err = %v, want ValidationException: %v", err, tc.wantErr)
			}
		})
	}
	s, _ := newStream(t, Config{MaxRecordSizeInKiB: 2048})
	d, _ := s.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(s.ARN())})
	if got := aws.ToInt32(d.StreamDescriptionSummary.MaxRecordSizeInKiB); got != 2048 {
		t.Errorf("DescribeStreamSummary MaxRecordSizeInKiB = %d", got)
	}
}

func TestSequenceNumbersIncreasePerShard(t *testing.T) {
	s, c := newStream(t, Config{ShardCount: 2, LimitsOff: true})
	last := map[string]*big.Int{}
	var want []string
	for round := 0; round < 5; round++ {
		recs := make([]types.PutRecordsRequestEntry, 100)
		for i := range recs {
			recs[i] = types.PutRecordsRequestEntry{Data: []byte{byte(i)}, PartitionKey: aws.String(fmt.Sprint(i % 7))}
		}
		for _, r := range put(t, s, recs).Records {
			seq := aws.ToString(r.SequenceNumber)
			if len(seq) != 56 {
				t.Fatalf("sequence number %q has %d digits, want 56", seq, len(seq))
			}
			n, _ := new(big.Int).SetString(seq, 10)
			if p := last[*r.ShardId]; p != nil && n.Cmp(p) <= 0 {
				t.Fatalf("shard %s: %s after %s", *r.ShardId, seq, p)
			}
			last[*r.ShardId] = n
			if *r.ShardId == ShardID(0) {
				want = append(want, seq)
			}
		}
		c.Advance(time.Second)
	}
	var got []string
	for _, r := range get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil)).Records {
		got = append(got, *r.SequenceNumber)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("GetRecords order differs from write order")
	}
}

func TestIteratorTypes(t *testing.T) {
	s, c := newStream(t, Config{})
	var seqs []string
	for i := 0; i < 3; i++ {
		out := put(t, s, []types.PutRecordsRequestEntry{{Data: []byte{byte('a' + i)}, PartitionKey: aws.String("k")}})
		seqs = append(seqs, *out.Records[0].SequenceNumber)
		c.Advance(time.Second)
	}
	latest := iter(t, s, ShardID(0), types.ShardIteratorTypeLatest, "", nil)
	data := func(out *kinesis.GetRecordsOutput) string {
		var b []byte
		for _, r := range out.Records {
			b = append(b, r.Data...)
		}
		return string(b)
	}
	t1 := t0.Add(time.Second)
	t15 := t0.Add(1500 * time.Millisecond)
	future := t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		typ  types.ShardIteratorType
		seq  string
		ts   *time.Time
		want string
	}{
		{"TRIM_HORIZON", types.ShardIteratorTypeTrimHorizon, "", nil, "abc"},
		{"AT_SEQUENCE_NUMBER", types.ShardIteratorTypeAtSequenceNumber, seqs[1], nil, "bc"},
		{"AFTER_SEQUENCE_NUMBER", types.ShardIteratorTypeAfterSequenceNumber, seqs[1], nil, "c"},
		{"AT_TIMESTAMP exact", types.ShardIteratorTypeAtTimestamp, "", &t1, "bc"},
		{"AT_TIMESTAMP between", types.ShardIteratorTypeAtTimestamp, "", &t15, "c"},
		{"AT_TIMESTAMP future", types.ShardIteratorTypeAtTimestamp, "", &future, ""},
		{"LATEST", types.ShardIteratorTypeLatest, "", nil, ""},
	} {
		c.Advance(250 * time.Millisecond) // stay under 5 reads/s
		if got := data(get(t, s, iter(t, s, ShardID(0), tc.typ, tc.seq, tc.ts))); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	put(t, s, []types.PutRecordsRequestEntry{{Data: []byte("d"), PartitionKey: aws.String("k")}})
	c.Advance(time.Second)
	out := get(t, s, latest)
	if got := data(out); got != "d" {
		t.Errorf("LATEST taken before the write: got %q, want d", got)
	}
	if out.Records[0].ApproximateArrivalTimestamp == nil || !out.Records[0].ApproximateArrivalTimestamp.Equal(t0.Add(3*time.Second+1750*time.Millisecond)) {
		t.Errorf("ApproximateArrivalTimestamp = %v", out.Records[0].ApproximateArrivalTimestamp)
	}
	c.Advance(time.Second)
	if got := data(get(t, s, out.NextShardIterator)); got != "" {
		t.Errorf("NextShardIterator re-read %q", got)
	}
	// A sequence number of another shard, or not a number, is refused.
	s2, _ := newStream(t, Config{ShardCount: 2})
	other := put(t, s2, []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("x"), ExplicitHashKey: aws.String(maxHashKey.String())}})
	for _, bad := range []string{*other.Records[0].SequenceNumber, "12abc"} {
		_, err := s2.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("trips"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(bad)})
		var ia *types.InvalidArgumentException
		if !errors.As(err, &ia) {
			t.Errorf("seq %s on the wrong shard: err = %v, want InvalidArgumentException", bad, err)
		}
	}
}

func TestMillisBehindLatest(t *testing.T) {
	s, c := newStream(t, Config{LimitsOff: true})
	put(t, s, entries(3, 1, "k"))
	c.Advance(2 * time.Second)
	out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil), Limit: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt64(out.MillisBehindLatest); got != 2000 {
		t.Errorf("MillisBehindLatest with 2 unread records of age 2 s = %d, want 2000", got)
	}
	out = get(t, s, out.NextShardIterator)
	if got := aws.ToInt64(out.MillisBehindLatest); got != 0 || len(out.Records) != 2 {
		t.Errorf("caught up: MillisBehindLatest = %d, records = %d", got, len(out.Records))
	}
}

func TestRetentionTrimsOldRecords(t *testing.T) {
	s, c := newStream(t, Config{RetentionHours: 24})
	put(t, s, entries(1, 1, "old"))
	var early *string
	c.Advance(24*time.Hour - 4*time.Minute)
	early = iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil) // the record is still there
	c.Advance(4*time.Minute + time.Millisecond)
	put(t, s, []types.PutRecordsRequestEntry{{Data: []byte("new"), PartitionKey: aws.String("new")}})
	for name, it := range map[string]*string{"fresh": iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil), "pointing at a trimmed record": early} {
		c.Advance(time.Second)
		out := get(t, s, it)
		if len(out.Records) != 1 || string(out.Records[0].Data) != "new" {
			t.Errorf("%s iterator after retention: got %d records", name, len(out.Records))
		}
	}
	if got := s.Stats().RecordsHeld; got != 1 {
		t.Errorf("RecordsHeld = %d, want 1", got)
	}
}

func TestIteratorExpiresAfterFiveMinutes(t *testing.T) {
	s, c := newStream(t, Config{})
	it := iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil)
	c.Advance(kinesislimit.IteratorLifetime)
	next := get(t, s, it).NextShardIterator
	c.Advance(kinesislimit.IteratorLifetime + time.Millisecond)
	_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
	var ei *types.ExpiredIteratorException
	if !errors.As(err, &ei) {
		t.Fatalf("err = %v, want ExpiredIteratorException", err)
	}
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("garbage")})
	var ia *types.InvalidArgumentException
	if !errors.As(err, &ia) {
		t.Errorf("garbage iterator: err = %v, want InvalidArgumentException", err)
	}
}

func TestReadLimits(t *testing.T) {
	t.Run("5 calls per second", func(t *testing.T) {
		s, c := newStream(t, Config{})
		it := iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil)
		for i := 0; i < kinesislimit.ShardReadCallsPerSecond; i++ {
			it = get(t, s, it).NextShardIterator
		}
		_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		var pte *types.ProvisionedThroughputExceededException
		if !errors.As(err, &pte) {
			t.Fatalf("6th call in one second: err = %v, want ProvisionedThroughputExceededException", err)
		}
		c.Advance(time.Second)
		get(t, s, it)
	})
	t.Run("2 MiB per second", func(t *testing.T) {
		s, c := newStream(t, Config{})
		for i := 0; i < 3; i++ { // 3 MiB written over 3 seconds
			put(t, s, entries(4, 1<<18-1, "k"))
			c.Advance(time.Second)
		}
		out := get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil))
		if len(out.Records) != 12 {
			t.Fatalf("got %d records, want 12", len(out.Records))
		}
		c.Advance(400 * time.Millisecond) // -1 MiB + 0.8 MiB refilled: still in debt
		_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
		var pte *types.ProvisionedThroughputExceededException
		if !errors.As(err, &pte) {
			t.Fatalf("after reading 3 MiB: err = %v, want ProvisionedThroughputExceededException", err)
		}
		c.Advance(200 * time.Millisecond)
		get(t, s, out.NextShardIterator)
	})
	t.Run("Limit and 10 MiB per call", func(t *testing.T) {
		s, _ := newStream(t, Config{LimitsOff: true})
		for i := 0; i < 11; i++ {
			put(t, s, entries(1, 1<<20-1, "k"))
		}
		out := get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil))
		if len(out.Records) != 10 {
			t.Errorf("first call returned %d records of 1 MiB, want 10", len(out.Records))
		}
		if out = get(t, s, out.NextShardIterator); len(out.Records) != 1 {
			t.Errorf("second call returned %d, want 1", len(out.Records))
		}
		_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator, Limit: aws.Int32(10001)})
		var ia *types.InvalidArgumentException
		if !errors.As(err, &ia) {
			t.Errorf("Limit 10001: err = %v, want InvalidArgumentException", err)
		}
	})
}

func TestFaultInjectionIsDeterministic(t *testing.T) {
	run := func(seed int64) []string {
		s, _ := newStream(t, Config{LimitsOff: true, Faults: Faults{Seed: seed, InternalFailureRate: 0.3}})
		out := put(t, s, entries(500, 1, "k"))
		codes := failedCodes(out)
		n := 0
		for _, c := range codes {
			if c == ErrCodeInternalFailure {
				n++
			}
		}
		if int(*out.FailedRecordCount) != n || n < 100 || n > 200 {
			t.Errorf("seed %d: FailedRecordCount %d, InternalFailure entries %d", seed, *out.FailedRecordCount, n)
		}
		if got := s.Stats().RecordsStored; got != int64(500-n) {
			t.Errorf("stored %d, want %d", got, 500-n)
		}
		return codes
	}
	a, b, c := run(7), run(7), run(8)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Error("same seed, different failures")
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Error("different seeds, same failures")
	}

	t.Run("request errors store nothing", func(t *testing.T) {
		s, _ := newStream(t, Config{Faults: Faults{Seed: 1, RequestErrorRate: 1}})
		kinds := map[string]bool{}
		for i := 0; i < 20; i++ {
			_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: entries(1, 1, "k")})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorFault() != smithy.FaultServer {
				t.Fatalf("err = %v, want a server-fault API error", err)
			}
			kinds[ae.ErrorCode()] = true
		}
		if !kinds["InternalFailureException"] || !kinds["ServiceUnavailable"] || s.Stats().RecordsStored != 0 {
			t.Errorf("codes %v, stored %d", kinds, s.Stats().RecordsStored)
		}
	})
	t.Run("store then fail", func(t *testing.T) {
		s, _ := newStream(t, Config{Faults: Faults{StoreThenFailRate: 1}})
		_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: entries(3, 1, "k")})
		var te interface{ Timeout() bool }
		if !errors.As(err, &te) || !te.Timeout() {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if got := s.Stats().RecordsStored; got != 3 {
			t.Errorf("stored %d, want 3", got)
		}
	})
	t.Run("latency", func(t *testing.T) {
		var slept time.Duration
		s, _ := newStream(t, Config{Faults: Faults{Latency: 70 * time.Millisecond}, Sleep: func(_ context.Context, d time.Duration) error { slept += d; return nil }})
		put(t, s, entries(1, 1, "k"))
		get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil))
		if slept != 140*time.Millisecond {
			t.Errorf("slept %v, want 140ms", slept)
		}
	})
}

func TestStreamNameAndARN(t *testing.T) {
	s, _ := newStream(t, Config{Region: "eu-west-1"})
	if got, want := s.ARN(), "arn:aws:kinesis:eu-west-1:000000000000:stream/trips"; got != want {
		t.Errorf("ARN = %s, want %s", got, want)
	}
	if _, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamARN: aws.String(s.ARN()), Records: entries(1, 1, "k")}); err != nil {
		t.Errorf("by ARN: %v", err)
	}
	var nf *types.ResourceNotFoundException
	_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("other"), Records: entries(1, 1, "k")})
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "Stream other under account 000000000000 not found") {
		t.Errorf("wrong name: err = %v", err)
	}
}

func TestSplitAndMergeShards(t *testing.T) {
	s, c := newStream(t, Config{})
	put(t, s, entries(1, 1, "before"))
	parentIt := iter(t, s, ShardID(0), types.ShardIteratorTypeTrimHorizon, "", nil)
	half := "170141183460469231731687303715884105728"
	if _, err := s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("trips"), ShardToSplit: aws.String(ShardID(0)), NewStartingHashKey: aws.String(half)}); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips")})
	if len(ls.Shards) != 3 || ls.Shards[0].SequenceNumberRange.EndingSequenceNumber == nil || aws.ToString(ls.Shards[2].ParentShardId) != ShardID(0) {
		t.Fatalf("after split: %+v", ls.Shards)
	}
	open, _ := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if len(open.Shards) != 2 {
		t.Errorf("AT_LATEST lists %d shards, want 2", len(open.Shards))
	}
	out := put(t, s, []types.PutRecordsRequestEntry{
		{Data: []byte("x"), PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("0")},
		{Data: []byte("y"), PartitionKey: aws.String("a"), ExplicitHashKey: aws.String(half)},
	})
	if aws.ToString(out.Records[0].ShardId) != ShardID(1) || aws.ToString(out.Records[1].ShardId) != ShardID(2) {
		t.Errorf("writes after split went to %s, %s", *out.Records[0].ShardId, *out.Records[1].ShardId)
	}
	c.Advance(time.Second)
	g := get(t, s, parentIt)
	if len(g.Records) != 1 || g.NextShardIterator != nil || len(g.ChildShards) != 2 {
		t.Errorf("reading the closed parent: %d records, next %v, %d children", len(g.Records), g.NextShardIterator, len(g.ChildShards))
	}
	if _, err := s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("trips"), ShardToSplit: aws.String(ShardID(0)), NewStartingHashKey: aws.String("1")}); err == nil {
		t.Error("splitting a closed shard succeeded")
	}
	if _, err := s.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("trips"), ShardToMerge: aws.String(ShardID(1)), AdjacentShardToMerge: aws.String(ShardID(2))}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("trips")})
	if got := aws.ToInt32(d.StreamDescriptionSummary.OpenShardCount); got != 1 {
		t.Errorf("OpenShardCount after merge = %d, want 1", got)
	}
}

// TestShardStats: the per-shard counters add up to the stream's and name the shard each write went to,
// throttled entries included.
func TestShardStats(t *testing.T) {
	s, err := New(Config{Name: "trips", ShardCount: 2, Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Lsh(big.NewInt(1), 127).String()
	var recs []types.PutRecordsRequestEntry
	for i := range 1100 { // shard 1 gets 1,100 in one second: 100 throttled
		recs = append(recs, types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String("a"), ExplicitHashKey: aws.String(half)})
		if len(recs) == 500 || i == 1099 {
			put(t, s, recs)
			recs = nil
		}
	}
	put(t, s, []types.PutRecordsRequestEntry{{Data: []byte("yy"), PartitionKey: aws.String("b"), ExplicitHashKey: aws.String("0")}})
	st := s.Stats()
	want := []ShardStats{
		{ShardID: ShardID(0), RecordsStored: 1, BytesStored: 3},
		{ShardID: ShardID(1), RecordsStored: 1000, BytesStored: 2000, Throttled: 100},
	}
	if d := cmp.Diff(want, st.Shards); d != "" {
		t.Errorf("per-shard stats (-want +got):\n%s", d)
	}
	if st.RecordsStored != 1001 || st.Throttled != 100 {
		t.Errorf("stream stats %+v", st)
	}
}

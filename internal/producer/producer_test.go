package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// rowData is the data of test row i: unique, so a stored copy identifies its row.
func rowData(i int, pad int) []byte {
	return []byte(fmt.Sprintf(`{"row":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", pad)))
}

func rowOf(t *testing.T, data []byte) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(data), `{"row":%d`, &i); err != nil {
		t.Fatalf("stored data %.40q is no row", data)
	}
	return i
}

func keyOf(i int) string { return fmt.Sprint(i%265 + 1) } // pu_location_id-like keys

// newTestProducer returns a producer on a fake clock with a fixed jitter.
func newTestProducer(t *testing.T, c Client, cfg Config) (*Producer, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if cfg.StreamName == "" {
		cfg.StreamName = "test"
	}
	cfg.Now, cfg.Sleep = clock.Now, clock.Sleep
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0.5 }
	}
	p, err := New(t.Context(), c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, clock
}

// putRows puts rows [0, n) with keyOf keys and flushes.
func putRows(t *testing.T, p *Producer, n, pad int) []Failure {
	t.Helper()
	for i := range n {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, pad), PartitionKey: keyOf(i), Tag: int64(i)}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	f, err := p.Flush(t.Context())
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return f
}

// checkDelivered asserts every row in [0, n) is stored exactly once (at least once when dups), with
// its own partition key.
func checkDelivered(t *testing.T, s *fakeStream, n int, dups bool) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for _, u := range s.userRecords(t) {
		i := rowOf(t, u.Data)
		seen[i]++
		if u.PartitionKey != keyOf(i) {
			t.Errorf("row %d stored with key %q, want %q", i, u.PartitionKey, keyOf(i))
		}
	}
	for i := range n {
		if seen[i] == 0 {
			t.Errorf("row %d lost", i)
		} else if seen[i] > 1 && !dups {
			t.Errorf("row %d stored %d times", i, seen[i])
		}
	}
	if len(seen) != n {
		t.Errorf("stored %d distinct rows, want %d", len(seen), n)
	}
	return seen
}

func callSizes(s *fakeStream) []int {
	var out []int
	for _, c := range s.calls {
		out = append(out, len(c))
	}
	return out
}

// TestThrottlingBatchSizes is Redpanda Connect's TestKinesisWriteChunkWithThrottling: every call
// throttles its entries from the 300th on; the throttled ones go first into the next request.
func TestThrottlingBatchSizes(t *testing.T) {
	s := newFakeStream(t, 1)
	s.entryError = func(call, i int, _ types.PutRecordsRequestEntry) string {
		if i >= 300 {
			return codeThroughputExceeded
		}
		return ""
	}
	// Pacing off (it is not the subject here): the limits would otherwise split the requests.
	p, _ := newTestProducer(t, s.client(), Config{ShardRecordsPerSecond: 1e9, ShardBytesPerSecond: 1e12})
	if f := putRows(t, p, 1200, 10); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	if d := cmp.Diff([]int{500, 500, 500, 300}, callSizes(s)); d != "" {
		t.Errorf("request sizes (-want +got):\n%s", d)
	}
	checkDelivered(t, s, 1200, false)
	st := p.Stats()
	want := Stats{UserRecords: 1200, KinesisRecords: 1200, Requests: 4, Retries: 600, Throttled: 600, Bytes: st.Bytes}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
}

// TestPartialFailures mixes throttles and internal failures on three shards with aggregation on.
func TestPartialFailures(t *testing.T) {
	for _, aggregate := range []bool{true, false} {
		t.Run(fmt.Sprint("aggregate=", aggregate), func(t *testing.T) {
			s := newFakeStream(t, 3)
			rng := rand.New(rand.NewPCG(1, 2))
			s.entryError = func(call, i int, _ types.PutRecordsRequestEntry) string {
				switch r := rng.IntN(10); {
				case r < 3:
					return codeThroughputExceeded
				case r < 5:
					return codeInternalFailure
				}
				return ""
			}
			p, _ := newTestProducer(t, s.client(), Config{Aggregate: aggregate, AggregateMaxBytes: 8 << 10})
			if f := putRows(t, p, 3000, 50); len(f) != 0 {
				t.Fatalf("failures: %v", f)
			}
			checkDelivered(t, s, 3000, false)
			st := p.Stats()
			if st.UserRecords != 3000 || st.Retries == 0 || st.Throttled == 0 || st.Failed != 0 {
				t.Errorf("stats %+v", st)
			}
			if aggregate && st.KinesisRecords >= 3000/10 {
				t.Errorf("aggregation: %d Kinesis records for 3000 user records", st.KinesisRecords)
			}
			for _, u := range s.userRecords(t) {
				if want := s.route(u.PartitionKey); u.shard != want {
					t.Errorf("user record with key %q stored on %s, its key hashes to %s", u.PartitionKey, u.shard, want)
					break
				}
			}
		})
	}
}

func serverError(status int, code string) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "boom"},
	}
}

// TestRequestErrorAfterStore: the second request is stored but answered with a 503. The producer
// cannot know, resends, and Kinesis holds those rows twice: unavoidable with PutRecords; counted in
// PossibleDuplicates, and record_id lets consumers drop them.
func TestRequestErrorAfterStore(t *testing.T) {
	s := newFakeStream(t, 1)
	s.allowDuplicates = true
	s.requestError = func(call int) (error, bool) {
		if call == 2 {
			return serverError(503, "ServiceUnavailable"), true
		}
		return nil, false
	}
	p, _ := newTestProducer(t, s.client(), Config{ShardRecordsPerSecond: 1e9, ShardBytesPerSecond: 1e12})
	if f := putRows(t, p, 1200, 10); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	seen := checkDelivered(t, s, 1200, true)
	dups := 0
	for i, n := range seen {
		if n > 1 {
			dups++
			if i < 500 || i >= 1000 {
				t.Errorf("row %d duplicated, but only the second request (rows 500-999) was ambiguous", i)
			}
		}
	}
	st := p.Stats()
	if dups != 500 || st.PossibleDuplicates != 500 || st.UserRecords != 1200 || st.Requests != 4 {
		t.Errorf("duplicates %d, stats %+v; want 500 duplicates counted, 1200 written in 4 requests", dups, st)
	}
}

// TestRequestErrorNotStored: a throttled or dropped request is retried whole, nothing duplicated.
func TestRequestErrorNotStored(t *testing.T) {
	s := newFakeStream(t, 2)
	s.requestError = func(call int) (error, bool) {
		switch call {
		case 1:
			return serverError(400, "ThrottlingException"), false
		case 2:
			return serverError(500, "InternalFailure"), false
		}
		return nil, false
	}
	p, _ := newTestProducer(t, s.client(), Config{Aggregate: true})
	if f := putRows(t, p, 2000, 100); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	checkDelivered(t, s, 2000, false)
	if st := p.Stats(); st.PossibleDuplicates == 0 || st.Retries == 0 {
		t.Errorf("stats %+v: the 500 should count as possible duplicates", st)
	}
}

func TestTerminalRequestError(t *testing.T) {
	s := newFakeStream(t, 1)
	s.requestError = func(call int) (error, bool) {
		return serverError(400, "AccessDeniedException"), false
	}
	p, _ := newTestProducer(t, s.client(), Config{Aggregate: true})
	for i := range 10 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 0), PartitionKey: keyOf(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := p.Flush(t.Context())
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Flush error = %v, want the access denied error", err)
	}
	if len(f) != 10 || len(s.calls) != 1 {
		t.Errorf("%d failures after %d calls; want all 10 rows failed after 1 call (no retry)", len(f), len(s.calls))
	}
}

// TestShardSplitMidRun: shard 0 splits after the third request. The next response names the
// children; the producer lists the shards again and re-aggregates per child, so from then on no
// aggregate holds a key of another shard.
func TestShardSplitMidRun(t *testing.T) {
	s := newFakeStream(t, 1)
	var splitAt int
	base := s.putRecords
	c := s.client()
	c.putRecords = func(ctx context.Context, in *kinesisPutRecordsInput, optFns ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
		if len(s.calls) == 3 && splitAt == 0 {
			s.split("shardId-000000000000")
			splitAt = 4
		}
		return base(ctx, in, optFns...)
	}
	p, _ := newTestProducer(t, c, Config{Aggregate: true, AggregateMaxBytes: 4 << 10, MaxBufferedBytes: 64 << 10})
	if f := putRows(t, p, 4000, 60); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	checkDelivered(t, s, 4000, false)
	if splitAt == 0 || len(s.calls) <= splitAt {
		t.Fatalf("the split did not happen mid-run (%d calls)", len(s.calls))
	}
	if st := p.Stats(); st.Reshards != 1 {
		t.Errorf("Reshards = %d, want 1", st.Reshards)
	}
	children := map[string]bool{}
	for _, u := range s.userRecords(t) {
		if u.call <= splitAt {
			continue // written before the producer could know
		}
		children[u.shard] = true
		if want := s.route(u.PartitionKey); u.shard != want {
			t.Fatalf("call %d: key %q stored on %s, hashes to %s: aggregate not rebuilt per new shard", u.call, u.PartitionKey, u.shard, want)
		}
	}
	if len(children) != 2 {
		t.Errorf("after the split, writes went to %v; want both children", children)
	}
}

func TestOversizeAndInvalidRecords(t *testing.T) {
	s := newFakeStream(t, 1)
	s.maxKiB = 2 // a small stream limit keeps the test light: 2048 bytes
	p, _ := newTestProducer(t, s.client(), Config{Aggregate: true})
	ctx := t.Context()
	exact := make([]byte, 2048-3) // + key "big" = exactly the limit
	for i := range exact {
		exact[i] = 'e'
	}
	puts := []Entry{
		{Data: []byte("small"), PartitionKey: "a", Tag: 1},
		{Data: exact, PartitionKey: "big", Tag: 2},
		{Data: append(exact, 'x'), PartitionKey: "big", Tag: 3}, // one byte over
		{Data: []byte("x"), PartitionKey: "", Tag: 4},
		{Data: []byte("x"), PartitionKey: strings.Repeat("é", 257), Tag: 5},
		{Data: []byte("x"), PartitionKey: strings.Repeat("é", 256), Tag: 6}, // 256 characters, 512 bytes: fine
		{Data: []byte("small2"), PartitionKey: "b", Tag: 7},
	}
	for _, e := range puts {
		if err := p.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	f, err := p.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tags []int64
	for _, x := range f {
		tags = append(tags, x.Tag)
		if x.Reason == "" {
			t.Errorf("failure %d without a reason", x.Tag)
		}
	}
	if d := cmp.Diff([]int64{3, 4, 5}, tags); d != "" {
		t.Errorf("failed tags (-want +got):\n%s", d)
	}
	if !errors.Is(f[0].Err, ErrRecordTooLarge) || !strings.Contains(f[0].Reason, "2049 bytes") {
		t.Errorf("oversize failure = %+v", f[0])
	}
	if !errors.Is(f[1].Err, ErrInvalidPartitionKey) || !errors.Is(f[2].Err, ErrInvalidPartitionKey) {
		t.Errorf("key failures = %+v", f[1:])
	}
	// The record at the limit went alone, whole, not aggregated.
	found := false
	for _, r := range s.records {
		if r.pk == "big" {
			found = true
			if string(r.data) != string(exact) {
				t.Errorf("record at the limit stored as %d bytes, want it whole (%d)", len(r.data), len(exact))
			}
		}
	}
	if !found {
		t.Error("record at the limit not written")
	}
	if st := p.Stats(); st.Failed != 3 || st.UserRecords != 4 {
		t.Errorf("stats %+v", st)
	}
}

// TestLimitsHold writes records of every size up to the record limit over three shards; the fake
// checks each request (entries, bytes, record size) and each stored record must round-trip.
func TestLimitsHold(t *testing.T) {
	for _, aggregate := range []bool{true, false} {
		t.Run(fmt.Sprint("aggregate=", aggregate), func(t *testing.T) {
			s := newFakeStream(t, 3)
			p, _ := newTestProducer(t, s.client(), Config{Aggregate: aggregate, AggregateMaxBytes: 1 << 20})
			rng := rand.New(rand.NewPCG(3, 4))
			n := 0
			for range 400 {
				var pad int
				switch rng.IntN(4) {
				case 0:
					pad = rng.IntN(1<<20 - 100)
				case 1:
					pad = rng.IntN(2000)
				default:
					pad = rng.IntN(100)
				}
				if err := p.Put(t.Context(), Entry{Data: rowData(n, pad), PartitionKey: keyOf(n), Tag: int64(n)}); err != nil {
					t.Fatal(err)
				}
				n++
			}
			if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
				t.Fatalf("Flush: %v, %v", f, err)
			}
			checkDelivered(t, s, n, false)
		})
	}
}

// TestPacing: 5,000 records of ~1 KiB to one shard, 1,000 records/s. No interval of one second may
// see more than 1,000 records (sliding, so whatever the alignment of the stream's windows), the
// requests stay about one burst of the token bucket (100 records, not 500), and the 5,000 take 4-5 s
// of stream time (the first 1,000 go within the first second).
func TestPacing(t *testing.T) {
	s := newFakeStream(t, 1)
	p, clock := newTestProducer(t, s.client(), Config{})
	start := clock.Now()
	var sendTimes []time.Time
	base := s.putRecords
	c := s.client()
	c.putRecords = func(ctx context.Context, in *kinesisPutRecordsInput, optFns ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
		for range in.Records {
			sendTimes = append(sendTimes, clock.Now())
		}
		return base(ctx, in, optFns...)
	}
	p.c = c
	putRows(t, p, 5000, 1000)
	elapsed := clock.Now().Sub(start)
	if elapsed < 4*time.Second || elapsed > 5*time.Second {
		t.Errorf("5,000 records took %v of stream time, want 4-5 s at 1,000 records/s", elapsed)
	}
	for i := range sendTimes {
		j := i
		for j < len(sendTimes) && sendTimes[j].Sub(sendTimes[i]) < time.Second {
			j++
		}
		if j-i > kinesislimit.ShardWriteRecordsPerSecond {
			t.Fatalf("%d records within one second from %v", j-i, sendTimes[i].Sub(start))
		}
	}
	for i, n := range callSizes(s) {
		if n > kinesislimit.ShardWriteRecordsPerSecond*BurstFraction {
			t.Errorf("request %d has %d entries, want at most one burst (%v)", i, n, kinesislimit.ShardWriteRecordsPerSecond*BurstFraction)
		}
	}
}

// TestThrottleBackoffShortPerResponse: the shard throttles every entry of the first six requests.
// The backoff grows once per response (not once per throttled entry), is capped at one second for
// throttles, and starts over after a request stores records.
func TestThrottleBackoffShortPerResponse(t *testing.T) {
	s := newFakeStream(t, 1)
	s.entryError = func(call, i int, _ types.PutRecordsRequestEntry) string {
		if call <= 6 || (call == 8 && i >= 10) {
			return codeThroughputExceeded
		}
		return ""
	}
	p, clock := newTestProducer(t, s.client(), Config{Rand: func() float64 { return 0.999 }})
	var callTimes []time.Time
	base := s.putRecords
	c := s.client()
	c.putRecords = func(ctx context.Context, in *kinesisPutRecordsInput, optFns ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
		callTimes = append(callTimes, clock.Now())
		return base(ctx, in, optFns...)
	}
	p.c = c
	for i := range 200 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 0), PartitionKey: keyOf(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
		if i%40 == 39 { // a request of 40 entries at a time
			if _, err := p.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkDelivered(t, s, 200, false)
	ms := func(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Millisecond) }
	var gaps []float64
	for i := 1; i < len(callTimes) && i <= 8; i++ {
		gaps = append(gaps, ms(callTimes[i].Sub(callTimes[i-1])))
	}
	// After throttled calls 1-6: 100, 200, 400, 800 ms, then the 1 s cap (× 0.999); call 7 stores
	// 40, call 8 throttles 30 of 40: 100 ms again.
	want := []float64{100, 200, 400, 799, 999, 999, 0, 100}
	if d := cmp.Diff(want, gaps); d != "" {
		t.Errorf("gaps between calls in ms (-want +got):\n%s", d)
	}
}

// TestThrottleBacksOffNamedShard: throttles name shard 1 while records predicted for shard 0 keep
// flowing; the backoff must hit shard 1 only.
func TestThrottleBacksOffNamedShard(t *testing.T) {
	s := newFakeStream(t, 2)
	throttles := 0
	s.entryError = func(call, i int, e types.PutRecordsRequestEntry) string {
		if s.route(*e.PartitionKey) == "shardId-000000000001" && throttles < 3 {
			throttles++
			return codeThroughputExceeded
		}
		return ""
	}
	p, _ := newTestProducer(t, s.client(), Config{})
	putRows(t, p, 40, 0)
	checkDelivered(t, s, 40, false)
	if st0, st1 := p.states["shardId-000000000000"], p.states["shardId-000000000001"]; !st0.notBefore.IsZero() || st1.notBefore.IsZero() {
		t.Errorf("backoff: shard 0 until %v, shard 1 until %v; want only shard 1", st0.notBefore, st1.notBefore)
	}
}

// TestOrdered: with random throttling, Ordered keeps each key's records in Put order on the stream;
// without it the same run reorders them (showing the check can fail).
func TestOrdered(t *testing.T) {
	run := func(ordered bool) (inversions int) {
		s := newFakeStream(t, 2)
		rng := rand.New(rand.NewPCG(5, 6))
		s.entryError = func(call, i int, _ types.PutRecordsRequestEntry) string {
			if rng.IntN(4) == 0 {
				return codeThroughputExceeded
			}
			return ""
		}
		p, _ := newTestProducer(t, s.client(), Config{Ordered: ordered})
		putRows(t, p, 1500, 0)
		checkDelivered(t, s, 1500, false)
		last := map[string]int{}
		for _, u := range s.userRecords(t) {
			i := rowOf(t, u.Data)
			if prev, ok := last[u.PartitionKey]; ok && i < prev {
				inversions++
			}
			last[u.PartitionKey] = i
		}
		return inversions
	}
	if n := run(true); n != 0 {
		t.Errorf("Ordered: %d records out of order", n)
	}
	if n := run(false); n == 0 {
		t.Errorf("unordered run kept order; the test cannot tell the modes apart")
	}
}

// TestDeadlineBoundsBackoff: a stream that always throttles; Flush gives up before the deadline and
// reports every row as not written.
func TestDeadlineBoundsBackoff(t *testing.T) {
	s := newFakeStream(t, 1)
	s.entryError = func(int, int, types.PutRecordsRequestEntry) string { return codeThroughputExceeded }
	p, clock := newTestProducer(t, s.client(), Config{Aggregate: true, MaxRetries: -1})
	ctx, cancel := context.WithDeadline(t.Context(), clock.Now().Add(30*time.Second))
	defer cancel()
	for i := range 20 {
		if err := p.Put(ctx, Entry{Data: rowData(i, 0), PartitionKey: keyOf(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := p.Flush(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush error = %v, want a deadline error", err)
	}
	if len(f) != 20 {
		t.Errorf("%d failures, want all 20 rows", len(f))
	}
	if dl, _ := ctx.Deadline(); clock.Now().After(dl) {
		t.Errorf("backoff ran past the deadline: %v > %v", clock.Now(), dl)
	}
}

func TestMaxRetries(t *testing.T) {
	s := newFakeStream(t, 1)
	s.entryError = func(int, int, types.PutRecordsRequestEntry) string { return codeInternalFailure }
	p, _ := newTestProducer(t, s.client(), Config{MaxRetries: 2})
	f := putRows(t, p, 3, 0)
	if len(f) != 3 || !errors.Is(f[0].Err, ErrRetriesExhausted) || len(s.calls) != 3 {
		t.Errorf("failures %+v after %d calls; want 3 rows exhausted after 3 calls", f, len(s.calls))
	}
}

func TestEntryRejectedWithOtherCode(t *testing.T) {
	s := newFakeStream(t, 1)
	s.entryError = func(call, i int, _ types.PutRecordsRequestEntry) string {
		if i == 1 {
			return "KMSAccessDeniedException"
		}
		return ""
	}
	p, _ := newTestProducer(t, s.client(), Config{})
	f := putRows(t, p, 3, 0)
	if len(f) != 1 || f[0].Tag != 1 || !errors.Is(f[0].Err, ErrEntryRejected) || len(s.calls) != 1 {
		t.Errorf("failures %+v after %d calls; want row 1 rejected, no retry", f, len(s.calls))
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want requestErrorClass
	}{
		{serverError(400, "ValidationException"), terminal},
		{serverError(400, "AccessDeniedException"), terminal},
		{serverError(400, "ResourceNotFoundException"), terminal},
		{serverError(400, "InvalidArgumentException"), terminal},
		{serverError(400, "ThrottlingException"), retryNotStored},
		{serverError(400, "ProvisionedThroughputExceededException"), retryNotStored},
		{serverError(400, "KMSThrottlingException"), retryNotStored},
		{serverError(429, "Whatever"), retryNotStored},
		{serverError(500, "InternalFailure"), retryMaybeSent},
		{serverError(503, "ServiceUnavailable"), retryMaybeSent},
		{serverError(502, ""), retryMaybeSent},
		{&smithy.GenericAPIError{Code: "InternalFailure"}, retryMaybeSent},
		{fmt.Errorf("sending: %w", timeoutErr{}), retryMaybeSent},
		{errors.New("something else"), terminal},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestPredictAndThrottledShard(t *testing.T) {
	s := newFakeStream(t, 4)
	p, _ := newTestProducer(t, s.client(), Config{})
	for i := range 1000 {
		k := RandomKey()
		if got, want := p.shards.predict(k), s.route(k); got != want {
			t.Fatalf("key %d %q: predicted %s, stream routes to %s", i, k, got, want)
		}
	}
	if got := throttledShard("Rate exceeded for shard shardId-000000000007 in stream s under account 123456789012."); got != "shardId-000000000007" {
		t.Errorf("throttledShard = %q", got)
	}
	if k := RandomKey(); len(k) != 16 {
		t.Errorf("RandomKey() = %q", k)
	}
}

func BenchmarkPut(b *testing.B) {
	for _, aggregate := range []bool{true, false} {
		b.Run(fmt.Sprint("aggregate=", aggregate), func(b *testing.B) {
			ok := &kinesisPutRecordsOutput{}
			c := &fakeClient{
				describeStreamSummary: newFakeStream(nil, 1).client().describeStreamSummary,
				listShards:            newFakeStream(nil, 1).client().listShards,
				putRecords: func(ctx context.Context, in *kinesisPutRecordsInput, _ ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
					if cap(ok.Records) < len(in.Records) {
						ok.Records = make([]types.PutRecordsResultEntry, len(in.Records))
						for i := range ok.Records {
							ok.Records[i].ShardId = newString("shardId-000000000000")
						}
					}
					ok.Records = ok.Records[:len(in.Records)]
					return ok, nil
				},
			}
			p, err := New(context.Background(), c, Config{StreamName: "bench", Aggregate: aggregate,
				ShardBytesPerSecond: 1e15, ShardRecordsPerSecond: 1e15})
			if err != nil {
				b.Fatal(err)
			}
			data := rowData(0, 300)
			keys := make([]string, 265)
			for i := range keys {
				keys[i] = fmt.Sprint(i + 1)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				if err := p.Put(ctx, Entry{Data: data, PartitionKey: keys[i%len(keys)], Tag: int64(i)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if _, err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func newString(s string) *string { return &s }

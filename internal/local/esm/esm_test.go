package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/local/stream"
)

var ctx = context.Background()

var _ shardReader = (*stream.Stream)(nil)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2024, 3, 1, 12, 0, 10, 0, time.UTC)

// fn is a fake function: it decodes every event, records it and answers with handle.
type fn struct {
	mu       sync.Mutex
	events   []events.KinesisTimeWindowEvent
	payloads [][]byte
	handle   func(ev events.KinesisTimeWindowEvent) (any, error)
}

func (f *fn) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.KinesisTimeWindowEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("bad event: %w", err)
	}
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.payloads = append(f.payloads, payload)
	f.mu.Unlock()
	if f.handle == nil {
		return []byte("null"), nil
	}
	r, err := f.handle(ev)
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

func (f *fn) sizes() []int {
	var out []int
	for _, ev := range f.events {
		out = append(out, len(ev.Records))
	}
	return out
}

func (f *fn) data(i int) []string {
	var out []string
	for _, r := range f.events[i].Records {
		out = append(out, string(r.Kinesis.Data))
	}
	return out
}

type env struct {
	s        *stream.Stream
	c        *clock
	f        *fn
	esm      *ESM
	failures []FailureRecord
	seqs     []string // by record number
}

func setup(t *testing.T, shards int, cfg Config) *env {
	t.Helper()
	e := &env{c: &clock{t: t0}, f: &fn{}}
	s, err := stream.New(stream.Config{Name: "trips", ShardCount: shards, LimitsOff: true, Now: e.c.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

func (e *env) start(t *testing.T, cfg Config) {
	t.Helper()
	cfg.FunctionName = "process"
	cfg.StreamARN = e.s.ARN()
	if cfg.StartingPosition == "" {
		cfg.StartingPosition = TrimHorizon
	}
	cfg.Invoke = e.f.Invoke
	cfg.OnFailure = func(_ context.Context, rec []byte) error {
		var fr FailureRecord
		if err := json.Unmarshal(rec, &fr); err != nil {
			return err
		}
		e.failures = append(e.failures, fr)
		return nil
	}
	cfg.Now = e.c.Now
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(cfg, e.s)
	if err != nil {
		t.Fatal(err)
	}
	e.esm = m
}

// put writes n records "<prefix><i>" to shard 0 and remembers their sequence numbers.
func (e *env) put(t *testing.T, prefix string, n int) {
	t.Helper()
	recs := make([]types.PutRecordsRequestEntry, n)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: []byte(fmt.Sprintf("%s%d", prefix, i)), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0")}
	}
	for len(recs) > 0 {
		k := min(len(recs), 500)
		out, err := e.s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: recs[:k]})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			e.seqs = append(e.seqs, *r.SequenceNumber)
		}
		recs = recs[k:]
	}
}

func (e *env) poll(t *testing.T, rounds int) {
	t.Helper()
	for i := 0; i < rounds; i++ {
		if err := e.esm.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEventIsLambdaShaped(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{})
	e.put(t, "hello", 1)
	e.poll(t, 1)
	if len(e.f.payloads) != 1 {
		t.Fatalf("%d invokes, want 1", len(e.f.payloads))
	}
	var got map[string]any
	if err := json.Unmarshal(e.f.payloads[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Records": []any{map[string]any{
		"eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
		"eventID":           "shardId-000000000000:" + e.seqs[0],
		"invokeIdentityArn": "arn:aws:iam::000000000000:role/process-role", "awsRegion": "us-east-1",
		"eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/trips",
		"kinesis": map[string]any{
			"kinesisSchemaVersion": "1.0", "partitionKey": "k", "sequenceNumber": e.seqs[0],
			"data": "aGVsbG8w", "approximateArrivalTimestamp": float64(t0.Unix()),
		},
	}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("event (-want +got):\n%s", d)
	}
}

func TestBatchSizeAndOrder(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10})
	e.put(t, "r", 25)
	e.poll(t, 1)
	if got := e.f.sizes(); !cmp.Equal(got, []int{10, 10, 5}) {
		t.Errorf("batch sizes %v, want [10 10 5]", got)
	}
	var all []string
	for i := range e.f.events {
		all = append(all, e.f.data(i)...)
	}
	for i, d := range all {
		if d != fmt.Sprintf("r%d", i) {
			t.Fatalf("record %d is %s: out of order", i, d)
		}
	}
	if e.esm.Busy() {
		t.Error("Busy after processing everything")
	}
}

func TestStartingPositions(t *testing.T) {
	for _, tc := range []struct {
		pos  string
		ts   time.Time
		want int
	}{
		{TrimHorizon, time.Time{}, 6},
		{Latest, time.Time{}, 3},
		{AtTimestamp, t0.Add(time.Second), 4},
	} {
		t.Run(tc.pos, func(t *testing.T) {
			e := setup(t, 1, Config{})
			e.put(t, "old", 2)
			e.c.Advance(time.Second)
			e.put(t, "old-at-ts", 1)
			e.start(t, Config{StartingPosition: tc.pos, StartingPositionTimestamp: tc.ts})
			e.put(t, "new", 3)
			e.poll(t, 1)
			if got := e.esm.Stats().RecordsProcessed; got != int64(tc.want) {
				t.Errorf("processed %d, want %d", got, tc.want)
			}
		})
	}
}

func TestBatchingWindow(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10, MaximumBatchingWindowInSeconds: 5})
	e.put(t, "a", 3)
	e.poll(t, 1)
	e.c.Advance(4 * time.Second)
	e.poll(t, 1)
	if n := len(e.f.events); n != 0 {
		t.Fatalf("%d invokes inside the batching window", n)
	}
	e.c.Advance(time.Second)
	e.poll(t, 1)
	if got := e.f.sizes(); !cmp.Equal(got, []int{3}) {
		t.Errorf("after the window: %v", got)
	}
	e.put(t, "b", 10) // a full batch does not wait
	e.poll(t, 1)
	if got := e.f.sizes(); !cmp.Equal(got, []int{3, 10}) {
		t.Errorf("full batch: %v", got)
	}
}

func failOn(seqs ...string) func(events.KinesisTimeWindowEvent) (any, error) {
	return func(ev events.KinesisTimeWindowEvent) (any, error) {
		resp := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
		for _, r := range ev.Records {
			for _, s := range seqs {
				if r.Kinesis.SequenceNumber == s {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: s})
				}
			}
		}
		return resp, nil
	}
}

func TestPartialBatchCheckpointAtLowestFailure(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10, FunctionResponseTypes: []string{ReportBatchItemFailures}, MaximumRetryAttempts: Infinite})
	e.put(t, "r", 10)
	first := true
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		if first {
			first = false
			return failOn(e.seqs[6], e.seqs[4])(ev) // reported out of order on purpose
		}
		return failOn()(ev)
	}
	e.poll(t, 2)
	if got := e.f.sizes(); !cmp.Equal(got, []int{10, 6}) {
		t.Fatalf("batch sizes %v, want [10 6]", got)
	}
	if got, want := e.f.data(1), []string{"r4", "r5", "r6", "r7", "r8", "r9"}; !cmp.Equal(got, want) {
		t.Errorf("redelivered %v, want %v", got, want)
	}
	if st := e.esm.Stats(); st.RecordsProcessed != 10 || st.PartialFailures != 1 || st.Retries != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestResponseIgnoredWithoutReportBatchItemFailures(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10, MaximumRetryAttempts: Infinite})
	e.put(t, "r", 10)
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) { return failOn(e.seqs[0])(ev) }
	e.poll(t, 3)
	if got := e.f.sizes(); !cmp.Equal(got, []int{10}) {
		t.Errorf("batch sizes %v, want one batch of 10", got)
	}
}

func TestInvalidItemIdentifierFailsWholeBatch(t *testing.T) {
	for name, resp := range map[string]string{
		"empty":   `{"batchItemFailures":[{"itemIdentifier":""}]}`,
		"null":    `{"batchItemFailures":[{"itemIdentifier":null}]}`,
		"wrong":   `{"batchItemFailures":[{"itemIdentifier":"shardId-000000000000:1"}]}`,
		"badname": `{"batchItemFailures":[{"itemId":"x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := setup(t, 1, Config{})
			e.start(t, Config{BatchSize: 10, FunctionResponseTypes: []string{ReportBatchItemFailures}, MaximumRetryAttempts: Infinite})
			e.put(t, "r", 10)
			calls := 0
			e.f.handle = func(events.KinesisTimeWindowEvent) (any, error) {
				calls++
				if calls == 1 {
					return json.RawMessage(resp), nil
				}
				return nil, nil
			}
			e.poll(t, 2)
			if got := e.f.sizes(); !cmp.Equal(got, []int{10, 10}) {
				t.Errorf("batch sizes %v, want the whole batch twice", got)
			}
		})
	}
}

func isPoison(ev events.KinesisTimeWindowEvent) bool {
	for _, r := range ev.Records {
		if string(r.Kinesis.Data) == "r5" {
			return true
		}
	}
	return false
}

func TestBisectIsolatesPoisonRecord(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 8, BisectBatchOnFunctionError: true, MaximumRetryAttempts: 0})
	e.put(t, "r", 8)
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		if isPoison(ev) {
			return nil, errors.New("poison")
		}
		return nil, nil
	}
	for i := 0; i < 10 && e.esm.Busy(); i++ {
		e.poll(t, 1)
	}
	// 8 fails → 4 (r0-r3) ok, 4 (r4-r7) fails → 2 (r4,r5) fails → 1 (r4) ok, 1 (r5) exhausted → 2 (r6,r7) ok.
	if got, want := e.f.sizes(), []int{8, 4, 4, 2, 1, 1, 2}; !cmp.Equal(got, want) {
		t.Errorf("batch sizes %v, want %v", got, want)
	}
	if len(e.failures) != 1 {
		t.Fatalf("%d on-failure records, want 1", len(e.failures))
	}
	f := e.failures[0]
	if f.KinesisBatchInfo.StartSequenceNumber != e.seqs[5] || f.KinesisBatchInfo.EndSequenceNumber != e.seqs[5] || f.KinesisBatchInfo.BatchSize != 1 {
		t.Errorf("on-failure record %+v, want only r5", f.KinesisBatchInfo)
	}
	if st := e.esm.Stats(); st.Bisects != 3 || st.Exhausted != 1 || st.RecordsProcessed != 7 || st.RecordsDiscarded != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRetriesExhaustedSendsOnFailureRecord(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 5, MaximumRetryAttempts: 2})
	e.put(t, "r", 5)
	e.c.Advance(1500 * time.Millisecond)
	e.put(t, "s", 3)
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		if strings.HasPrefix(string(ev.Records[0].Kinesis.Data), "r") {
			return nil, errors.New("boom")
		}
		return nil, nil
	}
	e.poll(t, 3)
	if got, want := e.f.sizes(), []int{5, 5, 5, 3}; !cmp.Equal(got, want) {
		t.Errorf("batch sizes %v, want %v", got, want)
	}
	if len(e.failures) != 1 {
		t.Fatalf("%d on-failure records", len(e.failures))
	}
	f := e.failures[0]
	want := FailureRecord{
		RequestContext:  FailureRequestContext{RequestID: f.RequestContext.RequestID, FunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:process", Condition: "RetryAttemptsExhausted", ApproximateInvokeCount: 3},
		ResponseContext: FailureResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST", FunctionError: "Unhandled"},
		Version:         "1.0",
		Timestamp:       "2024-03-01T12:00:11.500Z",
		KinesisBatchInfo: KinesisBatchInfo{
			ShardID: "shardId-000000000000", StartSequenceNumber: e.seqs[0], EndSequenceNumber: e.seqs[4],
			ApproximateArrivalOfFirstRecord: "2024-03-01T12:00:10.000Z", ApproximateArrivalOfLastRecord: "2024-03-01T12:00:10.000Z",
			BatchSize: 5, StreamArn: "arn:aws:kinesis:us-east-1:000000000000:stream/trips",
		},
	}
	if d := cmp.Diff(want, f); d != "" || f.RequestContext.RequestID == "" {
		t.Errorf("on-failure record (-want +got):\n%s", d)
	}
	if st := e.esm.Stats(); st.Retries != 2 || st.FunctionErrors != 3 || st.Exhausted != 1 || st.RecordsProcessed != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestRecordAgeExpiry(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10, MaximumRetryAttempts: Infinite, MaximumRecordAgeInSeconds: 60})
	e.put(t, "r", 3)
	e.f.handle = func(events.KinesisTimeWindowEvent) (any, error) { return nil, errors.New("down") }
	e.poll(t, 1)
	e.c.Advance(60 * time.Second)
	e.poll(t, 1) // exactly 60 s old: not expired yet, retried
	if len(e.failures) != 0 || len(e.f.events) != 2 {
		t.Fatalf("at 60 s: %d failures, %d invokes", len(e.failures), len(e.f.events))
	}
	e.c.Advance(time.Millisecond)
	e.poll(t, 1)
	if len(e.f.events) != 2 {
		t.Errorf("expired records were invoked again")
	}
	if len(e.failures) != 1 || e.failures[0].RequestContext.Condition != "RecordAgeExceeded" || e.failures[0].KinesisBatchInfo.BatchSize != 3 {
		t.Fatalf("on-failure records %+v", e.failures)
	}
	if e.esm.Busy() {
		t.Error("still busy after discarding")
	}
}

func TestTumblingWindow(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 2, TumblingWindowInSeconds: 60, MaximumRetryAttempts: Infinite})
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		if ev.IsFinalInvokeForWindow {
			return events.KinesisTimeWindowEventResponse{TimeWindowEventResponseProperties: events.TimeWindowEventResponseProperties{State: map[string]string{"n": "discarded"}}}, nil
		}
		n := 0
		fmt.Sscan(ev.State["n"], &n)
		return events.KinesisTimeWindowEventResponse{TimeWindowEventResponseProperties: events.TimeWindowEventResponseProperties{State: map[string]string{"n": fmt.Sprint(n + len(ev.Records))}}}, nil
	}
	e.put(t, "a", 3) // window 12:00:00-12:01:00
	e.poll(t, 1)
	e.c.Advance(55 * time.Second) // 12:01:05
	e.put(t, "b", 1)
	e.poll(t, 1)
	if err := e.esm.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	type call struct {
		Records      int
		Start, End   string
		State        string
		Final, Early bool
	}
	var got []call
	for _, ev := range e.f.events {
		got = append(got, call{len(ev.Records), ev.Window.Start.UTC().Format("15:04:05"), ev.Window.End.UTC().Format("15:04:05"), ev.State["n"], ev.IsFinalInvokeForWindow, ev.IsWindowTerminatedEarly})
		if ev.ShardID != "shardId-000000000000" || ev.EventSourceARN != e.s.ARN() {
			t.Errorf("window event shard %q source %q", ev.ShardID, ev.EventSourceARN)
		}
	}
	want := []call{
		{2, "12:00:00", "12:01:00", "", false, false},
		{1, "12:00:00", "12:01:00", "2", false, false},
		{0, "12:00:00", "12:01:00", "3", true, false},
		{1, "12:01:00", "12:02:00", "", false, false},
		{0, "12:01:00", "12:02:00", "1", true, true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("invokes (-want +got):\n%s", d)
	}
	if st := e.esm.Stats(); st.WindowsClosed != 2 {
		t.Errorf("WindowsClosed %d, want 2", st.WindowsClosed)
	}
	if !strings.Contains(string(e.f.payloads[2]), `"Records":[]`) {
		t.Errorf("final invoke payload %s", e.f.payloads[2])
	}
}

func TestTumblingWindowClosesWhenClockPassesEnd(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{TumblingWindowInSeconds: 30, MaximumRetryAttempts: Infinite})
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		return map[string]any{"state": map[string]string{"k": "v"}}, nil
	}
	e.put(t, "a", 1)
	e.poll(t, 1)
	e.c.Advance(19 * time.Second) // 12:00:29
	e.poll(t, 1)
	if n := len(e.f.events); n != 1 {
		t.Fatalf("%d invokes before the window end", n)
	}
	e.c.Advance(time.Second) // 12:00:30 = end
	e.poll(t, 1)
	if n := len(e.f.events); n != 2 || !e.f.events[1].IsFinalInvokeForWindow || e.f.events[1].IsWindowTerminatedEarly || e.f.events[1].State["k"] != "v" {
		t.Errorf("final invoke missing or wrong: %+v", e.f.events)
	}
}

func TestTumblingWindowStateRules(t *testing.T) {
	for name, tc := range map[string]struct {
		resp    string
		retried bool
	}{
		"missing state":   {`{"batchItemFailures":[]}`, true},
		"state too large": {`{"state":{"k":"` + strings.Repeat("x", MaxStateBytes) + `"}}`, true},
		"null state ok":   {`{"state":null}`, false},
		"non-string":      {`{"state":{"k":1}}`, true},
	} {
		t.Run(name, func(t *testing.T) {
			e := setup(t, 1, Config{})
			e.start(t, Config{TumblingWindowInSeconds: 60, MaximumRetryAttempts: Infinite})
			calls := 0
			e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
				calls++
				if calls == 1 {
					return json.RawMessage(tc.resp), nil
				}
				return map[string]any{"state": map[string]string{}}, nil
			}
			e.put(t, "a", 1)
			e.poll(t, 2)
			if got := len(e.f.events) == 2; got != tc.retried {
				t.Errorf("retried = %v, want %v (%d invokes)", got, tc.retried, len(e.f.events))
			}
		})
	}
}

func TestPayloadCappedAtSixMB(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t, Config{BatchSize: 10})
	big := strings.Repeat("x", 900<<10)
	var recs []types.PutRecordsRequestEntry
	for i := 0; i < 10; i++ {
		recs = append(recs, types.PutRecordsRequestEntry{Data: []byte(big), PartitionKey: aws.String("k")})
	}
	for i := 0; i < 10; i += 5 {
		if _, err := e.s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: recs[i : i+5]}); err != nil {
			t.Fatal(err)
		}
	}
	e.poll(t, 2)
	// 900 KiB is 1,228,800 base64 characters: five records fit in 6 MB, six do not.
	if got := e.f.sizes(); !cmp.Equal(got, []int{5, 5}) {
		t.Errorf("batch sizes %v, want [5 5]", got)
	}
	for i, p := range e.f.payloads {
		if len(p) > MaxPayloadBytes {
			t.Errorf("payload %d is %d bytes", i, len(p))
		}
	}
}

// TestLimitsOffReadAheadAndPayload: with the payload limit lifted and ReadAhead (the local cloud with
// its limits off), one poll invokes full batches of BatchSize records, although one GetRecords
// returns at most 10 MB (11 of these records) and 6 MB of event JSON would hold 5; without ReadAhead
// a poll reads once and the first batch holds what that read gave.
func TestLimitsOffReadAheadAndPayload(t *testing.T) {
	for _, readAhead := range []bool{true, false} {
		t.Run(fmt.Sprintf("ReadAhead=%v", readAhead), func(t *testing.T) {
			e := setup(t, 1, Config{})
			e.start(t, Config{BatchSize: 20, MaxPayloadBytes: 1 << 30, ReadAhead: readAhead})
			big := strings.Repeat("x", 900<<10)
			var recs []types.PutRecordsRequestEntry
			for i := 0; i < 30; i++ {
				recs = append(recs, types.PutRecordsRequestEntry{Data: []byte(big), PartitionKey: aws.String("k")})
			}
			for i := 0; i < len(recs); i += 5 {
				if _, err := e.s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: recs[i : i+5]}); err != nil {
					t.Fatal(err)
				}
			}
			e.poll(t, 1)
			got := e.f.sizes()
			if readAhead {
				if !cmp.Equal(got, []int{20, 10}) {
					t.Errorf("batch sizes after one poll %v, want [20 10]", got)
				}
				if len(e.f.payloads) > 0 && len(e.f.payloads[0]) <= MaxPayloadBytes {
					t.Errorf("the first payload is %d bytes, want more than the 6 MB limit", len(e.f.payloads[0]))
				}
			} else if len(got) == 0 || got[0] >= 20 {
				t.Errorf("batch sizes after one poll %v, want a first batch of one read (fewer than 20)", got)
			}
			e.poll(t, 3)
			n := 0
			for _, k := range e.f.sizes() {
				n += k
			}
			if n != 30 {
				t.Errorf("%d records invoked, want 30 (sizes %v)", n, e.f.sizes())
			}
		})
	}
}

func TestShardsAreIndependentAndOrdered(t *testing.T) {
	e := setup(t, 2, Config{})
	e.start(t, Config{BatchSize: 3, MaximumRetryAttempts: Infinite})
	var mu sync.Mutex
	seen := map[string][]string{}
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Records {
			shard, _, _ := strings.Cut(r.EventID, ":")
			seen[shard] = append(seen[shard], r.Kinesis.SequenceNumber)
		}
		return nil, nil
	}
	for i := 0; i < 20; i++ {
		if _, err := e.s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("trips"), Data: []byte("x"), PartitionKey: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.esm.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	total := 0
	for shard, seqs := range seen {
		total += len(seqs)
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("%s out of order", shard)
			}
		}
	}
	if total != 20 || len(seen) != 2 {
		t.Errorf("saw %d records over %d shards", total, len(seen))
	}
}

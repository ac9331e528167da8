package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/producer"
)

// newRealProducerEnv is an env whose handler uses the real producer on a fake one-shard stream, with
// the producer's waits (pacing, backoff) on a simulated clock so the tests do not sleep.
func newRealProducerEnv(t *testing.T, k *fakeKinesis) *env {
	t.Helper()
	e := newEnv(t, func(c *config.Config) { c.Aggregate = false })
	e.h.kinesis = k
	e.h.newProducer = func(ctx context.Context, c producer.Client, pc producer.Config) (RecordProducer, error) {
		clk := &fakeClock{t: time.Now()}
		pc.Now = clk.Now
		pc.Sleep = func(ctx context.Context, d time.Duration) error { clk.advance(d); return ctx.Err() }
		return producer.New(ctx, c, pc)
	}
	return e
}

func TestThrottlingStormLosesNothing(t *testing.T) {
	k := &fakeKinesis{}
	// Every entry of the first 6 requests, and every other entry after that, is throttled.
	k.putRecords = func(call int, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		out := &kinesis.PutRecordsOutput{}
		for i, en := range in.Records {
			if call <= 6 || (call+i)%2 == 0 {
				out.Records = append(out.Records, kinesistypes.PutRecordsResultEntry{
					ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("Rate exceeded for shard shardId-000000000000 in stream trips")})
				out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
				continue
			}
			out.Records = append(out.Records, k.store(en))
		}
		return out, nil
	}
	e := newRealProducerEnv(t, k)
	data := tlcCSV(300, 10)
	res, err := e.handle(context.Background(), e.putObject("raw/yellow.csv", data))
	if err != nil {
		t.Fatal(err)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RecordsSent != 299 || m.Counts.Rejected != 1 {
		t.Fatalf("manifest: %s (%s) %+v, want done with 299 sent", m.Status, m.Reason, m.Counts)
	}
	checkReconciles(t, m)
	if m.Counts.Throttled == 0 || res.Objects[0].Throttled == 0 {
		t.Errorf("throttles not counted: manifest %d, result %d", m.Counts.Throttled, res.Objects[0].Throttled)
	}
	got := storedStrings(k)
	if len(got) != 299 || len(duplicates(got)) != 0 {
		t.Errorf("stream holds %d records (%d duplicates), want 299 once each", len(got), len(duplicates(got)))
	}
	emf := emfLines(t, e.emf)
	if len(emf) != 1 || emf[0]["Throttled"] == float64(0) || emf[0]["Retries"] == float64(0) {
		t.Errorf("EMF: %v", emf)
	}
}

func TestPutRecordsTimeoutAfterStoringCountsDuplicates(t *testing.T) {
	k := &fakeKinesis{}
	// The third request is stored but its response is lost (a 504 after the write).
	k.putRecords = func(call int, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		out := &kinesis.PutRecordsOutput{}
		for _, en := range in.Records {
			out.Records = append(out.Records, k.store(en))
		}
		if call == 3 {
			return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusGatewayTimeout}},
				Err: errors.New("request timed out")}
		}
		return out, nil
	}
	e := newRealProducerEnv(t, k)
	e.h.flushRecords = 20
	if _, err := e.handle(context.Background(), e.putObject("raw/yellow.csv", tlcCSV(100))); err != nil {
		t.Fatal(err)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RecordsSent != 100 {
		t.Fatalf("manifest: %s (%s) %+v", m.Status, m.Reason, m.Counts)
	}
	checkReconciles(t, m)
	got := storedStrings(k)
	if n := len(uniq(got)); n != 100 {
		t.Errorf("distinct records in the stream: %d, want 100 (nothing lost)", n)
	}
	dups := len(got) - 100
	if dups == 0 {
		t.Fatalf("no duplicate stored: the fault was not injected")
	}
	if m.Counts.PossibleDuplicates != int64(dups) {
		t.Errorf("possible duplicates counted %d, stream holds %d extra copies", m.Counts.PossibleDuplicates, dups)
	}
}

func storedStrings(k *fakeKinesis) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, len(k.stored))
	for i, b := range k.stored {
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// TestLongBrownoutRejectsNothing: every entry fails with InternalFailure for 40 requests in a row —
// more than the producer's default retry count — then the stream recovers. Retries are bounded by time,
// not count, so no row is given up on: all are sent, none is recorded as rejected.
func TestLongBrownoutRejectsNothing(t *testing.T) {
	k := &fakeKinesis{}
	k.putRecords = func(call int, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		out := &kinesis.PutRecordsOutput{}
		for _, en := range in.Records {
			if call <= 40 {
				out.Records = append(out.Records, kinesistypes.PutRecordsResultEntry{
					ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("Internal service failure.")})
				out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
				continue
			}
			out.Records = append(out.Records, k.store(en))
		}
		return out, nil
	}
	e := newRealProducerEnv(t, k)
	if _, err := e.handle(context.Background(), e.putObject("raw/yellow.csv", tlcCSV(120))); err != nil {
		t.Fatal(err)
	}
	m := e.manifest("state/ingest/")
	checkReconciles(t, m)
	if m.Status != StatusDone || m.Counts.RecordsSent != 120 || m.Counts.Rejected != 0 {
		t.Fatalf("manifest: %s (%s) %+v, want done with 120 sent and nothing rejected", m.Status, m.Reason, m.Counts)
	}
	if got := len(uniq(storedStrings(k))); got != 120 {
		t.Errorf("stream holds %d distinct records, want 120", got)
	}
}

// TestRetryableProducerErrorReleases: a flush that fails with a retryable error that is not the
// deadline (here: the producer's retries ran out) releases the object at its checkpoint instead of
// failing it or rejecting the rows; the retry of the event sends them.
func TestRetryableProducerErrorReleases(t *testing.T) {
	e := newEnv(t, nil)
	flushes := 0
	e.prodMod = func(p *fakeProducer) {
		p.flushErr = func() error {
			if flushes++; flushes == 2 {
				return fmt.Errorf("putting records: %w", producer.ErrRetriesExhausted)
			}
			return nil
		}
	}
	ev := e.putObject("raw/yellow.csv", tlcCSV(100))
	res, err := e.handle(context.Background(), ev)
	if err == nil || res.Objects[0].Outcome != OutcomeReleased {
		t.Fatalf("first invocation: %v %+v, want released with an error for the retry", err, res)
	}
	if res, err = e.handle(context.Background(), ev); err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("retry: %v %+v, want done", err, res)
	}
	m := e.manifest("state/ingest/")
	checkReconciles(t, m)
	if m.Counts.RowsRead != 100 || m.Counts.Rejected != 0 || m.Counts.Failed != 0 {
		t.Errorf("manifest counts %+v: want 100 rows, none rejected or failed", m.Counts)
	}
}

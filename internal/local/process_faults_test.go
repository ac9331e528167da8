package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/local/esm"
	"github.com/taxistream/taxistream/internal/local/stream"
)

// lockedBuffer collects the functions' logs and EMF lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// metricSum adds up an EMF metric over every EMF line of logs.
func metricSum(t *testing.T, logs []byte, name string) float64 {
	t.Helper()
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"_aws"`)) || !bytes.Contains(line, []byte(`"`+name+`"`)) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("EMF line %s: %v", line, err)
		}
		if v, ok := m[name].(float64); ok {
			sum += v
		}
	}
	return sum
}

// putGen puts one generated file.
func putGen(t *testing.T, c *Cloud, key string, o gen.Options) {
	t.Helper()
	if err := PutGenerated(context.Background(), c, key, o); err != nil {
		t.Fatal(err)
	}
}

// TestProcessS3WriteFaults is the ESM fault matrix of issue 7: ProcessFunction's S3 writes fail at
// random, so batches end in partial batch responses; the mapping checkpoints at the reported sequence
// number and retries the rest. Nothing may be lost (distinct record ids = records sent), and the total
// rows (trips + quarantined) show whether a retried batch duplicated rows.
//
// KPL aggregation is off so that a Kinesis record is one trip and a batch of 100 records can be cut
// anywhere (an aggregate holds trips of every pickup date of the month, so with aggregation every
// output object of a batch starts at its first record and any failed write sends the batch back whole).
//
//   - stored-then-failed: every failed PUT did store its object. Each object the handler rewrites
//     after a failure ends up holding exactly the committed prefix, so the outputs must hold every
//     record exactly once, total rows included.
//   - not-stored: a failed PUT stored nothing. Then a clean-up rewrite that fails leaves an earlier,
//     complete version of an object that holds rows the retry writes again: process's documented
//     residual case (ResidualObjects metric; consumers drop the copies by record_id). Duplicate rows
//     must be explained by it: none without residual objects, and at most BatchSize (100) rows per
//     residual object, since a residual object holds rows of one batch.
func TestProcessS3WriteFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults S3Faults
		exact  bool
	}{
		{"stored-then-failed", S3Faults{Seed: 5, PutStoreThenFailRate: 0.03}, true},
		{"not-stored", S3Faults{Seed: 3, PutErrorRate: 0.03}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &lockedBuffer{}
			c := startCloud(t, Options{
				LimitsOff: true, PollInterval: 100 * time.Millisecond, Logs: logs,
				Overrides: map[string]string{"KplAggregation": "false", "MaximumBatchingWindowSeconds": "0"},
				S3Faults:  tc.faults,
			})
			const rows = 2000
			putGen(t, c, "raw/faults/yellow.csv", gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: rows, Seed: 11})
			s := drainAndSummarize(t, c, 2*time.Minute)
			st := c.ESM.Stats()
			fs := c.S3FaultStats()
			residual := metricSum(t, logs.Bytes(), "ResidualObjects")
			dups := s.TripsProcessed + s.Quarantined - s.ConsumerDistinct
			t.Logf("esm %+v; s3 faults %+v; residual objects %v; duplicate rows %d", st, fs, residual, dups)
			if fs.PutErrors+fs.StoreThenFail == 0 {
				t.Fatalf("no S3 write failed: %+v", fs)
			}
			if st.PartialFailures == 0 || st.Retries == 0 {
				t.Errorf("partial failures = %d, retries = %d: want both > 0", st.PartialFailures, st.Retries)
			}
			// A failed trip or quarantine write is a partial batch response. Only the final invoke of a
			// tumbling window answers a failed zone_stats write with a function error (its state cannot
			// be reported per record), which the mapping retries: at most one per window and retry.
			if st.FunctionErrors > st.WindowsClosed*int64(maxRetries(t, c)+1) || st.Exhausted != 0 || st.RecordsDiscarded != 0 {
				t.Errorf("function errors %d (windows closed %d), exhausted %d, discarded %d: want only window-final errors, nothing discarded",
					st.FunctionErrors, st.WindowsClosed, st.Exhausted, st.RecordsDiscarded)
			}
			if !s.Reconciled {
				t.Fatalf("not reconciled (a record lost?):\n%s", strings.Join(s.Reconciliation, "\n"))
			}
			if s.RecordsSent != rows || s.ConsumerDistinct != rows {
				t.Errorf("records sent %d, distinct records in the outputs %d; want %d", s.RecordsSent, s.ConsumerDistinct, rows)
			}
			switch {
			case tc.exact && dups != 0:
				t.Errorf("trips %d + quarantined %d = %d rows for %d records: %d duplicate rows, want none",
					s.TripsProcessed, s.Quarantined, s.TripsProcessed+s.Quarantined, s.RecordsSent, dups)
			case dups < 0:
				t.Errorf("%d rows for %d distinct records", s.TripsProcessed+s.Quarantined, s.ConsumerDistinct)
			case dups > 0 && residual == 0:
				t.Errorf("%d duplicate rows but no residual object reported: a retried batch duplicated rows", dups)
			case float64(dups) > residual*100:
				t.Errorf("%d duplicate rows from %v residual objects: more than one batch (100 records) each", dups, residual)
			}
		})
	}
}

// poisonHandler fails every batch that holds the poison record: the tenth record of the first batch
// of ten or more records it sees.
type poisonHandler struct {
	next lambda.Handler
	mu   sync.Mutex
	seq  string
}

func (p *poisonHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.KinesisEvent
	if err := json.Unmarshal(payload, &ev); err == nil {
		p.mu.Lock()
		if p.seq == "" && len(ev.Records) >= 10 {
			p.seq = ev.Records[9].Kinesis.SequenceNumber
		}
		seq := p.seq
		p.mu.Unlock()
		for _, r := range ev.Records {
			if seq != "" && r.Kinesis.SequenceNumber == seq {
				return nil, errors.New("poison record")
			}
		}
	}
	return p.next.Invoke(ctx, payload)
}

func (p *poisonHandler) poison() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// TestProcessPoisonRecord makes one record fail ProcessFunction every time (a function error, not a
// partial response): the mapping bisects the batch down to that record, retries it
// MaximumRetryAttempts times (5 in the template), writes Lambda's on-failure record to
// <dir>/failures/esm/ and goes on; every other record reaches the outputs exactly once.
func TestProcessPoisonRecord(t *testing.T) {
	t.Parallel()
	var ph *poisonHandler
	c := startCloud(t, Options{
		LimitsOff: true, PollInterval: 100 * time.Millisecond,
		Overrides: map[string]string{"KplAggregation": "false", "MaximumBatchingWindowSeconds": "0"},
		WrapHandler: func(id string, h lambda.Handler) lambda.Handler {
			if id != ProcessFunction {
				return h
			}
			ph = &poisonHandler{next: h}
			return ph
		},
	})
	const rows = 1000
	putGen(t, c, "raw/poison/yellow.csv", gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: rows, Seed: 12})
	s := drainAndSummarize(t, c, 2*time.Minute)
	st := c.ESM.Stats()
	t.Logf("esm %+v", st)
	poison := ph.poison()
	if poison == "" {
		t.Fatal("no batch of ten records was seen")
	}
	if st.Bisects == 0 || st.Exhausted != 1 || st.RecordsDiscarded != 1 {
		t.Errorf("bisects %d, exhausted %d, discarded %d: want > 0, 1, 1", st.Bisects, st.Exhausted, st.RecordsDiscarded)
	}
	files := c.Failures()
	if len(files) != 1 || filepath.Base(filepath.Dir(files[0])) != "esm" {
		t.Fatalf("failure records %v, want one under failures/esm/", files)
	}
	body, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var fr esm.FailureRecord
	if err := json.Unmarshal(body, &fr); err != nil {
		t.Fatalf("failure record %s: %v", body, err)
	}
	bi := fr.KinesisBatchInfo
	if bi.ShardID != stream.ShardID(0) || bi.StartSequenceNumber != poison || bi.EndSequenceNumber != poison || bi.BatchSize != 1 || bi.StreamArn != c.Stream.ARN() {
		t.Errorf("batch info %+v, want shard %s, sequence range [%s, %s], 1 record, stream %s", bi, stream.ShardID(0), poison, poison, c.Stream.ARN())
	}
	if fr.RequestContext.Condition != "RetryAttemptsExhausted" || fr.RequestContext.ApproximateInvokeCount != 6 || fr.ResponseContext.FunctionError != "Unhandled" {
		t.Errorf("failure record %s: want condition RetryAttemptsExhausted after 6 invokes (1 + MaximumRetryAttempts 5), functionError Unhandled", body)
	}
	if s.RecordsSent != rows || s.FailureRecords != 1 {
		t.Errorf("records sent %d, failure records %d; want %d, 1", s.RecordsSent, s.FailureRecords, rows)
	}
	if got := s.TripsProcessed + s.Quarantined; got != rows-1 || s.ConsumerDistinct != rows-1 {
		t.Errorf("trips %d + quarantined %d = %d rows, %d distinct; want every record but the poison one: %d",
			s.TripsProcessed, s.Quarantined, got, s.ConsumerDistinct, rows-1)
	}
}

// maxRetries is ProcessFunction's MaximumRetryAttempts from the template.
func maxRetries(t *testing.T, c *Cloud) int {
	t.Helper()
	fn := c.Settings.Functions[ProcessFunction]
	if len(fn.KinesisEvents) == 0 {
		t.Fatal("ProcessFunction has no Kinesis event in the template")
	}
	return fn.KinesisEvents[0].MaximumRetryAttempts
}

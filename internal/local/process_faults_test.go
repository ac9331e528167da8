package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/local/esm"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/testpeers"
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

// faultProfile is one kind of trouble for ProcessFunction.
type faultProfile struct {
	name string
	s3   S3Faults
	fn   FunctionFaults
	kpl  bool
}

// faultProfiles cycle over the seeds of TestProcessFaultMatrix.
var faultProfiles = []faultProfile{
	// S3 write and read failures, and writes stored but answered with an error: partial batch
	// responses, clean-up rewrites that fail too (residual objects).
	{name: "s3-errors", s3: S3Faults{PutErrorRate: 0.05, PutStoreThenFailRate: 0.05, GetErrorRate: 0.03}},
	// A PUT hangs until the invocation times out (stored or not): a timeout in the middle of the
	// writes, a function error, so the mapping bisects the batch.
	{name: "timeouts", s3: S3Faults{PutTimeoutRate: 0.012, PutErrorRate: 0.02}},
	// The invocation fails after the handler wrote everything (a function error): bisection.
	{name: "function-errors", fn: FunctionFaults{ErrorRate: 0.2}, s3: S3Faults{PutStoreThenFailRate: 0.03}},
	// A record fails every invocation that holds it: bisected down to it, retried until the retries
	// run out, then sent to the failure destination.
	{name: "poison", fn: FunctionFaults{PoisonRate: 0.012, ErrorRate: 0.05}, s3: S3Faults{PutErrorRate: 0.02}},
	// KPL aggregates: one Kinesis record holds trips of every pickup date of the month.
	{name: "kpl-mixed", kpl: true, fn: FunctionFaults{ErrorRate: 0.1}, s3: S3Faults{PutErrorRate: 0.01, PutStoreThenFailRate: 0.01, PutTimeoutRate: 0.004, GetErrorRate: 0.01}},
}

// faultRun is what one run of the matrix saw.
type faultRun struct {
	esm      esm.Stats
	s3       S3FaultStats
	fn       FunctionFaultStats
	emptied  float64
	trimmed  float64
	residual float64
	rows     int64 // checked by DuckDB
	files    int
}

// TestProcessFaultMatrix is the fault matrix of ProcessFunction under the event source mapping's
// at-least-once delivery: S3 errors, stored-then-failed writes, timeouts in the middle of the writes,
// function errors with bisection, and poison records whose retries run out (the failure destination),
// over seeded runs of a few hundred trips. After each run:
//   - DuckDB's count(*) equals count(DISTINCT record_id) over processed/trips, and the summary's
//     processed_duplicates is 0 (no row twice);
//   - every record sent (the record ids DuckDB reads in the Firehose archive) is in processed/trips,
//     in quarantine/ or among the records an on-failure record names (read back from the stream),
//     checked by DuckDB and by the summary.
//
// Across the runs each fault must have happened (so that the matrix cannot pass by missing them).
func TestProcessFaultMatrix(t *testing.T) {
	t.Parallel()
	const runs = 25
	var mu sync.Mutex
	seen := map[string]faultRun{}
	total := faultRun{}
	t.Run("runs", func(t *testing.T) {
		sem := make(chan struct{}, 5)
		var wg sync.WaitGroup
		for seed := 1; seed <= runs; seed++ {
			p := faultProfiles[(seed-1)%len(faultProfiles)]
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t.Run(fmt.Sprintf("%02d-%s", seed, p.name), func(t *testing.T) {
					r := faultMatrixRun(t, p, uint64(seed))
					mu.Lock()
					defer mu.Unlock()
					agg := seen[p.name]
					agg.add(r)
					seen[p.name] = agg
					total.add(r)
				})
			}()
		}
		wg.Wait()
	})
	if t.Failed() {
		return
	}
	for name, r := range seen {
		t.Logf("%-15s esm %+v; s3 %+v; function %+v; earlier objects emptied %v, trimmed %v; residual %v; DuckDB rows %d in %d files",
			name, r.esm, r.s3, r.fn, r.emptied, r.trimmed, r.residual, r.rows, r.files)
	}
	t.Logf("%d runs: %d rows in %d Parquet files checked by DuckDB", runs, total.rows, total.files)
	checks := []struct {
		what string
		n    int64
	}{
		{"partial batch responses", total.esm.PartialFailures},
		{"function errors", total.esm.FunctionErrors},
		{"bisections", total.esm.Bisects},
		{"batches whose retries ran out", total.esm.Exhausted},
		{"S3 PUT errors", total.s3.PutErrors},
		{"S3 PUTs stored then failed", total.s3.StoreThenFail},
		{"S3 GET errors", total.s3.GetErrors},
		{"timeouts in the middle of the writes", total.s3.Timeouts},
		{"function errors after the handler wrote", total.fn.Errors},
		{"poison records", total.fn.Poisoned},
		{"objects of an earlier attempt emptied", int64(total.emptied)},
	}
	for _, c := range checks {
		if c.n == 0 {
			t.Errorf("no %s in %d runs: the matrix does not exercise them", c.what, runs)
		}
	}
}

func (a *faultRun) add(r faultRun) {
	a.esm.PartialFailures += r.esm.PartialFailures
	a.esm.FunctionErrors += r.esm.FunctionErrors
	a.esm.Bisects += r.esm.Bisects
	a.esm.Exhausted += r.esm.Exhausted
	a.esm.Retries += r.esm.Retries
	a.esm.RecordsDiscarded += r.esm.RecordsDiscarded
	a.s3.Puts += r.s3.Puts
	a.s3.PutErrors += r.s3.PutErrors
	a.s3.StoreThenFail += r.s3.StoreThenFail
	a.s3.GetErrors += r.s3.GetErrors
	a.s3.Timeouts += r.s3.Timeouts
	a.s3.Frozen += r.s3.Frozen
	a.fn.Invocations += r.fn.Invocations
	a.fn.Errors += r.fn.Errors
	a.fn.Poisoned += r.fn.Poisoned
	a.emptied += r.emptied
	a.trimmed += r.trimmed
	a.residual += r.residual
	a.rows += r.rows
	a.files += r.files
}

// faultMatrixRun runs one seeded run and checks it.
func faultMatrixRun(t *testing.T, p faultProfile, seed uint64) faultRun {
	logs := &lockedBuffer{}
	p.s3.Seed, p.fn.Seed = seed, seed
	kpl := "false"
	if p.kpl {
		kpl = "true"
	}
	c := startCloud(t, Options{
		LimitsOff: true, PollInterval: 100 * time.Millisecond, Logs: logs,
		Overrides:        map[string]string{"KplAggregation": kpl, "MaximumBatchingWindowSeconds": "0", "BatchSize": "25"},
		S3Faults:         p.s3,
		FunctionFaults:   p.fn,
		FunctionTimeouts: map[string]time.Duration{ProcessFunction: 2 * time.Second},
	})
	rows := int64(200 + seed%5*20)
	putGen(t, c, "raw/faults/yellow.csv", gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: rows, Seed: seed})
	s := drainAndSummarize(t, c, 3*time.Minute)
	r := faultRun{esm: c.ESM.Stats(), s3: c.S3FaultStats(), fn: c.FunctionFaultStats(),
		emptied: metricSum(t, logs.Bytes(), "EarlierObjectsEmptied"), trimmed: metricSum(t, logs.Bytes(), "EarlierObjectsTrimmed"),
		residual: metricSum(t, logs.Bytes(), "ResidualObjects")}
	t.Logf("esm %+v; s3 %+v; function %+v; earlier objects emptied %v, trimmed %v; residual objects %v",
		r.esm, r.s3, r.fn, r.emptied, r.trimmed, r.residual)
	t.Logf("summary: sent %d, trips %d (%d distinct) in %d objects, quarantined %d, failure records %d naming %d records",
		s.RecordsSent, s.TripsProcessed, s.TripsDistinct, s.TripObjects, s.Quarantined, s.FailureRecords, s.FailureNamedRecords)

	if s.RecordsSent != rows || s.ArchiveDistinct != rows {
		t.Fatalf("records sent %d, archived %d distinct; want %d (ingest is not under test here)", s.RecordsSent, s.ArchiveDistinct, rows)
	}
	if s.ProcessedDuplicates != 0 || s.ProcessedRewritten != 0 {
		t.Errorf("processed_duplicates %d (%d rewritten from one stream record): want 0", s.ProcessedDuplicates, s.ProcessedRewritten)
	}
	if s.Unaccounted != 0 || s.FailureUnresolved != 0 || s.ConsumerNotArchived != 0 {
		t.Errorf("%d records sent are nowhere (%d on-failure records not read back, %d consumed but not archived):\n%s",
			s.Unaccounted, s.FailureUnresolved, s.ConsumerNotArchived, strings.Join(s.Reconciliation, "\n"))
	}
	if s.FailureRecords == 0 && !s.Reconciled {
		t.Errorf("not reconciled without failure records:\n%s", strings.Join(s.Reconciliation, "\n"))
	}

	// The same, by DuckDB over the files on disk. The record ids the on-failure records name are
	// handed to it as a file.
	ctx := context.Background()
	named, _, err := c.failureNamedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	namedFile := filepath.Join(t.TempDir(), "named.json")
	var nb bytes.Buffer
	for _, id := range named {
		fmt.Fprintf(&nb, "{\"record_id\":%q}\n", id)
	}
	if err := os.WriteFile(namedFile, nb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := c.Bucket.Dir()
	ids := func(glob string) string {
		return "SELECT record_id FROM read_json(" + testpeers.SQLString(glob) + ", format='newline_delimited', columns={record_id: 'VARCHAR'})"
	}
	tripsGlob := testpeers.SQLString(filepath.Join(dir, "processed", "trips", "**", "*.parquet"))
	var consumed []string
	if s.TripObjects > 0 {
		consumed = append(consumed, "SELECT record_id FROM read_parquet("+tripsGlob+", hive_partitioning=true)")
	}
	if s.Quarantined > 0 {
		consumed = append(consumed, ids(filepath.Join(dir, "quarantine", "**", "*.jsonl.gz")))
	}
	if len(named) > 0 {
		consumed = append(consumed, ids(namedFile))
	}
	queries := []string{
		"SELECT count(*) FROM (" + ids(filepath.Join(dir, "archive", "**", "*.gz")) + " EXCEPT (" + strings.Join(consumed, " UNION ALL ") + "))",
	}
	if s.TripObjects > 0 {
		queries = append(queries, "SELECT count(*), count(DISTINCT record_id) FROM read_parquet("+tripsGlob+", hive_partitioning=true)")
	}
	res := testpeers.DuckDB(t, queries...)
	if n := res[0].Rows[0][0]; n != "0" {
		t.Errorf("DuckDB: %v record ids of the archive are neither in processed/trips, nor in quarantine/, nor named by an on-failure record", n)
	}
	if s.TripObjects > 0 {
		got := res[1].Rows[0]
		if got[0] != got[1] {
			t.Errorf("DuckDB over processed/trips: count(*) %v, count(DISTINCT record_id) %v: a row twice", got[0], got[1])
		}
		if got[0] != fmt.Sprint(s.TripsProcessed) {
			t.Errorf("DuckDB counts %v rows in processed/trips, the summary %d", got[0], s.TripsProcessed)
		}
		r.rows, _ = strconv.ParseInt(got[0].(string), 10, 64)
		r.files = s.TripObjects
	}
	return r
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

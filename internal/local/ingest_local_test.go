package local

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local/bucket"
)

// TestIngestContinuations ingests one generated file with IngestFunction's timeout at 4 s and a
// deadline margin of 2 s, with the stream's limits on (1 MiB/s per shard) and KPL aggregation on (the
// template's default), so the file takes several invocations: each reads for about 2 s, then flushes,
// checkpoints and invokes itself asynchronously. No row may be lost or sent twice by the hand-overs: the
// archive holds every record exactly once (no stream faults, so no duplicates either) and so do the
// consumer's outputs. (The producer's buffer is sized from the margin, so the hand-over flush fits in it;
// a producer that runs out of time releases the object for the retry instead of failing it.)
func TestIngestContinuations(t *testing.T) {
	t.Parallel()
	c := startCloud(t, Options{
		FunctionTimeouts: map[string]time.Duration{IngestFunction: 4 * time.Second},
		Env:              map[string]map[string]string{IngestFunction: {"DEADLINE_MARGIN": "2s"}},
	})
	const rows = 24000
	putGen(t, c, "raw/long/yellow_tripdata_2019-01.csv", gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: rows, Seed: 21})
	s := drainAndSummarize(t, c, 3*time.Minute)
	t.Logf("continuations %d, throttled %d, failed %q, stream %+v", s.Continuations, s.Throttled, s.FailedReasons, c.Stream.Stats())
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	if s.Continuations < 2 {
		t.Errorf("continuations = %d, want at least 2 (2 s of reading per invocation, %d rows at 1 MiB/s)", s.Continuations, rows)
	}
	if s.RowsRead != rows || s.RecordsSent != rows {
		t.Errorf("rows read %d, records sent %d; want %d", s.RowsRead, s.RecordsSent, rows)
	}
	if s.ArchiveDistinct != rows || s.ArchiveRecords != rows {
		t.Errorf("archive: %d records, %d distinct; want %d and %d (no row lost or sent twice)", s.ArchiveRecords, s.ArchiveDistinct, rows, rows)
	}
	if got := s.TripsProcessed + s.Quarantined; got != rows || s.ConsumerDistinct != rows {
		t.Errorf("consumer: %d rows, %d distinct; want %d", got, s.ConsumerDistinct, rows)
	}
	if st := c.Lambda.Stats(c.FunctionName(IngestFunction)); st.Timeouts != 0 || st.Invocations < int64(s.Continuations)+1 {
		t.Errorf("ingest runtime stats %+v: want at least %d invocations (1 + continuations), no timeout", st, s.Continuations+1)
	}
}

// TestDuplicateNotification puts the same object twice (same bytes, so the same ETag: S3 notifies
// twice, as at-least-once delivery may) and then delivers S3's event once more, synchronously: the
// object version is ingested once, its manifest says done after one claim, and the repeats put nothing
// into the stream.
func TestDuplicateNotification(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	// ScheduleEvery: this test counts ingest invocations, which the sweeper's schedule would add to.
	c := startCloud(t, Options{LimitsOff: true, PollInterval: 100 * time.Millisecond, Logs: logs, ScheduleEvery: time.Hour})
	ctx := context.Background()
	const key, rows = "raw/dup/green_tripdata_2015-06.csv", 2000
	o := gen.Options{Taxi: "green", Layout: 2015, Month: 6, Rows: rows, Seed: 31}
	putGen(t, c, key, o)
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	stored := c.Stream.Stats().RecordsStored
	if stored == 0 {
		t.Fatal("the first notification put nothing into the stream")
	}

	putGen(t, c, key, o) // same bytes: a second notification of the same version
	hd, err := c.Bucket.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	rule := c.Trigger.Matches("ObjectCreated:Put", key)
	if len(rule) != 1 {
		t.Fatalf("rules matching %s: %+v, want one", key, rule)
	}
	ev, err := c.Trigger.Event(rule[0].ID, bucket.ObjectCreated{
		Bucket: c.Bucket.Name(), Key: key, Size: aws.ToInt64(hd.ContentLength), ETag: aws.ToString(hd.ETag),
		Sequencer: "00FFFFFFFFFFFFFFFF", EventName: bucket.EventPut, Time: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String(c.FunctionName(IngestFunction)), InvocationType: lambdatypes.InvocationTypeRequestResponse, Payload: ev,
	})
	if err != nil || out.FunctionError != nil {
		t.Fatalf("invoking with the repeated event: %v %s", err, out.Payload)
	}
	var res ingest.Result
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		t.Fatalf("response %s: %v", out.Payload, err)
	}
	if len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeDuplicate || res.Objects[0].RecordsSent != 0 {
		t.Errorf("response to the repeated event %s, want one object with outcome %q and nothing sent", out.Payload, ingest.OutcomeDuplicate)
	}
	s := drainAndSummarize(t, c, time.Minute)

	if got := c.Stream.Stats().RecordsStored; got != stored {
		t.Errorf("stream records after the repeats = %d, want %d (unchanged)", got, stored)
	}
	if st := c.Lambda.Stats(c.FunctionName(IngestFunction)); st.Invocations != 3 || st.Errors != 0 {
		t.Errorf("ingest invocations %d (errors %d), want 3 (two notifications and one direct invoke), no error", st.Invocations, st.Errors)
	}
	if d := metricSum(t, logs.Bytes(), "DuplicateNotifications"); d != 2 {
		t.Errorf("DuplicateNotifications = %v, want 2", d)
	}
	// One manifest, done after one claim.
	list, err := c.Bucket.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String("state/ingest/" + key + "/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 {
		t.Fatalf("%d manifests for %s, want 1", len(list.Contents), key)
	}
	got, err := c.Bucket.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: list.Contents[0].Key})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	var m ingest.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != ingest.StatusDone || m.Claims != 1 || m.Counts.RecordsSent != rows {
		t.Errorf("manifest: status %s, %d claims, %d records sent; want done, 1, %d", m.Status, m.Claims, m.Counts.RecordsSent, rows)
	}
	if !s.Reconciled || s.Objects != 1 || s.RecordsSent != rows || s.ArchiveRecords != rows {
		t.Errorf("summary: %d objects, %d sent, %d archived, reconciled %v; want 1, %d, %d, true:\n%s",
			s.Objects, s.RecordsSent, s.ArchiveRecords, s.Reconciled, rows, rows, strings.Join(s.Reconciliation, "\n"))
	}
}

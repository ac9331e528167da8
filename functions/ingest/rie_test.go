package main_test

// The built IngestFunction bootstrap (bin/native/ingest/bootstrap, `make build-native`) under the AWS
// Lambda Runtime Interface Emulator, with real peers on loopback: gofakes3 over HTTP as S3, kinesis-mock
// as Kinesis (created and read back with the real SDK client) and a recording fake of the Lambda Invoke
// REST route for continuations. The records read back from the stream are compared, record by record,
// with a local run of internal/convert on the same file.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// What events/s3-put.json names: the bucket, the key as S3 sends it (form-encoded) and decoded.
const (
	eventBucket     = "taxistream-123456789012-us-east-1"
	eventRawKey     = "raw/2019/yellow+tripdata%2Bsample.csv"
	eventKey        = "raw/2019/yellow tripdata+sample.csv"
	eventETag       = "0f343b0931126a20f133d67c2b018a3b"
	eventSizeField  = `"size": 2048`
	functionName    = "taxistream-IngestFunction-test"
	sampleFile      = "samples/yellow_rides_2020-07.csv"
	sampleRows      = 266 // ../shared/data/tlc/README.md
	streamShards    = 2
	kinesisReadWait = 30 * time.Second
)

// peers are the real peers one IngestFunction talks to.
type peers struct {
	s3      *testpeers.S3
	kinesis *kinesis.Client
	lambda  *fakeLambda
	env     map[string]string
}

func startPeers(t *testing.T) *peers {
	t.Helper()
	s3 := testpeers.StartS3(t)
	s3.CreateBucket(t, eventBucket)
	endpoint := testpeers.StartKinesisMock(t)
	p := &peers{
		s3: s3,
		kinesis: kinesis.New(kinesis.Options{
			BaseEndpoint: aws.String(endpoint),
			Region:       testpeers.FakeRegion,
			Credentials:  credentials.NewStaticCredentialsProvider(testpeers.FakeAccessKeyID, testpeers.FakeSecretAccessKey, ""),
		}),
		lambda: startFakeLambda(t),
	}
	p.env = s3.Env()
	p.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint
	p.env["AWS_ENDPOINT_URL_LAMBDA"] = p.lambda.URL
	p.env["BUCKET_NAME"] = eventBucket
	p.env["AWS_LAMBDA_FUNCTION_NAME"] = functionName
	return p
}

// envFor is the function's environment for stream, plus extra.
func (p *peers) envFor(stream string, extra map[string]string) map[string]string {
	env := map[string]string{"STREAM_NAME": stream}
	for k, v := range p.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// createStream creates a stream in kinesis-mock and waits (bounded) until it is ACTIVE.
func (p *peers) createStream(t *testing.T, ctx context.Context, name string, shards int32) {
	t.Helper()
	if _, err := p.kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("CreateStream %s: %v", name, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := p.kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == kinesistypes.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not ACTIVE after 20s (last error %v)", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamRecord is one user record read back from the stream.
type streamRecord struct {
	ID           string
	Data         string
	PartitionKey string
	Shard        string
}

// readStream reads every shard of the stream from TRIM_HORIZON to its end and de-aggregates (MD5
// verified) what it finds.
func (p *peers) readStream(t *testing.T, ctx context.Context, name string) []streamRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, kinesisReadWait)
	defer cancel()
	shards, err := p.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards %s: %v", name, err)
	}
	var out []streamRecord
	for _, sh := range shards.Shards {
		it, err := p.kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("GetShardIterator %s: %v", aws.ToString(sh.ShardId), err)
		}
		iter := it.ShardIterator
		for calls := 0; ; calls++ {
			if calls == 1000 {
				t.Fatalf("shard %s: still records after 1000 GetRecords calls", aws.ToString(sh.ShardId))
			}
			got, err := p.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatalf("GetRecords %s: %v", aws.ToString(sh.ShardId), err)
			}
			if len(got.Records) == 0 {
				break // everything was written before the read began: an empty page is the end
			}
			subs, err := kpl.DeaggregateRecords(got.Records)
			if err != nil {
				t.Fatalf("de-aggregating shard %s: %v", aws.ToString(sh.ShardId), err)
			}
			for _, s := range subs {
				var id struct {
					RecordID string `json:"record_id"`
				}
				if err := json.Unmarshal(s.Data, &id); err != nil || id.RecordID == "" {
					t.Fatalf("record %s/%d of shard %s has no record_id (%v): %.200s", s.SequenceNumber, s.SubSequenceNumber, aws.ToString(sh.ShardId), err, s.Data)
				}
				out = append(out, streamRecord{ID: id.RecordID, Data: string(s.Data), PartitionKey: s.PartitionKey, Shard: aws.ToString(sh.ShardId)})
			}
			iter = got.NextShardIterator
			if iter == nil {
				break // closed shard
			}
		}
	}
	return out
}

// localRun is internal/convert's view of a file: what the function must have sent.
type localRun struct {
	records  map[string]streamRecord // by record_id
	rejected int
}

func convertLocally(t *testing.T, data []byte, key, version string) localRun {
	t.Helper()
	rr, err := convert.NewCSVReader(bytes.NewReader(data), convert.Options{
		Source: convert.Source{Bucket: eventBucket, Key: key, Version: version}, FileName: key,
	})
	if err != nil {
		t.Fatalf("local convert: %v", err)
	}
	run := localRun{records: map[string]streamRecord{}}
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *convert.RowError
			if !errors.As(err, &re) {
				t.Fatalf("local convert: %v", err)
			}
			run.rejected++
			continue
		}
		if _, dup := run.records[rec.ID]; dup {
			t.Fatalf("local convert: record_id %s twice", rec.ID)
		}
		run.records[rec.ID] = streamRecord{ID: rec.ID, Data: string(rec.JSON), PartitionKey: rr.Value("pu_location_id")}
	}
	return run
}

// compareStream checks that the stream holds exactly the local records, with the same bytes and the
// configured partition key (pu_location_id): each once, except for at most possibleDuplicates extra
// copies (the ingest contract: what is sent after a checkpoint may be sent again, and is counted).
func compareStream(t *testing.T, got []streamRecord, want localRun, possibleDuplicates int64) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range got {
		seen[r.ID]++
		w, ok := want.records[r.ID]
		if !ok {
			t.Errorf("stream has record_id %s that the local convert does not produce", r.ID)
			continue
		}
		if seen[r.ID] == 1 && r.Data != w.Data {
			t.Errorf("record %s: stream data differs from the local convert\n got %s\nwant %s", r.ID, r.Data, w.Data)
		}
		if seen[r.ID] == 1 && w.PartitionKey != "" && r.PartitionKey != w.PartitionKey {
			t.Errorf("record %s: partition key %q, want pu_location_id %q", r.ID, r.PartitionKey, w.PartitionKey)
		}
	}
	var dups []string
	extra := 0
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
			extra += n - 1
		}
	}
	if int64(extra) > possibleDuplicates {
		slices.Sort(dups)
		t.Errorf("%d extra copies in the stream, %d counted as possible duplicates: %v", extra, possibleDuplicates, dups)
	}
	missing := 0
	for id := range want.records {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing > 0 || len(seen) != len(want.records) {
		t.Errorf("stream has %d user records (%d distinct), local convert %d; %d missing", len(got), len(seen), len(want.records), missing)
	}
}

// fakeLambda is the Lambda Invoke REST route (POST /2015-03-31/functions/<name>/invocations), recording
// every call and answering asynchronous ones with 202 like Lambda.
type fakeLambda struct {
	URL   string
	mu    sync.Mutex
	calls []lambdaCall
}

type lambdaCall struct {
	Function       string
	InvocationType string
	Payload        []byte
}

var invokePath = regexp.MustCompile(`^/2015-03-31/functions/([^/]+)/invocations$`)

func startFakeLambda(t *testing.T) *fakeLambda {
	t.Helper()
	f := &fakeLambda{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := invokePath.FindStringSubmatch(r.URL.Path)
		if r.Method != http.MethodPost || m == nil {
			w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"Type":"User","message":"unknown route"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		typ := r.Header.Get("X-Amz-Invocation-Type")
		f.mu.Lock()
		f.calls = append(f.calls, lambdaCall{Function: m[1], InvocationType: typ, Payload: body})
		f.mu.Unlock()
		if typ == "Event" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "null")
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// take returns the calls recorded since the last take.
func (f *fakeLambda) take() []lambdaCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// s3PutEvent returns events/s3-put.json with its eTag and size replaced by the uploaded object's and,
// when rawKey is not "", its key replaced. The rest of the file's bytes stay as they are. The ETag must
// match: the function pins its GETs to the notification's ETag with If-Match, which real S3 enforces
// (gofakes3 ignores If-Match on GET, so a stale ETag would pass here and fail on AWS).
func s3PutEvent(t *testing.T, etag string, size int, rawKey string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", "s3-put.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ old, new string }{
		{`"` + eventETag + `"`, `"` + strings.Trim(etag, `"`) + `"`},
		{eventSizeField, fmt.Sprintf(`"size": %d`, size)},
		{`"` + eventRawKey + `"`, `"` + cmp.Or(rawKey, eventRawKey) + `"`},
	} {
		if !bytes.Contains(b, []byte(r.old)) {
			t.Fatalf("events/s3-put.json no longer contains %s: update this test", r.old)
		}
		b = bytes.Replace(b, []byte(r.old), []byte(r.new), 1)
	}
	return b
}

// result decodes the function's response.
func result(t *testing.T, body []byte) ingest.Result {
	t.Helper()
	var r ingest.Result
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decoding the response %s: %v", body, err)
	}
	return r
}

// manifest reads a manifest from the bucket.
func manifest(t *testing.T, s3 *testpeers.S3, key string) ingest.Manifest {
	t.Helper()
	var m ingest.Manifest
	if err := json.Unmarshal(s3.Get(t, eventBucket, key), &m); err != nil {
		t.Fatalf("decoding manifest %s: %v", key, err)
	}
	return m
}

// jsonLines returns the JSON objects among the lines of s.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestBootstrapUnderRIE runs events/s3-put.json (its ETag and size set to the uploaded sample's) on the
// bootstrap. The first three subtests are steps on one emulator and bucket, in order (the duplicate
// needs the first notification's manifest); the continuation chain has its own emulator and stream.
func TestBootstrapUnderRIE(t *testing.T) {
	bootstrap := testenv.Bootstrap(t, "ingest")
	testenv.RIE(t)
	data, err := os.ReadFile(filepath.Join(testenv.TLCDir(t), filepath.FromSlash(sampleFile)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := startPeers(t)
	const stream = "taxistream-rie"
	p.createStream(t, ctx, stream, streamShards)
	etag := p.s3.Put(t, eventBucket, eventKey, data)
	version := strings.Trim(etag, `"`)
	want := convertLocally(t, data, eventKey, version)
	if len(want.records)+want.rejected != sampleRows {
		t.Fatalf("local convert: %d records + %d rejected, want %d rows", len(want.records), want.rejected, sampleRows)
	}
	event := s3PutEvent(t, etag, len(data), "")

	rie := testpeers.StartRIE(t, bootstrap, p.envFor(stream, nil))

	t.Run("first notification", func(t *testing.T) {
		body, err := rie.Invoke(ctx, event)
		if err != nil {
			t.Fatalf("Invoke: %v (body %s)", err, body)
		}
		res := result(t, body)
		if len(res.Objects) != 1 {
			t.Fatalf("response has %d objects, want 1: %s", len(res.Objects), body)
		}
		o := res.Objects[0]
		if o.Outcome != ingest.OutcomeDone || o.Bucket != eventBucket || o.Key != eventKey || o.Version != version {
			t.Errorf("object = %+v, want outcome done for s3://%s/%s version %s", o, eventBucket, eventKey, version)
		}
		if o.RowsRead != sampleRows || o.RowsRead != o.RecordsSent+o.Rejected || o.Failed != 0 {
			t.Errorf("rows_read %d, records_sent %d, rejected %d, failed %d: want %d rows = sent + rejected, none failed",
				o.RowsRead, o.RecordsSent, o.Rejected, o.Failed, sampleRows)
		}
		if o.RecordsSent != int64(len(want.records)) || o.Rejected != int64(want.rejected) {
			t.Errorf("records_sent %d, rejected %d; the local convert gives %d and %d", o.RecordsSent, o.Rejected, len(want.records), want.rejected)
		}

		mkey := ingest.ManifestKey(eventKey, version, "")
		if o.Manifest != mkey {
			t.Errorf("manifest %q, want %q", o.Manifest, mkey)
		}
		m := manifest(t, p.s3, mkey)
		if m.Status != ingest.StatusDone || m.Counts.RowsRead != sampleRows || m.Counts.RecordsSent != o.RecordsSent ||
			m.Counts.Rejected != o.Rejected || m.Continuations != 0 || m.Claims != 1 || m.FinishedAt.IsZero() {
			t.Errorf("manifest = status %s counts %+v continuations %d claims %d finished %v; want done with the response's counts, 0 continuations, 1 claim",
				m.Status, m.Counts, m.Continuations, m.Claims, m.FinishedAt)
		}

		// The manifest was created with If-None-Match: * and finished with If-Match (conditional writes
		// on the wire, which gofakes3 enforces).
		var creates, matches int
		for _, r := range p.s3.Requests("/" + eventBucket + "/" + mkey) {
			if r.Method != http.MethodPut {
				continue
			}
			if r.Header.Get("If-None-Match") == "*" {
				creates++
			}
			if r.Header.Get("If-Match") != "" {
				matches++
			}
		}
		if creates != 1 || matches < 1 {
			t.Errorf("manifest PUTs: %d with If-None-Match: *, %d with If-Match; want 1 and at least 1", creates, matches)
		}
		// The object GET is pinned to the notification's ETag.
		var gets int
		for _, r := range p.s3.Requests("/" + eventBucket + "/" + eventKey) {
			if r.Method == http.MethodGet {
				gets++
				if r.Header.Get("If-Match") != etag {
					t.Errorf("GET of the object with If-Match %q, want %q", r.Header.Get("If-Match"), etag)
				}
			}
		}
		if gets != 1 {
			t.Errorf("%d GETs of the object, want 1", gets)
		}

		got := p.readStream(t, ctx, stream)
		compareStream(t, got, want, m.Counts.PossibleDuplicates)
		shards := map[string]int{}
		for _, r := range got {
			shards[r.Shard]++
		}
		if len(shards) != streamShards {
			t.Errorf("records landed on shards %v, want all %d shards used (partition key pu_location_id)", shards, streamShards)
		}

		if calls := p.lambda.take(); len(calls) != 0 {
			t.Errorf("the function invoked Lambda %d times for a small file: %+v", len(calls), calls)
		}

		// Outputs: the JSON summary log line and the EMF line of this invocation.
		var summary, emf map[string]any
		for _, l := range jsonLines(rie.Stdout()) {
			if l["message"] == "ingest summary" {
				summary = l
			}
			if _, ok := l["_aws"]; ok {
				emf = l
			}
		}
		if bad := rie.LogLinesWithoutRequestID(); len(bad) > 0 {
			t.Errorf("log lines without the invocation's requestId:\n%s", strings.Join(bad, "\n"))
		}
		if summary == nil {
			t.Errorf("no JSON \"ingest summary\" log line in the function's output:\n%s", rie.Stdout())
		} else if summary["outcome"] != ingest.OutcomeDone || summary["rows"] != float64(sampleRows) || summary["level"] != "INFO" {
			t.Errorf("summary line = %v, want level INFO, outcome done, rows %d", summary, sampleRows)
		}
		if emf == nil {
			t.Errorf("no EMF line in the function's output:\n%s", rie.Stdout())
		} else {
			meta, _ := emf["_aws"].(map[string]any)
			if _, ok := meta["CloudWatchMetrics"]; !ok || emf["RowsRead"] != float64(sampleRows) ||
				emf["RecordsSent"] != float64(o.RecordsSent) || emf["Function"] != "ingest" {
				t.Errorf("EMF line = %v, want CloudWatchMetrics, RowsRead %d, RecordsSent %d, Function ingest", emf, sampleRows, o.RecordsSent)
			}
		}
		if d, ok := rie.InitDuration(); ok {
			t.Logf("IngestFunction INIT duration under the RIE: %v", d)
		} else {
			t.Errorf("no INIT REPORT in the emulator's log")
		}
	})

	t.Run("duplicate notification", func(t *testing.T) {
		before := len(p.readStream(t, ctx, stream))
		body, err := rie.Invoke(ctx, event)
		if err != nil {
			t.Fatalf("Invoke: %v (body %s)", err, body)
		}
		res := result(t, body)
		if len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeDuplicate || res.Objects[0].RowsRead != 0 {
			t.Fatalf("response %s, want one object with outcome duplicate and no rows", body)
		}
		if after := len(p.readStream(t, ctx, stream)); after != before {
			t.Errorf("the stream went from %d to %d user records on a duplicate notification", before, after)
		}
		if m := manifest(t, p.s3, ingest.ManifestKey(eventKey, version, "")); m.Status != ingest.StatusDone || m.Claims != 1 {
			t.Errorf("manifest after a duplicate: status %s, claims %d; want done, 1", m.Status, m.Claims)
		}
	})

	t.Run("key outside raw", func(t *testing.T) {
		before := len(p.readStream(t, ctx, stream))
		outside := s3PutEvent(t, etag, len(data), "incoming/2019/yellow.csv")
		body, err := rie.Invoke(ctx, outside)
		if err != nil {
			t.Fatalf("Invoke: %v (body %s)", err, body)
		}
		res := result(t, body)
		if len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeSkipped || res.Objects[0].Key != "incoming/2019/yellow.csv" {
			t.Fatalf("response %s, want one object incoming/2019/yellow.csv with outcome skipped", body)
		}
		if reqs := p.s3.Requests("/" + eventBucket + "/incoming/"); len(reqs) != 0 {
			t.Errorf("the function made %d S3 requests for a key outside raw/", len(reqs))
		}
		if reqs := p.s3.Requests("/" + eventBucket + "/state/ingest/incoming/"); len(reqs) != 0 {
			t.Errorf("the function made %d manifest requests for a key outside raw/", len(reqs))
		}
		if after := len(p.readStream(t, ctx, stream)); after != before {
			t.Errorf("the stream went from %d to %d user records for a skipped key", before, after)
		}
		if !strings.Contains(rie.Stdout(), "refusing key outside raw/") {
			t.Errorf("no log line about the refused key in the function's output")
		}
	})

	t.Run("continuation chain", func(t *testing.T) {
		testContinuationChain(t, ctx, p, bootstrap, data)
	})
}

// Continuations: the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT, which the emulator turns into the
// invoke deadline) minus DEADLINE_MARGIN leaves each invocation a two-second reading window, and the
// object is more than one window can read: without KPL aggregation every row is one Kinesis record, the
// producer paces a shard to the Kinesis write limit of 1,000 records/s and Put blocks while it waits, so
// the read loop reaches the stop point however fast the machine is. Each invocation must then checkpoint and hand over with an asynchronous Invoke of itself
// carrying a continuation event, and the next must resume with a ranged GET at the checkpoint.
//
// What is asserted is the ingest contract, not a timing (docs/testing.md): on a loaded machine the
// hand-over flush may not finish within the margin (kinesis-mock answers slowly); the invocation then
// releases the object at its last checkpoint and returns an error, and Lambda's retry of the same event
// resumes there. So every invocation either hands over (one continuation Invoke), finishes, or fails
// with the object released and no Invoke, and the test re-sends what Lambda would: the continuation
// event, or the same event after an error. At the end the manifest is done, every row was read once by
// the invocations that committed, and the stream holds every record of the local convert, each once
// except for extra copies counted as possible duplicates in the manifest.
const (
	// continuationRepeat copies of the sample's rows (3,192) are more than one invocation can read on
	// one shard whatever the machine's speed: Put writes as soon as 500 records wait, and the pacer lets
	// at most 100 (its burst) + 2,000 (two seconds of refill) through in the 2 s window, so at most
	// ~2,600 rows are read and at least one continuation always happens.
	continuationRepeat = 12
	// AWS_LAMBDA_FUNCTION_TIMEOUT (whole seconds) and DEADLINE_MARGIN: a 2 s reading window, then up to
	// 23 s for the flush and 5 s kept for the manifest and the Invoke. On an idle machine an invocation
	// takes the window plus a fraction of a second; the long margin only matters under load, where
	// kinesis-mock may take seconds per request (two sessions' full test suites and a busy loop on a
	// 2-core machine made a 6 s flush budget fail ten times in a row).
	continuationTimeout = "30"
	continuationMargin  = "28s"
	// continuationInvokes bounds the invocations of the chain, retries included (Lambda itself retries
	// an asynchronous event twice, then sends it to the failure destination; a replay finishes it).
	continuationInvokes = 15
	continuationKey     = "raw/2020/yellow_rides_2020-07_x12.csv"
)

func testContinuationChain(t *testing.T, ctx context.Context, p *peers, bootstrap string, sample []byte) {
	body := repeatRows(t, sample, continuationRepeat)
	etag := p.s3.Put(t, eventBucket, continuationKey, body)
	version := strings.Trim(etag, `"`)
	want := convertLocally(t, body, continuationKey, version)
	totalRows := int64(sampleRows * continuationRepeat)
	if got := int64(len(want.records) + want.rejected); got != totalRows {
		t.Fatalf("local convert of the repeated file: %d rows, want %d", got, totalRows)
	}
	const stream = "taxistream-rie-continuation"
	p.createStream(t, ctx, stream, 1)
	rie := testpeers.StartRIE(t, bootstrap, p.envFor(stream, map[string]string{
		"AWS_LAMBDA_FUNCTION_TIMEOUT": continuationTimeout,
		"DEADLINE_MARGIN":             continuationMargin,
		"KPL_AGGREGATION":             "false",
	}))
	// Warm the emulator first: the cold start would otherwise eat into the first window.
	if b, err := rie.Invoke(ctx, s3PutEvent(t, etag, len(body), "incoming/warm-up.csv")); err != nil {
		t.Fatalf("warm-up Invoke: %v (body %s)", err, b)
	}
	p.lambda.take()
	mkey := ingest.ManifestKey(continuationKey, version, "")

	payload := s3PutEvent(t, etag, len(body), continuationKey)
	var outcomes []string
	var rows int64
	handovers, released := 0, 0
	for {
		if len(outcomes) == continuationInvokes {
			t.Fatalf("object not done after %d invocations (outcomes %v)", len(outcomes), outcomes)
		}
		resp, err := rie.Invoke(ctx, payload)
		calls := p.lambda.take()
		if err != nil {
			// Allowed by the contract only as a release: the manifest is running, its lease given back
			// (not failed, not held), and nothing was handed over. Lambda retries the same event.
			var fe *testpeers.FunctionError
			if !errors.As(err, &fe) || fe.Type == "Sandbox.Timedout" {
				t.Fatalf("invocation %d: %v (body %s); want a result or a function error that released the object", len(outcomes), err, resp)
			}
			m := manifest(t, p.s3, mkey)
			if m.Status != ingest.StatusRunning || !strings.HasPrefix(m.Reason, "released after error") || m.LeaseUntil.After(time.Now()) {
				t.Fatalf("invocation %d failed (%v) but the manifest is %s (%s), lease until %v: want running and released", len(outcomes), err, m.Status, m.Reason, m.LeaseUntil)
			}
			if len(calls) != 0 {
				t.Errorf("invocation %d failed and also invoked Lambda: %+v", len(outcomes), calls)
			}
			outcomes = append(outcomes, ingest.OutcomeReleased)
			released++
			t.Logf("invocation %d released the object at its checkpoint (%v); retrying the event as Lambda does", len(outcomes)-1, fe.Message)
			continue
		}
		res := result(t, resp)
		if len(res.Objects) != 1 {
			t.Fatalf("invocation %d: %d objects in %s", len(outcomes), len(res.Objects), resp)
		}
		o := res.Objects[0]
		outcomes = append(outcomes, o.Outcome)
		rows += o.RowsRead
		if o.Continuation != handovers {
			t.Errorf("invocation %d: continuation %d in the response, want %d", len(outcomes)-1, o.Continuation, handovers)
		}
		if o.Outcome == ingest.OutcomeDone {
			if len(calls) != 0 {
				t.Errorf("the last invocation also invoked Lambda: %+v", calls)
			}
			break
		}
		// A continuation may have read nothing when opening the object took the whole window (load):
		// it hands over what it was given, which the contract allows (MAX_CONTINUATIONS bounds it).
		if o.Outcome != ingest.OutcomeContinued {
			t.Fatalf("invocation %d: outcome %s (%s) after %d rows, want continued (outcomes so far %v)",
				len(outcomes)-1, o.Outcome, o.Reason, o.RowsRead, outcomes)
		}
		if len(calls) != 1 {
			t.Fatalf("invocation %d handed over with %d Lambda invokes, want 1: %+v", len(outcomes)-1, len(calls), calls)
		}
		handovers++
		c := calls[0]
		if c.Function != functionName || c.InvocationType != "Event" {
			t.Errorf("continuation sent to %q with invocation type %q, want %q and Event", c.Function, c.InvocationType, functionName)
		}
		var ev ingest.Event
		if err := json.Unmarshal(c.Payload, &ev); err != nil {
			t.Fatalf("continuation payload %s: %v", c.Payload, err)
		}
		if ev.Kind != ingest.KindContinuation || ev.Bucket != eventBucket || ev.Key != continuationKey ||
			strings.Trim(ev.ETag, `"`) != version || ev.Continuation != handovers {
			t.Errorf("continuation event %+v, want kind continuation, s3://%s/%s, etag %s, continuation %d",
				ev, eventBucket, continuationKey, version, handovers)
		}
		payload = c.Payload
	}
	t.Logf("%d rows in %d invocations (%d hand-overs, %d released and retried): %v", rows, len(outcomes), handovers, released, outcomes)
	if handovers == 0 {
		t.Fatalf("the object was done without a hand-over: no continuation was exercised (raise continuationRepeat)")
	}
	if rows != totalRows {
		t.Errorf("the invocations that committed read %d rows in all, want %d", rows, totalRows)
	}
	m := manifest(t, p.s3, mkey)
	if m.Status != ingest.StatusDone || m.Continuations != handovers || m.Claims != len(outcomes) ||
		m.Counts.RowsRead != totalRows || m.Counts.RowsRead != m.Counts.RecordsSent+m.Counts.Rejected {
		t.Errorf("manifest: status %s, continuations %d, claims %d, counts %+v; want done, %d, %d, %d rows = sent + rejected",
			m.Status, m.Continuations, m.Claims, m.Counts, handovers, len(outcomes), totalRows)
	}
	if released == 0 && m.Counts.PossibleDuplicates != 0 {
		t.Errorf("no invocation released the object, yet %d possible duplicates", m.Counts.PossibleDuplicates)
	}

	// Every invocation read the object with one GET: the first (and its retries before a checkpoint)
	// from the start, the others with a range from their checkpoint, at row starts that never go back.
	var ranges []string
	for _, r := range p.s3.Requests("/" + eventBucket + "/" + continuationKey) {
		if r.Method == http.MethodGet {
			ranges = append(ranges, r.Header.Get("Range"))
		}
	}
	if len(ranges) != len(outcomes) || ranges[0] != "" {
		t.Fatalf("GETs of the object with ranges %q, want %d: the first without a range", ranges, len(outcomes))
	}
	last := int64(0)
	for _, r := range ranges[1:] {
		if r == "" && last == 0 {
			continue // a retry before the first checkpoint
		}
		var off int64
		if _, err := fmt.Sscanf(r, "bytes=%d-", &off); err != nil || off < last || off >= int64(len(body)) || body[off-1] != '\n' {
			t.Errorf("ranged GET %q: want bytes=<offset>- at the start of a row, not before %d", r, last)
		}
		last = off
	}

	compareStream(t, p.readStream(t, ctx, stream), want, m.Counts.PossibleDuplicates)
}

// repeatRows returns the CSV's header followed by its data rows n times (LF line ends).
func repeatRows(t *testing.T, csv []byte, n int) []byte {
	t.Helper()
	header, rows, ok := bytes.Cut(csv, []byte("\n"))
	if !ok {
		t.Fatal("the sample has no header line")
	}
	rows = bytes.TrimRight(rows, "\n")
	var b bytes.Buffer
	b.Write(header)
	for range n {
		b.WriteByte('\n')
		b.Write(rows)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/producer"
	"github.com/taxistream/taxistream/internal/testenv"
)

// The bucket and object of events/s3-put.json (key "raw/2019/yellow+tripdata%2Bsample.csv" decoded).
const (
	testBucket = "taxistream-123456789012-us-east-1"
	eventKey   = "raw/2019/yellow tripdata+sample.csv"
	eventETag  = "0f343b0931126a20f133d67c2b018a3b"
)

// fakeClock advances by step at every reading, so a run "takes time" without sleeping.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t       *testing.T
	s3      *fakeS3
	inv     *fakeInvoker
	sink    *sink
	clock   *fakeClock
	logs    *bytes.Buffer
	emf     *bytes.Buffer
	h       *Handler
	prodMod func(p *fakeProducer) // customises every producer the handler makes
}

func newEnv(t *testing.T, mod func(c *config.Config)) *env {
	t.Helper()
	e := &env{t: t, s3: newFakeS3(), inv: &fakeInvoker{}, sink: &sink{}, clock: &fakeClock{t: time.Now()},
		logs: &bytes.Buffer{}, emf: &bytes.Buffer{}}
	cfg := config.Config{Bucket: testBucket, Stream: "trips", PartitionKeyField: "pu_location_id", Aggregate: true,
		DeadlineMargin: 30 * time.Second, MaxContinuations: 50, FunctionName: "taxistream-IngestFunction", MetricsNamespace: "taxistream",
		SweepGrace: 15 * time.Minute, SweepMaxAttempts: 5}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(context.Background(), cfg, Deps{
		S3: e.s3, Lambda: e.inv, Log: obs.NewLogger(&lockedWriter{w: e.logs}, "INFO"), Metrics: &lockedWriter{w: e.emf}, Now: e.clock.Now,
		NewProducer: func(ctx context.Context, c producer.Client, pc producer.Config) (RecordProducer, error) {
			p := &fakeProducer{sink: e.sink}
			if e.prodMod != nil {
				e.prodMod(p)
			}
			return p, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.flushRecords = 25
	e.h = h
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// s3Event is a minimal ObjectCreated notification with a form-encoded key.
func s3Event(bucket, encodedKey, etag string, size int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",`+
		`"s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d,"eTag":%q}}}]}`, bucket, encodedKey, size, etag))
}

// putObject stores data at key and returns the S3 event for it.
func (e *env) putObject(key string, data []byte) json.RawMessage {
	etag := e.s3.put(testBucket, key, data)
	enc := strings.ReplaceAll(strings.ReplaceAll(key, "+", "%2B"), " ", "+")
	return s3Event(testBucket, enc, unquoteETag(etag), len(data))
}

func (e *env) handle(ctx context.Context, raw json.RawMessage) (Result, error) {
	e.t.Helper()
	return e.h.Handle(ctx, raw)
}

// manifest reads the manifest of the only object version under state/ingest (or fails).
func (e *env) manifest(prefix string) Manifest {
	e.t.Helper()
	keys := e.s3.keys(prefix)
	if len(keys) != 1 {
		e.t.Fatalf("manifests under %s: %v, want one", prefix, keys)
	}
	b, _ := e.s3.get(testBucket, keys[0])
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// rejectedRows reads every rejected part under prefix.
func (e *env) rejectedRows(prefix string) []RejectedRow {
	e.t.Helper()
	keys := e.s3.keys(prefix)
	slices.Sort(keys)
	var rows []RejectedRow
	for _, k := range keys {
		b, _ := e.s3.get(testBucket, k)
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			var r RejectedRow
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				e.t.Fatalf("%s: %v", k, err)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func checkReconciles(t *testing.T, m Manifest) {
	t.Helper()
	c := m.Counts
	if c.RowsRead != c.RecordsSent+c.Rejected+c.Failed {
		t.Errorf("counts do not reconcile: rows_read %d != records_sent %d + rejected %d + failed %d", c.RowsRead, c.RecordsSent, c.Rejected, c.Failed)
	}
}

// tlcCSV is a yellow-taxi file of n rows; rows in bad are rejected (extra non-empty fields).
func tlcCSV(n int, bad ...int) []byte {
	var b strings.Builder
	b.WriteString("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "1,2019-01-%02d %02d:%02d:00,2019-01-%02d %02d:%02d:30,1,%d.5,1,N,%d,%d,1,7,0.5,0.5,1.65,0,0.3,9.95,0",
			1+i%28, i%24, i%60, 1+i%28, i%24, i%60, i%10, 1+i%265, 1+(i*7)%265)
		if slices.Contains(bad, i) {
			b.WriteString(",junk,more junk")
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withDeadline returns a context whose deadline is d after the fake clock's now (and far in real time).
func (e *env) withDeadline(d time.Duration) (context.Context, context.CancelFunc) {
	now := e.clock.Now()
	dl := now.Add(d)
	if real := time.Now().Add(time.Hour); dl.Before(real) {
		// The fake clock starts at the real time: a deadline of minutes of fake time is hours away in real time.
		dl = dl.Add(time.Hour)
		e.clock.advance(time.Hour)
	}
	return context.WithDeadline(lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("req-%d", now.UnixNano())}), dl)
}

func TestHandleS3PutEventFixture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", "s3-put.json"))
	if err != nil {
		t.Fatal(err) // an in-repo fixture: missing is a failure
	}
	e := newEnv(t, nil)
	data := tlcCSV(60, 7, 31)
	e.s3.mu.Lock()
	e.s3.objects[testBucket+"/"+eventKey] = fakeObject{data: data, etag: `"` + eventETag + `"`}
	e.s3.mu.Unlock()

	res, err := e.handle(context.Background(), raw)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := []ObjectResult{{Bucket: testBucket, Key: eventKey, Version: eventETag, Outcome: OutcomeDone,
		Manifest: "state/ingest/" + eventKey + "/" + eventETag + ".json", RowsRead: 60, RecordsSent: 58, Rejected: 2}}
	if diff := cmp.Diff(want, res.Objects); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RowsRead != 60 || m.Counts.RecordsSent != 58 || m.Counts.Rejected != 2 {
		t.Errorf("manifest: status %s counts %+v, want done 60/58/2", m.Status, m.Counts)
	}
	checkReconciles(t, m)
	if got := len(e.sink.data()); got != 58 {
		t.Errorf("records in the stream: %d, want 58", got)
	}
	rej := e.rejectedRows("rejected/" + eventKey + "/" + eventETag + "/")
	if len(rej) != 2 || rej[0].Line != 8 || rej[1].Line != 32 || rej[0].Raw == "" || rej[0].Reason == "" {
		t.Errorf("rejected rows: %+v, want lines 8 and 32 with reason and raw text", rej)
	}
	// One summary line with the stable keys, one EMF line.
	var summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == "ingest summary" {
			if summary != nil {
				t.Errorf("two summary lines")
			}
			summary = l
		}
	}
	if summary == nil || summary["key"] != eventKey || summary["bucket"] != testBucket || summary["rows"] != float64(60) ||
		summary["records"] != float64(58) || summary["rejected"] != float64(2) || summary["throttles"] == nil || summary["duration_ms"] == nil {
		t.Errorf("summary line: %v", summary)
	}
	emf := emfLines(t, e.emf)
	if len(emf) != 1 || emf[0]["RowsRead"] != float64(60) || emf[0]["RecordsSent"] != float64(58) || emf[0]["RowsRejected"] != float64(2) {
		t.Errorf("EMF lines: %v", emf)
	}
}

func emfLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		if _, ok := m["_aws"]; !ok {
			t.Errorf("EMF line without _aws: %s", line)
		}
		out = append(out, m)
	}
	return out
}

// TestEventFixtures decodes every events/*.json meant for IngestFunction and checks the object it names.
func TestEventFixtures(t *testing.T) {
	tests := []struct{ file, wantKey string }{
		{"s3-put.json", eventKey},
		{"s3-put-gz.json", ""},
		{"s3-put-parquet.json", ""},
		{"continuation.json", eventKey},
		{"ingest-replay.json", eventKey},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", tt.file))
			if err != nil {
				t.Fatal(err) // an in-repo fixture: missing is a failure
			}
			e := newEnv(t, nil)
			res, err := e.handle(context.Background(), raw)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if len(res.Objects) != 1 {
				t.Fatalf("objects: %+v, want one", res.Objects)
			}
			o := res.Objects[0]
			if !strings.HasPrefix(o.Key, rawPrefix) || strings.Contains(o.Key, "%") || (tt.wantKey != "" && o.Key != tt.wantKey) {
				t.Errorf("key %q: want the decoded key %q under raw/", o.Key, tt.wantKey)
			}
			// The object is not in the fake bucket: a clear failure in the manifest, no error loop.
			if o.Outcome != OutcomeFailed || !strings.Contains(o.Reason, "changed or deleted") {
				t.Errorf("outcome %s (%s), want failed: object changed or deleted", o.Outcome, o.Reason)
			}
		})
	}
}

func TestIgnoredAndRefusedEvents(t *testing.T) {
	tests := []struct {
		name        string
		raw         string
		wantOutcome string
	}{
		{"s3 test event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-14T09:00:00.000Z","Bucket":"` + testBucket + `","RequestId":"X","HostId":"Y"}`, ""},
		{"key outside raw/", string(s3Event(testBucket, "processed/trips/a.csv", "e1", 10)), OutcomeSkipped},
		{"state key", string(s3Event(testBucket, "state/ingest/raw/a.csv/e1.json", "e1", 10)), OutcomeSkipped},
		{"folder marker", string(s3Event(testBucket, "raw/2019/", "e1", 0)), OutcomeSkipped},
		{"another bucket", string(s3Event("someone-elses-bucket", "raw/a.csv", "e1", 10)), OutcomeSkipped},
		{"object removed", strings.Replace(string(s3Event(testBucket, "raw/a.csv", "e1", 10)), "ObjectCreated:Put", "ObjectRemoved:Delete", 1), OutcomeSkipped},
		// Events no retry can make valid: refused (skipped, logged at ERROR), never an error that Lambda retries.
		{"unrecognised event", `{"hello":"world"}`, OutcomeSkipped},
		{"not JSON", `{"Records":[`, OutcomeSkipped},
		{"trailing data after an S3 event", string(s3Event(testBucket, "raw/a.csv", "e1", 10)) + ` {"taxistream":"replay"}`, OutcomeSkipped},
		{"trailing data after a continuation", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","continuation":1} {}`, OutcomeSkipped},
		{"unknown kind", `{"taxistream":"resume","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1"}`, OutcomeSkipped},
		{"unknown field", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","offset":12}`, OutcomeSkipped},
		{"replay without id", `{"taxistream":"replay","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1"}`, OutcomeSkipped},
		{"replay id with slashes", `{"taxistream":"replay","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","replay_id":"a/b/c"}`, OutcomeSkipped},
		{"replay id escaping state/", `{"taxistream":"replay","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","replay_id":"../../processed/pwn"}`, OutcomeSkipped},
		{"negative continuation", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","continuation":-1}`, OutcomeSkipped},
		{"continuation beyond MAX_CONTINUATIONS", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","continuation":99999999}`, OutcomeSkipped},
		{"negative size", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","size":-5}`, OutcomeSkipped},
		{"continuation key with ..", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/../processed/x.csv","etag":"e1"}`, OutcomeSkipped},
		{"version id with .. segments", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","version_id":"v1/../../x","etag":"e1"}`, OutcomeSkipped},
		{"version id with an empty segment", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","version_id":"v1//x","etag":"e1"}`, OutcomeSkipped},
		{"etag of dots", `{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":".."}`, OutcomeSkipped},
		{"S3 key with a dot segment", string(s3Event(testBucket, "raw/./a.csv", "e1", 10)), OutcomeSkipped},
		{"S3 key with an empty segment", string(s3Event(testBucket, "raw//a.csv", "e1", 10)), OutcomeSkipped},
		{"S3 key with a control character", string(s3Event(testBucket, "raw/a%0A.csv", "e1", 10)), OutcomeSkipped},
		{"S3 key too long for the state keys", string(s3Event(testBucket, "raw/"+strings.Repeat("k", 1000)+".csv", "e1", 10)), OutcomeSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			res, err := e.handle(context.Background(), json.RawMessage(tt.raw))
			if err != nil {
				t.Fatalf("Handle: %v (a refused event must not be retried)", err)
			}
			var got string
			if len(res.Objects) > 0 {
				got = res.Objects[0].Outcome
			}
			if got != tt.wantOutcome {
				t.Errorf("outcome %q, want %q", got, tt.wantOutcome)
			}
			if ks := e.s3.keys(""); len(ks) != 0 {
				t.Errorf("wrote %v, want nothing", ks)
			}
		})
	}
}

func TestUnknownFormatFailsOnce(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/2019/yellow.xlsx", []byte("PK\x03\x04 not a csv"))
	for i, want := range []string{OutcomeFailed, OutcomeDuplicate} {
		res, err := e.handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("Handle %d: %v", i, err)
		}
		if got := res.Objects[0].Outcome; got != want {
			t.Errorf("Handle %d: outcome %s, want %s", i, got, want)
		}
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusFailed || !strings.Contains(m.Reason, "unsupported format") {
		t.Errorf("manifest status %s reason %q, want failed: unsupported format", m.Status, m.Reason)
	}
}

func TestDuplicateNotificationDoesNothing(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow_tripdata_2019-01.csv", tlcCSV(40))
	if _, err := e.handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	before := e.sink.data()
	e.emf.Reset()
	res, err := e.handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Objects[0].Outcome; got != OutcomeDuplicate {
		t.Errorf("second notification: outcome %s, want duplicate", got)
	}
	if got := len(e.sink.data()); got != len(before) {
		t.Errorf("records after the duplicate: %d, want %d", got, len(before))
	}
	emf := emfLines(t, e.emf)
	if len(emf) != 1 || emf[0]["DuplicateNotifications"] != float64(1) || emf[0]["RowsRead"] != float64(0) {
		t.Errorf("EMF of the duplicate: %v", emf)
	}
}

// runChain runs ev and then every continuation it sends until none is left; it returns the results.
func (e *env) runChain(ev json.RawMessage, budget time.Duration) []Result {
	e.t.Helper()
	var results []Result
	queue := []json.RawMessage{ev}
	for len(queue) > 0 {
		if len(results) > 100 {
			e.t.Fatal("more than 100 invocations")
		}
		ctx, cancel := e.withDeadline(budget)
		res, err := e.handle(ctx, queue[0])
		cancel()
		if err != nil {
			e.t.Fatalf("invocation %d: %v", len(results), err)
		}
		results = append(results, res)
		queue = queue[1:]
		for _, c := range e.inv.take() {
			b, _ := json.Marshal(c)
			queue = append(queue, b)
		}
	}
	return results
}

func TestDeadlineContinuationResumesAtNextRow(t *testing.T) {
	data := tlcCSV(400, 3, 150, 399)
	for _, tt := range []struct {
		name, key string
		body      []byte
	}{
		{"csv", "raw/yellow_tripdata_2019-01.csv", data},
		{"csv.gz", "raw/yellow_tripdata_2019-01.csv.gz", gz(t, data)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// One shot, no deadline.
			one := newEnv(t, nil)
			if _, err := one.handle(context.Background(), one.putObject(tt.key, tt.body)); err != nil {
				t.Fatal(err)
			}
			want := one.sink.data()
			if len(want) != 397 {
				t.Fatalf("one-shot run sent %d records, want 397", len(want))
			}

			// Every clock reading takes a second; 100 s of budget with a 30 s margin stops after ~70 rows.
			e := newEnv(t, nil)
			e.s3.objects = one.s3.objects // same object, same ETag
			e.s3.objects = map[string]fakeObject{testBucket + "/" + tt.key: one.s3.objects[testBucket+"/"+tt.key]}
			ev := e.putObjectEvent(tt.key)
			e.clock.step = time.Second
			results := e.runChain(ev, 100*time.Second)
			if len(results) < 3 {
				t.Fatalf("%d invocations, want a chain of continuations", len(results))
			}
			for i, r := range results {
				want := OutcomeContinued
				if i == len(results)-1 {
					want = OutcomeDone
				}
				if got := r.Objects[0].Outcome; got != want {
					t.Errorf("invocation %d: outcome %s, want %s", i, got, want)
				}
				if got := r.Objects[0].Continuation; got != i {
					t.Errorf("invocation %d: continuation %d", i, got)
				}
			}
			got := e.sink.data()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records of the chain differ from a one-shot run (-want +got):\n%s", diff)
			}
			m := e.manifest("state/ingest/")
			if m.Status != StatusDone || m.Counts.RowsRead != 400 || m.Counts.Rejected != 3 || m.Continuations != len(results)-1 {
				t.Errorf("manifest: %s %+v continuations %d", m.Status, m.Counts, m.Continuations)
			}
			checkReconciles(t, m)
			if rej := e.rejectedRows(m.RejectedPrefix); len(rej) != 3 {
				t.Errorf("rejected rows: %d, want 3", len(rej))
			}
			// A .csv continuation resumes with a ranged GET; a .csv.gz one re-reads from the start.
			for i, r := range e.s3.ranges {
				switch {
				case i == 0 && r != "":
					t.Errorf("first GET has Range %q", r)
				case i > 0 && tt.name == "csv" && !strings.HasPrefix(r, "bytes="):
					t.Errorf("GET %d of a continuation has Range %q, want bytes=<offset>-", i, r)
				case i > 0 && tt.name == "csv.gz" && r != "":
					t.Errorf("GET %d of a gzip continuation has Range %q, want the whole object", i, r)
				}
			}
		})
	}
}

func (e *env) putObjectEvent(key string) json.RawMessage {
	o := e.s3.objects[testBucket+"/"+key]
	enc := strings.ReplaceAll(strings.ReplaceAll(key, "+", "%2B"), " ", "+")
	return s3Event(testBucket, enc, unquoteETag(o.etag), len(o.data))
}

func TestMaxContinuationsFailsWithReason(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MaxContinuations = 2 })
	ev := e.putObject("raw/big.csv", tlcCSV(400))
	e.clock.step = time.Second
	results := e.runChain(ev, 100*time.Second)
	if len(results) != 3 {
		t.Fatalf("%d invocations, want 3 (first + 2 continuations)", len(results))
	}
	last := results[2].Objects[0]
	if last.Outcome != OutcomeFailed || !strings.Contains(last.Reason, "MAX_CONTINUATIONS") {
		t.Errorf("last invocation: %s (%s), want failed: MAX_CONTINUATIONS", last.Outcome, last.Reason)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusFailed || m.Checkpoint == nil || m.Counts.RowsRead == 0 || m.Counts.RowsRead >= 400 {
		t.Errorf("manifest: %s %+v checkpoint %v", m.Status, m.Counts, m.Checkpoint)
	}
	checkReconciles(t, m)
	if got := int64(len(e.sink.data())); got != m.Counts.RecordsSent {
		t.Errorf("records in the stream %d, manifest says %d", got, m.Counts.RecordsSent)
	}
}

func TestSelfInvokeFailureIsRetriedFromCheckpoint(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(200))
	e.clock.step = time.Second
	e.inv.invoke = func(*lambda.InvokeInput) error { return errBoom }
	ctx, cancel := e.withDeadline(100 * time.Second)
	res, err := e.handle(ctx, ev)
	cancel()
	if err == nil || !errors.Is(err, errBoom) {
		t.Fatalf("Handle: %v, want the invoke error (so Lambda retries the event)", err)
	}
	if res.Objects[0].Outcome != OutcomeContinued {
		t.Errorf("outcome %s", res.Objects[0].Outcome)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusRunning || m.Checkpoint == nil || !m.LeaseUntil.Before(e.clock.Now()) {
		t.Fatalf("manifest after the failed invoke: %s checkpoint %v lease %v: want running, checkpointed, released", m.Status, m.Checkpoint, m.LeaseUntil)
	}
	sentBefore := len(e.sink.data())
	// Lambda retries the same S3 event: it takes over at the checkpoint.
	e.inv.invoke = nil
	e.runChain(ev, 100*time.Second)
	got := e.sink.data()
	if len(got) != 200 {
		t.Errorf("records: %d, want 200 (first invocation sent %d)", len(got), sentBefore)
	}
	if dups := duplicates(got); len(dups) > 0 {
		t.Errorf("duplicated records: %v", dups)
	}
	m = e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RowsRead != 200 {
		t.Errorf("manifest: %s %+v", m.Status, m.Counts)
	}
	checkReconciles(t, m)
}

// TestReleaseCountsPossibleDuplicates: a checkpoint that cannot be stored after its records were sent
// releases the object at the previous checkpoint; the retry sends those records again, and the manifest
// counts every extra copy in the stream as a possible duplicate.
func TestReleaseCountsPossibleDuplicates(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(100))
	checkpoints := 0
	e.s3.onPut = func(in *s3.PutObjectInput) error {
		if strings.HasPrefix(aws.ToString(in.Key), "state/") && in.IfMatch != nil {
			if checkpoints++; checkpoints == 2 {
				return errBoom // the second checkpoint: its 25 records are in the stream already
			}
		}
		return nil
	}
	if _, err := e.handle(context.Background(), ev); !errors.Is(err, errBoom) {
		t.Fatalf("Handle: %v, want the failed checkpoint returned for a retry", err)
	}
	e.s3.onPut = nil
	if _, err := e.handle(context.Background(), ev); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got := e.sink.data()
	extra := len(duplicates(got))
	m := e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RecordsSent != 100 {
		t.Fatalf("manifest: %s %+v, want done with 100 sent", m.Status, m.Counts)
	}
	if extra == 0 || m.Counts.PossibleDuplicates != int64(extra) {
		t.Errorf("the stream holds %d extra copies, the manifest counts %d possible duplicates; want the same, not 0",
			extra, m.Counts.PossibleDuplicates)
	}
	checkReconciles(t, m)
}

func duplicates(recs []string) []string {
	seen := map[string]bool{}
	var dups []string
	for _, r := range recs {
		if seen[r] {
			dups = append(dups, r)
		}
		seen[r] = true
	}
	return dups
}

func TestConcurrentInvocationsOneOwner(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(100))
	// Both invocations read "no manifest" before either writes one.
	var n atomic.Int32
	ready := make(chan struct{})
	e.s3.afterGet = func(in *s3.GetObjectInput) {
		if strings.HasPrefix(aws.ToString(in.Key), statePrefix) {
			switch n.Add(1) {
			case 1:
				select {
				case <-ready:
				case <-time.After(5 * time.Second):
				}
			case 2:
				close(ready)
			}
		}
	}
	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.h.Handle(context.Background(), ev)
		}()
	}
	wg.Wait()
	if n.Load() < 2 {
		t.Fatal("the two invocations did not both read the manifest")
	}
	var outcomes []string
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("invocation %d: %v", i, errs[i])
		}
		outcomes = append(outcomes, results[i].Objects[0].Outcome)
	}
	slices.Sort(outcomes)
	if diff := cmp.Diff([]string{OutcomeDone, OutcomeDuplicate}, outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if got := e.sink.data(); len(got) != 100 || len(duplicates(got)) != 0 {
		t.Errorf("records: %d (duplicates %d), want 100 once each", len(got), len(duplicates(got)))
	}
}

func TestStaleRunningManifestIsTakenOverAfterLease(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(200))
	// The first owner dies after its second checkpoint: every later manifest write fails.
	writes := 0
	e.s3.onPut = func(in *s3.PutObjectInput) error {
		if k := aws.ToString(in.Key); strings.HasPrefix(k, "state/") && !strings.HasPrefix(k, inflightPrefix) {
			if writes++; writes > 3 { // claim + 2 checkpoints
				return errBoom
			}
		}
		return nil
	}
	ctx, cancel := e.withDeadline(10 * time.Minute)
	_, err := e.handle(ctx, ev)
	cancel()
	if !errors.Is(err, errBoom) {
		t.Fatalf("Handle: %v, want the S3 error", err)
	}
	e.s3.onPut = nil
	m := e.manifest("state/ingest/")
	if m.Status != StatusRunning || m.Checkpoint == nil || m.Counts.RowsRead != 50 {
		t.Fatalf("manifest of the dead owner: %s rows %d checkpoint %v, want running at row 50", m.Status, m.Counts.RowsRead, m.Checkpoint)
	}
	// Within the lease: a duplicate notification does nothing.
	if res, err := e.handle(context.Background(), ev); err != nil || res.Objects[0].Outcome != OutcomeDuplicate {
		t.Fatalf("within the lease: %+v %v, want duplicate", res, err)
	}
	// After the lease: the next notification takes over from the checkpoint.
	e.clock.advance(time.Hour)
	res, err := e.handle(context.Background(), ev)
	if err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("after the lease: %+v %v, want done", res, err)
	}
	if got := res.Objects[0].RowsRead; got != 150 {
		t.Errorf("the new owner read %d rows, want 150 (resumed at row 51)", got)
	}
	got := e.sink.data()
	if missing := 200 - len(uniq(got)); missing != 0 {
		t.Errorf("%d records lost", missing)
	}
	m = e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RowsRead != 200 || m.Claims != 2 {
		t.Errorf("manifest: %s %+v claims %d", m.Status, m.Counts, m.Claims)
	}
	checkReconciles(t, m)
}

func uniq(recs []string) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[r] = true
	}
	return m
}

func TestProducerTerminalFailure(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(100, 60))
	flushes := 0
	e.prodMod = func(p *fakeProducer) {
		p.flushErr = func() error {
			if flushes++; flushes == 3 {
				return errors.New("AccessDeniedException: not authorized to PutRecords")
			}
			return nil
		}
	}
	res, err := e.handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle: %v (a terminal producer error must not loop)", err)
	}
	if o := res.Objects[0]; o.Outcome != OutcomeFailed || !strings.Contains(o.Reason, "AccessDenied") {
		t.Errorf("outcome %s (%s)", o.Outcome, o.Reason)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusFailed || m.Counts.RecordsSent != 50 || m.Counts.Failed != 25 || m.Counts.Rejected != 1 || m.Counts.RowsRead != 76 {
		t.Errorf("manifest: %s %+v, want failed with 50 sent, 1 rejected (row 60), 25 failed (the third flush) of 76 read", m.Status, m.Counts)
	}
	checkReconciles(t, m)
}

// TestProducerTerminalFailureRejectsUnwritten: when a terminal producer error meets a failed PUT of the
// rejected rows, the manifest must not count rows that are not under rejected/: the object is released
// at its checkpoint, and the retry of the event finishes it with every row accounted for once.
func TestProducerTerminalFailureRejectsUnwritten(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(100, 60))
	flushes := 0
	e.prodMod = func(p *fakeProducer) {
		p.flushErr = func() error {
			if flushes++; flushes == 3 {
				return errors.New("AccessDeniedException: not authorized to PutRecords")
			}
			return nil
		}
	}
	e.s3.onPut = func(in *s3.PutObjectInput) error {
		if strings.HasPrefix(aws.ToString(in.Key), "rejected/") {
			return errBoom
		}
		return nil
	}
	_, err := e.handle(context.Background(), ev)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Handle: %v, want the failed PUT of the rejected rows returned for a retry", err)
	}
	m := e.manifest("state/ingest/")
	if m.Status == StatusFailed || m.Counts.Rejected != 0 || m.Counts.RowsRead != 50 {
		t.Fatalf("manifest after the failed PUT: %s %+v, want released at the checkpoint of 50 rows, none rejected", m.Status, m.Counts)
	}
	// Lambda's retry of the event: the stream and S3 work again.
	e.s3.onPut = nil
	flushes = -100
	if _, err := e.handle(context.Background(), ev); err != nil {
		t.Fatalf("retry: %v", err)
	}
	m = e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RowsRead != 100 || m.Counts.Rejected != 1 || m.Counts.RecordsSent != 99 {
		t.Errorf("manifest after the retry: %s %+v, want done with 99 sent and 1 rejected of 100", m.Status, m.Counts)
	}
	if got := len(e.s3.keys("rejected/")); got != 1 {
		t.Errorf("%d rejected parts, want 1", got)
	}
	checkReconciles(t, m)
}

func TestFileFaults(t *testing.T) {
	binary := make([]byte, 64<<10)
	for i := range binary {
		binary[i] = byte(i*7919 + i>>3)
	}
	big := append([]byte("id,payload\n1,"), bytes.Repeat([]byte("x"), 2<<20)...)
	big = append(big, '\n')
	full := gz(t, tlcCSV(50))
	tests := []struct {
		name       string
		key        string
		body       []byte
		wantStatus []string // acceptable manifest statuses
		wantRows   int64    // -1: any
		wantSent   int64    // -1: any
		reason     string   // substring of the reason when failed
	}{
		{"empty file", "raw/empty.csv", nil, []string{StatusDone}, 0, 0, ""},
		{"empty gzip file", "raw/empty.csv.gz", nil, []string{StatusDone}, 0, 0, ""},
		{"header only", "raw/header.csv", []byte("VendorID,tpep_pickup_datetime,PULocationID\n"), []string{StatusDone}, 0, 0, ""},
		{"header only without newline", "raw/header.csv", []byte("VendorID,tpep_pickup_datetime,PULocationID"), []string{StatusDone}, 0, 0, ""},
		{"non-TLC CSV", "raw/weather.csv", []byte("station,date,temp_c\nJFK,2019-01-01,3.5\nLGA,2019-01-01,2.9\n"), []string{StatusDone}, 2, 2, ""},
		{"binary file", "raw/image.csv", binary, []string{StatusDone, StatusFailed}, -1, -1, ""},
		{"corrupt gzip", "raw/corrupt.csv.gz", []byte("this is not gzip at all"), []string{StatusFailed}, 0, 0, "gzip"},
		{"truncated gzip", "raw/truncated.csv.gz", full[:len(full)/2], []string{StatusFailed}, -1, -1, "unexpected EOF"},
		{"2 MB single line", "raw/big.csv", big, []string{StatusDone}, 1, 0, ""},
		{"2 MB header line", "raw/wide.csv", bytes.Repeat([]byte("h"), 2<<20), []string{StatusDone}, 0, 0, ""},
		{"unknown suffix", "raw/notes.txt", []byte("hello"), []string{StatusFailed}, 0, 0, "unsupported format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.prodMod = func(p *fakeProducer) { p.maxRecord = 1 << 20 }
			ev := e.putObject(tt.key, tt.body)
			res, err := e.handle(context.Background(), ev)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			// A duplicate notification reads the manifest back (whatever its checkpoint holds) and does nothing.
			if dup, err := e.handle(context.Background(), ev); err != nil || dup.Objects[0].Outcome != OutcomeDuplicate {
				t.Errorf("duplicate notification: %v %+v, want outcome duplicate", err, dup)
			}
			m := e.manifest("state/ingest/")
			if !slices.Contains(tt.wantStatus, m.Status) {
				t.Errorf("status %s (%s), want one of %v", m.Status, m.Reason, tt.wantStatus)
			}
			if m.Status == StatusFailed && (m.Reason == "" || !strings.Contains(m.Reason, tt.reason)) {
				t.Errorf("reason %q, want it to mention %q", m.Reason, tt.reason)
			}
			if tt.wantRows >= 0 && m.Counts.RowsRead != tt.wantRows {
				t.Errorf("rows read %d, want %d", m.Counts.RowsRead, tt.wantRows)
			}
			if tt.wantSent >= 0 && m.Counts.RecordsSent != tt.wantSent {
				t.Errorf("records sent %d, want %d", m.Counts.RecordsSent, tt.wantSent)
			}
			checkReconciles(t, m)
			if got := int64(len(e.sink.data())); got != m.Counts.RecordsSent {
				t.Errorf("records in the stream %d, manifest says %d", got, m.Counts.RecordsSent)
			}
			for _, r := range e.sink.data() {
				if !json.Valid([]byte(r)) {
					t.Errorf("invalid JSON record %.80q", r)
				}
			}
			if rej := e.rejectedRows(m.RejectedPrefix); int64(len(rej)) != m.Counts.Rejected {
				t.Errorf("rejected lines %d, manifest says %d", len(rej), m.Counts.Rejected)
			}
			if o := res.Objects[0]; o.RowsRead != m.Counts.RowsRead {
				t.Errorf("result rows %d, manifest %d", o.RowsRead, m.Counts.RowsRead)
			}
		})
	}
}

func TestOversizeRecordIsRejectedWithProducerReason(t *testing.T) {
	e := newEnv(t, nil)
	e.prodMod = func(p *fakeProducer) { p.maxRecord = 1 << 20 }
	data := append(tlcCSV(3), []byte("1,2019-01-01 00:00:00,2019-01-01 00:10:00,1,1.5,1,N,132,"+strings.Repeat("9", 2<<20)+",1,7,0.5,0.5,1.65,0,0.3,9.95,0\n")...)
	if _, err := e.handle(context.Background(), e.putObject("raw/y.csv", data)); err != nil {
		t.Fatal(err)
	}
	m := e.manifest("state/ingest/")
	checkReconciles(t, m)
	rej := e.rejectedRows(m.RejectedPrefix)
	if m.Counts.RowsRead != 4 || m.Counts.Rejected != 1 || len(rej) != 1 || rej[0].Line != 5 || rej[0].Row != 4 {
		t.Fatalf("counts %+v, rejected %+v: want row 4 (line 5) rejected", m.Counts, rej)
	}
	if !strings.HasPrefix(rej[0].Reason, "producer:") && rej[0].Reason == "" {
		t.Errorf("reason %q", rej[0].Reason)
	}
}

func TestManyRejectsAreWrittenInBoundedParts(t *testing.T) {
	e := newEnv(t, nil)
	e.h.flushRecords = 1 << 30 // only the reject buffer cap splits parts
	var b strings.Builder
	b.WriteString("a,b\n")
	line := strings.Repeat("z", 1000)
	for i := range 3000 {
		fmt.Fprintf(&b, "%d,%s,extra-%d\n", i, line, i)
	}
	if _, err := e.handle(context.Background(), e.putObject("raw/rejects.csv", []byte(b.String()))); err != nil {
		t.Fatal(err)
	}
	m := e.manifest("state/ingest/")
	parts := e.s3.keys(m.RejectedPrefix)
	if len(parts) < 2 || m.RejectedParts != len(parts) {
		t.Errorf("parts %d (manifest %d), want several parts of ≤ ~1 MiB", len(parts), m.RejectedParts)
	}
	for _, p := range parts {
		if d, _ := e.s3.get(testBucket, p); len(d) > rejectPartBytes+8<<10 {
			t.Errorf("part %s is %d bytes", p, len(d))
		}
	}
	if rej := e.rejectedRows(m.RejectedPrefix); int64(len(rej)) != m.Counts.Rejected || m.Counts.Rejected != 3000 {
		t.Errorf("rejected lines %d, manifest %d, want 3000", len(rej), m.Counts.Rejected)
	}
}

func TestReplayUsesItsOwnManifest(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(30))
	if _, err := e.handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	o := e.s3.objects[testBucket+"/raw/yellow.csv"]
	replay, _ := json.Marshal(Event{Kind: KindReplay, Bucket: testBucket, Key: "raw/yellow.csv", ETag: unquoteETag(o.etag), ReplayID: "r1"})
	for i, want := range []string{OutcomeDone, OutcomeDuplicate} {
		res, err := e.handle(context.Background(), replay)
		if err != nil || res.Objects[0].Outcome != want {
			t.Fatalf("replay %d: %+v %v, want %s", i, res, err, want)
		}
	}
	if got := len(e.sink.data()); got != 60 {
		t.Errorf("records: %d, want 60 (the object twice)", got)
	}
	if m := e.manifest("state/replay/r1/"); m.Status != StatusDone || m.ReplayID != "r1" {
		t.Errorf("replay manifest: %+v", m)
	}
	// A replay without identity heads the object first.
	replay, _ = json.Marshal(Event{Kind: KindReplay, Bucket: testBucket, Key: "raw/yellow.csv", ReplayID: "r2"})
	if res, err := e.handle(context.Background(), replay); err != nil || res.Objects[0].Outcome != OutcomeDone || res.Objects[0].Version != unquoteETag(o.etag) {
		t.Errorf("replay without etag: %+v %v", res, err)
	}
}

func TestObjectChangedDuringContinuation(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(300))
	e.clock.step = time.Second
	ctx, cancel := e.withDeadline(100 * time.Second)
	if _, err := e.handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	cancel()
	conts := e.inv.take()
	if len(conts) != 1 {
		t.Fatalf("continuations: %v", conts)
	}
	e.putObject("raw/yellow.csv", tlcCSV(10)) // overwritten (unversioned bucket): a new ETag
	b, _ := json.Marshal(conts[0])
	res, err := e.handle(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if o := res.Objects[0]; o.Outcome != OutcomeFailed || !strings.Contains(o.Reason, "changed") {
		t.Errorf("continuation of a replaced object: %s (%s), want failed: changed", o.Outcome, o.Reason)
	}
}

func TestS3StateErrorIsRetried(t *testing.T) {
	e := newEnv(t, nil)
	ev := e.putObject("raw/yellow.csv", tlcCSV(10))
	e.s3.onGet = func(in *s3.GetObjectInput) error {
		if strings.HasPrefix(aws.ToString(in.Key), statePrefix) {
			return errBoom
		}
		return nil
	}
	if _, err := e.handle(context.Background(), ev); !errors.Is(err, errBoom) {
		t.Errorf("Handle: %v, want the S3 error returned for a retry", err)
	}
	if len(e.sink.data()) != 0 {
		t.Error("records sent without a manifest")
	}
}

func TestNewRequiresDeps(t *testing.T) {
	if _, err := New(context.Background(), config.Config{}, Deps{}); err == nil {
		t.Error("New with nothing succeeded")
	}
}

func TestMultipleRecordsDeferredWhenOutOfTime(t *testing.T) {
	e := newEnv(t, nil)
	e.putObject("raw/a.csv", tlcCSV(300))
	e.putObject("raw/b.csv", tlcCSV(5))
	a, b := e.putObjectEvent("raw/a.csv"), e.putObjectEvent("raw/b.csv")
	var ea, eb map[string][]json.RawMessage
	_ = json.Unmarshal(a, &ea)
	_ = json.Unmarshal(b, &eb)
	two, _ := json.Marshal(map[string][]json.RawMessage{"Records": {ea["Records"][0], eb["Records"][0]}})
	e.clock.step = time.Second
	ctx, cancel := e.withDeadline(100 * time.Second)
	res, err := e.handle(ctx, two)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 2 || res.Objects[0].Outcome != OutcomeContinued || res.Objects[1].Outcome != OutcomeDeferred {
		t.Fatalf("results: %+v, want continued + deferred", res.Objects)
	}
	evs := e.inv.take()
	if len(evs) != 2 || evs[1].Key != "raw/b.csv" || evs[1].Kind != KindContinuation {
		t.Errorf("self-invocations: %+v", evs)
	}
}

// TestProducerDeadlineReleasesForRetry: when the producer gives up because its next backoff would pass
// the deadline (the context still alive), the object is released at its last checkpoint, not failed;
// the retry of the event finishes it and every row ends in the stream.
func TestProducerDeadlineReleasesForRetry(t *testing.T) {
	e := newEnv(t, nil)
	flushes := 0
	e.prodMod = func(p *fakeProducer) {
		p.flushErr = func() error {
			flushes++
			if flushes == 3 {
				return producer.ErrDeadline
			}
			return nil
		}
	}
	ev := e.putObject("raw/yellow.csv", tlcCSV(200))
	ctx, cancel := e.withDeadline(100 * time.Second)
	res, err := e.handle(ctx, ev)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Handle: %v, want the deadline error so Lambda retries the event", err)
	}
	if got := res.Objects[0].Outcome; got != OutcomeReleased {
		t.Fatalf("outcome %s, want %s", got, OutcomeReleased)
	}
	if m := e.manifest("state/ingest/"); m.Status != StatusRunning || m.Checkpoint == nil {
		t.Fatalf("manifest after release: %s, checkpoint %v; want running at a checkpoint", m.Status, m.Checkpoint)
	}
	ctx, cancel = e.withDeadline(100 * time.Second)
	res, err = e.handle(ctx, ev) // Lambda's retry of the same event
	cancel()
	if err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("retry: %v %+v, want done", err, res)
	}
	m := e.manifest("state/ingest/")
	checkReconciles(t, m)
	if m.Counts.RowsRead != 200 || m.Claims != 2 {
		t.Errorf("manifest counts %+v, claims %d: want 200 rows read over 2 claims", m.Counts, m.Claims)
	}
	if got := int64(len(e.sink.data())); got != m.Counts.RecordsSent {
		t.Errorf("records in the stream %d, manifest says %d", got, m.Counts.RecordsSent)
	}
}

// TestNoTimeToReadFails: an invocation that starts with less time than the deadline margin cannot read
// (the timeout is not above DEADLINE_MARGIN): the object fails with the reason instead of handing over
// forever.
func TestNoTimeToReadFails(t *testing.T) {
	e := newEnv(t, nil) // margin 30 s
	ev := e.putObject("raw/yellow.csv", tlcCSV(50))
	ctx, cancel := e.withDeadline(20 * time.Second)
	res, err := e.handle(ctx, ev)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if o := res.Objects[0]; o.Outcome != OutcomeFailed || !strings.Contains(o.Reason, "DEADLINE_MARGIN") {
		t.Errorf("outcome %s (%s), want failed naming DEADLINE_MARGIN", o.Outcome, o.Reason)
	}
	if len(e.inv.take()) != 0 {
		t.Error("a continuation was invoked")
	}
}

// TestSlowStartHandsOver: an invocation that had time but read no row before the margin (here its
// producer took long to start, as on a stream throttling DescribeStreamSummary) hands the object over
// to a continuation instead of failing it.
func TestSlowStartHandsOver(t *testing.T) {
	e := newEnv(t, nil) // margin 30 s
	slow := true
	e.prodMod = func(*fakeProducer) {
		if slow {
			e.clock.advance(75 * time.Second) // past deadline - margin
		}
	}
	ev := e.putObject("raw/yellow.csv", tlcCSV(50))
	ctx, cancel := e.withDeadline(100 * time.Second)
	res, err := e.handle(ctx, ev)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if o := res.Objects[0]; o.Outcome != OutcomeContinued {
		t.Fatalf("outcome %s (%s), want %s", o.Outcome, o.Reason, OutcomeContinued)
	}
	next := e.inv.take()
	if len(next) != 1 || next[0].Kind != KindContinuation {
		t.Fatalf("continuations invoked: %+v, want one", next)
	}
	slow = false
	payload, _ := json.Marshal(next[0])
	ctx, cancel = e.withDeadline(100 * time.Second)
	res, err = e.handle(ctx, payload)
	cancel()
	if err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("continuation: %v %+v, want done", err, res)
	}
	m := e.manifest("state/ingest/")
	checkReconciles(t, m)
	if m.Counts.RowsRead != 50 || int64(len(e.sink.data())) != m.Counts.RecordsSent {
		t.Errorf("manifest %+v, %d records in the stream", m.Counts, len(e.sink.data()))
	}
}

// TestInvokeSeesThePayloadAsSent: Invoke (the runtime's entry point) passes the raw payload on, so
// trailing data after a valid event is refused, and its response is the Result as JSON.
func TestInvokeSeesThePayloadAsSent(t *testing.T) {
	e := newEnv(t, nil)
	payload := append(append([]byte{}, s3Event(testBucket, "raw/a.csv", "e1", 10)...), ` {"taxistream":"replay"}`...)
	out, err := e.h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	if len(res.Objects) != 1 || res.Objects[0].Outcome != OutcomeSkipped || !strings.Contains(res.Objects[0].Reason, "trailing data") {
		t.Errorf("response %s, want one skipped object with reason trailing data", out)
	}
	if ks := e.s3.keys(""); len(ks) != 0 {
		t.Errorf("wrote %v, want nothing", ks)
	}
}

package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/process"
)

// fakeBucket is an in-memory bucket with chosen LastModified times (BucketReader).
type fakeBucket map[string]fakeObject

type fakeObject struct {
	body     []byte
	modified time.Time
}

func (f fakeBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	var keys []string
	for k := range f {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(f[k].body))), LastModified: aws.Time(f[k].modified)})
	}
	return out, nil
}

func (f fakeBucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	o, ok := f[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.body))}, nil
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// seq is a local stream sequence number with counter c on shard 0.
func seq(c uint64) string { return fmt.Sprintf("4959%020d%032d", c, 0) }

// fixture is a small bucket of one run: one raw object of 5 rows (1 rejected, 4 sent in 2 Kinesis
// records), 3 trips in one Parquet file, 1 quarantined trip, the archive, a window; and its timeline.
func fixture(t *testing.T) (fakeBucket, *local.TimelineData) {
	t.Helper()
	src := convert.Source{Bucket: "stack-bucket", Key: "raw/a.csv", Version: "etag1"}
	prefix := convert.RecordIDPrefix(src)
	id := func(row int) string { return fmt.Sprintf("%s%016x", prefix, row) }
	b := fakeBucket{}
	b["raw/a.csv"] = fakeObject{[]byte("header\n1\n2\n3\n4\n5\n"), t0}
	m := ingest.Manifest{Bucket: src.Bucket, Key: src.Key, Version: src.Version, Status: ingest.StatusDone,
		Counts:         ingest.Counts{RowsRead: 5, RecordsSent: 4, Rejected: 1, KinesisRecords: 2},
		RejectedPrefix: "rejected/raw/a.csv/etag1/", RejectedParts: 1}
	mb, _ := json.Marshal(m)
	b[ingest.ManifestKey(src.Key, src.Version, "")] = fakeObject{mb, t0.Add(3 * time.Second)}
	rej, _ := json.Marshal(ingest.RejectedRow{Line: 3, Row: 2, Field: "fare_amount", Reason: "bad_number",
		Detail: `fare_amount: "x" is not a number`, Raw: `2,<script>alert(1)</script>,x`})
	b["rejected/raw/a.csv/etag1/part-000000.jsonl"] = fakeObject{append(rej, '\n'), t0.Add(3 * time.Second)}

	var pq bytes.Buffer
	w := parquet.NewGenericWriter[process.TripRow](&pq)
	rows := []process.TripRow{
		{RecordID: id(1), TaxiType: "yellow", PickupHour: 7, PULocationID: ptr(int32(132)), PUZone: ptr("JFK Airport"), PUBorough: ptr("Queens"),
			PaymentType: ptr(int32(1)), FareAmount: ptr(52.0), TipAmount: ptr(10.0), TripDistance: ptr(17.5), AvgSpeedMph: ptr(30.0), KinesisSequenceNumber: seq(10)},
		{RecordID: id(3), TaxiType: "yellow", PickupHour: 7, PULocationID: ptr(int32(132)), PUZone: ptr("JFK Airport"), PUBorough: ptr("Queens"),
			PaymentType: ptr(int32(2)), FareAmount: ptr(8.0), TripDistance: ptr(1.0), KinesisSequenceNumber: seq(10), KinesisSubSequence: 1},
		{RecordID: id(5), TaxiType: "fhvhv", PickupHour: 23, PULocationID: ptr(int32(4)), BasePassengerFare: ptr(20.0), Tips: ptr(2.0), TripMiles: ptr(3.0),
			KinesisSequenceNumber: seq(11)},
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b[process.TripsKey("2019-01-01", "shardId-000000000000", seq(10))] = fakeObject{pq.Bytes(), t0.Add(5 * time.Second)}
	q := fmt.Sprintf(`{"record_id":%q,"taxi_type":"yellow","_rejections":[{"rule":"pickup_before_dropoff","detail":"dropoff 1 min before pickup"}],"_kinesis":{"sequence_number":%q}}`+"\n", id(4), seq(11))
	b[process.QuarantineKey("2019-01-01", "shardId-000000000000", seq(10))] = fakeObject{gz(t, q), t0.Add(5 * time.Second)}
	var arch strings.Builder
	for _, r := range []int{1, 3, 4, 5} {
		fmt.Fprintf(&arch, `{"record_id":%q}`+"\n", id(r))
	}
	b["archive/2026/01/02/03/stream-1-2026-01-02-03-04-05-x.gz"] = fakeObject{gz(t, arch.String()), t0.Add(9 * time.Second)}
	var zs bytes.Buffer
	zw := parquet.NewGenericWriter[process.ZoneStat](&zs)
	if _, err := zw.Write([]process.ZoneStat{{WindowStart: t0, ShardID: "shardId-000000000000", PULocationID: 132, TaxiType: "yellow", Trips: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b[process.ZoneStatsKey(t0, "shardId-000000000000", "")] = fakeObject{zs.Bytes(), t0.Add(9 * time.Second)}

	tl := &local.TimelineData{
		Meta: local.TimelineMeta{Kind: "meta", Version: 1, Started: t0.Add(-time.Second), Ended: t0.Add(10 * time.Second),
			Stream: "s", Shards: []string{"shardId-000000000000"}, LimitsOn: true, ShardBytesPerSecond: 1 << 20, ShardRecordsPerSecond: 1000,
			Archive: true, Consumer: true},
		Seconds: []local.ShardSecond{
			{T: t0.Unix() + 1, Shard: "shardId-000000000000", Records: 1, Bytes: 300, Throttled: 1, ThrottledBytes: 200},
			{T: t0.Unix() + 2, Shard: "shardId-000000000000", Records: 1, Bytes: 200, Retried: 1},
		},
		Puts: []local.PutRequest{
			{T: t0.Add(time.Second).UnixMilli(), Entries: 2, Stored: 1, Counter: 10},
			{T: t0.Add(2 * time.Second).UnixMilli(), Entries: 1, Stored: 1, Counter: 11},
		},
		Aggregates: map[int]int64{2: 2},
		Invocations: []local.InvocationSpan{
			{Function: local.IngestFunction, RequestID: "r1", Start: t0.UnixMilli(), End: t0.Add(2500 * time.Millisecond).UnixMilli(), Attempt: 1},
			{Function: local.ProcessFunction, RequestID: "r2", Start: t0.Add(4 * time.Second).UnixMilli(), End: t0.Add(5 * time.Second).UnixMilli(), Attempt: 1},
			{Function: local.ProcessFunction, RequestID: "r3", Start: t0.Add(6 * time.Second).UnixMilli(), End: t0.Add(6100 * time.Millisecond).UnixMilli(), Attempt: 1, Error: "Sandbox.Timedout"},
		},
		Batches: []local.BatchSpan{{Shard: "shardId-000000000000", Records: 2, Start: t0.Add(4 * time.Second).UnixMilli(), End: t0.Add(5 * time.Second).UnixMilli(), Outcome: "ok", IteratorAgeMS: 3000}},
	}
	return b, tl
}

func TestBuildFromABucketAndTimeline(t *testing.T) {
	b, tl := fixture(t)
	r, err := Build(context.Background(), Input{Bucket: b, BucketName: "stack-bucket", Location: "fixture", Timeline: tl})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if !s.Reconciled || s.RowsRead != 5 || s.RecordsSent != 4 || s.TripsProcessed != 3 || s.Quarantined != 1 {
		t.Fatalf("summary %+v\n%s", s, strings.Join(s.Reconciliation, "\n"))
	}
	// The data section, from the Parquet file.
	d := r.Data
	if d.Trips != 3 || d.Files != 1 || d.Dates != 1 || d.FirstDate != "2019-01-01" || !d.ZoneNames {
		t.Errorf("data %+v", d)
	}
	wantZones := []ZoneRow{{ID: 132, Name: "JFK Airport", Borough: "Queens", Trips: 2, Share: 200.0 / 3}, {ID: 4, Trips: 1, Share: 100.0 / 3}}
	if diff := cmp.Diff(wantZones, d.TopZones); diff != "" {
		t.Errorf("top zones (-want +got):\n%s", diff)
	}
	byName := map[string]Quantiles{}
	for _, q := range d.Quantiles {
		byName[q.Name] = q.Quantiles
	}
	// fhvhv's base_passenger_fare, tips and trip_miles stand in for fare, tip and distance.
	if q := byName["Fare"]; q.N != 3 || q.P50 != 20 || q.Max != 52 {
		t.Errorf("fare quantiles %+v", q)
	}
	if q := byName["Tip"]; q.N != 2 || q.Max != 10 {
		t.Errorf("tip quantiles %+v (a trip without a tip has none)", q)
	}
	if q := byName["Distance"]; q.N != 3 || q.P50 != 3 {
		t.Errorf("distance quantiles %+v", q)
	}
	charts := chartIDs(r)
	for _, id := range []string{"trips-per-date", "trips-per-hour", "top-zones", "boroughs", "payment-types", "taxi-types",
		"dist-fare", "dist-tip", "dist-distance", "dist-speed", "shard-bytes", "shard-records", "throttles",
		"records-per-request", "user-records-per-aggregate", "consumer", "invocations", "latency", "rejected-reasons", "quarantine-rules", "file-sizes"} {
		if !charts[id] {
			t.Errorf("chart %s missing (have %v)", id, charts)
		}
	}

	// Latency: put at t0; Kinesis counters 10 and 11 stored at t0+1 s and t0+2 s; Parquet at t0+5 s.
	got := map[string][3]float64{}
	for _, l := range r.Pipeline.Latency {
		got[l.Stage] = [3]float64{float64(l.q.N), l.q.P50, l.q.Max}
	}
	want := map[string][3]float64{
		"object put → record in the stream":         {3, 1, 2},
		"record in the stream → trip in Parquet":    {3, 4, 4},
		"object put → trip in Parquet (end to end)": {3, 5, 5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("latency (-want +got):\n%s", diff)
	}

	// Rejected rows and quarantined trips name their object and position.
	wantRej := []Example{{Reason: "bad_number", Object: "raw/a.csv", Line: 3, Where: "line 3, fare_amount", Detail: `fare_amount: "x" is not a number`, Raw: `2,<script>alert(1)</script>,x`}}
	if diff := cmp.Diff(wantRej, r.Pipeline.Rejected.Examples); diff != "" {
		t.Errorf("rejected examples (-want +got):\n%s", diff)
	}
	wantQ := []Example{{Reason: "pickup_before_dropoff", Object: "raw/a.csv", Line: 4, Where: "row 4", Detail: "dropoff 1 min before pickup"}}
	if diff := cmp.Diff(wantQ, r.Pipeline.Quarantined.Examples); diff != "" {
		t.Errorf("quarantine examples (-want +got):\n%s", diff)
	}

	// Functions and the consumer, from the timeline.
	var fns []string
	for _, f := range r.Pipeline.Functions {
		fns = append(fns, fmt.Sprintf("%s %d/%d/%d %s", f.Name, f.Invocations, f.Errors, f.Timeouts, f.Max))
	}
	if diff := cmp.Diff([]string{"IngestFunction 1/0/0 2.50 s", "ProcessFunction 2/1/1 1.00 s"}, fns); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
	if c := r.Pipeline.Consumer; c == nil || c.Batches != 1 || c.Records != 2 || c.IteratorAge[2] != "3.00 s" {
		t.Errorf("consumer %+v", c)
	}
	// Outputs.
	rows := map[string]OutputRow{}
	for _, o := range r.Outputs.Rows {
		rows[o.Prefix] = o
	}
	if o := rows[process.TripsPrefix]; o.Objects != 1 || o.Folders != 1 || o.Bytes == 0 {
		t.Errorf("processed/trips/ row %+v", o)
	}
	if o := rows["archive-errors/"]; o.Objects != 0 {
		t.Errorf("archive-errors/ row %+v", o)
	}
	if r.Outputs.Compaction != nil {
		t.Error("compaction reported, but the summary has none")
	}

	var page bytes.Buffer
	if err := r.Render(&page); err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, page.String())
	for _, want := range []string{`data-metric="rows_read" data-value="5"`, `data-metric="trips_processed" data-value="3"`,
		`data-metric="reconciled" data-value="true"`, `&lt;script&gt;alert(1)&lt;/script&gt;`, "JFK Airport (132)"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// TestBuildWithoutTimeline is a deployed bucket: no timeline, failure queue unknown.
func TestBuildWithoutTimeline(t *testing.T) {
	b, _ := fixture(t)
	r, err := Build(context.Background(), Input{Bucket: b, BucketName: "stack-bucket", Location: "s3://stack-bucket", FailureRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pipeline.Timeline || r.Pipeline.NoTimeline == "" || len(r.Pipeline.Charts) != 0 || r.Pipeline.Invocations != nil {
		t.Errorf("pipeline without a timeline: %+v", r.Pipeline)
	}
	if len(r.Pipeline.Latency) != 1 || r.Pipeline.Latency[0].q.P50 != 5 {
		t.Errorf("latency without a timeline: %+v, want only put → Parquet (5 s)", r.Pipeline.Latency)
	}
	last := r.Summary.Reconciliation[len(r.Summary.Reconciliation)-1]
	if !strings.HasPrefix(last, "not checked:") || !r.Summary.Reconciled {
		t.Errorf("reconciliation %q (reconciled %v): want the failure queue not checked", r.Summary.Reconciliation, r.Summary.Reconciled)
	}
	var page bytes.Buffer
	if err := r.Render(&page); err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, page.String())
	if !strings.Contains(page.String(), `data-note="no-timeline"`) {
		t.Error("the page does not say why the pipeline charts are missing")
	}
}

// TestBuildEmptyBucket: a bucket with nothing in it still gives a page (and a reconciliation that
// says nothing was ingested).
func TestBuildEmptyBucket(t *testing.T) {
	r, err := Build(context.Background(), Input{Bucket: fakeBucket{}, BucketName: "b", Location: "empty", FailureRecords: 0})
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Reconciled || r.Data.Trips != 0 {
		t.Errorf("empty bucket: reconciled %v, %d trips", r.Summary.Reconciled, r.Data.Trips)
	}
	var page bytes.Buffer
	if err := r.Render(&page); err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, page.String())
	if !strings.Contains(page.String(), "No trips under processed/trips/") {
		t.Error("the empty page does not say there are no trips")
	}
}

func chartIDs(r *Report) map[string]bool {
	var b bytes.Buffer
	r.Render(&b)
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`data-chart="([^"]+)"`).FindAllStringSubmatch(b.String(), -1) {
		out[m[1]] = true
	}
	return out
}

// checkSelfContained: nothing on the page refers to another resource (the browser test checks the
// same in chromium, with every request recorded).
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "http://", "https://"} {
		rest := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "") // a namespace name, never fetched
		if strings.Contains(strings.ToLower(rest), bad) {
			i := strings.Index(strings.ToLower(rest), bad)
			t.Errorf("the page contains %q: …%s…", bad, rest[max(i-60, 0):min(i+60, len(rest))])
		}
	}
	if !strings.Contains(page, `Content-Security-Policy" content="default-src 'none'`) {
		t.Error("no Content-Security-Policy forbidding every fetch")
	}
	if strings.Count(page, "<svg") != strings.Count(page, "</svg>") {
		t.Error("unbalanced <svg> elements")
	}
}

package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// lambdaGoS3Event reads aws-lambda-go's own S3 notification fixture (events/testdata/s3-event.json, a
// record with a versionId) from the module the build uses.
func lambdaGoS3Event(t *testing.T) events.S3Event {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go")
	cmd.Dir = testenv.Root(t)
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("locating github.com/aws/aws-lambda-go: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "events", "testdata", "s3-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 1 || ev.Records[0].S3.Object.VersionID == "" {
		t.Fatalf("aws-lambda-go's s3-event.json: want one record with a versionId, got %+v", ev.Records)
	}
	return ev
}

// TestVersionedBucket: in a versioned bucket (BucketVersioning=Enabled) every upload of a key is a new
// version and its notification names it. Ingest reads exactly the version notified — a GET with
// ?versionId= on the wire, whatever was uploaded since — and keeps one manifest per version, so a
// re-upload of a key is ingested again and a repeated notification of a version is a duplicate. The
// notifications are aws-lambda-go's fixture with a version id, pointed at this bucket and object.
func TestVersionedBucket(t *testing.T) {
	fake := testpeers.StartS3(t)
	fake.CreateBucket(t, g3Bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := fake.Client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(g3Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	const key = "raw/2019/yellow tripdata+versioned.csv"
	const header = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount\n"
	row := "1,2019-01-01 00:46:40,2019-01-01 00:53:20,1,1.50,1,N,151,239,1,7,0.5,0.5,1.65,0,0.3,9.95\n"
	type upload struct {
		body      []byte
		version   string
		etag      string
		rows      int64
		notifyRaw []byte
	}
	uploads := []*upload{
		{body: []byte(header + strings.Repeat(row, 3)), rows: 3},
		{body: []byte(header + strings.Repeat(row, 5)), rows: 5}, // uploaded before the first is ingested
	}
	for _, u := range uploads {
		out, err := fake.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(g3Bucket), Key: aws.String(key), Body: bytes.NewReader(u.body)})
		if err != nil {
			t.Fatal(err)
		}
		u.version, u.etag = aws.ToString(out.VersionId), strings.Trim(aws.ToString(out.ETag), `"`)
		if u.version == "" {
			t.Fatal("gofakes3 gave the upload no version id: the bucket is not versioned")
		}
		ev := lambdaGoS3Event(t)
		r := &ev.Records[0]
		r.S3.Bucket.Name, r.S3.Bucket.Arn = g3Bucket, "arn:aws:s3:::"+g3Bucket
		r.S3.Object.Key = url.QueryEscape(key) // S3 sends the key form-encoded
		r.S3.Object.URLDecodedKey = ""
		r.S3.Object.VersionID, r.S3.Object.ETag, r.S3.Object.Size = u.version, u.etag, int64(len(u.body))
		var err2 error
		if u.notifyRaw, err2 = json.Marshal(ev); err2 != nil {
			t.Fatal(err2)
		}
	}
	if uploads[0].version == uploads[1].version {
		t.Fatalf("two uploads share version %s", uploads[0].version)
	}

	e := newG3Handler(t, fake, "versioned", nil)
	for i, u := range uploads {
		res, err := e.h.Handle(ctx, u.notifyRaw)
		if err != nil || len(res.Objects) != 1 {
			t.Fatalf("upload %d: %+v, %v", i, res, err)
		}
		o := res.Objects[0]
		want := ingest.ManifestKey(key, u.version, "")
		if o.Outcome != ingest.OutcomeDone || o.Version != u.version || o.Manifest != want || o.RowsRead != u.rows || o.RecordsSent != u.rows {
			t.Errorf("upload %d: %+v; want done, version %s, manifest %s, %d rows sent", i, o, u.version, want, u.rows)
		}
		m := readManifest(t, fake, want)
		if m.Version != u.version || m.VersionID != u.version || m.Status != ingest.StatusDone || m.Counts.RowsRead != u.rows {
			t.Errorf("manifest %s: version %q version_id %q status %s rows %d", want, m.Version, m.VersionID, m.Status, m.Counts.RowsRead)
		}
	}
	// A repeated notification of the first version: nothing read, nothing sent.
	res, err := e.h.Handle(ctx, uploads[0].notifyRaw)
	if err != nil || len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeDuplicate {
		t.Errorf("repeated notification of version %s: %+v, %v; want a duplicate", uploads[0].version, res, err)
	}
	// Every read of the object named the version it was notified of.
	reads := map[string]int{}
	for _, r := range fake.Requests("/" + g3Bucket + "/" + key) {
		if r.Method == "GET" || r.Method == "HEAD" {
			reads[r.Query.Get("versionId")]++
		}
	}
	if len(reads) != 2 || reads[uploads[0].version] == 0 || reads[uploads[1].version] == 0 {
		t.Errorf("reads of %s by version id: %v; want only %s and %s", key, reads, uploads[0].version, uploads[1].version)
	}
	ids, copies := readAll(t, ctx, e.stream)
	if want := int(uploads[0].rows + uploads[1].rows); len(ids) != want || copies != 0 {
		t.Errorf("%d records in the stream (%d copies), want %d: one per row of each version", len(ids), copies, want)
	}

	// A replay names the object by the ETag its listing gave; ingest learns the version id, so the
	// replay's manifest and record_ids name the same version as the notification did.
	latest := uploads[1]
	replay, err := json.Marshal(ingest.Event{Kind: ingest.KindReplay, Bucket: g3Bucket, Key: key, ETag: latest.etag,
		Size: int64(len(latest.body)), ReplayID: "replay-versioned"})
	if err != nil {
		t.Fatal(err)
	}
	res, err = e.h.Handle(ctx, replay)
	want := ingest.ManifestKey(key, latest.version, "replay-versioned")
	if err != nil || len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeDone || res.Objects[0].Version != latest.version ||
		res.Objects[0].Manifest != want {
		t.Fatalf("replay of the latest version: %+v, %v; want done, version %s, manifest %s", res, err, latest.version, want)
	}
	ids, copies = readAll(t, ctx, e.stream)
	if want := int(uploads[0].rows + uploads[1].rows); len(ids) != want || copies != int(latest.rows) {
		t.Errorf("after the replay: %d distinct records, %d copies; want %d and %d (the replay repeats the version's record_ids)",
			len(ids), copies, want, latest.rows)
	}
}

// The built bootstrap of CompactFunction (make build-native) under the AWS Lambda Runtime Interface
// Emulator, with gofakes3 over HTTP as its bucket, invoked with events/schedule.json (what EventBridge
// sends on the schedule) and events/compact.json (a manual run over a date range).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

const bucket = "taxistream-123456789012-us-east-1"

func trips(date string, n, from int) []process.TripRow {
	day, _ := time.Parse(time.DateOnly, date)
	rows := make([]process.TripRow, n)
	for i := range rows {
		total := float64(10 + i%40)
		rows[i] = process.TripRow{
			RecordID: fmt.Sprintf("%s-%06d", date, from+i), TaxiType: "yellow",
			PickupDatetime: day.Add(5*time.Hour + time.Duration((from+i)*97%86400)*time.Second), TotalAmount: &total,
			KinesisSequenceNumber: fmt.Sprint(from + i),
		}
	}
	return rows
}

func encode(t *testing.T, rows []process.TripRow) []byte {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[process.TripRow](&b)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func keys(t *testing.T, fake *testpeers.S3, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(fake.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

func TestBootstrapUnderRIE(t *testing.T) {
	bootstrap := testenv.Bootstrap(t, "compact")
	testenv.RIE(t)
	fake := testpeers.StartS3(t)
	fake.CreateBucket(t, bucket)
	dates := []string{"2019-01-01", "2019-01-02", "2019-02-01"}
	for _, d := range dates {
		for i := range 4 {
			fake.Put(t, bucket, process.TripsKey(d, "shardId-000000000000", fmt.Sprintf("%056d", i)), encode(t, trips(d, 25, 25*i)))
		}
	}
	env := fake.Env()
	env["BUCKET_NAME"] = bucket
	env["AWS_LAMBDA_FUNCTION_NAME"] = "taxistream-compact"
	env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "1024"
	rie := testpeers.StartRIE(t, bootstrap, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	invoke := func(event string) compact.Response {
		t.Helper()
		payload, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", event))
		if err != nil {
			t.Fatal(err)
		}
		body, err := rie.Invoke(ctx, payload)
		if err != nil {
			t.Fatalf("%s: %v (%s)\n%s", event, err, body, rie.Stderr())
		}
		var resp compact.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%s: response %s: %v", event, body, err)
		}
		return resp
	}

	// events/compact.json: January 2019 only.
	resp := invoke("compact.json")
	if !resp.Complete || resp.Continued || resp.Compacted != 2 || resp.RowsOut != 200 || resp.FilesAfter != 2 {
		t.Errorf("compact.json: %+v, want the two January partitions compacted (200 rows in 2 files)", resp)
	}
	if got := len(keys(t, fake, compact.PartitionPrefix("2019-02-01"))); got != 4 {
		t.Errorf("2019-02-01 outside the range has %d objects, want its 4", got)
	}
	// events/schedule.json: everything.
	resp = invoke("schedule.json")
	if !resp.Complete || resp.Compacted != 1 || resp.Partitions != 3 || resp.FilesAfter != 3 {
		t.Errorf("schedule.json: %+v, want the last partition compacted", resp)
	}
	for _, d := range dates {
		got := keys(t, fake, compact.PartitionPrefix(d))
		if len(got) != 1 || !strings.Contains(got[0], "/compacted-") {
			t.Errorf("%s: %v, want one compacted file", d, got)
		}
		rows, err := parquet.Read[process.TripRow](bytes.NewReader(fake.Get(t, bucket, got[0])), int64(len(fake.Get(t, bucket, got[0]))))
		if err != nil || len(rows) != 100 || !slices.IsSortedFunc(rows, func(a, b process.TripRow) int { return a.PickupDatetime.Compare(b.PickupDatetime) }) {
			t.Errorf("%s: %d rows (err %v), want 100 sorted by pickup", d, len(rows), err)
		}
	}
	if got := keys(t, fake, compact.PlanPrefix); len(got) != 0 {
		t.Errorf("plans left: %v", got)
	}
	if n := strings.Count(rie.Stdout(), `"CompactionRuns":1`); n != 2 {
		t.Errorf("%d EMF lines with CompactionRuns, want 2 (one per invocation)\n%s", n, rie.Stdout())
	}
	if !strings.Contains(rie.Stdout(), `"message":"compaction"`) {
		t.Errorf("no JSON \"compaction\" log line in the function's output:\n%s", rie.Stdout())
	}
	if bad := rie.LogLinesWithoutRequestID(); len(bad) > 0 {
		t.Errorf("log lines without the invocation's requestId:\n%s", strings.Join(bad, "\n"))
	}
	if d, ok := rie.InitDuration(); ok {
		t.Logf("CompactFunction INIT under the RIE: %v", d)
	}
	// A request that is not one is refused with a function error, before anything is listed.
	if _, err := rie.Invoke(ctx, []byte(`{"form":"2019-01-01"}`)); err == nil {
		t.Error("a misspelled field was accepted")
	}
}

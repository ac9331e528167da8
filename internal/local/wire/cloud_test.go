package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/testenv"
)

// startCloud starts the local cloud of template.yaml in a temporary folder and serves it on a loopback
// port.
func startCloud(t *testing.T, opts local.Options) (*local.Cloud, *served) {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.TemplatePath = filepath.Join(testenv.Root(t), "template.yaml")
	opts.AsyncRetryDelays = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	c, err := local.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, serveOver(t, c.Bucket, c.Stream)
}

// userRecord is one record of the stream after de-aggregation by the official KPL module.
type userRecord struct {
	PartitionKey string `json:"partitionKey"`
	Data         []byte `json:"data"`
}

// deaggregate runs tools/node/deagg.js (aws-kinesis-agg, checksums verified) over Kinesis records
// {"records": [{"partitionKey", "sequenceNumber", "data"}]} and returns the user records.
func deaggregate(t *testing.T, kinesisRecords []byte) []userRecord {
	t.Helper()
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	env := append(os.Environ(), "NODE_PATH="+modules)
	out, err := runCmd(t, env, 2*time.Minute, bytes.NewReader(kinesisRecords), node, filepath.Join(testenv.Root(t), "tools", "node", "deagg.js"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Records []struct {
			Error       string       `json:"error"`
			UserRecords []userRecord `json:"userRecords"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("decoding deagg.js output: %v", err)
	}
	var users []userRecord
	for i, r := range res.Records {
		if r.Error != "" {
			t.Fatalf("Kinesis record %d does not de-aggregate: %s", i, r.Error)
		}
		users = append(users, r.UserRecords...)
	}
	return users
}

// distinctRecordIDs counts the distinct record_id of JSON records.
func distinctRecordIDs(t *testing.T, users []userRecord) int {
	t.Helper()
	ids := map[string]bool{}
	for _, u := range users {
		var rec struct {
			RecordID string `json:"record_id"`
		}
		if err := json.Unmarshal(u.Data, &rec); err != nil || rec.RecordID == "" {
			t.Fatalf("a user record is not a trip record with a record_id: %q (%v)", u.Data, err)
		}
		ids[rec.RecordID] = true
	}
	return len(ids)
}

// TestAWSCLIIntoRaw is the habit the wire server exists for: `aws s3 cp` into raw/ triggers
// IngestFunction, and the AWS CLI reads the results back. A real TLC sample goes up in one PUT and a
// generated file over 8 MB goes up as a multipart upload (the CLI's threshold); the pipeline's summary
// reconciles; `aws s3 ls --recursive processed/` lists the Parquet objects the summary counts; `aws
// kinesis get-shard-iterator` and `get-records` read the stream, whose KPL aggregates the official Node
// module de-aggregates into exactly the records sent.
func TestAWSCLIIntoRaw(t *testing.T) {
	tlc := testenv.TLCDir(t)
	aws := awsCLI(t)
	testenv.NodeModules(t)
	// Limits off keeps the 72,000 generated rows quick; the limits over the wire are
	// TestBoto3Throttling's and TestKinesisWireThrottlesReads's.
	c, s := startCloud(t, local.Options{LimitsOff: true})
	env := awsEnv(t, s.url)
	bucket := "s3://" + c.Bucket.Name()

	big := filepath.Join(t.TempDir(), "yellow_tripdata_2009-03.csv")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	const bigRows = 72000
	if _, err := gen.Write(f, gen.Options{Taxi: "yellow", Layout: 2009, Month: 3, Rows: bigRows, Seed: 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(big); fi.Size() <= 8<<20 {
		t.Fatalf("the generated file is %d bytes, not over the CLI's 8 MiB multipart threshold", fi.Size())
	}
	sample := filepath.Join(tlc, "samples", "yellow_tripdata_sample_2019-01_renamed.csv")
	const sampleRows = 10000

	mustRun(t, env, 2*time.Minute, aws, "s3", "cp", "--only-show-errors", sample, bucket+"/raw/2019/")
	mustRun(t, env, 5*time.Minute, aws, "s3", "cp", "--only-show-errors", big, bucket+"/raw/generated/")
	if got := s.srv.uploads; len(got.uploads) != 0 {
		t.Errorf("%d multipart uploads still open", len(got.uploads))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatalf("draining: %v", err)
	}
	sum, err := c.Summarize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Reconciled {
		t.Fatalf("the summary does not reconcile:\n%s", strings.Join(sum.Reconciliation, "\n"))
	}
	if sum.Objects != 2 || sum.ObjectsDone != 2 || sum.RowsRead != sampleRows+bigRows {
		t.Errorf("objects %d (%d done), rows read %d; want 2, 2, %d", sum.Objects, sum.ObjectsDone, sum.RowsRead, sampleRows+bigRows)
	}
	// The multipart upload reached IngestFunction as S3 reports it.
	if st := c.Trigger.Stats(); st.Invoked != 2 {
		t.Errorf("trigger: %+v, want 2 invocations", st)
	}

	ls := mustRun(t, env, 2*time.Minute, aws, "s3", "ls", "--recursive", bucket+"/processed/")
	trips := 0
	for _, l := range strings.Split(ls, "\n") {
		if strings.Contains(l, " processed/trips/") && strings.HasSuffix(l, ".parquet") {
			trips++
		}
	}
	if trips == 0 || trips != sum.TripObjects {
		t.Errorf("aws s3 ls lists %d Parquet objects under processed/trips/, the summary counts %d:\n%s", trips, sum.TripObjects, ls)
	}

	// Every shard with the AWS CLI, from TRIM_HORIZON until caught up.
	shardsOut := mustRun(t, env, time.Minute, aws, "kinesis", "list-shards", "--stream-name", c.Stream.Name(), "--query", "Shards[].ShardId", "--output", "text")
	type kinesisRecord struct {
		PartitionKey   string `json:"partitionKey"`
		SequenceNumber string `json:"sequenceNumber"`
		Data           string `json:"data"`
	}
	var all []kinesisRecord
	for _, shard := range strings.Fields(shardsOut) {
		it := strings.TrimSpace(mustRun(t, env, time.Minute, aws, "kinesis", "get-shard-iterator", "--stream-name", c.Stream.Name(),
			"--shard-id", shard, "--shard-iterator-type", "TRIM_HORIZON", "--query", "ShardIterator", "--output", "text"))
		for calls := 0; it != "" && it != "None"; calls++ {
			if calls > 100 {
				t.Fatalf("shard %s: still not caught up after %d GetRecords", shard, calls)
			}
			out := mustRun(t, env, 2*time.Minute, aws, "kinesis", "get-records", "--shard-iterator", it, "--limit", "10000")
			var page struct {
				Records []struct {
					PartitionKey, SequenceNumber, Data string
				}
				NextShardIterator  string
				MillisBehindLatest int64
			}
			if err := json.Unmarshal([]byte(out), &page); err != nil {
				t.Fatalf("get-records output: %v", err)
			}
			for _, r := range page.Records {
				all = append(all, kinesisRecord{r.PartitionKey, r.SequenceNumber, r.Data})
			}
			if len(page.Records) == 0 && page.MillisBehindLatest == 0 {
				break
			}
			it = page.NextShardIterator
		}
	}
	if int64(len(all)) != sum.KinesisRecords {
		t.Errorf("get-records read %d Kinesis records, the manifests count %d", len(all), sum.KinesisRecords)
	}
	in, _ := json.Marshal(map[string]any{"records": all})
	users := deaggregate(t, in)
	if int64(len(users)) != sum.RecordsSent || int64(distinctRecordIDs(t, users)) != sum.RecordsSent {
		t.Errorf("de-aggregated %d user records, want the %d records sent, each once", len(users), sum.RecordsSent)
	}
	t.Logf("%d rows, %d Kinesis records, %d Parquet objects; %d wire requests", sum.RowsRead, len(all), trips, s.srv.Requests())
}

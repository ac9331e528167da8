package feed

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/producer"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// shardReader is what reading a stream back needs; the local stream and *kinesis.Client both fit.
type shardReader interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// readAll reads every shard from TRIM_HORIZON, de-aggregates, and returns the record_id of each user
// record (a record_id seen twice appears twice).
func readAll(t *testing.T, c shardReader, streamName string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(streamName)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(streamName),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for page := 0; iter != nil && page < 10000; page++ {
			res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
			if err != nil {
				t.Fatalf("GetRecords: %v", err)
			}
			subs, err := kpl.DeaggregateRecords(res.Records)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range subs {
				ids = append(ids, recordIDOf(t, s.Data))
			}
			if len(res.Records) == 0 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	return ids
}

func recordIDOf(t *testing.T, line []byte) string {
	t.Helper()
	const key = `"record_id":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		t.Fatalf("record without record_id: %.200s", line)
	}
	rest := line[i+len(key):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

func genFile(t *testing.T, name string, o gen.Options) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, o); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkOnce(t *testing.T, ids []string, want int64) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if int64(len(seen)) != want {
		t.Errorf("stream holds %d distinct records, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s in the stream %d times", id, n)
		}
	}
}

// TestProduceLocalStream produces generated files (one gzip'd, one with bad rows) into the local stream
// with its real per-shard limits: every good row is in the stream exactly once, every bad row is
// counted as rejected, and the counts reconcile per file.
func TestProduceLocalStream(t *testing.T) {
	plain := genFile(t, "yellow_tripdata_2019-01.csv", gen.Options{Taxi: "yellow", Layout: 2019, Rows: 3000, Seed: 1, BadRowRate: 0.01})
	gz := genFile(t, "green_tripdata_2016-01.csv.gz", gen.Options{Taxi: "green", Layout: 2016, Rows: 2000, Seed: 2, Gzip: true})
	s, err := stream.New(stream.Config{Name: "trips", ShardCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := LocalInputs([]string{plain, filepath.Join(filepath.Dir(gz), "*.csv.gz")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var progress int
	sum, err := Run(context.Background(), s, inputs, Options{Stream: "trips", PartitionKeyField: "pu_location_id", Aggregate: true,
		FlushEvery: 1000, Progress: func(Progress) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.RowsRead != 5000 || sum.RowsRead != sum.Sent+sum.Rejected || sum.Failed != 0 {
		t.Errorf("summary %+v: want 5000 rows read = sent + rejected, none failed", sum)
	}
	if sum.Files[0].Rejected == 0 || sum.Files[1].Rejected != 0 {
		t.Errorf("rejected per file = %d, %d: want some in the file with bad rows, none in the other", sum.Files[0].Rejected, sum.Files[1].Rejected)
	}
	if sum.Producer.KinesisRecords >= sum.Sent/10 {
		t.Errorf("%d Kinesis records for %d rows: not aggregated", sum.Producer.KinesisRecords, sum.Sent)
	}
	if progress == 0 {
		t.Error("no progress reported")
	}
	checkOnce(t, readAll(t, s, "trips"), sum.Sent)
}

// TestProduceDryRun writes the records instead of sending them: one JSON line per converted row.
func TestProduceDryRun(t *testing.T) {
	path := genFile(t, "fhvhv_tripdata_2019-02.csv", gen.Options{Taxi: "fhvhv", Layout: 2019, Month: 2, Rows: 500, Seed: 3})
	inputs, err := LocalInputs([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := Run(context.Background(), nil, inputs, Options{DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"taxi_type":"fhvhv"`) {
			t.Fatalf("unexpected record: %s", sc.Text())
		}
		lines++
	}
	if int64(lines) != sum.Sent || sum.Sent != 500 {
		t.Errorf("%d lines, %d sent: want 500 each", lines, sum.Sent)
	}
}

// TestProduceInterrupted stops the run (Ctrl-C) part-way: what was read before the stop is flushed and
// reported, and the stream holds exactly the records the summary says were sent.
func TestProduceInterrupted(t *testing.T) {
	path := genFile(t, "yellow_tripdata_2019-01.csv", gen.Options{Taxi: "yellow", Layout: 2019, Rows: 20000, Seed: 4})
	s, err := stream.New(stream.Config{Name: "trips", ShardCount: 1, LimitsOff: true})
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := LocalInputs([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := Run(ctx, s, inputs, Options{Stream: "trips", Aggregate: true, FlushEvery: 500,
		Progress: func(p Progress) {
			if p.Sent >= 5000 {
				cancel() // Ctrl-C after the first flushes
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted {
		t.Fatal("run not marked interrupted")
	}
	if sum.Sent < 5000 || sum.Sent >= 20000 {
		t.Errorf("sent %d: want the rows read before the stop (at least 5000, fewer than 20000)", sum.Sent)
	}
	if sum.RowsRead != sum.Sent+sum.Rejected+sum.Failed {
		t.Errorf("rows read %d != sent %d + rejected %d + failed %d", sum.RowsRead, sum.Sent, sum.Rejected, sum.Failed)
	}
	checkOnce(t, readAll(t, s, "trips"), sum.Sent)
}

// TestProduceBadInputs: a missing file, a directory and a bad S3 URI are clear errors before anything is sent.
func TestProduceBadInputs(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"missing file": {filepath.Join(dir, "nope.csv")},
		"directory":    {dir},
	} {
		if _, err := LocalInputs(args, nil); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
	for _, uri := range []string{"s3:/bucket", "http://bucket/x", "s3://"} {
		if _, _, err := ParseS3URI(uri); err == nil {
			t.Errorf("ParseS3URI(%q): got no error", uri)
		}
	}
	if b, p, err := ParseS3URI("s3://my-bucket/raw/2019/"); err != nil || b != "my-bucket" || p != "raw/2019/" {
		t.Errorf("ParseS3URI = %q, %q, %v", b, p, err)
	}
}

// TestProduceKinesisMock produces a real TLC sample through the real SDK client into kinesis-mock and
// reads it back: the wire protocol, not the limits (kinesis-mock does not throttle).
func TestProduceKinesisMock(t *testing.T) {
	sample := filepath.Join(testenv.TLCDir(t), "samples", "yellow_rides_2020-07.csv")
	endpoint := testpeers.StartKinesisMock(t)
	c := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}, producer.ClientOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("trips"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("trips")})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream not active: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	inputs, err := LocalInputs([]string{sample}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(ctx, c, inputs, Options{Stream: "trips", PartitionKeyField: "pu_location_id", Aggregate: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.RowsRead != 266 || sum.Sent != 266 {
		t.Errorf("summary %+v: want 266 rows read and sent", sum)
	}
	checkOnce(t, readAll(t, c, "trips"), 266)
}

// cancellingProducer presses Ctrl-C (cancels) while its second flush is running.
type cancellingProducer struct {
	Producer
	cancel  context.CancelFunc
	flushes int
}

func (c *cancellingProducer) Flush(ctx context.Context) ([]producer.Failure, error) {
	if c.flushes++; c.flushes == 2 {
		c.cancel()
	}
	return c.Producer.Flush(ctx)
}

// TestProduceCtrlCDuringFlush: Ctrl-C while a periodic flush is under way does not fail what that
// flush holds: the flush goes on within the grace period, nothing is reported failed, and the stream
// holds exactly the records the summary says were sent.
func TestProduceCtrlCDuringFlush(t *testing.T) {
	path := genFile(t, "yellow_tripdata_2019-01.csv", gen.Options{Taxi: "yellow", Layout: 2019, Rows: 5000, Seed: 6})
	s, err := stream.New(stream.Config{Name: "trips", ShardCount: 1, LimitsOff: true})
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := LocalInputs([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := Run(ctx, s, inputs, Options{Stream: "trips", Aggregate: true, FlushEvery: 1000,
		NewProducer: func(ctx context.Context, c producer.Client, cfg producer.Config) (Producer, error) {
			p, err := producer.New(ctx, c, cfg)
			return &cancellingProducer{Producer: p, cancel: cancel}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Failed != 0 || sum.Sent < 2000 {
		t.Errorf("summary %+v: want interrupted, at least the 2,000 rows of two flushes sent, none failed", sum)
	}
	if sum.RowsRead != sum.Sent+sum.Rejected+sum.Failed {
		t.Errorf("rows read %d != sent %d + rejected %d + failed %d", sum.RowsRead, sum.Sent, sum.Rejected, sum.Failed)
	}
	checkOnce(t, readAll(t, s, "trips"), sum.Sent)
}

// TestS3InputsPinned reads a CSV and a Parquet object from an S3 prefix (gofakes3 over HTTP, the real
// SDK client) the way IngestFunction reads them: the records are those of the same files read locally
// with the same identity, every GET is pinned to the listed ETag and the Parquet file is read with ranged
// GETs. (gofakes3 does not evaluate If-Match on a GET: what a replaced object does is tested in
// internal/s3object against a fake that answers 412 like S3.)
func TestS3InputsPinned(t *testing.T) {
	csvBody, err := os.ReadFile(filepath.Join(testenv.TLCDir(t), "samples", "yellow_rides_2020-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pqBody, err := os.ReadFile(filepath.Join(testenv.TLCDir(t), "parquet", "green_tripdata_2024-01.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	s := testpeers.StartS3(t)
	s.CreateBucket(t, "trips")
	etags := map[string]string{
		"raw/a.csv":     s.Put(t, "trips", "raw/a.csv", csvBody),
		"raw/b.parquet": s.Put(t, "trips", "raw/b.parquet", pqBody),
	}
	s.Put(t, "trips", "raw/notes.txt", []byte("not a trip file"))
	ctx := context.Background()
	inputs, err := S3Inputs(ctx, s.NewClient(), "s3://trips/raw/")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != 2 || inputs[0].Name != "s3://trips/raw/a.csv" || inputs[1].Name != "s3://trips/raw/b.parquet" {
		t.Fatalf("inputs %+v, want raw/a.csv and raw/b.parquet", inputs)
	}
	dir := t.TempDir()
	for i, key := range []string{"raw/a.csv", "raw/b.parquet"} {
		// The same bytes read locally, with the identity (bucket, key, ETag) of the S3 object.
		local := filepath.Join(dir, filepath.Base(key))
		if err := os.WriteFile(local, map[string][]byte{"raw/a.csv": csvBody, "raw/b.parquet": pqBody}[key], 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := LocalInputs([]string{local}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[0].Source = inputs[i].Source
		var got, exp bytes.Buffer
		gs, err := Run(ctx, nil, inputs[i:i+1], Options{DryRun: true, Out: &got})
		if err != nil || gs.Files[0].Error != "" {
			t.Fatalf("%s: %v %+v", key, err, gs.Files)
		}
		if _, err := Run(ctx, nil, want, Options{DryRun: true, Out: &exp}); err != nil {
			t.Fatal(err)
		}
		if gs.RowsRead == 0 || got.String() != exp.String() {
			t.Errorf("%s: %d rows; the records differ from the same file read locally (%d vs %d bytes)", key, gs.RowsRead, got.Len(), exp.Len())
		}
		gets := 0
		for _, r := range s.Requests("/trips/" + key) {
			if r.Method != "GET" {
				continue
			}
			gets++
			if r.Header.Get("If-Match") != etags[key] {
				t.Errorf("GET %s with If-Match %q, want the listed ETag %s", key, r.Header.Get("If-Match"), etags[key])
			}
			if strings.HasSuffix(key, ".parquet") && !strings.HasPrefix(r.Header.Get("Range"), "bytes=") {
				t.Errorf("GET of the Parquet object without a Range: %v", r.Header)
			}
		}
		if gets == 0 {
			t.Errorf("no GET of %s recorded", key)
		}
	}

}

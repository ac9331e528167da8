package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/producer"
)

const (
	ingestBucket = "bench"
	ingestStream = "bench-ingest"
	ingestKey    = "raw/yellow_tripdata_2019-01.csv"
	// ingestStreamBytes bounds what the child's stream keeps in memory (oldest records trimmed): the
	// stream is where records go, not part of the function, so it must not grow with the object.
	ingestStreamBytes = 8 << 20
	unpaced           = 1e12 // bytes or records per second: no pacing
)

// IngestSection is IngestFunction end to end on objects of growing size.
type IngestSection struct {
	Skipped string      `json:"skipped,omitempty"`
	Setup   string      `json:"setup,omitempty"`
	Runs    []IngestRun `json:"runs,omitempty"`
}

// IngestRun is one object through IngestFunction, in its own process.
type IngestRun struct {
	Label          string  `json:"label"`
	RequestedBytes int64   `json:"requested_bytes"` // the size asked for (the generated object ends on a whole row)
	Bytes          int64   `json:"bytes"`
	RowsRead       int64   `json:"rows_read"`
	RecordsSent    int64   `json:"records_sent"`
	Rejected       int64   `json:"rejected"`
	KinesisRecords int64   `json:"kinesis_records"`
	KinesisBytes   int64   `json:"kinesis_bytes"`     // data + keys of the Kinesis records written
	KinesisMiBps   float64 `json:"kinesis_mib_per_s"` // data + keys written per second: the shards' worth one invocation feeds
	Wall           float64 `json:"wall_s"`
	CPU            float64 `json:"cpu_s"`
	RowsPerSec     float64 `json:"rows_per_s"`
	MBps           float64 `json:"mb_per_s"`
	CoresUsed      float64 `json:"cores_used"`     // CPU seconds per wall second
	PeakRSS        int64   `json:"peak_rss_bytes"` // VmHWM of the child
	MaxRSS         int64   `json:"maxrss_bytes"`   // ru_maxrss of the child (see childRun)
	// The same object through the converter alone (records to /dev/null), in its own process: the
	// conversion path's memory.
	ConvertPeakRSS int64   `json:"convert_peak_rss_bytes"`
	ConvertMBps    float64 `json:"convert_mb_per_s"`
	// The handler again with a Kinesis client that acknowledges every entry without keeping it: the
	// function's own memory, without the in-process stream's records and indexes.
	DiscardPeakRSS    int64   `json:"discard_kinesis_peak_rss_bytes"`
	DiscardRowsPerSec float64 `json:"discard_kinesis_rows_per_s"`
}

func runIngest(ctx context.Context, opts *Options, work string) (*IngestSection, error) {
	sec := &IngestSection{Setup: fmt.Sprintf("ingest.Handler on a local bucket (files on disk) and a 1-shard local stream with limits off "+
		"(keeping at most %d MiB of records) and the producer's pacing lifted; KPL aggregation on, partition key pu_location_id; one child process per object", ingestStreamBytes>>20)}
	if len(opts.Child) == 0 {
		sec.Skipped = skipf(opts, "%v", errNoChild)
		return sec, nil
	}
	sizes := []struct {
		label string
		bytes int64
	}{{fmt.Sprintf("%d MB", opts.MB), int64(opts.MB) * 1e6}}
	if opts.Big {
		sizes = append(sizes, struct {
			label string
			bytes int64
		}{"1 GiB", 1 << 30})
	}
	for i, sz := range sizes {
		dir := filepath.Join(work, fmt.Sprintf("bucket-%d", i))
		fmt.Fprintf(opts.Log, "   generating a %s object\n", sz.label)
		if err := putGenerated(ctx, dir, sz.bytes); err != nil {
			return nil, err
		}
		r, err := runChild(ctx, opts, childIngest, dir, ingestKey)
		var conv, disc childRun
		if err == nil {
			conv, err = runChild(ctx, opts, childConvert, filepath.Join(dir, filepath.FromSlash(ingestKey)))
		}
		if err == nil {
			disc, err = runChild(ctx, opts, childIngest, dir, ingestKey, "discard")
		}
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		run := IngestRun{
			Label: sz.label, RequestedBytes: sz.bytes, Bytes: r.Bytes, RowsRead: r.Rows, RecordsSent: r.Records, Rejected: r.Rejected,
			KinesisRecords: int64(r.Extra["kinesis_records"]), KinesisBytes: int64(r.Extra["kinesis_bytes"]), Wall: r.Wall, CPU: r.CPU, PeakRSS: r.PeakRSS, MaxRSS: r.MaxRSS,
			ConvertPeakRSS: conv.PeakRSS, DiscardPeakRSS: disc.PeakRSS,
		}
		if r.Wall > 0 {
			run.RowsPerSec = float64(r.Rows) / r.Wall
			run.MBps = float64(r.Bytes) / 1e6 / r.Wall
			run.CoresUsed = r.CPU / r.Wall
			run.KinesisMiBps = r.Extra["kinesis_bytes"] / (1 << 20) / r.Wall
		}
		if conv.Wall > 0 {
			run.ConvertMBps = float64(conv.Bytes) / 1e6 / conv.Wall
		}
		if disc.Wall > 0 {
			run.DiscardRowsPerSec = float64(disc.Rows) / disc.Wall
		}
		fmt.Fprintf(opts.Log, "   %s: %d rows in %.1f s: %.0f rows/s, %.1f MB/s, %.2f cores, peak RSS %.1f MiB (ru_maxrss %.1f MiB); "+
			"converter alone %.1f MiB; Kinesis discarding %.1f MiB, %.0f rows/s\n",
			sz.label, run.RowsRead, run.Wall, run.RowsPerSec, run.MBps, run.CoresUsed, mib(run.PeakRSS), mib(run.MaxRSS),
			mib(run.ConvertPeakRSS), mib(run.DiscardPeakRSS), run.DiscardRowsPerSec)
		sec.Runs = append(sec.Runs, run)
	}
	return sec, nil
}

// putGenerated streams a generated CSV of about size bytes into a new local bucket at dir.
func putGenerated(ctx context.Context, dir string, size int64) error {
	rows, err := rowsFor(size)
	if err != nil {
		return err
	}
	b, err := bucket.Open(dir, ingestBucket)
	if err != nil {
		return err
	}
	defer b.Close()
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		_, err := gen.Write(w, genOptions(rows))
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err)
	}()
	_, err = b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(ingestBucket), Key: aws.String(ingestKey), Body: pr})
	pr.Close()
	if err != nil {
		return fmt.Errorf("putting the generated object: %w", err)
	}
	return nil
}

// discardKinesis is the local stream for everything but PutRecords, which it acknowledges without
// storing anything.
type discardKinesis struct{ *stream.Stream }

func (d discardKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0), Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i := range out.Records {
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(stream.ShardID(0)), SequenceNumber: aws.String(fmt.Sprintf("4959%020d%032d", i, 0))}
	}
	return out, nil
}

// noInvoker is the Lambda client of the measured handler: the benchmark has no deadline, so the handler
// never hands over to a continuation; an Invoke would be a bug.
type noInvoker struct{}

func (noInvoker) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	return nil, fmt.Errorf("unexpected invoke of %s", aws.ToString(in.FunctionName))
}

// childIngestObject runs IngestFunction's handler on key of the local bucket at dir.
// With discard, PutRecords acknowledges every entry without storing it.
func childIngestObject(ctx context.Context, dir, key string, discard bool) (childResult, error) {
	b, err := bucket.Open(dir, ingestBucket)
	if err != nil {
		return childResult{}, err
	}
	defer b.Close()
	s, err := stream.New(stream.Config{Name: ingestStream, ShardCount: 1, LimitsOff: true, MaxBytes: ingestStreamBytes})
	if err != nil {
		return childResult{}, err
	}
	var kin producer.Client = s
	if discard {
		kin = discardKinesis{s}
	}
	env := map[string]string{"BUCKET_NAME": ingestBucket, "STREAM_NAME": ingestStream, "AWS_LAMBDA_FUNCTION_NAME": "IngestFunction"}
	cfg, err := config.Load(func(k string) string { return env[k] }, config.Ingest)
	if err != nil {
		return childResult{}, err
	}
	h, err := ingest.New(ctx, cfg, ingest.Deps{
		S3: b, Kinesis: kin, Lambda: noInvoker{},
		Log: slog.New(slog.DiscardHandler), Metrics: io.Discard,
		// The producer paces every shard at its write limit: through one shard the whole path would run
		// at 1 MiB/s (the saturation section measures that). Pacing is lifted here so that the measure
		// is what one invocation can do, i.e. how many shards' worth it can feed.
		NewProducer: func(ctx context.Context, c producer.Client, pc producer.Config) (ingest.RecordProducer, error) {
			pc.ShardBytesPerSecond, pc.ShardRecordsPerSecond = unpaced, unpaced
			return producer.New(ctx, c, pc)
		},
	})
	if err != nil {
		return childResult{}, err
	}
	head, err := b.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(ingestBucket), Key: aws.String(key)})
	if err != nil {
		return childResult{}, err
	}
	size := aws.ToInt64(head.ContentLength)
	etag := strings.Trim(aws.ToString(head.ETag), `"`)
	var ev []byte
	if discard {
		// The first run's manifest says the object is done: a replay is the way to ingest it again.
		ev, err = json.Marshal(ingest.Event{Kind: ingest.KindReplay, Bucket: ingestBucket, Key: key, ETag: etag, Size: size, ReplayID: "bench-discard"})
	} else {
		ev, err = json.Marshal(events.S3Event{Records: []events.S3EventRecord{{
			EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: "us-east-1", EventName: "ObjectCreated:Put",
			EventTime: time.Now().UTC(),
			S3: events.S3Entity{
				Bucket: events.S3Bucket{Name: ingestBucket, Arn: "arn:aws:s3:::" + ingestBucket},
				Object: events.S3Object{Key: key, Size: size, ETag: etag},
			},
		}}})
	}
	if err != nil {
		return childResult{}, err
	}

	start, cpu0 := time.Now(), cpuNow()
	res, err := h.Handle(ctx, ev)
	wall, cpu := time.Since(start), cpuNow()-cpu0
	if err != nil {
		return childResult{}, fmt.Errorf("ingesting %s: %w", key, err)
	}
	if len(res.Objects) != 1 || res.Objects[0].Outcome != ingest.OutcomeDone {
		return childResult{}, fmt.Errorf("ingesting %s: %+v", key, res)
	}
	o := res.Objects[0]
	st := s.Stats()
	return childResult{
		Rows: o.RowsRead, Records: o.RecordsSent, Rejected: o.Rejected, Bytes: size,
		Wall: wall.Seconds(), CPU: cpu.Seconds(),
		Extra: map[string]float64{"kinesis_records": float64(st.RecordsStored), "kinesis_bytes": float64(st.BytesStored)},
	}, nil
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/producer"
)

const (
	// consumerBatchRecords is the template's default BatchSize: Kinesis records (aggregates) per invoke.
	consumerBatchRecords = 100
	consumerShard        = "shardId-000000000000"
	consumerStreamARN    = "arn:aws:kinesis:us-east-1:000000000000:stream/bench"
	consumerWindow       = 300 * time.Second // the template's default TumblingWindowSeconds
)

// ConsumerResult is ProcessFunction's throughput on one core.
type ConsumerResult struct {
	Skipped     string  `json:"skipped,omitempty"`
	Setup       string  `json:"setup,omitempty"`
	Trips       int64   `json:"trips"` // trips processed (distinct trips × passes)
	Invokes     int64   `json:"invokes"`
	OutputBytes int64   `json:"output_bytes"` // bytes PutObject received (Parquet, quarantine, zone stats)
	Wall        float64 `json:"wall_s"`
	CPU         float64 `json:"cpu_s"`
	TripsPerSec float64 `json:"trips_per_s"`     // per wall second, GOMAXPROCS=1
	TripsPerCPU float64 `json:"trips_per_cpu_s"` // per CPU second: per core
	CoresUsed   float64 `json:"cores_used"`
	// HandleWall is the wall time inside the handler's Invoke (event decode, Handle, response encode;
	// the rest is building each payload and reading the response); TripsPerHandleSec is trips per second of it.
	HandleWall        float64 `json:"handle_wall_s"`
	TripsPerHandleSec float64 `json:"trips_per_handle_s"`
	Zones             bool    `json:"zones"` // the zone lookup was loaded (enrichment with borough and zone names)
	PeakRSS           int64   `json:"peak_rss_bytes"`
}

func runConsumer(ctx context.Context, opts *Options) (*ConsumerResult, error) {
	res := &ConsumerResult{}
	if len(opts.Child) == 0 {
		res.Skipped = skipf(opts, "%v", errNoChild)
		return res, nil
	}
	zones := filepath.Join(opts.SharedDir, "data", "tlc", "zones", "taxi_zone_lookup_2024.csv")
	if !fileExists(zones) {
		fmt.Fprintf(opts.Log, "   no zone lookup at %s: enrichment without zone names\n", zones)
		zones = ""
	}
	r, err := runChild(ctx, opts, childConsumer, "-trips", fmt.Sprint(opts.ConsumerTrips),
		"-seconds", fmt.Sprint(opts.ConsumerSeconds), "-zones", zones)
	if err != nil {
		return nil, err
	}
	res.Setup = fmt.Sprintf("process.Handler, GOMAXPROCS=1, %d generated trips in KPL aggregates of up to %d KiB, %d aggregates per invoke, "+
		"tumbling window state carried between invokes, raw event JSON passed to Handler.Invoke (as lambda.Start(h) does) inside the timed loop, S3 PutObject discarding",
		opts.ConsumerTrips, producer.DefaultAggregateMaxBytes>>10, consumerBatchRecords)
	res.Trips = r.Rows
	res.Invokes, res.OutputBytes = int64(r.Extra["invokes"]), int64(r.Extra["output_bytes"])
	res.Zones = r.Extra["zones"] > 0
	res.Wall, res.CPU, res.PeakRSS = r.Wall, r.CPU, r.PeakRSS
	if r.Wall > 0 {
		res.TripsPerSec = float64(r.Rows) / r.Wall
		res.CoresUsed = r.CPU / r.Wall
	}
	if res.HandleWall = r.Extra["handle_s"]; res.HandleWall > 0 {
		res.TripsPerHandleSec = float64(r.Rows) / res.HandleWall
	}
	if r.CPU > 0 {
		res.TripsPerCPU = float64(r.Rows) / r.CPU
	}
	fmt.Fprintf(opts.Log, "   %d trips in %.1f s: %.0f trips/s (wall), %.0f trips/cpu-s, %.2f cores, %d invokes\n",
		res.Trips, res.Wall, res.TripsPerSec, res.TripsPerCPU, res.CoresUsed, res.Invokes)
	return res, nil
}

// discardS3 is the consumer's S3: it reads and counts what is written, and keeps only what is written
// under state/ (ProcessFunction's ledger, read back by the next batch); other keys read as missing.
type discardS3 struct {
	bytes atomic.Int64
	mu    sync.Mutex
	state map[string][]byte
}

func (d *discardS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	if strings.HasPrefix(key, "state/") {
		b, err := io.ReadAll(in.Body)
		d.bytes.Add(int64(len(b)))
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.state == nil {
			d.state = map[string][]byte{}
		}
		d.state[key] = b
		return &s3.PutObjectOutput{ETag: aws.String(`"bench"`)}, err
	}
	n, err := io.Copy(io.Discard, in.Body)
	d.bytes.Add(n)
	return &s3.PutObjectOutput{ETag: aws.String(`"bench"`)}, err
}

func (d *discardS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.state[aws.ToString(in.Key)]; ok {
		return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ETag: aws.String(`"bench"`)}, nil
	}
	return nil, &s3types.NoSuchKey{Message: aws.String("bench: no object " + aws.ToString(in.Key))}
}

// childConsume feeds generated trips to ProcessFunction's handler on one core.
// With profile set, the timed loop is CPU-profiled into that file (for finding where the time goes:
// taxistream bench --child consumer -cpuprofile FILE, then go tool pprof).
func childConsume(ctx context.Context, trips int, minSeconds float64, zonesPath, profile string) (childResult, error) {
	runtime.GOMAXPROCS(1)
	batches, n, err := consumerBatches(trips)
	if err != nil {
		return childResult{}, err
	}
	var zones *process.Zones
	if zonesPath != "" {
		f, err := os.Open(zonesPath)
		if err != nil {
			return childResult{}, err
		}
		zones, err = process.LoadZones(f)
		f.Close()
		if err != nil {
			return childResult{}, err
		}
	}
	store := &discardS3{}
	h, err := process.New(ctx, config.Config{Bucket: "bench", MetricsNamespace: "taxistream", LogLevel: "ERROR"},
		process.Deps{S3: store, Log: slog.New(slog.DiscardHandler), Metrics: io.Discard, Zones: zones})
	if err != nil {
		return childResult{}, err
	}
	runtime.GC()

	res := childResult{Extra: map[string]float64{}}
	var state map[string]string
	var handle time.Duration
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return childResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return childResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	// Each event is marshalled with "state":null; every invoke gets the state the previous one
	// returned spliced in, as the event source mapping does.
	statePlace := []byte(`"state":null`)
	stateAt := make([]int, len(batches))
	for i, raw := range batches {
		if stateAt[i] = bytes.LastIndex(raw, statePlace); stateAt[i] < 0 {
			return childResult{}, errors.New("consumer event without a state member")
		}
	}
	var payload []byte
	start, cpu0 := time.Now(), cpuNow()
	for pass := 0; pass == 0 || time.Since(start).Seconds() < minSeconds; pass++ {
		for i, raw := range batches {
			at := stateAt[i]
			st, err := json.Marshal(state)
			if err != nil {
				return childResult{}, err
			}
			payload = append(append(append(append(payload[:0], raw[:at]...), `"state":`...), st...), raw[at+len(statePlace):]...)
			t := time.Now()
			// The handler's lambda.Handler entry point: lambda.Start(h) hands it the raw payload.
			out, err := h.Invoke(ctx, payload)
			handle += time.Since(t)
			if err != nil {
				return childResult{}, fmt.Errorf("processing a batch: %w", err)
			}
			var resp events.KinesisTimeWindowEventResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				return childResult{}, fmt.Errorf("decoding a response: %w", err)
			}
			if len(resp.BatchItemFailures) > 0 {
				return childResult{}, fmt.Errorf("processing a batch: %d batch item failures", len(resp.BatchItemFailures))
			}
			state = resp.State
			res.Extra["invokes"]++
		}
		res.Rows += int64(n)
	}
	res.Wall, res.CPU = time.Since(start).Seconds(), (cpuNow() - cpu0).Seconds()
	res.Extra["output_bytes"] = float64(store.bytes.Load())
	res.Extra["handle_s"] = handle.Seconds()
	if zones != nil {
		res.Extra["zones"] = 1
	}
	return res, nil
}

// consumerBatches builds the Lambda events (JSON, as the runtime receives them) of n generated trips,
// aggregated the way the producer aggregates them.
func consumerBatches(n int) ([][]byte, int, error) {
	recs, err := genRecords(n)
	if err != nil {
		return nil, 0, err
	}
	now := time.Now().UTC()
	winStart := now.Truncate(consumerWindow)
	var (
		kin  []events.KinesisEventRecord
		agg  kpl.Aggregator
		seq  int64
		out  [][]byte
		emit = func() {
			if agg.Len() == 0 {
				return
			}
			seq++
			sn := fmt.Sprintf("4959%020d%032d", seq, 0)
			kin = append(kin, events.KinesisEventRecord{
				AwsRegion: "us-east-1", EventID: consumerShard + ":" + sn, EventName: "aws:kinesis:record",
				EventSource: "aws:kinesis", EventSourceArn: consumerStreamARN, EventVersion: "1.0",
				Kinesis: events.KinesisRecord{
					ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: now},
					Data:                        agg.AppendTo(nil), PartitionKey: "0", SequenceNumber: sn, KinesisSchemaVersion: "1.0",
				},
			})
			agg.Reset()
		}
	)
	flushBatch := func() error {
		if len(kin) == 0 {
			return nil
		}
		b, err := json.Marshal(events.KinesisTimeWindowEvent{
			KinesisEvent: events.KinesisEvent{Records: kin},
			TimeWindowProperties: events.TimeWindowProperties{
				Window:  events.Window{Start: events.RFC3339EpochTime{Time: winStart}, End: events.RFC3339EpochTime{Time: winStart.Add(consumerWindow)}},
				ShardID: consumerShard, EventSourceARN: consumerStreamARN,
			},
		})
		if err != nil {
			return err
		}
		out = append(out, b)
		kin = nil
		return nil
	}
	for _, r := range recs {
		u := kpl.UserRecord{PartitionKey: r.Key, Data: r.JSON}
		if agg.Len() > 0 && agg.SizeWith(u) > producer.DefaultAggregateMaxBytes {
			emit()
			if len(kin) == consumerBatchRecords {
				if err := flushBatch(); err != nil {
					return nil, 0, err
				}
			}
		}
		agg.Add(u)
	}
	emit()
	if err := flushBatch(); err != nil {
		return nil, 0, err
	}
	return out, len(recs), nil
}

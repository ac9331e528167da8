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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/convert"
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
	// Historic is the cost of zone shapes: the same 2015 trips (coordinates, no zone ids) with and
	// without ZONE_SHAPES, side by side.
	Historic *HistoricConsumer `json:"historic,omitempty"`
}

// HistoricConsumer compares ProcessFunction on trips that carry coordinates instead of zone ids, without
// and with zone shapes (issue 18: at most 10 % fewer trips per CPU second with them). Rounds alternate
// the order of the two children; the medians are compared.
type HistoricConsumer struct {
	Skipped       string    `json:"skipped,omitempty"`
	Input         string    `json:"input,omitempty"`  // the trip CSV (../shared's 2015 sample), repeated under new keys
	Shapes        string    `json:"shapes,omitempty"` // the zone shapes file
	Trips         int       `json:"trips"`            // distinct trips per child
	Without       []float64 `json:"without_trips_per_cpu_s"`
	With          []float64 `json:"with_trips_per_cpu_s"`
	WithoutMedian float64   `json:"without_median"`
	WithMedian    float64   `json:"with_median"`
	DropPercent   float64   `json:"drop_percent"` // (without − with) / without × 100, of the medians
	Located       bool      `json:"located"`      // the with-shapes child loaded the shapes
}

// historicRounds is how many without/with pairs run (quick: 1).
const historicRounds = 3

func runHistoric(ctx context.Context, opts *Options, zones string) (*HistoricConsumer, error) {
	res := &HistoricConsumer{
		Input:  filepath.Join(opts.SharedDir, "data", "tlc", "samples", "yellow_tripdata_2015-01_head.csv"),
		Shapes: filepath.Join(opts.SharedDir, "data", "tlc", "zones", "taxi_zones.zip"),
		Trips:  opts.ConsumerTrips,
	}
	if !fileExists(res.Input) || !fileExists(res.Shapes) {
		res.Skipped = fmt.Sprintf("no %s or %s (../shared)", res.Input, res.Shapes)
		return res, nil
	}
	rounds := historicRounds
	if opts.Quick {
		rounds = 1
	}
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, with := range order {
			args := []string{childConsumer, "-trips", fmt.Sprint(opts.ConsumerTrips), "-seconds", fmt.Sprint(opts.ConsumerSeconds),
				"-zones", zones, "-input", res.Input}
			if with {
				args = append(args, "-shapes", res.Shapes)
			}
			c, err := runChild(ctx, opts, args...)
			if err != nil {
				return nil, err
			}
			if c.CPU <= 0 {
				return nil, errors.New("consumer child reported no CPU time")
			}
			tps := float64(c.Rows) / c.CPU
			if with {
				res.With = append(res.With, tps)
				res.Located = c.Extra["shapes"] > 0
			} else {
				res.Without = append(res.Without, tps)
			}
			label := "without"
			if with {
				label = "with"
			}
			fmt.Fprintf(opts.Log, "   2015 trips %s zone shapes: %.0f trips/cpu-s\n", label, tps)
		}
	}
	res.WithoutMedian, res.WithMedian = median(res.Without), median(res.With)
	if res.WithoutMedian > 0 {
		res.DropPercent = (res.WithoutMedian - res.WithMedian) / res.WithoutMedian * 100
	}
	return res, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
	if res.Historic, err = runHistoric(ctx, opts, zones); err != nil {
		return nil, err
	}
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

// forgetState drops what was written under state/.
func (d *discardS3) forgetState() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.state)
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
// consumeOptions are the consumer child's flags.
type consumeOptions struct {
	trips      int
	minSeconds float64
	minPasses  int    // at least this many passes (1 when 0)
	zones      string // zone lookup CSV
	profile    string
	input      string // trip CSV (default: generated 2019 rows)
	shapes     string // zone shapes for trips with coordinates only
}

func childConsume(ctx context.Context, o consumeOptions) (childResult, error) {
	trips, minSeconds, profile := o.trips, o.minSeconds, o.profile
	runtime.GOMAXPROCS(1)
	recs, err := consumerRecords(o.input, trips)
	if err != nil {
		return childResult{}, err
	}
	batches, n, err := consumerBatches(recs)
	if err != nil {
		return childResult{}, err
	}
	var zones *process.Zones
	if o.zones != "" {
		f, err := os.Open(o.zones)
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
	// The shapes are loaded by New, as at a cold start (ZONE_SHAPES).
	h, err := process.New(ctx, config.Config{Bucket: "bench", MetricsNamespace: "taxistream", LogLevel: "ERROR", ZoneShapes: o.shapes},
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
	for pass := 0; pass < max(o.minPasses, 1) || time.Since(start).Seconds() < minSeconds; pass++ {
		// Every pass sends the same sequence numbers again: forget the shard's ledger, or its
		// high-water mark would skip them all as redeliveries (ledger.go: to process a shard again on
		// purpose, delete processed/ and state/process/ together; processed/ is not kept here).
		store.forgetState()
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
	if o.shapes != "" {
		res.Extra["shapes"] = 1
	}
	return res, nil
}

// consumerRecords returns n trips as converted records: generated 2019 rows, or the rows of the trip CSV
// at input converted again and again under new object keys (so record ids differ) until there are n.
func consumerRecords(input string, n int) ([]record, error) {
	if input == "" {
		return genRecords(n)
	}
	raw, err := os.ReadFile(input)
	if err != nil {
		return nil, err
	}
	var out []record
	for pass := 0; len(out) < n; pass++ {
		rr, err := convert.NewCSVReader(bytes.NewReader(raw), convert.Options{Source: convert.Source{
			Bucket: "bench", Key: fmt.Sprintf("raw/%d/%s", pass, filepath.Base(input)), Version: "v1"}})
		if err != nil {
			return nil, fmt.Errorf("converting %s: %w", input, err)
		}
		before := len(out)
		for len(out) < n {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			var re *convert.RowError
			if errors.As(err, &re) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("converting %s: %w", input, err)
			}
			key := rr.Value("pu_location_id")
			if key == "" {
				key = "0"
			}
			out = append(out, record{JSON: bytes.Clone(rec.JSON), Key: key})
		}
		if len(out) == before {
			return nil, fmt.Errorf("converting %s: no records", input)
		}
	}
	return out, nil
}

// consumerBatches builds the Lambda events (JSON, as the runtime receives them) of the records,
// aggregated the way the producer aggregates them.
func consumerBatches(recs []record) ([][]byte, int, error) {
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

package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/producer"
)

// SaturationOptions configure one saturation run.
type SaturationOptions struct {
	Aggregate bool
	// Duration is the measured time, rounded up to whole seconds: the local stream counts its limits in
	// one-second windows aligned to the Unix second, so the measured interval is made of whole windows.
	Duration time.Duration
	// Warmup runs before the measured interval (default 2 s; the CLI uses 5 s): the producer starts
	// with full token buckets, and its first seconds are not what a long run looks like.
	Warmup time.Duration
	Trips  int // distinct generated trips, cycled (default 20,000)
}

// SaturationResult is what one shard of the local stream (real limits) accepted from the producer.
type SaturationResult struct {
	Aggregate bool    `json:"aggregate"`
	Seconds   float64 `json:"seconds"` // measured interval
	// Per second over the measured interval, as stored by the stream.
	BytesPerSec   float64 `json:"bytes_per_s"`   // data + partition key
	MiBPerSec     float64 `json:"mib_per_s"`     // the same in MiB
	RecordsPerSec float64 `json:"records_per_s"` // Kinesis records (an aggregate counts once)
	TripsPerSec   float64 `json:"trips_per_s"`   // user records: Kinesis records × user records per Kinesis record of the run
	ByteShare     float64 `json:"byte_share"`    // of 1 MiB/s
	RecordShare   float64 `json:"record_share"`  // of 1,000 records/s
	// Entries sent in the interval (stored + throttled) and the throttled ones.
	Entries        int64   `json:"entries"`
	Throttled      int64   `json:"throttled"`
	ThrottledShare float64 `json:"throttled_share"`
	// The whole run from the producer's first Put to the end of the interval (warm-up included): the
	// start-up burst and its throttling show here.
	RunSeconds        float64 `json:"run_seconds"`
	RunByteShare      float64 `json:"run_byte_share"`
	RunThrottledShare float64 `json:"run_throttled_share"`
	// The producer's counters over the whole run.
	Producer producer.Stats `json:"producer"`
}

// SaturationSection is the aggregated and the plain run side by side.
type SaturationSection struct {
	Skipped    string            `json:"skipped,omitempty"`
	Aggregated *SaturationResult `json:"aggregated,omitempty"`
	Plain      *SaturationResult `json:"plain,omitempty"`
}

func runSaturation(ctx context.Context, opts *Options) (*SaturationSection, error) {
	sec := &SaturationSection{}
	warm := 5 * time.Second
	if opts.Quick {
		warm = time.Second
	}
	for _, agg := range []bool{true, false} {
		r, err := Saturate(ctx, SaturationOptions{Aggregate: agg, Duration: opts.SaturationDuration, Warmup: warm})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(opts.Log, "   aggregate=%-5v %.3f MiB/s (%.1f %% of 1 MiB/s), %.0f records/s (%.1f %% of 1,000), %.0f trips/s, throttled %.2f %% of %d entries; "+
			"whole run incl. warm-up: %.1f %% of 1 MiB/s, %.2f %% throttled\n",
			agg, r.MiBPerSec, 100*r.ByteShare, r.RecordsPerSec, 100*r.RecordShare, r.TripsPerSec, 100*r.ThrottledShare, r.Entries,
			100*r.RunByteShare, 100*r.RunThrottledShare)
		if agg {
			sec.Aggregated = &r
		} else {
			sec.Plain = &r
		}
	}
	return sec, nil
}

// Saturate writes generated trips as fast as the producer accepts them into a one-shard local stream
// with the real per-shard limits (1 MiB/s, 1,000 records/s, per-entry throttling), in real time, and
// measures what the shard stored and refused over whole one-second windows.
func Saturate(ctx context.Context, o SaturationOptions) (SaturationResult, error) {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Trips <= 0 {
		o.Trips = 20_000
	}
	recs, err := genRecords(o.Trips)
	if err != nil {
		return SaturationResult{}, err
	}
	// The stream counts its limits in the Unix second of its clock: w records, for each PutRecords, the
	// second the stream itself used, so what is measured is exactly what the stream stored in whole
	// windows, however late this process gets to run on a loaded machine.
	w := &windowCounter{}
	s, err := stream.New(stream.Config{Name: "bench-saturation", ShardCount: 1, MaxBytes: 64 << 20, Now: w.now})
	if err != nil {
		return SaturationResult{}, err
	}
	w.Stream = s
	p, err := producer.New(ctx, w, producer.Config{StreamName: "bench-saturation", Aggregate: o.Aggregate})
	if err != nil {
		return SaturationResult{}, err
	}
	secs := (o.Duration + time.Second - 1) / time.Second
	start := time.Now().Truncate(time.Second) // the window the first Put falls in
	t0 := time.Now().Add(o.Warmup).Truncate(time.Second).Add(time.Second)
	t1 := t0.Add(secs * time.Second)
	w.t0, w.t1 = t0.Unix(), t1.Unix()

	// The run has no deadline (the producer would give up a backoff that passes it); it is cancelled
	// once t1 has passed (a late cancel only writes more outside the measured windows).
	putCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopAtT1 := time.AfterFunc(time.Until(t1), cancel)
	defer stopAtT1.Stop()
	var putErr error
	for i := 0; ; i++ {
		r := recs[i%len(recs)]
		if err := p.Put(putCtx, producer.Entry{Data: r.JSON, PartitionKey: r.Key, Tag: int64(i)}); err != nil {
			if putCtx.Err() == nil {
				putErr = err
				cancel()
			}
			break
		}
	}
	cancel()
	_, _ = p.Flush(putCtx) // drops what is still buffered: the measured interval is over
	if putErr != nil {
		return SaturationResult{}, fmt.Errorf("putting: %w", putErr)
	}
	if err := ctx.Err(); err != nil {
		return SaturationResult{}, err
	}
	in, run := w.totals()

	ps := p.Stats()
	d := float64(secs)
	res := SaturationResult{
		Aggregate:     o.Aggregate,
		Seconds:       d,
		BytesPerSec:   float64(in.bytes) / d,
		RecordsPerSec: float64(in.records) / d,
		Throttled:     in.throttled,
		Producer:      ps,
	}
	res.MiBPerSec = res.BytesPerSec / (1 << 20)
	res.ByteShare = res.BytesPerSec / kinesislimit.ShardWriteBytesPerSecond
	res.RecordShare = res.RecordsPerSec / kinesislimit.ShardWriteRecordsPerSecond
	res.Entries = in.records + in.throttled
	if res.Entries > 0 {
		res.ThrottledShare = float64(res.Throttled) / float64(res.Entries)
	}
	if res.RunSeconds = t1.Sub(start).Seconds(); res.RunSeconds > 0 {
		res.RunByteShare = float64(run.bytes) / res.RunSeconds / kinesislimit.ShardWriteBytesPerSecond
	}
	if n := run.records + run.throttled; n > 0 {
		res.RunThrottledShare = float64(run.throttled) / float64(n)
	}
	if ps.KinesisRecords > 0 {
		res.TripsPerSec = res.RecordsPerSec * float64(ps.UserRecords) / float64(ps.KinesisRecords)
	}
	return res, nil
}

// windowCounter wraps the local stream for the producer and adds up, per PutRecords, what the stream
// stored and throttled, by the Unix second the stream's clock gave that request: in [t0, t1) (the
// measured windows) and before t1 (the whole run). The producer calls it from one goroutine.
type windowCounter struct {
	*stream.Stream
	t0, t1 int64
	last   atomic.Int64 // Unix second of the stream's latest clock reading
	mu     sync.Mutex
	in     windowTotals
	run    windowTotals
}

type windowTotals struct{ records, bytes, throttled int64 }

func (w *windowCounter) now() time.Time {
	t := time.Now()
	w.last.Store(t.Unix())
	return t
}

func (w *windowCounter) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := w.Stream.PutRecords(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	sec := w.last.Load() // the reading of this request: PutRecords reads the clock once, under its lock
	var t windowTotals
	for i, r := range out.Records {
		switch {
		case r.ErrorCode == nil:
			t.records++
			t.bytes += int64(len(in.Records[i].Data) + len(aws.ToString(in.Records[i].PartitionKey)))
		case *r.ErrorCode == "ProvisionedThroughputExceededException":
			t.throttled++
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if sec < w.t1 {
		w.run.records, w.run.bytes, w.run.throttled = w.run.records+t.records, w.run.bytes+t.bytes, w.run.throttled+t.throttled
		if sec >= w.t0 {
			w.in.records, w.in.bytes, w.in.throttled = w.in.records+t.records, w.in.bytes+t.bytes, w.in.throttled+t.throttled
		}
	}
	return out, nil
}

func (w *windowCounter) totals() (in, run windowTotals) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.in, w.run
}

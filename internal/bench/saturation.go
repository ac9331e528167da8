package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

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
	s, err := stream.New(stream.Config{Name: "bench-saturation", ShardCount: 1, MaxBytes: 64 << 20})
	if err != nil {
		return SaturationResult{}, err
	}
	p, err := producer.New(ctx, s, producer.Config{StreamName: "bench-saturation", Aggregate: o.Aggregate})
	if err != nil {
		return SaturationResult{}, err
	}
	secs := (o.Duration + time.Second - 1) / time.Second
	start := time.Now().Truncate(time.Second) // the window the first Put falls in
	t0 := time.Now().Add(o.Warmup).Truncate(time.Second).Add(time.Second)
	t1 := t0.Add(secs * time.Second)

	// The stream is safe for concurrent use: snapshot its counters at the window boundaries from here,
	// while the producer (not safe for concurrent use) runs alone in the loop below. The run has no
	// deadline (the producer would give up a backoff that passes it); it is cancelled at t1.
	putCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		s0, s1 stream.Stats
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		select {
		case <-time.After(time.Until(t0)):
		case <-putCtx.Done():
			return
		}
		s0 = s.Stats()
		select {
		case <-time.After(time.Until(t1)):
		case <-putCtx.Done():
			return
		}
		s1 = s.Stats()
	}()
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
	wg.Wait()
	if putErr != nil {
		return SaturationResult{}, fmt.Errorf("putting: %w", putErr)
	}
	if err := ctx.Err(); err != nil {
		return SaturationResult{}, err
	}

	ps := p.Stats()
	d := float64(secs)
	res := SaturationResult{
		Aggregate:     o.Aggregate,
		Seconds:       d,
		BytesPerSec:   float64(s1.BytesStored-s0.BytesStored) / d,
		RecordsPerSec: float64(s1.RecordsStored-s0.RecordsStored) / d,
		Throttled:     s1.Throttled - s0.Throttled,
		Producer:      ps,
	}
	res.MiBPerSec = res.BytesPerSec / (1 << 20)
	res.ByteShare = res.BytesPerSec / kinesislimit.ShardWriteBytesPerSecond
	res.RecordShare = res.RecordsPerSec / kinesislimit.ShardWriteRecordsPerSecond
	res.Entries = s1.RecordsStored - s0.RecordsStored + res.Throttled
	if res.Entries > 0 {
		res.ThrottledShare = float64(res.Throttled) / float64(res.Entries)
	}
	if res.RunSeconds = t1.Sub(start).Seconds(); res.RunSeconds > 0 {
		res.RunByteShare = float64(s1.BytesStored) / res.RunSeconds / kinesislimit.ShardWriteBytesPerSecond
	}
	if n := s1.RecordsStored + s1.Throttled; n > 0 {
		res.RunThrottledShare = float64(s1.Throttled) / float64(n)
	}
	if ps.KinesisRecords > 0 {
		res.TripsPerSec = res.RecordsPerSec * float64(ps.UserRecords) / float64(ps.KinesisRecords)
	}
	return res, nil
}

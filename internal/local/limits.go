package local

import (
	"context"
	"time"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/producer"
)

// What Options.LimitsOff turns off, besides the stream's own write and read limits (stream.Config
// LimitsOff):
//
//   - the producer's pacing: IngestFunction (and so the replay) writes as fast as it converts, in
//     requests of the PutRecords maximum (500 entries, 5 MiB), instead of 1 MiB/s and 1,000 records/s
//     per shard;
//   - the waits that exist because of the read limit (5 GetRecords calls per shard per second): the
//     event source mapping and Firehose poll every limitsOffPollInterval instead of every 500 ms;
//   - the event source mapping's batching window: a batch goes as soon as the shard has records,
//     instead of waiting up to MaximumBatchingWindowInSeconds for a fuller one; and, as there is no
//     read limit, it reads the shard again before a batch that is not full (esm.Config.ReadAhead), so
//     that a batch never waits for the next poll and batches are full;
//   - the wait for the pipeline to be idle before Drain closes the tumbling windows and flushes
//     Firehose: three quiet looks limitsOffPollInterval apart instead of 100 ms apart;
//   - Lambda's 6 MB synchronous payload limit (limitsOffPayload): a ProcessFunction batch holds the
//     template's BatchSize records, where 6 MB of event JSON (base64 data) stops at about 70 KPL
//     aggregates of 64 KiB. Fewer, fuller batches write fewer and larger Parquet objects.
//
// The other sizes stay as on AWS (records, requests, BatchSize, Firehose buffers, asynchronous
// payloads): they decide what the functions see, not how fast it flows.

// limitsOffPollInterval is how often Firehose and the event source mapping poll with limits off.
const limitsOffPollInterval = 20 * time.Millisecond

// limitsOffPayload is the synchronous payload limit with limits off: 1 GiB, far above a batch of the
// template's settings (100 KPL aggregates of 64 KiB are ~9 MB of event JSON), yet a bound on memory
// if BatchSize is raised to 10,000 records of up to 1 MiB.
const limitsOffPayload = 1 << 30

// syncPayloadLimit is Lambda's synchronous payload limit for the local cloud: 0 (the package default,
// 6 MB) with limits on.
func syncPayloadLimit(limitsOff bool) int {
	if limitsOff {
		return limitsOffPayload
	}
	return 0
}

// idleCheckInterval is how often WaitIdle looks whether the pipeline is busy. With limits off a run
// may last half a second, and Drain's first three quiet looks (before it flushes Firehose and closes
// the tumbling windows, the run's last outputs) are in what it takes: 6 ms, not 60. A look takes a
// few locks (microseconds). Every step of Drain after them looks again, so an early look costs a
// round, never an output.
func idleCheckInterval(limitsOff bool) time.Duration {
	if limitsOff {
		return 2 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// unpaced is a rate (bytes or records per second) that no shard reaches: pacing off.
const unpaced = 1e15

// unpacedProducer builds IngestFunction's producer without pacing (limits off).
func unpacedProducer(ctx context.Context, c producer.Client, cfg producer.Config) (ingest.RecordProducer, error) {
	cfg.ShardBytesPerSecond, cfg.ShardRecordsPerSecond = unpaced, unpaced
	return producer.New(ctx, c, cfg)
}

// batchingWindow is the event source mapping's batching window: the template's, or none with limits off.
func batchingWindow(seconds int, limitsOff bool) int {
	if limitsOff {
		return 0
	}
	return seconds
}

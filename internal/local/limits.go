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
//     instead of waiting up to MaximumBatchingWindowInSeconds for a fuller one.
//
// Sizes stay as on AWS (records, requests, batches, Firehose buffers, Lambda payloads): they decide
// what the functions see, not how fast it flows.

// limitsOffPollInterval is how often Firehose and the event source mapping poll with limits off.
const limitsOffPollInterval = 20 * time.Millisecond

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

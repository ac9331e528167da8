package producer

// Kinesis Data Streams limits (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
// and the PutRecords API reference). Sizes count the data blob plus the partition key, before base64.
const (
	// MaxRecordsPerRequest is the PutRecords limit on entries per request (500).
	MaxRecordsPerRequest = 500
	// MaxRequestBytes is the PutRecords limit on a whole request, partition keys included (5 MiB).
	MaxRequestBytes = 5 << 20
	// DefaultMaxRecordSizeInKiB is a stream's record size limit (data blob + partition key) when
	// DescribeStreamSummary does not report MaxRecordSizeInKiB (1 MiB).
	DefaultMaxRecordSizeInKiB = 1024
	// MinPartitionKeyLength and MaxPartitionKeyLength bound a partition key, in Unicode characters.
	MinPartitionKeyLength = 1
	MaxPartitionKeyLength = 256
	// ShardBytesPerSecond is the per-shard write limit: 1 MiB per second (data + partition keys).
	ShardBytesPerSecond = 1 << 20
	// ShardRecordsPerSecond is the per-shard write limit: 1,000 Kinesis records per second (an
	// aggregated record counts once).
	ShardRecordsPerSecond = 1000
)

// Producer defaults (ours, not AWS limits).
const (
	// DefaultAggregateMaxBytes is the target size of a KPL aggregate. Like the KPL (51,200 bytes by
	// default) we stay well below the record limit: pacing is smoother, a consumer batch stays small,
	// and a record too large for an aggregate goes alone.
	DefaultAggregateMaxBytes = 64 << 10
	// DefaultMaxBufferedBytes bounds what Put keeps before it writes (open aggregates + sealed records).
	DefaultMaxBufferedBytes = 8 << 20
	// DefaultMaxRetries is how often one Kinesis record is retried before it fails for good (the
	// context deadline usually ends retrying first).
	DefaultMaxRetries = 30
)

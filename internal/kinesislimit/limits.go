// Package kinesislimit is the one place for the documented limits of Amazon Kinesis Data Streams
// (provisioned mode): the producer keeps to them and the local cloud's stream enforces them.
//
// Sources: the Kinesis Data Streams quotas and limits page
// (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html) and the PutRecords,
// GetRecords and GetShardIterator API references. Sizes count the data blob plus the partition key,
// before base64.
package kinesislimit

import "time"

// Writes.
const (
	// MaxRecordsPerRequest is the PutRecords limit on entries per request (500).
	MaxRecordsPerRequest = 500
	// MaxRequestBytes is the PutRecords limit on a whole request, partition keys included (5 MiB).
	MaxRequestBytes = 5 << 20
	// DefaultMaxRecordSizeInKiB is a stream's record size limit (data blob + partition key) unless the
	// stream's MaxRecordSizeInKiB says otherwise (1 MiB).
	DefaultMaxRecordSizeInKiB = 1024
	// MaxMaxRecordSizeInKiB is the largest value a stream's MaxRecordSizeInKiB may take (10 MiB).
	MaxMaxRecordSizeInKiB = 10240
	// MinPartitionKeyLength and MaxPartitionKeyLength bound a partition key, in Unicode characters.
	MinPartitionKeyLength = 1
	MaxPartitionKeyLength = 256
	// ShardWriteBytesPerSecond is the per-shard write limit: 1 MiB per second (data + partition keys).
	ShardWriteBytesPerSecond = 1 << 20
	// ShardWriteRecordsPerSecond is the per-shard write limit: 1,000 Kinesis records per second (an
	// aggregated record counts once).
	ShardWriteRecordsPerSecond = 1000
)

// Reads.
const (
	// MaxGetRecordsLimit is the largest Limit of one GetRecords call.
	MaxGetRecordsLimit = 10000
	// MaxGetRecordsBytes is the most data one GetRecords call returns (10 MiB).
	MaxGetRecordsBytes = 10 << 20
	// ShardReadCallsPerSecond is the number of GetRecords calls a shard serves per second.
	ShardReadCallsPerSecond = 5
	// ShardReadBytesPerSecond is the per-shard read limit (2 MiB/s, shared-throughput consumers).
	ShardReadBytesPerSecond = 2 << 20
	// IteratorLifetime is how long a shard iterator stays valid.
	IteratorLifetime = 5 * time.Minute
)

// DefaultRetentionHours is a stream's default retention period (24 h).
const DefaultRetentionHours = 24

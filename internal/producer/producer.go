// Package producer writes records to a Kinesis data stream: per-shard KPL aggregation, exact limits,
// token-bucket pacing and retries of failed entries only. Everything happens inside Put and Flush:
// no goroutine outlives a call.
package producer

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Client is the part of *kinesis.Client the producer uses.
type Client interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ Client = (*kinesis.Client)(nil)

// Config configures a Producer.
type Config struct {
	StreamName string // name or
	StreamARN  string // ARN (either)
	Aggregate  bool   // KPL aggregation (default on in every caller)
	// Per-shard pacing; zero means the Kinesis write limit (1 MiB/s, 1,000 records/s).
	ShardBytesPerSecond   float64
	ShardRecordsPerSecond float64
	Ordered               bool // one request in flight per shard, retried before the next
}

// Entry is one user record. Tag is the caller's own identifier (e.g. a row number) reported back
// in failures.
type Entry struct {
	Data         []byte
	PartitionKey string
	Tag          int64
}

// Failure is an entry that was not written, with the reason.
type Failure struct {
	Tag    int64
	Reason string
	Err    error
}

// Stats are the counters of the producer since New (cumulative).
type Stats struct {
	UserRecords    int64 `json:"user_records"`
	KinesisRecords int64 `json:"kinesis_records"`
	Bytes          int64 `json:"bytes"`
	Requests       int64 `json:"requests"`
	Retries        int64 `json:"retries"`
	Throttled      int64 `json:"throttled"`
	Failed         int64 `json:"failed"`
}

// Producer buffers entries and writes them.
type Producer struct{}

// New describes the stream (MaxRecordSizeInKiB, shards) and returns a producer.
func New(ctx context.Context, c Client, cfg Config) (*Producer, error) {
	return nil, errors.New("not implemented")
}

// Put adds an entry (Data is copied). It may write full requests synchronously (and wait for pacing).
// Entries that cannot be written (too large) come back from Flush as failures; Put returns an error only
// when ctx ends or a non-retryable request error occurs.
func (p *Producer) Put(ctx context.Context, e Entry) error { return errors.New("not implemented") }

// Flush writes everything buffered and returns the entries that failed for good since the last Flush.
func (p *Producer) Flush(ctx context.Context) ([]Failure, error) {
	return nil, errors.New("not implemented")
}

// Stats returns the cumulative counters.
func (p *Producer) Stats() Stats { return Stats{} }

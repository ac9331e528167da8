package producer

// The Kinesis limits the producer keeps to are internal/kinesislimit's.

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

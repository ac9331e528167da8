package esm

import "time"

// Batch outcomes, as Config.Observer sees them.
const (
	OutcomeOK              = "ok"               // every record processed
	OutcomePartial         = "partial"          // batchItemFailures: processed up to the lowest failure
	OutcomeFunctionError   = "function_error"   // the invoke failed: the batch is retried, bisected or discarded
	OutcomeInvalidResponse = "invalid_response" // a response that fails the whole batch
)

// Batch is one invoke of a batch of records (final window invokes without records are not reported),
// for the local cloud's timeline.
type Batch struct {
	Shard       string
	Records     int
	Start, End  time.Time
	Outcome     string
	Retry       bool          // the batch (or a part of it) was invoked before
	IteratorAge time.Duration // Start minus the approximate arrival of the batch's first record
}

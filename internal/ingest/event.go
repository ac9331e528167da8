// Package ingest is IngestFunction: it streams one S3 object into the Kinesis stream, resumably and
// idempotently (DESIGN.md, ingest contract).
package ingest

// Event kinds of the events IngestFunction sends itself (continuation) or receives from ReplayFunction.
const (
	KindContinuation = "continuation"
	KindReplay       = "replay"
	// KindSweep is the sweeper's scheduled event: resume or fail the objects whose lease expired (sweep.go).
	KindSweep = "sweep"
)

// Event is IngestFunction's own event: a continuation of an object started by an earlier invocation,
// or a deliberate replay of an object by ReplayFunction. S3 events are events.S3Event; the "taxistream"
// field tells the two apart.
type Event struct {
	Kind         string `json:"taxistream"` // KindContinuation or KindReplay
	Bucket       string `json:"bucket"`
	Key          string `json:"key"` // decoded key (not URL-encoded)
	VersionID    string `json:"version_id,omitempty"`
	ETag         string `json:"etag,omitempty"`
	Size         int64  `json:"size,omitempty"`
	ReplayID     string `json:"replay_id,omitempty"`    // set for replays; bypasses the finished manifest on purpose
	Continuation int    `json:"continuation,omitempty"` // 1 for the first continuation, 2 for the next, ...
	// Idle (sweep events only) says the sender knows that no invocation of the function is running (the
	// local cloud when it is idle or has just started): every lease is stale, and the grace and the
	// backoff need not be waited for. Attempts still count against SWEEP_MAX_ATTEMPTS.
	Idle bool `json:"idle,omitempty"`
}

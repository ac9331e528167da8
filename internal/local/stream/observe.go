package stream

import (
	"strconv"
	"time"
)

// PutObserver sees every PutRecord(s) request the stream answered, entry by entry, for the local
// cloud's timeline (the run report's throughput, throttling and latency charts). ObservePut is called
// with the stream's lock held: it must be quick and must not call back into the stream. The slices are
// valid only during the call.
type PutObserver interface {
	ObservePut(p PutObservation)
}

// PutObservation is one answered PutRecord(s) request.
type PutObservation struct {
	Time     time.Time
	Entries  []PutEntryOutcome
	TimedOut bool // stored, but answered with a timeout (Faults.StoreThenFailRate)
}

// PutEntryOutcome is what happened to one entry of a request.
type PutEntryOutcome struct {
	Shard     string // the shard the entry's hash key routes to
	Size      int    // data + partition key bytes
	Data      []byte // the caller's: valid only during ObservePut
	ErrorCode string // "" when stored, else ErrCodeThroughput or ErrCodeInternalFailure
	// Counter is the stream-wide counter inside the entry's sequence number (0 when not stored): it grows
	// with time across every shard, so the arrival time of any sequence number can be looked up from the
	// observations (SequenceCounter).
	Counter uint64
}

// SequenceCounter returns the stream-wide counter inside a sequence number of this stream (see the
// package comment: "4959", 20 digits of counter, 32 digits of shard index).
func SequenceCounter(seq string) (uint64, bool) {
	if len(seq) != 56 || seq[:4] != "4959" {
		return 0, false
	}
	n, err := strconv.ParseUint(seq[4:24], 10, 64)
	return n, err == nil
}

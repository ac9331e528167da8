package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// S3Faults injects S3 failures into one function's view of the bucket: the function gets a wrapper
// around the local bucket whose PutObject and GetObject fail at the given rates; every other function,
// the trigger, Firehose and Summarize see the plain bucket. The error is S3's 500 InternalError, which
// the SDK would retry and then return, as a handler sees it after the SDK's retries.
type S3Faults struct {
	// Function is the logical id of the function whose S3 calls fail (default ProcessFunction).
	Function string
	Seed     uint64
	// PutErrorRate is the probability that a PutObject fails without storing anything.
	PutErrorRate float64
	// PutStoreThenFailRate is the probability that a PutObject stores the object and then fails, like
	// a request whose response was lost: the caller cannot know that it was stored.
	PutStoreThenFailRate float64
	// GetErrorRate is the probability that a GetObject fails.
	GetErrorRate float64
	// PutTimeoutRate is the probability that a PutObject hangs until the invocation times out (having
	// stored the object or not, one chance in two): a timeout in the middle of the writes. From then
	// on the invocation is frozen, as Lambda freezes it: its further S3 calls fail and have no effect.
	PutTimeoutRate float64
	// FailPut, when set, fails the puts it returns true for (before the rates apply): deterministic
	// faults for tests, e.g. "the first two conditional manifest updates".
	FailPut func(in *s3.PutObjectInput) bool
}

func (f S3Faults) on() bool {
	return f.PutErrorRate > 0 || f.PutStoreThenFailRate > 0 || f.GetErrorRate > 0 || f.PutTimeoutRate > 0 || f.FailPut != nil
}

// S3FaultStats counts the injected S3 failures.
type S3FaultStats struct {
	Puts          int64 // PutObject calls of the function
	PutErrors     int64 // failed without storing
	StoreThenFail int64 // stored, then failed
	GetErrors     int64 // GetObject calls failed
	Timeouts      int64 // PutObject calls that hung until the invocation timed out
	Frozen        int64 // calls of a timed-out invocation, refused
}

// faultyBucket is the bucket as seen by the function given in S3Faults.
type faultyBucket struct {
	*bucket.Bucket
	faults S3Faults

	mu     sync.Mutex
	rng    *rand.Rand
	frozen map[string]bool // request ids of invocations that timed out

	puts, putErrors, storeThenFail, getErrors, timeouts, refused atomic.Int64
}

func newFaultyBucket(b *bucket.Bucket, f S3Faults) *faultyBucket {
	return &faultyBucket{Bucket: b, faults: f, rng: rand.New(rand.NewPCG(f.Seed, 0x5a17)), frozen: map[string]bool{}}
}

// errInjected is S3's 500 InternalError.
func errInjected() error {
	return &smithy.GenericAPIError{Code: "InternalError", Message: "We encountered an internal error. Please try again. (injected)", Fault: smithy.FaultServer}
}

func (b *faultyBucket) roll() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rng.Float64()
}

// isFrozen reports whether ctx belongs to an invocation that timed out in a hung call, or whose
// time is up (Lambda freezes an invocation at its timeout; in-process, its goroutine runs on).
func (b *faultyBucket) isFrozen(ctx context.Context) bool {
	if inv, ok := ctx.Value(invocationKey{}).(context.Context); ok && inv.Err() != nil {
		b.refused.Add(1)
		return true
	}
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frozen[lc.AwsRequestID] {
		b.refused.Add(1)
		return true
	}
	return false
}

// hang freezes the invocation of ctx and waits until it ends (its timeout).
func (b *faultyBucket) hang(ctx context.Context) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		b.mu.Lock()
		b.frozen[lc.AwsRequestID] = true
		b.mu.Unlock()
	}
	inv, ok := ctx.Value(invocationKey{}).(context.Context)
	if !ok {
		inv = ctx
	}
	<-inv.Done()
	return fmt.Errorf("injected: the request hung until the invocation timed out: %w", inv.Err())
}

// PutObject fails at the configured rates.
func (b *faultyBucket) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if b.isFrozen(ctx) {
		return nil, errInjected()
	}
	b.puts.Add(1)
	b.mu.Lock()
	forced := b.faults.FailPut != nil && b.faults.FailPut(in)
	b.mu.Unlock()
	if forced {
		b.putErrors.Add(1)
		return nil, errInjected()
	}
	r := b.roll()
	f := b.faults
	switch {
	case r < f.PutErrorRate:
		b.putErrors.Add(1)
		return nil, errInjected()
	case r < f.PutErrorRate+f.PutStoreThenFailRate:
		if _, err := b.Bucket.PutObject(ctx, in, optFns...); err != nil {
			return nil, err
		}
		b.storeThenFail.Add(1)
		return nil, errInjected()
	case r < f.PutErrorRate+f.PutStoreThenFailRate+f.PutTimeoutRate:
		b.timeouts.Add(1)
		if b.roll() < 0.5 {
			if _, err := b.Bucket.PutObject(ctx, in, optFns...); err != nil {
				return nil, err
			}
		}
		return nil, b.hang(ctx)
	}
	return b.Bucket.PutObject(ctx, in, optFns...)
}

// GetObject fails at the configured rate.
func (b *faultyBucket) GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if b.isFrozen(ctx) {
		return nil, errInjected()
	}
	if b.faults.GetErrorRate > 0 && b.roll() < b.faults.GetErrorRate {
		b.getErrors.Add(1)
		return nil, errInjected()
	}
	return b.Bucket.GetObject(ctx, in, optFns...)
}

func (b *faultyBucket) stats() S3FaultStats {
	if b == nil {
		return S3FaultStats{}
	}
	return S3FaultStats{Puts: b.puts.Load(), PutErrors: b.putErrors.Load(), StoreThenFail: b.storeThenFail.Load(),
		GetErrors: b.getErrors.Load(), Timeouts: b.timeouts.Load(), Frozen: b.refused.Load()}
}

// invocationKey is the context key of the invocation's own context (see invocationScope): a call
// that hangs waits for the invocation's end, not for the earlier deadline the handler gave it.
type invocationKey struct{}

// FunctionFaults make one function's invocations fail after its handler ran: a function error
// whatever the handler wrote, so that the event source mapping retries or bisects the batch.
type FunctionFaults struct {
	// Function is the logical id (default ProcessFunction).
	Function string
	Seed     uint64
	// ErrorRate is the probability that an invocation fails after its handler returned.
	ErrorRate float64
	// PoisonRate is the probability that a Kinesis record (by sequence number) fails every
	// invocation that holds it, after the handler ran: the mapping bisects down to it, retries it
	// MaximumRetryAttempts times and sends it to the on-failure destination.
	PoisonRate float64
}

func (f FunctionFaults) on() bool { return f.ErrorRate > 0 || f.PoisonRate > 0 }

// FunctionFaultStats counts the injected function errors.
type FunctionFaultStats struct {
	Invocations int64
	Errors      int64 // by ErrorRate
	Poisoned    int64 // by PoisonRate
}

// faultyHandler is a function's handler seen through FunctionFaults; it also puts the invocation's
// context into its context (invocationKey) for S3Faults' hung calls.
type faultyHandler struct {
	next   lambda.Handler
	faults FunctionFaults

	mu  sync.Mutex
	rng *rand.Rand

	invocations, errors, poisoned atomic.Int64
}

func newFaultyHandler(next lambda.Handler, f FunctionFaults) *faultyHandler {
	return &faultyHandler{next: next, faults: f, rng: rand.New(rand.NewPCG(f.Seed, 0xfa17))}
}

// Invoke runs the handler and then, at the configured rates, fails.
func (h *faultyHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	h.invocations.Add(1)
	out, err := h.next.Invoke(context.WithValue(ctx, invocationKey{}, ctx), payload)
	if err != nil || !h.faults.on() {
		return out, err
	}
	if h.faults.PoisonRate > 0 && h.isPoisoned(payload) {
		h.poisoned.Add(1)
		return nil, errors.New("injected: a poison record fails the invocation after the handler ran")
	}
	h.mu.Lock()
	r := h.rng.Float64()
	h.mu.Unlock()
	if r < h.faults.ErrorRate {
		h.errors.Add(1)
		return nil, errors.New("injected: the invocation failed after the handler ran")
	}
	return out, nil
}

// isPoisoned reports whether the event holds a poison record.
func (h *faultyHandler) isPoisoned(payload []byte) bool {
	var ev struct {
		Records []struct {
			Kinesis struct {
				SequenceNumber string `json:"sequenceNumber"`
			} `json:"kinesis"`
		} `json:"Records"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return false
	}
	for _, r := range ev.Records {
		hs := fnv.New64a()
		hs.Write([]byte(r.Kinesis.SequenceNumber))
		hs.Write([]byte{byte(h.faults.Seed)})
		if float64(hs.Sum64()%1_000_000) < h.faults.PoisonRate*1_000_000 {
			return true
		}
	}
	return false
}

func (h *faultyHandler) stats() FunctionFaultStats {
	if h == nil {
		return FunctionFaultStats{}
	}
	return FunctionFaultStats{Invocations: h.invocations.Load(), Errors: h.errors.Load(), Poisoned: h.poisoned.Load()}
}

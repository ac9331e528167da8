package local

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// S3Faults injects S3 write failures into one function's view of the bucket: the function gets a
// wrapper around the local bucket whose PutObject fails at the given rates; every other function, the
// trigger, Firehose and Summarize see the plain bucket. The error is S3's 500 InternalError, which
// the SDK would retry and then return, as a handler sees it after the SDK's retries.
type S3Faults struct {
	// Function is the logical id of the function whose writes fail (default ProcessFunction).
	Function string
	Seed     uint64
	// PutErrorRate is the probability that a PutObject fails without storing anything.
	PutErrorRate float64
	// PutStoreThenFailRate is the probability that a PutObject stores the object and then fails, like
	// a request whose response was lost: the caller cannot know that it was stored.
	PutStoreThenFailRate float64
	// FailPut, when set, fails the puts it returns true for (before the rates apply): deterministic
	// faults for tests, e.g. "the first two conditional manifest updates".
	FailPut func(in *s3.PutObjectInput) bool
}

func (f S3Faults) on() bool {
	return f.PutErrorRate > 0 || f.PutStoreThenFailRate > 0 || f.FailPut != nil
}

// S3FaultStats counts the injected S3 write failures.
type S3FaultStats struct {
	Puts          int64 // PutObject calls of the function
	PutErrors     int64 // failed without storing
	StoreThenFail int64 // stored, then failed
}

// faultyBucket is the bucket as seen by the function given in S3Faults.
type faultyBucket struct {
	*bucket.Bucket
	faults S3Faults

	mu  sync.Mutex
	rng *rand.Rand

	puts, putErrors, storeThenFail atomic.Int64
}

func newFaultyBucket(b *bucket.Bucket, f S3Faults) *faultyBucket {
	return &faultyBucket{Bucket: b, faults: f, rng: rand.New(rand.NewPCG(f.Seed, 0x5a17))}
}

// errInjected is S3's 500 InternalError.
func errInjected() error {
	return &smithy.GenericAPIError{Code: "InternalError", Message: "We encountered an internal error. Please try again. (injected)", Fault: smithy.FaultServer}
}

// PutObject fails at the configured rates.
func (b *faultyBucket) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b.puts.Add(1)
	b.mu.Lock()
	r := b.rng.Float64()
	forced := b.faults.FailPut != nil && b.faults.FailPut(in)
	b.mu.Unlock()
	if forced {
		b.putErrors.Add(1)
		return nil, errInjected()
	}
	switch {
	case r < b.faults.PutErrorRate:
		b.putErrors.Add(1)
		return nil, errInjected()
	case r < b.faults.PutErrorRate+b.faults.PutStoreThenFailRate:
		if _, err := b.Bucket.PutObject(ctx, in, optFns...); err != nil {
			return nil, err
		}
		b.storeThenFail.Add(1)
		return nil, errInjected()
	}
	return b.Bucket.PutObject(ctx, in, optFns...)
}

func (b *faultyBucket) stats() S3FaultStats {
	if b == nil {
		return S3FaultStats{}
	}
	return S3FaultStats{Puts: b.puts.Load(), PutErrors: b.putErrors.Load(), StoreThenFail: b.storeThenFail.Load()}
}

package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Entry error codes of a PutRecords response; both are retryable.
const (
	codeThroughputExceeded = "ProvisionedThroughputExceededException"
	codeInternalFailure    = "InternalFailure"
)

// Backoff bounds (full jitter: a random delay in [0, min(cap, backoffBase·2^(attempt-1))), attempt
// counting the shard's consecutive failed responses). A throttled shard waits at most
// throttleBackoffCap: Kinesis counts its limits per second, so the shard has room again within a
// second, and pacing (not backoff) keeps the next second within the limit. Internal failures and
// request errors (the service is in trouble) back off up to backoffCap.
const (
	backoffBase        = 100 * time.Millisecond
	throttleBackoffCap = time.Second
	backoffCap         = 5 * time.Second
)

// Errors a Failure wraps.
var (
	// ErrRecordTooLarge: data + partition key exceed the stream's record size (never truncated).
	ErrRecordTooLarge = errors.New("record too large")
	// ErrInvalidPartitionKey: the partition key is not 1-256 characters.
	ErrInvalidPartitionKey = errors.New("invalid partition key")
	// ErrRetriesExhausted: the record was still failing after MaxRetries retries.
	ErrRetriesExhausted = errors.New("retries exhausted")
	// ErrEntryRejected: PutRecords rejected the entry with a non-retryable error code.
	ErrEntryRejected = errors.New("entry rejected")
	// ErrDeadline: the next backoff would end after the context deadline.
	ErrDeadline = fmt.Errorf("backoff would pass the deadline: %w", context.DeadlineExceeded)
)

// ClientOptions configures the SDK retryer of the *kinesis.Client a Producer uses, deliberately:
//
//   - no client-side retry quota (ratelimit.None). The standard retryer's token bucket (500 tokens,
//     5 per throttled retry) runs dry under sustained throttling and then fails requests at once
//     with "retry quota exceeded" — exactly when a producer should keep backing off;
//   - 3 attempts for the control-plane calls (ListShards, DescribeStreamSummary).
//
// PutRecords calls made by the Producer additionally run with one attempt (see putOptions): the
// Producer retries failed entries and whole-request errors itself, classified, with backoff bounded
// by the context deadline, and never resends an entry that succeeded. An SDK-level retry would
// resend the whole batch behind the Producer's back.
//
//	client := kinesis.NewFromConfig(cfg, producer.ClientOptions())
func ClientOptions() func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.RateLimiter = ratelimit.None
			so.MaxAttempts = 3
		})
	}
}

// putOptions makes the SDK send a PutRecords request exactly once.
func putOptions(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// RandomKey returns a random partition key (16 hex digits), for records without a natural key:
// they spread evenly over the shards.
func RandomKey() string {
	s := strconv.FormatUint(rand.Uint64(), 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}

// requestErrorClass says what a whole-request error means for the entries of the request.
type requestErrorClass int

const (
	terminal       requestErrorClass = iota // not retryable: validation, access denied, not found, …
	retryNotStored                          // retryable, the request was rejected before storing (throttling)
	retryMaybeSent                          // retryable, the records may have been stored (5xx, timeout, reset)
)

// retryableCodes are whole-request error codes worth retrying.
var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"LimitExceededException":                 true, // control-plane rate limit
	"KMSThrottlingException":                 true,
	"RequestLimitExceeded":                   true,
	"TooManyRequestsException":               true,
}

var serverCodes = map[string]bool{
	"InternalFailure":             true,
	"InternalFailureException":    true,
	"InternalServerError":         true,
	"ServiceUnavailable":          true,
	"ServiceUnavailableException": true,
	"RequestTimeout":              true,
	"RequestTimeoutException":     true,
}

// classify sorts a whole-request error (not a context error).
func classify(err error) requestErrorClass {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case throttleCodes[code]:
			return retryNotStored
		case serverCodes[code]:
			return retryMaybeSent
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch s := respErr.HTTPStatusCode(); {
		case s == 429:
			return retryNotStored
		case s >= 500:
			return retryMaybeSent
		case s >= 400:
			return terminal // ValidationException, AccessDeniedException, ResourceNotFoundException, …
		}
	}
	if apiErr != nil {
		return terminal
	}
	// Transport errors (timeouts, resets, EOF): the SDK's own checks, which also cover net.Error.
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return retryMaybeSent
	}
	return terminal
}

// jitter returns a full-jitter delay for the given retry (1 = first retry), at most limit.
func (p *Producer) jitter(attempt int, limit time.Duration) time.Duration {
	ceil := backoffBase << min(max(attempt, 1)-1, 20)
	if ceil > limit || ceil <= 0 {
		ceil = limit
	}
	return time.Duration(p.rand() * float64(ceil))
}

// sleepUntil waits until t, bounded by ctx: when t is after the context's deadline it returns
// ErrDeadline at once, so a caller keeps its remaining time for a checkpoint.
func (p *Producer) sleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := t.Sub(p.now())
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && t.After(dl) {
		return ErrDeadline
	}
	return p.sleep(ctx, d)
}

func realSleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// IsTerminal reports whether err (from Put, Flush or a Failure) is one that retrying later cannot fix:
// a request error such as a validation error, access denied or a stream that does not exist, or a
// record that can never be written (too large, bad partition key). Deadlines, cancellations,
// throttling, server and transport errors, exhausted retries and entry-level error codes (e.g. KMS
// throttling) are not terminal: the records can be written later.
func IsTerminal(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, ErrRetriesExhausted), errors.Is(err, ErrEntryRejected):
		return false
	case errors.Is(err, ErrRecordTooLarge), errors.Is(err, ErrInvalidPartitionKey):
		return true
	}
	return classify(err) == terminal
}

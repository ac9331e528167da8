package stream

import (
	"context"
	"fmt"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// Per-entry error codes of a PutRecords response.
const (
	ErrCodeThroughput      = "ProvisionedThroughputExceededException"
	ErrCodeInternalFailure = "InternalFailure"
)

// TimeoutError is returned by a request that was stored but "timed out" (Faults.StoreThenFailRate): the
// caller cannot know whether it was stored, as with a real client-side timeout.
type TimeoutError struct{ Op string }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("kinesis %s: request timed out after the service received it", e.Op)
}

// Timeout reports true, as net.Error does for timeouts.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true.
func (e *TimeoutError) Temporary() bool { return true }

type entry struct {
	data []byte
	key  string
	hash *big.Int
}

// PutRecord writes one record. A throttled or injected per-entry failure is returned as the request's
// error (*types.ProvisionedThroughputExceededException or *types.InternalFailureException), as the real
// PutRecord does.
func (s *Stream) PutRecord(ctx context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	out, err := s.putRecords(ctx, "PutRecord", in.StreamName, in.StreamARN,
		[]types.PutRecordsRequestEntry{{Data: in.Data, PartitionKey: in.PartitionKey, ExplicitHashKey: in.ExplicitHashKey}})
	if out == nil {
		return nil, err
	}
	r := out.Records[0]
	switch aws.ToString(r.ErrorCode) {
	case "":
	case ErrCodeThroughput:
		return nil, &types.ProvisionedThroughputExceededException{Message: r.ErrorMessage}
	default:
		return nil, &types.InternalFailureException{Message: r.ErrorMessage}
	}
	if err != nil {
		return nil, err
	}
	return &kinesis.PutRecordOutput{SequenceNumber: r.SequenceNumber, ShardId: r.ShardId, EncryptionType: types.EncryptionTypeNone}, nil
}

// PutRecords writes up to 500 records. Request-level problems (too many entries, request over 5 MiB,
// record over the record size, bad partition key or explicit hash key) fail the whole request; throttling
// and injected InternalFailure fail single entries, reported in the response with FailedRecordCount.
func (s *Stream) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := s.putRecords(ctx, "PutRecords", in.StreamName, in.StreamARN, in.Records)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putRecords returns a non-nil output together with a *TimeoutError for store-then-fail.
func (s *Stream) putRecords(ctx context.Context, op string, name, arn *string, recs []types.PutRecordsRequestEntry) (*kinesis.PutRecordsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(name, arn); err != nil {
		return nil, err
	}
	entries, err := s.validate(recs)
	if err != nil {
		return nil, err
	}
	if s.faults.Latency > 0 {
		if err := s.sleep(ctx, s.faults.Latency); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.requestFault(op); err != nil {
		s.stats.RequestErrors++
		return nil, err
	}
	storeThenFail := s.faults.StoreThenFailRate > 0 && s.rng.Float64() < s.faults.StoreThenFailRate
	s.stats.PutRequests++
	now := s.now()
	s.trim(now)
	arrival := now.UTC().Truncate(time.Millisecond)
	sec := now.Unix()

	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(entries)), EncryptionType: types.EncryptionTypeNone}
	failed := int32(0)
	written := map[*shard][]int{} // entries per shard, written to its log after the loop
	var seen []PutEntryOutcome    // for the observer
	if s.observer != nil {
		seen = make([]PutEntryOutcome, len(entries))
	}
	for i, e := range entries {
		sh := s.route(e.hash)
		res := &out.Records[i]
		if seen != nil {
			seen[i] = PutEntryOutcome{Shard: sh.id, Size: len(e.data) + len(e.key), Data: e.data}
		}
		if s.faults.InternalFailureRate > 0 && s.rng.Float64() < s.faults.InternalFailureRate {
			res.ErrorCode, res.ErrorMessage = aws.String(ErrCodeInternalFailure), aws.String("Internal service failure.")
			s.stats.InternalFailures++
			failed++
			continue
		}
		size := len(e.data) + len(e.key)
		if sh.winSec != sec {
			sh.rollWindow(sec)
		}
		if !s.limitsOff {
			if sh.winRecs+1 > kinesislimit.ShardWriteRecordsPerSecond || (sh.winBytes+size > kinesislimit.ShardWriteBytesPerSecond && sh.winBytes > 0) {
				res.ErrorCode = aws.String(ErrCodeThroughput)
				res.ErrorMessage = aws.String(fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", sh.id, s.name, AccountID))
				s.stats.Throttled++
				sh.throttled++
				failed++
				continue
			}
		}
		sh.winRecs++
		sh.winBytes += size
		seq := s.nextSeq(sh)
		if seen != nil {
			seen[i].Counter = s.counter
		}
		sh.log.add(s.counter, arrival.UnixMilli(), e.key, e.data)
		written[sh] = append(written[sh], i)
		s.bytes += int64(size)
		s.stats.RecordsStored++
		s.stats.BytesStored += int64(size)
		sh.storedRecs++
		sh.storedBytes += int64(size)
		res.SequenceNumber, res.ShardId = aws.String(seq), aws.String(sh.id)
	}
	// The records are answered as stored only once they are in the shards' files.
	for sh, idx := range written {
		if err := sh.log.commit(); err != nil {
			s.stats.StorageErrors++
			for _, i := range idx {
				size := int64(len(entries[i].data) + len(entries[i].key))
				s.bytes -= size
				s.stats.RecordsStored--
				s.stats.BytesStored -= size
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(ErrCodeInternalFailure),
					ErrorMessage: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
				failed++
			}
		}
	}
	out.FailedRecordCount = aws.Int32(failed)
	s.trim(now)
	if seen != nil {
		for i := range seen {
			seen[i].ErrorCode = aws.ToString(out.Records[i].ErrorCode)
		}
		s.observer.ObservePut(PutObservation{Time: now, Entries: seen, TimedOut: storeThenFail})
	}
	if storeThenFail {
		s.stats.RequestErrors++
		return out, &TimeoutError{Op: op}
	}
	return out, nil
}

// requestFault draws the whole-request error. Must be called with mu held.
func (s *Stream) requestFault(op string) error {
	if s.faults.RequestErrorRate <= 0 || s.rng.Float64() >= s.faults.RequestErrorRate {
		return nil
	}
	if s.rng.Intn(2) == 0 {
		return &types.InternalFailureException{Message: aws.String(fmt.Sprintf("Internal service failure (injected, %s).", op))}
	}
	return &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: fmt.Sprintf("Service unavailable (injected, %s).", op), Fault: smithy.FaultServer}
}

// validate applies the request-level checks and returns the entries, which share the callers' data.
func (s *Stream) validate(recs []types.PutRecordsRequestEntry) ([]entry, error) {
	if len(recs) == 0 {
		return nil, validation("1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(recs) > kinesislimit.MaxRecordsPerRequest {
		return nil, validation(fmt.Sprintf("1 validation error detected: Value '[...%d entries]' at 'records' failed to satisfy constraint: Member must have length less than or equal to %d", len(recs), kinesislimit.MaxRecordsPerRequest))
	}
	entries := make([]entry, len(recs))
	total := 0
	for i, r := range recs {
		key := aws.ToString(r.PartitionKey)
		if r.PartitionKey == nil {
			return nil, validation(fmt.Sprintf("1 validation error detected: Value null at 'records.%d.member.partitionKey' failed to satisfy constraint: Member must not be null", i+1))
		}
		if n := utf8.RuneCountInString(key); n < 1 || n > kinesislimit.MaxPartitionKeyLength {
			return nil, validation(fmt.Sprintf("1 validation error detected: Value '%s' at 'records.%d.member.partitionKey' failed to satisfy constraint: Member must have length between 1 and %d", key, i+1, kinesislimit.MaxPartitionKeyLength))
		}
		size := len(r.Data) + len(key)
		if size > s.maxRecordBytes {
			return nil, validation(fmt.Sprintf("1 validation error detected: Value at 'records.%d.member' failed to satisfy constraint: record size %d (data + partition key) exceeds the stream's maximum record size of %d KiB", i+1, size, s.maxRecordBytes>>10))
		}
		total += size
		h := HashKey(key)
		if r.ExplicitHashKey != nil {
			var ok bool
			h, ok = new(big.Int).SetString(*r.ExplicitHashKey, 10)
			if !ok || h.Sign() < 0 || h.Cmp(maxHashKey) > 0 {
				return nil, invalidArg(fmt.Sprintf("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", *r.ExplicitHashKey))
			}
		}
		// Not copied: the log frames a copy of it (shardLog.add) before the call returns, and the
		// observer reads it during the call; the caller's buffer is its own again after.
		entries[i] = entry{data: r.Data, key: key, hash: h}
	}
	if total > kinesislimit.MaxRequestBytes {
		return nil, invalidArg(fmt.Sprintf("Records size exceeds %d MB limit: request is %d bytes.", kinesislimit.MaxRequestBytes>>20, total))
	}
	return entries, nil
}

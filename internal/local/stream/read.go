package stream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// GetShardIterator returns an iterator for one of the five iterator types. The iterator expires after
// kinesislimit.IteratorLifetime.
func (s *Stream) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.trim(now)
	id := aws.ToString(in.ShardId)
	sh := s.shardByID(id)
	if sh == nil {
		return nil, &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Shard %s in stream %s under account %s does not exist", id, s.name, AccountID))}
	}
	var pos int
	l := sh.log
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeTrimHorizon:
		pos = l.start
	case types.ShardIteratorTypeLatest:
		pos = sh.endPos()
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		seq, err := s.checkSeq(sh, aws.ToString(in.StartingSequenceNumber))
		if err != nil {
			return nil, err
		}
		after := in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber
		// The first record whose counter is above seq (after) or at least seq (at).
		pos, err = l.find(func(e indexEntry) bool { return e.counter < seq },
			func(r logRecord) bool { return r.counter < seq || (after && r.counter == seq) })
		if err != nil {
			s.stats.StorageErrors++
			return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
		}
	case types.ShardIteratorTypeAtTimestamp:
		if in.Timestamp == nil {
			return nil, invalidArg("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP.")
		}
		ts := in.Timestamp.Truncate(time.Millisecond).UnixMilli()
		var err error
		pos, err = l.find(func(e indexEntry) bool { return e.arrival < ts }, func(r logRecord) bool { return r.arrival < ts })
		if err != nil {
			s.stats.StorageErrors++
			return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
		}
	default:
		return nil, validation(fmt.Sprintf("1 validation error detected: Value '%s' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]", in.ShardIteratorType))
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: s.makeIterator(sh, pos, now)}, nil
}

// checkSeq parses a starting sequence number, checks that it belongs to the shard and returns its
// counter.
func (s *Stream) checkSeq(sh *shard, seq string) (uint64, error) {
	if seq == "" {
		return 0, invalidArg("StartingSequenceNumber must be specified for AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER iterators.")
	}
	bad := invalidArg(fmt.Sprintf("StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it did not come from this stream.", seq, sh.id, s.name, AccountID))
	if len(seq) != 56 || strings.Trim(seq, "0123456789") != "" {
		return 0, bad
	}
	counter, err := strconv.ParseUint(seq[4:24], 10, 64)
	if err != nil {
		return 0, bad
	}
	if idx, err := strconv.ParseUint(seq[24:], 10, 64); err != nil || idx != uint64(sh.index) {
		return 0, bad
	}
	return counter, nil
}

// GetRecords reads from the iterator's position. It enforces Limit ≤ 10,000, at most 10 MiB per call,
// 5 calls per second per shard and 2 MiB/s per shard (see the package comment), and expires iterators
// older than kinesislimit.IteratorLifetime.
func (s *Stream) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.StreamARN != nil && *in.StreamARN != s.arn {
		return nil, notFound(*in.StreamARN)
	}
	limit := kinesislimit.MaxGetRecordsLimit
	if in.Limit != nil {
		limit = int(*in.Limit)
		if limit < 1 || limit > kinesislimit.MaxGetRecordsLimit {
			return nil, invalidArg(fmt.Sprintf("Limit %d is out of range: it must be between 1 and %d.", limit, kinesislimit.MaxGetRecordsLimit))
		}
	}
	if s.faults.Latency > 0 {
		if err := s.sleep(ctx, s.faults.Latency); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, err := s.parseIterator(aws.ToString(in.ShardIterator))
	if err != nil {
		return nil, err
	}
	now := s.now()
	issued := time.Unix(0, tok.Issued)
	if now.Sub(issued) > kinesislimit.IteratorLifetime {
		return nil, &types.ExpiredIteratorException{Message: aws.String(fmt.Sprintf(
			"Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), kinesislimit.IteratorLifetime.Milliseconds()))}
	}
	if err := s.requestFault("GetRecords"); err != nil {
		s.stats.RequestErrors++
		return nil, err
	}
	s.trim(now)
	sh := s.shards[tok.Shard]
	if !s.limitsOff {
		if err := s.readAllowed(sh, now); err != nil {
			s.stats.ReadThrottled++
			return nil, err
		}
	}
	l := sh.log
	pos := max(tok.Pos, l.start)
	out := &kinesis.GetRecordsOutput{Records: []types.Record{}}
	bytes := 0
	var r *logReader
	if pos < l.end {
		if r, err = l.seek(pos); err != nil {
			s.stats.StorageErrors++
			return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
		}
	}
	var behind *logRecord // the first record not returned
	for r != nil && r.pos < l.end {
		rec, err := r.next(len(out.Records) < limit)
		if err != nil {
			s.stats.StorageErrors++
			return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
		}
		if len(out.Records) == limit || (bytes+rec.size > kinesislimit.MaxGetRecordsBytes && len(out.Records) > 0) {
			behind = &rec
			break
		}
		bytes += rec.size
		arrival := time.UnixMilli(rec.arrival).UTC()
		out.Records = append(out.Records, types.Record{
			Data: rec.data, PartitionKey: aws.String(rec.key), SequenceNumber: aws.String(s.seqString(rec.counter, sh.index)),
			ApproximateArrivalTimestamp: &arrival, EncryptionType: types.EncryptionTypeNone,
		})
		pos++
	}
	if !s.limitsOff {
		sh.readTokens -= float64(bytes)
	}
	next := pos
	if behind != nil {
		out.MillisBehindLatest = aws.Int64(max(0, now.UnixMilli()-behind.arrival))
	} else {
		out.MillisBehindLatest = aws.Int64(0)
	}
	if sh.closed() && next >= l.end {
		for _, c := range sh.children {
			ch := s.shards[c]
			parents := []string{ch.parent}
			if ch.adjParent != "" {
				parents = append(parents, ch.adjParent)
			}
			out.ChildShards = append(out.ChildShards, types.ChildShard{
				ShardId: aws.String(ch.id), ParentShards: parents, HashKeyRange: hashRange(ch),
			})
		}
		return out, nil // NextShardIterator nil: the shard is closed and fully read
	}
	out.NextShardIterator = s.makeIterator(sh, next, now)
	return out, nil
}

// readAllowed applies the per-shard read limits. Must be called with mu held.
func (s *Stream) readAllowed(sh *shard, now time.Time) error {
	if !sh.readAt.IsZero() {
		sh.readTokens = min(kinesislimit.ShardReadBytesPerSecond, sh.readTokens+now.Sub(sh.readAt).Seconds()*kinesislimit.ShardReadBytesPerSecond)
	}
	sh.readAt = now
	sec := now.Unix()
	if sh.readSec != sec {
		sh.readSec, sh.readCalls = sec, 0
	}
	if sh.readCalls >= kinesislimit.ShardReadCallsPerSecond || sh.readTokens <= 0 {
		return &types.ProvisionedThroughputExceededException{Message: aws.String(fmt.Sprintf(
			"Rate exceeded for Shard - %s/%s/%s", AccountID, s.name, sh.id))}
	}
	sh.readCalls++
	return nil
}

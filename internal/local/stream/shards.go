package stream

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

func hashRange(sh *shard) *types.HashKeyRange {
	return &types.HashKeyRange{StartingHashKey: aws.String(sh.start.String()), EndingHashKey: aws.String(sh.end.String())}
}

func (s *Stream) toShard(sh *shard) types.Shard {
	out := types.Shard{
		ShardId:             aws.String(sh.id),
		HashKeyRange:        hashRange(sh),
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String(sh.startSeq)},
	}
	if sh.endSeq != "" {
		out.SequenceNumberRange.EndingSequenceNumber = aws.String(sh.endSeq)
	}
	if sh.parent != "" {
		out.ParentShardId = aws.String(sh.parent)
	}
	if sh.adjParent != "" {
		out.AdjacentParentShardId = aws.String(sh.adjParent)
	}
	return out
}

// visible reports whether a shard is still listed: open, or closed with records within retention.
func (s *Stream) visible(sh *shard, now time.Time) bool {
	return !sh.closed() || sh.log.len() > 0 || now.Sub(s.created) < s.retention
}

// ListShards lists the shards (open and closed within retention) in shard id order. It supports
// NextToken/MaxResults paging, ExclusiveStartShardId and the ShardFilter types AT_LATEST (open shards),
// AT_TRIM_HORIZON/FROM_TRIM_HORIZON (all) and AFTER_SHARD_ID.
func (s *Stream) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil {
			return nil, invalidArg("NextToken and StreamName/StreamARN cannot be provided together.")
		}
		n, err := strconv.Atoi(*in.NextToken)
		if err != nil || n < 0 {
			return nil, &types.ExpiredNextTokenException{Message: aws.String("Invalid NextToken.")}
		}
		start = n
	} else if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	maxResults := 1000
	if in.MaxResults != nil {
		maxResults = int(*in.MaxResults)
		if maxResults < 1 || maxResults > 10000 {
			return nil, invalidArg("MaxResults must be between 1 and 10000.")
		}
	}
	after := aws.ToString(in.ExclusiveStartShardId)
	onlyOpen := false
	if f := in.ShardFilter; f != nil {
		switch f.Type {
		case types.ShardFilterTypeAtLatest:
			onlyOpen = true
		case types.ShardFilterTypeAfterShardId:
			after = aws.ToString(f.ShardId)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.trim(now)
	out := &kinesis.ListShardsOutput{}
	i := start
	for ; i < len(s.shards) && len(out.Shards) < maxResults; i++ {
		sh := s.shards[i]
		if (after != "" && sh.id <= after) || (onlyOpen && sh.closed()) || !s.visible(sh, now) {
			continue
		}
		out.Shards = append(out.Shards, s.toShard(sh))
	}
	if i < len(s.shards) {
		out.NextToken = aws.String(strconv.Itoa(i))
	}
	return out, nil
}

// DescribeStreamSummary describes the stream (ACTIVE, PROVISIONED, unencrypted).
func (s *Stream) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	open := 0
	for _, sh := range s.shards {
		if !sh.closed() {
			open++
		}
	}
	created := s.created
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName:              aws.String(s.name),
		StreamARN:               aws.String(s.arn),
		StreamStatus:            types.StreamStatusActive,
		StreamModeDetails:       &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
		RetentionPeriodHours:    aws.Int32(int32(s.retention / time.Hour)),
		StreamCreationTimestamp: &created,
		OpenShardCount:          aws.Int32(int32(open)),
		ConsumerCount:           aws.Int32(0),
		EncryptionType:          types.EncryptionTypeNone,
		MaxRecordSizeInKiB:      aws.Int32(int32(s.maxRecordBytes >> 10)),
		EnhancedMonitoring:      []types.EnhancedMetrics{{}},
	}}, nil
}

// DescribeStream describes the stream and up to Limit (default 100) shards.
func (s *Stream) DescribeStream(ctx context.Context, in *kinesis.DescribeStreamInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	limit := 100
	if in.Limit != nil {
		limit = int(*in.Limit)
		if limit < 1 || limit > 10000 {
			return nil, invalidArg("Limit must be between 1 and 10000.")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.trim(now)
	after := aws.ToString(in.ExclusiveStartShardId)
	d := &types.StreamDescription{
		StreamName: aws.String(s.name), StreamARN: aws.String(s.arn), StreamStatus: types.StreamStatusActive,
		StreamModeDetails:    &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
		RetentionPeriodHours: aws.Int32(int32(s.retention / time.Hour)), StreamCreationTimestamp: aws.Time(s.created),
		EncryptionType: types.EncryptionTypeNone, EnhancedMonitoring: []types.EnhancedMetrics{{}}, HasMoreShards: aws.Bool(false),
	}
	for _, sh := range s.shards {
		if (after != "" && sh.id <= after) || !s.visible(sh, now) {
			continue
		}
		if len(d.Shards) == limit {
			d.HasMoreShards = aws.Bool(true)
			break
		}
		d.Shards = append(d.Shards, s.toShard(sh))
	}
	return &kinesis.DescribeStreamOutput{StreamDescription: d}, nil
}

// SplitShard closes an open shard and creates two children: [start, NewStartingHashKey-1] and
// [NewStartingHashKey, end]. Unlike AWS the stream is ACTIVE again at once.
func (s *Stream) SplitShard(ctx context.Context, in *kinesis.SplitShardInput, _ ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, err := s.openShard(aws.ToString(in.ShardToSplit))
	if err != nil {
		return nil, err
	}
	k, ok := new(big.Int).SetString(aws.ToString(in.NewStartingHashKey), 10)
	if !ok || k.Cmp(sh.start) <= 0 || k.Cmp(sh.end) > 0 {
		return nil, invalidArg(fmt.Sprintf("NewStartingHashKey %s used in SplitShard() on shard %s in stream %s under account %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s.",
			aws.ToString(in.NewStartingHashKey), sh.id, s.name, AccountID, sh.start, sh.end))
	}
	sh.endSeq = s.nextSeq(sh)
	a := s.addShard(sh.start, new(big.Int).Sub(k, big.NewInt(1)), sh.id, "")
	b := s.addShard(k, sh.end, sh.id, "")
	sh.children = []int{a.index, b.index}
	if err := s.saveLayout(); err != nil {
		return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
	}
	return &kinesis.SplitShardOutput{}, nil
}

// MergeShards merges two adjacent open shards into one child.
func (s *Stream) MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, _ ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.resolve(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.openShard(aws.ToString(in.ShardToMerge))
	if err != nil {
		return nil, err
	}
	b, err := s.openShard(aws.ToString(in.AdjacentShardToMerge))
	if err != nil {
		return nil, err
	}
	lo, hi := a, b
	if b.start.Cmp(a.start) < 0 {
		lo, hi = b, a
	}
	if new(big.Int).Add(lo.end, big.NewInt(1)).Cmp(hi.start) != 0 {
		return nil, invalidArg(fmt.Sprintf("Shards %s and %s in stream %s under account %s are not an adjacent pair of shards eligible for merging", a.id, b.id, s.name, AccountID))
	}
	a.endSeq = s.nextSeq(a)
	b.endSeq = s.nextSeq(b)
	c := s.addShard(lo.start, hi.end, a.id, b.id)
	a.children = []int{c.index}
	b.children = []int{c.index}
	if err := s.saveLayout(); err != nil {
		return nil, &types.InternalFailureException{Message: aws.String("Internal service failure (local stream: " + err.Error() + ").")}
	}
	return &kinesis.MergeShardsOutput{}, nil
}

func (s *Stream) openShard(id string) (*shard, error) {
	sh := s.shardByID(id)
	if sh == nil {
		return nil, &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Could not find shard %s in stream %s under account %s.", id, s.name, AccountID))}
	}
	if sh.closed() {
		return nil, &types.ResourceInUseException{Message: aws.String(fmt.Sprintf("Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", id, s.name, AccountID))}
	}
	return sh, nil
}

// Stats counts what the stream has seen since creation.
type Stats struct {
	PutRequests      int64 // PutRecord and PutRecords calls that reached the shards
	RecordsStored    int64
	BytesStored      int64 // data + partition key
	Throttled        int64 // entries rejected with ProvisionedThroughputExceededException
	InternalFailures int64 // entries rejected with InternalFailure (injected)
	RequestErrors    int64 // whole requests failed by injection (incl. store-then-fail)
	ReadThrottled    int64 // GetRecords calls rejected by the read limits
	StorageErrors    int64 // failed reads or writes of the records' files (answered as InternalFailure)
	RecordsHeld      int64 // records retained now (on disk with Config.Dir, else in memory)
	BytesHeld        int64
	// Shards are the per-shard write counters, in shard order (closed shards included): how evenly
	// the producers spread the load.
	Shards []ShardStats
}

// ShardStats counts the writes one shard has seen.
type ShardStats struct {
	ShardID       string
	RecordsStored int64
	BytesStored   int64 // data + partition key
	Throttled     int64
}

// Stats returns the counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.BytesHeld = s.bytes
	st.Shards = make([]ShardStats, 0, len(s.shards))
	for _, sh := range s.shards {
		st.RecordsHeld += int64(sh.log.len())
		st.Shards = append(st.Shards, ShardStats{ShardID: sh.id, RecordsStored: sh.storedRecs, BytesStored: sh.storedBytes, Throttled: sh.throttled})
	}
	return st
}

// rollWindow starts the write window of second sec, keeping the one before for WriteUse.
func (sh *shard) rollWindow(sec int64) {
	sh.prevRecs, sh.prevBytes = 0, 0
	if sh.winSec == sec-1 {
		sh.prevRecs, sh.prevBytes = sh.winRecs, sh.winBytes
	}
	sh.winSec, sh.winRecs, sh.winBytes = sec, 0, 0
}

// ShardUse is how much of one open shard's write limit the last full second used.
type ShardUse struct {
	ShardID string
	Records int     // records written in that second
	Bytes   int     // data + partition key bytes
	Use     float64 // the larger of Records/1,000 and Bytes/1 MiB (1 = the shard's limit)
}

// WriteUse reports, per open shard, the writes of the last full second (the progress display of
// `taxistream local`).
func (s *Stream) WriteUse() []ShardUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.now().Unix() - 1
	var out []ShardUse
	for _, sh := range s.shards {
		if sh.closed() {
			continue
		}
		u := ShardUse{ShardID: sh.id}
		switch sh.winSec {
		case last:
			u.Records, u.Bytes = sh.winRecs, sh.winBytes
		case last + 1:
			u.Records, u.Bytes = sh.prevRecs, sh.prevBytes
		}
		u.Use = max(float64(u.Records)/kinesislimit.ShardWriteRecordsPerSecond, float64(u.Bytes)/kinesislimit.ShardWriteBytesPerSecond)
		out = append(out, u)
	}
	return out
}

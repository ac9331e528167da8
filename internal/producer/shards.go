package producer

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// hashKey is a 128-bit Kinesis hash key (big-endian MD5 of the partition key).
type hashKey struct{ hi, lo uint64 }

func (a hashKey) less(b hashKey) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// hashOf returns the hash key Kinesis assigns to a partition key: the MD5 of its UTF-8 bytes read
// as an unsigned 128-bit big-endian integer.
func hashOf(partitionKey string) hashKey {
	sum := md5.Sum([]byte(partitionKey))
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

func parseHashKey(s string) (hashKey, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.BitLen() > 128 {
		return hashKey{}, fmt.Errorf("invalid hash key %q", s)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return hashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// shardRange is an open shard and its hash key range (inclusive).
type shardRange struct {
	id         string
	start, end hashKey
	startText  string // start in decimal: the ExplicitHashKey that sends a record to this shard
}

// shardMap predicts the shard of a partition key from the open shards' hash key ranges.
type shardMap struct {
	ranges []shardRange // sorted by start
}

// predict returns the id of the open shard whose range holds the key's hash ("" when none does,
// e.g. an empty map).
func (m *shardMap) predict(partitionKey string) string {
	h := hashOf(partitionKey)
	i := sort.Search(len(m.ranges), func(i int) bool { return h.less(m.ranges[i].start) }) - 1
	if i >= 0 && !m.ranges[i].end.less(h) {
		return m.ranges[i].id
	}
	return ""
}

// explicitHashKey returns the ExplicitHashKey that routes a record to shard id ("" when the shard is
// not in the map).
func (m *shardMap) explicitHashKey(id string) string {
	for _, r := range m.ranges {
		if r.id == id {
			return r.startText
		}
	}
	return ""
}

func (m *shardMap) has(id string) bool {
	for _, r := range m.ranges {
		if r.id == id {
			return true
		}
	}
	return false
}

// listOpenShards lists the stream's open shards (no ending sequence number), following NextToken.
func listOpenShards(ctx context.Context, c Client, cfg Config) (*shardMap, error) {
	m := &shardMap{}
	in := &kinesis.ListShardsInput{}
	if cfg.StreamARN != "" {
		in.StreamARN = &cfg.StreamARN
	} else {
		in.StreamName = &cfg.StreamName
	}
	for page := 0; ; page++ {
		if page > 10_000 {
			return nil, fmt.Errorf("listing shards: more than %d pages", page)
		}
		out, err := c.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing shards of %s: %w", cfg.stream(), err)
		}
		for _, s := range out.Shards {
			if s.ShardId == nil || s.HashKeyRange == nil || s.HashKeyRange.StartingHashKey == nil || s.HashKeyRange.EndingHashKey == nil {
				continue
			}
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed: a parent of a split or merge
			}
			start, err := parseHashKey(*s.HashKeyRange.StartingHashKey)
			if err != nil {
				return nil, fmt.Errorf("listing shards: shard %s: %w", *s.ShardId, err)
			}
			end, err := parseHashKey(*s.HashKeyRange.EndingHashKey)
			if err != nil {
				return nil, fmt.Errorf("listing shards: shard %s: %w", *s.ShardId, err)
			}
			m.ranges = append(m.ranges, shardRange{id: *s.ShardId, start: start, end: end, startText: *s.HashKeyRange.StartingHashKey})
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		// With NextToken the stream must not be named again (ListShards API).
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	sort.Slice(m.ranges, func(i, j int) bool { return m.ranges[i].start.less(m.ranges[j].start) })
	return m, nil
}

// throttledShard returns the shard id named in a ProvisionedThroughputExceededException message,
// e.g. "Rate exceeded for shard shardId-000000000001 in stream s under account 123456789012.".
func throttledShard(msg string) string {
	i := strings.Index(msg, "shardId-")
	if i < 0 {
		return ""
	}
	j := i
	for j < len(msg) && msg[j] != ' ' && msg[j] != '.' && msg[j] != ',' {
		j++
	}
	return msg[i:j]
}

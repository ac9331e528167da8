package producer

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// TestKinesisMock writes through the real SDK client (JSON 1.1 over plain HTTP; Kinesis does not use
// CBOR in the Go SDK) into kinesis-mock, reads every shard back with GetShardIterator/GetRecords,
// de-aggregates and compares: every row once, with its own key, on the shard its key hashes to.
func TestKinesisMock(t *testing.T) {
	endpoint := testpeers.StartKinesisMock(t)
	c := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}, ClientOptions())
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute) // a bound, not a pace: slow under load
	defer cancel()

	for _, tc := range []struct {
		stream    string
		aggregate bool
	}{{"agg", true}, {"plain", false}} {
		t.Run(tc.stream, func(t *testing.T) {
			if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(tc.stream), ShardCount: aws.Int32(3)}); err != nil {
				t.Fatalf("CreateStream: %v", err)
			}
			waitActive(ctx, t, c, tc.stream)

			p, err := New(ctx, c, Config{StreamName: tc.stream, Aggregate: tc.aggregate, AggregateMaxBytes: 16 << 10})
			if err != nil {
				t.Fatal(err)
			}
			const n = 3000
			for i := range n {
				if err := p.Put(ctx, Entry{Data: rowData(i, i%200), PartitionKey: keyOf(i), Tag: int64(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if f, err := p.Flush(ctx); err != nil || len(f) != 0 {
				t.Fatalf("Flush: %v %v", f, err)
			}
			st := p.Stats()
			if st.UserRecords != n || st.Reshards != 0 {
				t.Errorf("stats %+v: want %d user records and no mispredicted shard", st, n)
			}
			if tc.aggregate && st.KinesisRecords > n/20 {
				t.Errorf("%d Kinesis records for %d rows: not aggregated", st.KinesisRecords, n)
			}

			shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(tc.stream)})
			if err != nil {
				t.Fatal(err)
			}
			m, err := listOpenShards(ctx, c, Config{StreamName: tc.stream})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]int{}
			for _, sh := range shards.Shards {
				subs := readShard(ctx, t, c, tc.stream, *sh.ShardId)
				for _, u := range subs {
					i := rowOf(t, u.Data)
					seen[i]++
					if u.PartitionKey != keyOf(i) {
						t.Errorf("row %d read with key %q, want %q", i, u.PartitionKey, keyOf(i))
					}
					if got := m.predict(u.PartitionKey); got != *sh.ShardId {
						t.Errorf("row %d (key %q) on %s, predicted %s", i, u.PartitionKey, *sh.ShardId, got)
					}
					if string(u.Data) != string(rowData(i, i%200)) {
						t.Errorf("row %d data differs", i)
					}
					if u.Aggregated && !tc.aggregate {
						t.Errorf("row %d aggregated in a plain run", i)
					}
				}
			}
			for i := range n {
				if seen[i] != 1 {
					t.Errorf("row %d read %d times", i, seen[i])
				}
			}
		})
	}
}

func waitActive(ctx context.Context, t *testing.T, c *kinesis.Client, stream string) {
	t.Helper()
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s not active: %v", stream, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readShard(ctx context.Context, t *testing.T, c *kinesis.Client, stream, shard string) []kpl.SubRecord {
	t.Helper()
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatalf("GetShardIterator %s: %v", shard, err)
	}
	var out []kpl.SubRecord
	iter := it.ShardIterator
	for page := 0; iter != nil; page++ {
		if page > 1000 {
			t.Fatalf("%s: too many pages", shard)
		}
		res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
		if err != nil {
			t.Fatalf("GetRecords %s: %v", shard, err)
		}
		subs, err := kpl.DeaggregateRecords(res.Records)
		if err != nil {
			t.Fatalf("%s: %v", shard, err)
		}
		out = append(out, subs...)
		if len(res.Records) == 0 || (res.MillisBehindLatest != nil && *res.MillisBehindLatest == 0 && len(res.Records) < 1000) {
			break
		}
		iter = res.NextShardIterator
	}
	if len(out) == 0 {
		t.Logf("%s: no records", shard)
	}
	return out
}

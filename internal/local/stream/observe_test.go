package stream

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

type observed []PutObservation

func (o *observed) ObservePut(p PutObservation) {
	p.Entries = append([]PutEntryOutcome(nil), p.Entries...)
	*o = append(*o, p)
}

// TestObserverSeesEveryEntry: 1,001 entries to one shard in one second: 1,000 stored with their
// sequence counters, the last throttled; the counter is the one in the sequence number.
func TestObserverSeesEveryEntry(t *testing.T) {
	var obs observed
	s, _ := newStream(t, Config{Name: "trips", Observer: &obs})
	recs := make([]types.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String("k")}
	}
	var seqs []string
	for range 3 {
		out, err := s.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
	}
	if len(obs) != 3 {
		t.Fatalf("%d observations, want 3", len(obs))
	}
	stored, throttled := 0, 0
	for i, p := range obs {
		for j, e := range p.Entries {
			if e.Shard != ShardID(0) || e.Size != 2 || string(e.Data) != "x" {
				t.Fatalf("entry %+v", e)
			}
			switch e.ErrorCode {
			case "":
				stored++
				c, ok := SequenceCounter(seqs[i*500+j])
				if !ok || c != e.Counter {
					t.Errorf("entry %d: counter %d, sequence number %s (%d, %v)", i*500+j, e.Counter, seqs[i*500+j], c, ok)
				}
			case ErrCodeThroughput:
				throttled++
			default:
				t.Errorf("entry %+v", e)
			}
		}
	}
	if stored != kinesislimit.ShardWriteRecordsPerSecond || throttled != 1500-kinesislimit.ShardWriteRecordsPerSecond {
		t.Errorf("%d stored, %d throttled; want %d and %d", stored, throttled, kinesislimit.ShardWriteRecordsPerSecond, 1500-kinesislimit.ShardWriteRecordsPerSecond)
	}
	if _, ok := SequenceCounter("123"); ok {
		t.Error("SequenceCounter accepted a short sequence number")
	}
}

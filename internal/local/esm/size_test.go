package esm

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestEventPayloadCut: event() cuts a batch at exactly the most records whose event JSON fits
// MaxPayloadBytes (it sizes records without base64-encoding their data twice), for data of every
// length modulo 3 (base64 padding) and partition keys that need escaping.
func TestEventPayloadCut(t *testing.T) {
	e := &ESM{region: "us-east-1", cfg: Config{StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s", RoleARN: "arn:aws:iam::000000000000:role/r"}}
	st := &shardState{e: e, id: "shardId-000000000000"}
	keys := []string{"132", `a"b\c`, "Zoë\n", "<&>"}
	for seed := range 12 {
		r := rand.New(rand.NewPCG(uint64(seed), 9))
		var recs []types.Record
		for i := range 40 {
			data := make([]byte, 100_000+r.IntN(300_000))
			recs = append(recs, types.Record{Data: data, PartitionKey: aws.String(keys[i%len(keys)]),
				SequenceNumber: aws.String(fmt.Sprint(4959000000001 + i)), ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, int64(i)*1e6))})
		}
		payload, k := st.event(recs, false, false)
		// The records as the event carries them, one event each (each fits alone).
		all := make([]events.KinesisEventRecord, len(recs))
		for i := range recs {
			one, n := st.event(recs[i:i+1], false, false)
			var ev events.KinesisEvent
			if err := json.Unmarshal(one, &ev); err != nil || n != 1 {
				t.Fatal(err)
			}
			all[i] = ev.Records[0]
		}
		size := func(j int) int {
			b, _ := json.Marshal(events.KinesisEvent{Records: all[:j]})
			return len(b)
		}
		if k < 1 || k >= len(recs) {
			t.Fatalf("seed %d: event took %d of %d records; the test wants a cut inside", seed, k, len(recs))
		}
		if got := size(k); got > MaxPayloadBytes || got != len(payload) {
			t.Errorf("seed %d: %d records are %d bytes (payload %d), limit %d", seed, k, got, len(payload), MaxPayloadBytes)
		}
		if next := size(k + 1); next <= MaxPayloadBytes {
			t.Errorf("seed %d: event took %d records, but %d fit (%d bytes ≤ %d)", seed, k, k+1, next, MaxPayloadBytes)
		}
		if len(payload) > MaxPayloadBytes {
			t.Errorf("seed %d: payload of %d bytes", seed, len(payload))
		}
	}
}

// TestEventPayloadCutExact: two records whose event is exactly MaxPayloadBytes go together; one byte
// more (a longer partition key) and the second waits for the next batch.
func TestEventPayloadCutExact(t *testing.T) {
	e := &ESM{region: "us-east-1", cfg: Config{StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s", RoleARN: "arn:aws:iam::000000000000:role/r"}}
	st := &shardState{e: e, id: "shardId-000000000000"}
	rec := func(n int, key string) types.Record {
		return types.Record{Data: make([]byte, n), PartitionKey: aws.String(key), SequenceNumber: aws.String("4959000000001"),
			ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 0))}
	}
	size := func(recs ...types.Record) int {
		var all []events.KinesisEventRecord
		for _, r := range recs {
			one, _ := st.event([]types.Record{r}, false, false)
			var ev events.KinesisEvent
			if err := json.Unmarshal(one, &ev); err != nil {
				t.Fatal(err)
			}
			all = append(all, ev.Records...)
		}
		b, _ := json.Marshal(events.KinesisEvent{Records: all})
		return len(b)
	}
	first := rec(1000, "a")
	// Data of 3·m bytes is 4·m base64 characters: find m and a key length that land exactly on the limit.
	m := (MaxPayloadBytes - size(first, rec(0, "k"))) / 4
	seen := map[int]bool{}
	for pad := 1; pad < 9; pad++ {
		key := "k" + strings.Repeat("0", pad)
		second := rec(3*m, key)
		total := size(first, second)
		_, k := st.event([]types.Record{first, second}, false, false)
		want := 2
		if total > MaxPayloadBytes {
			want = 1
		}
		if k != want {
			t.Errorf("event of %d bytes (limit %d): took %d records, want %d", total, MaxPayloadBytes, k, want)
		}
		seen[want] = true
	}
	if !seen[1] || !seen[2] {
		t.Errorf("the keys did not straddle the limit: %v", seen)
	}
}

// TestEventIsJSONMarshalOfTheEvent: the spliced event (envelope + each record's JSON, cached or not)
// is byte for byte json.Marshal of the whole event, with and without a tumbling window.
func TestEventIsJSONMarshalOfTheEvent(t *testing.T) {
	e := &ESM{region: "us-east-1", cfg: Config{StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s", RoleARN: "arn:aws:iam::000000000000:role/r", BatchSize: 2, ReadAhead: true}}
	var recs []types.Record
	for i, key := range []string{"132", `a"b\c`, "Zoë\n", "<&>"} {
		recs = append(recs, types.Record{Data: []byte(fmt.Sprintf(`{"n":%d,"s":"<&>"}`, i)), PartitionKey: aws.String(key),
			SequenceNumber: aws.String(fmt.Sprint(4959000000001 + i)), ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, int64(i)*1e6))})
	}
	for _, win := range []*window{nil, {start: time.Unix(1699999800, 0).UTC(), end: time.Unix(1700000100, 0).UTC(), state: map[string]string{"k": "v"}}} {
		st := &shardState{e: e, id: "shardId-000000000000", win: win, pending: recs}
		st.warm(ctx, recs[:1])() // records 1 and 2 come from the cache
		if len(st.frags) != 2 {
			t.Fatalf("warm kept %d records, want 2", len(st.frags))
		}
		got, k := st.event(recs, true, false)
		evRecs := make([]events.KinesisEventRecord, len(recs))
		for i := range recs {
			if err := json.Unmarshal(st.marshalRecord(&recs[i]), &evRecs[i]); err != nil {
				t.Fatal(err)
			}
		}
		var v any = events.KinesisEvent{Records: evRecs}
		if win != nil {
			v = events.KinesisTimeWindowEvent{KinesisEvent: events.KinesisEvent{Records: evRecs}, TimeWindowProperties: events.TimeWindowProperties{
				Window: events.Window{Start: events.RFC3339EpochTime{Time: win.start}, End: events.RFC3339EpochTime{Time: win.end}},
				State:  win.state, ShardID: st.id, EventSourceARN: e.cfg.StreamARN, IsFinalInvokeForWindow: true,
			}}
		}
		want, _ := json.Marshal(v)
		if k != len(recs) || string(got) != string(want) {
			t.Errorf("window %v: event (%d records)\n%s\nwant\n%s", win != nil, k, got, want)
		}
		st.commit(3)
		if len(st.frags) != 0 {
			t.Errorf("after commit, %d cached records are kept, want 0", len(st.frags))
		}
	}
}

// TestMarshalRecordSameAsJSON: a record's JSON, with its data's base64 written into place, is byte for
// byte what json.Marshal writes, whatever the data's length and partition key (one that holds the text
// of the data field itself included).
func TestMarshalRecordSameAsJSON(t *testing.T) {
	e := &ESM{region: "us-east-1", cfg: Config{StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s", RoleARN: "arn:aws:iam::000000000000:role/r"}}
	st := &shardState{e: e, id: "shardId-000000000000"}
	r := rand.New(rand.NewPCG(5, 6))
	for _, key := range []string{"132", `"data":""`, `x","data":"`, "<&>\u2028"} {
		for _, n := range []int{0, 1, 2, 3, 4, 100, 65_537} {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			rec := types.Record{Data: data, PartitionKey: aws.String(key), SequenceNumber: aws.String("49590000000000000000000000000000000000000000000000000001"),
				ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 123e6))}
			want, _ := json.Marshal(events.KinesisEventRecord{
				AwsRegion: "us-east-1", EventID: st.id + ":" + *rec.SequenceNumber, EventName: "aws:kinesis:record",
				EventSource: "aws:kinesis", EventSourceArn: e.cfg.StreamARN, EventVersion: "1.0", InvokeIdentityArn: e.cfg.RoleARN,
				Kinesis: events.KinesisRecord{ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: *rec.ApproximateArrivalTimestamp},
					Data: data, PartitionKey: key, SequenceNumber: *rec.SequenceNumber, KinesisSchemaVersion: "1.0"},
			})
			if got := st.marshalRecord(&rec); string(got) != string(want) {
				t.Errorf("key %q, %d bytes of data:\n got %.300s\nwant %.300s", key, n, got, want)
			}
		}
	}
}

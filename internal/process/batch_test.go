package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/taxistream/taxistream/internal/kpl"
)

func validAggregate(data []byte) bool {
	_, err := kpl.Deaggregate(data, "pk", "")
	return kpl.IsAggregated(data) && err == nil
}

func TestAggregatedRecords(t *testing.T) {
	agg := kpl.Aggregate([]kpl.UserRecord{
		{PartitionKey: "230", Data: yellowWith(`"record_id":"x0"`)},
		{PartitionKey: "231", Data: yellowWith(`"record_id":"x1","passenger_count":99`)},
		{PartitionKey: "232", Data: yellowWith(`"record_id":"x2"`)},
	})
	corrupt := append([]byte{}, agg...)
	corrupt[len(corrupt)-1] ^= 0xFF // MD5 trailer
	store := newFakeS3()
	h, _, metrics := newTestHandler(t, store, nil)
	resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, agg), kinesisRecord(1, corrupt)}))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	rows := readTrips(t, store.objects[TripsKey("2019-01-15", fixtureShard, seqOf(0))])
	if len(rows) != 2 || rows[0].RecordID != "x0" || rows[1].RecordID != "x2" || rows[1].KinesisSubSequence != 2 || rows[1].KinesisSequenceNumber != seqOf(0) {
		t.Errorf("rows %+v", rows)
	}
	q := readQuarantine(t, store.objects[QuarantineKey("2019-01-15", fixtureShard, seqOf(0))])
	if len(q) != 1 || q[0]["record_id"] != "x1" || q[0]["_kinesis"].(map[string]any)["sub_sequence_number"] != 1.0 {
		t.Errorf("quarantine %v", q)
	}
	m := emf(t, metrics)
	if m["UserRecords"] != 4.0 || m["TripsInvalid_corrupt_aggregate"] != 1.0 || m["TripsValid"] != 2.0 {
		t.Errorf("metrics %v", m)
	}
}

func seqOf(i int) string {
	return fmt.Sprintf("4959033827149025660855969253836157109592157598913%07d", i)
}

// kinesisRecord wraps data as the i-th record of the shard.
func kinesisRecord(i int, data []byte) events.KinesisEventRecord {
	return events.KinesisEventRecord{
		EventID:     fixtureShard + ":" + seqOf(i),
		EventSource: "aws:kinesis",
		Kinesis: events.KinesisRecord{
			Data: data, PartitionKey: "pk", SequenceNumber: seqOf(i),
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: testNow.Add(-time.Minute)},
		},
	}
}

func eventOf(recs []events.KinesisEventRecord) events.KinesisTimeWindowEvent {
	var ev events.KinesisTimeWindowEvent
	ev.Records = recs
	ev.ShardID = fixtureShard
	return ev
}

func TestPartialBatchReportsSequenceNumber(t *testing.T) {
	store := newFakeS3()
	store.failPut = func(key string) bool { return strings.Contains(key, "pickup_date=2019-01-16") }
	h, logs, metrics := newTestHandler(t, store, nil)
	ev := loadEvent(t, "testdata/kinesis-batch.json")
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error with a partial failure: %v", err)
	}
	want := "49590338271490256608559692538361571095921575989136588804"
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != want {
		t.Fatalf("BatchItemFailures = %+v, want the sequence number %s (not the eventID)", resp.BatchItemFailures, want)
	}
	// Records before the failed one are durable; the failed date and everything after it is not.
	wantKeys := []string{
		"processed/trips/pickup_date=2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".parquet",
		"quarantine/2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".jsonl.gz",
	}
	if got := store.keys(""); fmt.Sprint(got) != fmt.Sprint(wantKeys) {
		t.Errorf("keys = %v, want %v", got, wantKeys)
	}
	m := emf(t, metrics)
	if m["RecordsFailed"] != 2.0 || m["TripsValid"] != 1.0 || m["TripsInvalid"] != 1.0 || m["DuplicatesDropped"] != 1.0 {
		t.Errorf("metrics %v", m)
	}
	if !strings.Contains(logs.String(), `"failed_seq":"`+want) {
		t.Errorf("summary lacks failed_seq: %s", logs)
	}

	// The retry starts at the reported record; its objects are named after it.
	store.failPut = nil
	ev.Records = ev.Records[3:]
	if resp, err := h.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry: %+v, %v", resp, err)
	}
	if rows := readTrips(t, store.objects[TripsKey("2019-01-16", fixtureShard, want)]); len(rows) != 1 {
		t.Errorf("retry wrote %d rows for 2019-01-16, want 1", len(rows))
	}
}

// TestPartialBatchRewritesPrefix: a file written before the failure that also holds records after the
// failure point is rewritten with its prefix only, so the retry cannot duplicate them.
func TestPartialBatchRewritesPrefix(t *testing.T) {
	store := newFakeS3()
	failed := false
	store.failPut = func(key string) bool {
		if strings.HasPrefix(key, QuarantinePrefix) && !failed {
			failed = true
			return true
		}
		return false
	}
	h, _, _ := newTestHandler(t, store, nil)
	recs := []events.KinesisEventRecord{
		kinesisRecord(0, yellowWith(`"record_id":"a"`)),
		kinesisRecord(1, yellowWith(`"record_id":"b","passenger_count":12`)),
		kinesisRecord(2, yellowWith(`"record_id":"c"`)),
	}
	resp, err := h.Handle(context.Background(), eventOf(recs))
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seqOf(1) {
		t.Fatalf("resp %+v err %v, want failure at %s", resp, err, seqOf(1))
	}
	rows := readTrips(t, store.objects[TripsKey("2019-01-15", fixtureShard, seqOf(0))])
	if len(rows) != 1 || rows[0].RecordID != "a" {
		t.Fatalf("trips after the failure = %+v, want only a", rows)
	}
	// trips (a, c); quarantine (b) fails; trips again (a); quarantine emptied, since the failed PUT
	// may have stored it and the retry, named after b, would write b again.
	if n := len(store.puts); n != 4 {
		t.Errorf("%d puts %v, want 4", n, store.puts)
	}
	if q := readQuarantine(t, store.objects[QuarantineKey("2019-01-15", fixtureShard, seqOf(0))]); len(q) != 0 {
		t.Errorf("quarantine after the failure = %v, want empty", q)
	}
}

func TestCorruptAggregateQuarantined(t *testing.T) {
	store := newFakeS3()
	h, _, metrics := newTestHandler(t, store, nil)
	bad := append([]byte(kpl.Magic), []byte("\x0a\x01\x31garbage-with-a-wrong-md5-trailer-0123456789")...)
	resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, yellowWith("")), kinesisRecord(1, bad)}))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	q := readQuarantine(t, store.objects[QuarantineKey("unknown", fixtureShard, seqOf(0))])
	if len(q) != 1 || q[0]["_raw_base64"] == nil {
		t.Fatalf("quarantine = %v", q)
	}
	if r := q[0]["_rejections"].([]any)[0].(map[string]any); r["rule"] != RuleCorruptAggregate {
		t.Errorf("rejection %v, want %s", r, RuleCorruptAggregate)
	}
	if m := emf(t, metrics); m["TripsInvalid_corrupt_aggregate"] != 1.0 || m["TripsValid"] != 1.0 {
		t.Errorf("metrics %v", m)
	}
}

// genStream builds n Kinesis records: valid trips over a few dates, invalid ones, malformed ones,
// corrupt aggregates and repeated records (exact duplicates of an earlier one).
func genStream(rng *rand.Rand, n int) ([]events.KinesisEventRecord, map[string]int) {
	var recs []events.KinesisEventRecord
	sent := map[string]int{}
	var datas [][]byte
	for i := 0; i < n; i++ {
		var data []byte
		id := fmt.Sprintf("rec-%d", i)
		day := 10 + rng.IntN(4)
		pick := fmt.Sprintf("2019-01-%02dT%02d:%02d:00-05:00", day, rng.IntN(24), rng.IntN(50))
		drop := pick[:14] + "59:00-05:00"
		switch r := rng.IntN(100); {
		case r < 10 && len(datas) > 0:
			data = datas[rng.IntN(len(datas))] // a duplicate
		case r < 15:
			data = []byte(fmt.Sprintf("garbage %d\n", i))
		case r < 18:
			data = append([]byte(kpl.Magic), fmt.Sprintf("corrupt %d", i)...)
		case r < 25:
			// A KPL aggregate of three trips (one invalid), each with its own partition key.
			var urs []kpl.UserRecord
			for j := 0; j < 3; j++ {
				loc := 1 + rng.IntN(265)
				if j == 2 {
					loc = 300
				}
				d := yellowWith(fmt.Sprintf(`"record_id":"%s-%d","pickup_datetime":%q,"dropoff_datetime":%q,"pu_location_id":%d`, id, j, pick, drop, loc))
				urs = append(urs, kpl.UserRecord{PartitionKey: fmt.Sprint(loc), Data: d})
				sent[fmt.Sprintf("%s-%d", id, j)]++
			}
			data = kpl.Aggregate(urs)
		case r < 40:
			data = yellowWith(fmt.Sprintf(`"record_id":%q,"pickup_datetime":%q,"dropoff_datetime":%q,"pu_location_id":%d`, id, pick, drop, 266+rng.IntN(5)))
		default:
			data = yellowWith(fmt.Sprintf(`"record_id":%q,"pickup_datetime":%q,"dropoff_datetime":%q,"pu_location_id":%d`, id, pick, drop, 1+rng.IntN(265)))
		}
		if data[0] == '{' {
			datas = append(datas, data)
			sent[recordIDOf(data)]++
		}
		recs = append(recs, kinesisRecord(i, data))
	}
	return recs, sent
}

func recordIDOf(data []byte) string {
	var tr trip
	_ = parseTrip(data, &tr)
	return tr.recordID.v
}

// TestPropertyExactlyOnce drives random batches through the handler with random S3 failures, retrying
// from the reported sequence number like the event source mapping. Every record must end in exactly
// one of processed/ or quarantine/ (or be retried), and after all retries each record is in the
// outputs exactly once; a record sent twice may appear twice only if its copies were in different
// invocations (within a batch, the later copy is dropped).
//
// Fault models: "transient" fails the first PUT of a key in an invocation with probability p (the
// clean-up rewrite then succeeds): exactly once must hold. "random" fails any PUT with probability p,
// clean-up rewrites included: an object that could not be emptied is a residual (ResidualObjects);
// no record may be lost, and a record may repeat only when the run reported residuals.
func TestPropertyExactlyOnce(t *testing.T) {
	for _, model := range []string{"transient", "random"} {
		for seed := uint64(1); seed <= 20; seed++ {
			t.Run(fmt.Sprint(model, "/", seed), func(t *testing.T) { propertyRun(t, model, seed) })
		}
	}
}

func propertyRun(t *testing.T, model string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs, sent := genStream(rng, 60+rng.IntN(100))
	store := newFakeS3()
	failRate := rng.Float64() * 0.5
	attempted := map[string]bool{}
	store.failPut = func(key string) bool {
		first := !attempted[key]
		attempted[key] = true
		return (model == "random" || first) && rng.Float64() < failRate
	}
	h, _, metrics := newTestHandler(t, store, nil)
	pos, invokes, failures, residuals := 0, 0, 0, 0.0
	for pos < len(recs) {
		invokes++
		if invokes > 5000 {
			t.Fatal("no progress")
		}
		end := min(len(recs), pos+1+rng.IntN(30))
		clear(attempted)
		metrics.Reset()
		resp, err := h.Handle(context.Background(), eventOf(recs[pos:end]))
		if r, ok := emf(t, metrics)["ResidualObjects"].(float64); ok {
			residuals += r
		}
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if len(resp.BatchItemFailures) == 0 {
			pos = end
			continue
		}
		failures++
		if len(resp.BatchItemFailures) != 1 {
			t.Fatalf("%d failures reported, want 1", len(resp.BatchItemFailures))
		}
		next := -1
		for i := pos; i < end; i++ {
			if recs[i].Kinesis.SequenceNumber == resp.BatchItemFailures[0].ItemIdentifier {
				next = i
			}
		}
		if next < 0 {
			t.Fatalf("reported %q is not a sequence number of the batch", resp.BatchItemFailures[0].ItemIdentifier)
		}
		pos = next
	}

	seen := map[string]int{}    // record_id → rows in processed/ and quarantine/
	rawSeen := map[string]int{} // sequence number → unparseable records in quarantine/
	for _, k := range store.keys(TripsPrefix) {
		for _, r := range readTrips(t, store.objects[k]) {
			seen[r.RecordID]++
		}
	}
	for _, k := range store.keys(QuarantinePrefix) {
		for _, line := range readQuarantine(t, store.objects[k]) {
			if id, ok := line["record_id"].(string); ok {
				seen[id]++
			} else {
				rawSeen[line["_kinesis"].(map[string]any)["sequence_number"].(string)]++
			}
		}
	}
	for id, copies := range sent {
		if got := seen[id]; got < 1 || (residuals == 0 && (got > copies || (copies == 1 && got != 1))) {
			t.Errorf("record %s sent %d times is in the outputs %d times", id, copies, got)
		}
	}
	for id := range seen {
		if sent[id] == 0 {
			t.Errorf("unexpected record %s in the outputs", id)
		}
	}
	for _, r := range recs {
		if r.Kinesis.Data[0] != '{' && !validAggregate(r.Kinesis.Data) {
			if got := rawSeen[r.Kinesis.SequenceNumber]; got < 1 || (residuals == 0 && got != 1) {
				t.Errorf("unparseable record %s is in quarantine %d times, want 1", r.Kinesis.SequenceNumber, got)
			}
		}
	}
	t.Logf("%d records, %d invokes, %d partial failures, %v residual objects, fail rate %.2f", len(recs), invokes, failures, residuals, failRate)
}

// TestQuarantineLineIsValidJSON: a record the trip parser reads but that is not valid JSON (a number
// like 1-2) is quarantined as _raw, so every quarantine line stays valid JSON for Athena or jq.
func TestQuarantineLineIsValidJSON(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, nil)
	bad := []byte(`{"record_id":"0000000000000000000000000000beef","taxi_type":"yellow","pickup_datetime":"2019-01-15T10:00:00-05:00","fare_amount":1-2}` + "\n")
	resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, bad)}))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	keys := store.keys(QuarantinePrefix)
	if len(keys) != 1 {
		t.Fatalf("quarantine objects %v, want 1", keys)
	}
	q := readQuarantine(t, store.objects[keys[0]]) // fails on a line that is not valid JSON
	if len(q) != 1 || q[0]["_raw"] != string(bad) {
		t.Errorf("quarantine = %v, want the record kept as _raw", q)
	}
}

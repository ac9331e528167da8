package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

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
	// Records before the failed one are durable; the failed date and everything after it is not. Files
	// are written several at once, so a file after the failed one may have been written before the
	// failure was seen: it is then emptied (an object without rows), never left holding rows.
	wantKeys := []string{
		"processed/trips/pickup_date=2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".parquet",
		"quarantine/2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".jsonl.gz",
	}
	for _, k := range store.outputKeys() {
		switch {
		case slices.Contains(wantKeys, k):
		case strings.HasPrefix(k, QuarantinePrefix):
			if q := readQuarantine(t, store.objects[k]); len(q) != 0 {
				t.Errorf("%s holds %d records after the failure, want none", k, len(q))
			}
		default:
			if rows := readTrips(t, store.objects[k]); len(rows) != 0 {
				t.Errorf("%s holds %d trips after the failure, want none", k, len(rows))
			}
		}
	}
	for _, k := range wantKeys {
		if _, ok := store.objects[k]; !ok {
			t.Errorf("%s not written", k)
		}
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
	// ledger; trips (a, c) and quarantine (b), which fails, written at once (in either order); trips
	// again (a); quarantine emptied, since the failed PUT may have stored it and the retry, named
	// after b, would write b again; the ledger again, with what the objects hold now.
	want := []string{LedgerKey(fixtureShard), TripsKey("2019-01-15", fixtureShard, seqOf(0)), QuarantineKey("2019-01-15", fixtureShard, seqOf(0)),
		TripsKey("2019-01-15", fixtureShard, seqOf(0)), QuarantineKey("2019-01-15", fixtureShard, seqOf(0)), LedgerKey(fixtureShard)}
	got := slices.Clone(store.puts)
	if len(got) >= 3 {
		slices.Sort(got[1:3]) // processed/ before quarantine/
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("puts (-want +got):\n%s", diff)
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

// TestPropertyExactlyOnce drives random batches through the handler under random faults, with the
// event source mapping's failure handling modelled (esmModel): partial batch responses checkpoint at
// the reported record, function errors bisect the batch, retries are bounded and an exhausted batch
// goes to the failure destination, and a batch already done may be delivered again. Afterwards no
// stream record is in the outputs twice, every record is in the outputs unless its batch was
// discarded, and a record_id repeats only as often as the stream holds it.
//
// Fault models (each over 20 seeds):
//   - transient: the first PUT of a key in an invocation fails with probability p.
//   - random: any PUT (ledger and clean-up rewrites included) fails with probability p, and any GET
//     with p/4: clean-up rewrites fail too, leaving residual objects for the next invocation.
//   - stored: PUTs store their object and then fail with probability p (a lost response).
//   - crash: besides random faults, an invocation dies after a random number of S3 calls (a timeout
//     or a killed process: the rest of it has no effect) and is a function error, so the batch is
//     bisected; an invocation that returned may still count as a function error, or its response be
//     lost so that the same batch comes again; and the mapping sometimes loses its checkpoint and
//     delivers the shard again from an earlier record.
func TestPropertyExactlyOnce(t *testing.T) {
	for _, model := range []string{"transient", "random", "stored", "crash"} {
		for seed := uint64(1); seed <= 20; seed++ {
			t.Run(fmt.Sprint(model, "/", seed), func(t *testing.T) { propertyRun(t, model, seed) })
		}
	}
}

// esmModel is the event source mapping's view of a shard: its checkpoint, the pending bisection
// halves, the attempts on the current batch, and the records it sent to the failure destination.
type esmModel struct {
	recs       []events.KinesisEventRecord
	pos        int   // checkpoint: index of the first record not done
	splits     []int // batch sizes after a bisection
	attempts   int
	maxRetries int
	discarded  map[string]bool // sequence numbers sent to the failure destination
}

// next returns the next batch: the bisection half, or up to size records from the checkpoint.
func (e *esmModel) next(size int) []events.KinesisEventRecord {
	n := size
	if len(e.splits) > 0 {
		n = e.splits[0]
	}
	return e.recs[e.pos:min(len(e.recs), e.pos+n)]
}

func (e *esmModel) discard(n int) {
	for _, r := range e.recs[e.pos : e.pos+n] {
		e.discarded[r.Kinesis.SequenceNumber] = true
	}
	e.pos += n
	e.attempts = 0
}

// functionError bisects the batch or, for a single record, retries it until retries run out.
func (e *esmModel) functionError(batch int) {
	if batch > 1 {
		first := (batch + 1) / 2
		rest := e.splits
		if len(rest) > 0 {
			rest = rest[1:]
		}
		e.splits = append([]int{first, batch - first}, rest...)
		e.attempts = 0
		return
	}
	if e.attempts > e.maxRetries {
		e.discard(1)
		if len(e.splits) > 0 {
			e.splits = e.splits[1:]
		}
	}
}

// partial checkpoints before the failed record; the rest is retried until retries run out.
func (e *esmModel) partial(failedAt, batch int) {
	e.pos += failedAt
	e.splits = nil
	if failedAt > 0 {
		e.attempts = 1
	}
	if e.attempts > e.maxRetries {
		e.discard(batch - failedAt)
	}
}

func (e *esmModel) success(batch int) {
	e.pos += batch
	e.attempts = 0
	if len(e.splits) > 0 {
		e.splits = e.splits[1:]
	}
}

func propertyRun(t *testing.T, model string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs, sent := genStream(rng, 60+rng.IntN(100))
	store := newFakeS3()
	failRate := rng.Float64() * 0.25
	attempted := map[string]bool{}
	store.failPut = func(key string) bool {
		first := !attempted[key]
		attempted[key] = true
		switch model {
		case "transient":
			return first && rng.Float64() < failRate
		case "random", "crash":
			return rng.Float64() < failRate
		}
		return false
	}
	store.failGet = func(string) bool { return (model == "random" || model == "crash") && rng.Float64() < failRate/4 }
	store.storeThenFail = func(string) bool { return model == "stored" && rng.Float64() < failRate }
	h, _, _ := newTestHandler(t, store, nil)
	esm := &esmModel{recs: recs, maxRetries: 4 + rng.IntN(5), discarded: map[string]bool{}}
	size := 1 + rng.IntN(30)
	invokes, partials, crashes, redeliveries, lost := 0, 0, 0, 0, 0
	for esm.pos < len(recs) {
		if invokes++; invokes > 20000 {
			t.Fatal("no progress")
		}
		if model == "crash" && esm.pos > 0 && redeliveries < 3 && rng.IntN(15) == 0 {
			// The mapping loses its checkpoint and delivers the shard again from an earlier record
			// (at-least-once): what was done before the high-water mark is skipped.
			esm.pos, esm.splits, esm.attempts = rng.IntN(esm.pos), nil, 0
			redeliveries++
		}
		batch := esm.next(size)
		esm.attempts++
		clear(attempted)
		store.ops = -1
		dies := model == "crash" && rng.IntN(4) == 0
		if dies {
			store.ops = rng.IntN(12)
		}
		resp, err := h.Handle(context.Background(), eventOf(batch))
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if model == "crash" {
			switch r := rng.IntN(10); {
			case dies || r == 0:
				// Dead, or the response was lost after it returned: a function error.
				crashes++
				esm.functionError(len(batch))
				continue
			case r == 1:
				// The response was lost and the mapping invokes the same batch again.
				lost++
				if esm.attempts > esm.maxRetries {
					esm.discard(len(batch))
					if len(esm.splits) > 0 {
						esm.splits = esm.splits[1:]
					}
				}
				continue
			}
		}
		if len(resp.BatchItemFailures) == 0 {
			esm.success(len(batch))
			continue
		}
		partials++
		if len(resp.BatchItemFailures) != 1 {
			t.Fatalf("%d failures reported, want 1", len(resp.BatchItemFailures))
		}
		failedAt := -1
		for i, r := range batch {
			if r.Kinesis.SequenceNumber == resp.BatchItemFailures[0].ItemIdentifier {
				failedAt = i
			}
		}
		if failedAt < 0 {
			t.Fatalf("reported %q is not a sequence number of the batch", resp.BatchItemFailures[0].ItemIdentifier)
		}
		esm.partial(failedAt, len(batch))
	}
	store.ops = -1

	type row struct {
		seq string
		sub int
	}
	rows := map[row]int{}       // stream user record → rows in processed/ and quarantine/
	seen := map[string]int{}    // record_id → rows
	rawSeen := map[string]int{} // sequence number → unparseable records in quarantine/
	for _, k := range store.keys(TripsPrefix) {
		for _, r := range readTrips(t, store.objects[k]) {
			seen[r.RecordID]++
			rows[row{r.KinesisSequenceNumber, int(r.KinesisSubSequence)}]++
		}
	}
	for _, k := range store.keys(QuarantinePrefix) {
		for _, line := range readQuarantine(t, store.objects[k]) {
			kin := line["_kinesis"].(map[string]any)
			seq := kin["sequence_number"].(string)
			rows[row{seq, int(kin["sub_sequence_number"].(float64))}]++
			if id, ok := line["record_id"].(string); ok {
				seen[id]++
			} else {
				rawSeen[seq]++
			}
		}
	}
	for r, n := range rows {
		if n > 1 {
			t.Errorf("stream record %s/%d is in the outputs %d times", r.seq, r.sub, n)
		}
	}
	// Copies of each record_id in the stream, and how many of them were not discarded.
	copies, kept := map[string]int{}, map[string]int{}
	for _, r := range recs {
		ids := []string{recordIDOf(r.Kinesis.Data)}
		if validAggregate(r.Kinesis.Data) {
			ids = nil
			urs, _ := kpl.Deaggregate(r.Kinesis.Data, "pk", "")
			for _, u := range urs {
				ids = append(ids, recordIDOf(u.Data))
			}
		}
		for _, id := range ids {
			if id == "" {
				continue
			}
			copies[id]++
			if !esm.discarded[r.Kinesis.SequenceNumber] {
				kept[id]++
			}
		}
	}
	for id := range sent {
		got := seen[id]
		if got > copies[id] || (kept[id] > 0 && got < 1) {
			t.Errorf("record %s (%d copies in the stream, %d not discarded) is in the outputs %d times", id, copies[id], kept[id], got)
		}
	}
	for id := range seen {
		if sent[id] == 0 {
			t.Errorf("unexpected record %s in the outputs", id)
		}
	}
	for _, r := range recs {
		if r.Kinesis.Data[0] != '{' && !validAggregate(r.Kinesis.Data) {
			got, seq := rawSeen[r.Kinesis.SequenceNumber], r.Kinesis.SequenceNumber
			if got > 1 || (!esm.discarded[seq] && got != 1) {
				t.Errorf("unparseable record %s (discarded %v) is in quarantine %d times", seq, esm.discarded[seq], got)
			}
		}
	}
	t.Logf("%d records, %d invokes, %d partial failures, %d function errors, %d lost responses, %d redeliveries, %d records discarded, fail rate %.2f",
		len(recs), invokes, partials, crashes, lost, redeliveries, len(esm.discarded), failRate)
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

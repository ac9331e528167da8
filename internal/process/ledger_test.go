package process

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
)

// tripOn is a valid trip with a pickup on 2019-01-<day>.
func tripOn(id string, day int) []byte {
	return yellowWith(fmt.Sprintf(`"record_id":%q,"pickup_datetime":"2019-01-%02dT08:00:00-05:00","dropoff_datetime":"2019-01-%02dT08:20:00-05:00"`, id, day, day))
}

// outputIDs counts the record ids in every trip object.
func outputIDs(t *testing.T, store *fakeS3) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, k := range store.keys(TripsPrefix) {
		for _, r := range readTrips(t, store.objects[k]) {
			ids[r.RecordID]++
		}
	}
	return ids
}

// TestBisectedBatch is the gap docs/decisions.md described: a batch of two dates is written whole,
// then fails (a function error: a timeout after the writes, say), and Lambda bisects it. The first
// half, named like the batch, holds only the first date; the second date's object of the first
// attempt must not stay beside the second half's own object.
func TestBisectedBatch(t *testing.T) {
	store := newFakeS3()
	h, _, metrics := newTestHandler(t, store, nil)
	recs := []events.KinesisEventRecord{
		kinesisRecord(0, tripOn("a", 10)), kinesisRecord(1, tripOn("b", 10)),
		kinesisRecord(2, tripOn("c", 11)), kinesisRecord(3, tripOn("d", 11)),
	}
	for _, half := range [][]events.KinesisEventRecord{recs, recs[:2], recs[2:]} {
		resp, err := h.Handle(context.Background(), eventOf(half))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("resp %+v err %v", resp, err)
		}
	}
	want := map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}
	if diff := cmp.Diff(want, outputIDs(t, store)); diff != "" {
		t.Errorf("record ids in processed/trips (-want +got):\n%s", diff)
	}
	// The first attempt's object of the 11th was emptied by the first half, before it wrote.
	if rows := readTrips(t, store.objects[TripsKey("2019-01-11", fixtureShard, seqOf(0))]); len(rows) != 0 {
		t.Errorf("the first attempt's 2019-01-11 object holds %d rows, want 0", len(rows))
	}
	if m := emf(t, metrics); m["EarlierObjectsEmptied"] != nil {
		t.Errorf("the second half emptied objects (%v): the first half should have", m["EarlierObjectsEmptied"])
	}
}

// TestRedeliveryBelowHighWater: a batch that starts below the ledger's high-water mark is a
// redelivery of records already done: they are skipped, the rest is written.
func TestRedeliveryBelowHighWater(t *testing.T) {
	store := newFakeS3()
	h, logs, metrics := newTestHandler(t, store, nil)
	recs := []events.KinesisEventRecord{
		kinesisRecord(0, tripOn("a", 10)), kinesisRecord(1, tripOn("b", 10)),
		kinesisRecord(2, tripOn("c", 11)), kinesisRecord(3, tripOn("d", 11)),
	}
	for _, batch := range [][]events.KinesisEventRecord{recs[:2], recs[2:3], recs} {
		resp, err := h.Handle(context.Background(), eventOf(batch))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("resp %+v err %v", resp, err)
		}
	}
	want := map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}
	if diff := cmp.Diff(want, outputIDs(t, store)); diff != "" {
		t.Errorf("record ids in processed/trips (-want +got):\n%s", diff)
	}
	if m := emf(t, metrics); m["RecordsRedelivered"] != 2.0 {
		t.Errorf("RecordsRedelivered = %v, want 2 (a and b; c is at the high-water mark)", m["RecordsRedelivered"])
	}
	if !strings.Contains(logs.String(), `"redelivered":2`) {
		t.Errorf("the summary line does not say redelivered: %s", logs)
	}
	var l Ledger
	if err := json.Unmarshal(store.objects[LedgerKey(fixtureShard)], &l); err != nil {
		t.Fatal(err)
	}
	if l.HighWater != seqOf(2) || l.ShardID != fixtureShard {
		t.Errorf("ledger %+v, want high water %s", l, seqOf(2))
	}
}

// TestLedgerUnavailable: without the ledger nothing is written and the whole batch is reported.
func TestLedgerUnavailable(t *testing.T) {
	for _, op := range []string{"get", "put"} {
		t.Run(op, func(t *testing.T) {
			store := newFakeS3()
			fail := func(key string) bool { return strings.HasPrefix(key, LedgerPrefix) }
			if op == "get" {
				store.failGet = fail
			} else {
				store.failPut = fail
			}
			h, _, _ := newTestHandler(t, store, nil)
			resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, tripOn("a", 10)), kinesisRecord(1, tripOn("b", 11))}))
			if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seqOf(0) {
				t.Fatalf("resp %+v err %v, want the first record reported", resp, err)
			}
			if keys := store.outputKeys(); len(keys) != 0 {
				t.Errorf("outputs written without the ledger: %v", keys)
			}
		})
	}
}

// TestLedgerConflict: a ledger changed by someone else since it was read (two invocations on one
// shard) fails the conditional write, and nothing is written.
func TestLedgerConflict(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, nil)
	if resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, tripOn("a", 10))})); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	// Between this invocation's read and its write, another one stores the ledger.
	store.failPut = func(key string) bool {
		if strings.HasPrefix(key, LedgerPrefix) {
			store.etags[key] = `"changed"`
		}
		return false
	}
	resp, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(1, tripOn("b", 11))}))
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("resp %+v err %v, want the batch reported", resp, err)
	}
	if _, ok := store.objects[TripsKey("2019-01-11", fixtureShard, seqOf(1))]; ok {
		t.Error("an object was written after the ledger write failed")
	}
}

// TestTrimKeepsFileSchema: trimming keeps the rows below the sequence number, in the file's own
// schema (here one with a column this version does not write) and codec, with a whole footer.
func TestTrimKeepsFileSchema(t *testing.T) {
	type oldRow struct {
		RecordID string `parquet:"record_id"`
		Legacy   *int64 `parquet:"legacy_column,optional"`
		Seq      string `parquet:"kinesis_sequence_number"`
	}
	var buf strings.Builder
	w := parquet.NewGenericWriter[oldRow](&buf, parquet.Compression(&snappyFast))
	v := int64(7)
	rows := []oldRow{{"a", &v, seqOf(1)}, {"b", nil, seqOf(2)}, {"c", &v, seqOf(3)}, {"d", nil, "9" + seqOf(0)}}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := trimParquet([]byte(buf.String()), seqOf(3))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parquet.Read[oldRow](strings.NewReader(string(out)), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows[:2], got); diff != "" {
		t.Errorf("rows after trimming below %s (-want +got):\n%s", seqOf(3), diff)
	}
	checkFooter(t, "trimmed", out)
}

func TestSeqLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "1", true},
		{"1", "", false},
		{"", "", false},
		{"9", "10", true},
		{"10", "9", false},
		{"0009", "10", true},
		{"49590338271490256608559692538361571095921575989136588801", "49590338271490256608559692538361571095921575989136588802", true},
		{"49590338271490256608559692538361571095921575989136588802", "49590338271490256608559692538361571095921575989136588802", false},
		{"9959033827149025660855969253836157109592157598913658880", "49590338271490256608559692538361571095921575989136588802", true},
	}
	for _, tt := range tests {
		if got := seqLess(tt.a, tt.b); got != tt.want {
			t.Errorf("seqLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

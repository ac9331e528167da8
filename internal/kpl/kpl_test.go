package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenRecords are the records of testdata/aggregate.golden: repeated keys (the table must keep
// each record's own key, not the first's), an explicit hash key, empty data, and data long enough
// for a two-byte length varint.
func goldenRecords() []UserRecord {
	return []UserRecord{
		{PartitionKey: "132", Data: []byte(`{"pu_location_id":132}` + "\n")},
		{PartitionKey: "161", Data: []byte(`{"pu_location_id":161}` + "\n")},
		{PartitionKey: "132", Data: []byte(`{"pu_location_id":132,"n":2}` + "\n")},
		{PartitionKey: "7", ExplicitHashKey: "170141183460469231731687303715884105728", Data: []byte{}},
		{PartitionKey: "161", Data: bytes.Repeat([]byte("x"), 200)},
	}
}

func TestAggregateHandEncoded(t *testing.T) {
	// Protobuf written out by hand from the .proto, field by field.
	recs := []UserRecord{
		{PartitionKey: "a", Data: []byte("hello")},
		{PartitionKey: "b", Data: []byte("world")},
		{PartitionKey: "a", Data: []byte("!")},
	}
	body, _ := hex.DecodeString("" +
		"0a0161" + // partition_key_table: "a"
		"0a0162" + // partition_key_table: "b"
		"1a09" + "0800" + "1a0568656c6c6f" + // records: {pk 0, data "hello"}
		"1a09" + "0801" + "1a05776f726c64" + // records: {pk 1, data "world"}
		"1a05" + "0800" + "1a0121") // records: {pk 0, data "!"}
	sum := md5.Sum(body)
	want := append(append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...), sum[:]...)
	got := Aggregate(recs)
	if !bytes.Equal(got, want) {
		t.Fatalf("Aggregate:\n got %x\nwant %x", got, want)
	}
}

func TestAggregateGolden(t *testing.T) {
	got := []byte(hex.Dump(Aggregate(goldenRecords())))
	golden := filepath.Join("testdata", "aggregate.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("aggregate differs from %s (-want +got):\n%s", golden, d)
	}
}

func TestAggregatorSizeIsExact(t *testing.T) {
	var a Aggregator
	if got, want := a.Size(), len(a.Bytes()); got != want {
		t.Fatalf("empty: Size() = %d, len(Bytes()) = %d", got, want)
	}
	// Lengths around the varint boundaries (127/128, 16383/16384) and indexes past 127.
	sizes := []int{0, 1, 126, 127, 128, 129, 300, 16383, 16384, 70000}
	for i := 0; i < 400; i++ {
		r := UserRecord{
			PartitionKey: fmt.Sprintf("key-%d", i%150),
			Data:         bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)]),
		}
		if i%7 == 0 {
			r.ExplicitHashKey = fmt.Sprint(i % 140)
		}
		predicted := a.SizeWith(r)
		a.Add(r)
		if got := len(a.Bytes()); got != predicted || got != a.Size() {
			t.Fatalf("record %d: SizeWith = %d, Size = %d, len(Bytes()) = %d", i, predicted, a.Size(), got)
		}
	}
	a.Reset()
	if a.Len() != 0 || a.Size() != Overhead || len(a.Bytes()) != Overhead {
		t.Fatalf("after Reset: Len %d Size %d", a.Len(), a.Size())
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		recs []UserRecord
	}{
		{"golden", goldenRecords()},
		{"one", []UserRecord{{PartitionKey: "k", Data: []byte("v")}}},
		{"distinct keys", func() []UserRecord {
			var rs []UserRecord
			for i := range 300 {
				rs = append(rs, UserRecord{PartitionKey: fmt.Sprint("pk", i), Data: []byte(fmt.Sprint(i))})
			}
			return rs
		}()},
		{"unicode key", []UserRecord{{PartitionKey: "Zoë ✓", Data: []byte("é")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Deaggregate(Aggregate(tt.recs), "outer", "")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.recs, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestDeaggregatePlain(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("{}"), []byte(Magic), append([]byte(Magic), 1, 2, 3)} {
		got, err := Deaggregate(data, "pk", "ehk")
		if err != nil {
			t.Fatalf("%x: %v", data, err)
		}
		want := []UserRecord{{PartitionKey: "pk", ExplicitHashKey: "ehk", Data: data}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%x (-want +got):\n%s", data, d)
		}
	}
}

// withMD5 frames a protobuf body as an aggregate with a correct checksum.
func withMD5(body []byte) []byte {
	sum := md5.Sum(body)
	return append(append([]byte(Magic), body...), sum[:]...)
}

func TestDeaggregateCorrupt(t *testing.T) {
	good := Aggregate(goldenRecords())
	flipped := bytes.Clone(good)
	flipped[10] ^= 0xFF
	badTrailer := bytes.Clone(good)
	badTrailer[len(badTrailer)-1] ^= 1

	rec := func(fields ...[]byte) []byte { // one record field holding the given fields
		inner := bytes.Join(fields, nil)
		b := protowire.AppendTag(nil, fieldRecords, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	pkTable := protowire.AppendString(protowire.AppendTag(nil, fieldPartitionKeyTable, protowire.BytesType), "k")
	pkIdx := func(i uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, fieldPartitionKeyIndex, protowire.VarintType), i)
	}
	ehkIdx := protowire.AppendVarint(protowire.AppendTag(nil, fieldExplicitHashKeyIndex, protowire.VarintType), 0)
	data := protowire.AppendString(protowire.AppendTag(nil, fieldData, protowire.BytesType), "d")

	tests := []struct {
		name string
		data []byte
	}{
		{"flipped body byte", flipped},
		{"flipped md5 byte", badTrailer},
		{"truncated", good[:len(good)-3]},
		{"truncated varint", withMD5([]byte{0x0a, 0x80})},
		{"length past end", withMD5([]byte{0x0a, 0x05, 'a'})},
		{"pk index out of range", withMD5(append(bytes.Clone(pkTable), rec(pkIdx(1), data)...))},
		{"ehk index without table", withMD5(append(bytes.Clone(pkTable), rec(pkIdx(0), ehkIdx, data)...))},
		{"missing pk index", withMD5(append(bytes.Clone(pkTable), rec(data)...))},
		{"missing data", withMD5(append(bytes.Clone(pkTable), rec(pkIdx(0))...))},
		{"bad wire type", withMD5([]byte{0x0f})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Deaggregate(tt.data, "pk", "")
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Deaggregate = %v, %v; want ErrCorrupt", got, err)
			}
		})
	}
}

func TestDeaggregateSkipsTagsAndUnknownFields(t *testing.T) {
	body := protowire.AppendString(protowire.AppendTag(nil, fieldPartitionKeyTable, protowire.BytesType), "k")
	body = protowire.AppendVarint(protowire.AppendTag(body, 9, protowire.VarintType), 5) // unknown field
	var inner []byte
	inner = protowire.AppendVarint(protowire.AppendTag(inner, fieldPartitionKeyIndex, protowire.VarintType), 0)
	inner = protowire.AppendString(protowire.AppendTag(inner, fieldData, protowire.BytesType), "d")
	tag := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "tagkey")
	inner = protowire.AppendBytes(protowire.AppendTag(inner, 4, protowire.BytesType), tag)
	body = protowire.AppendBytes(protowire.AppendTag(body, fieldRecords, protowire.BytesType), inner)
	got, err := Deaggregate(withMD5(body), "outer", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []UserRecord{{PartitionKey: "k", Data: []byte("d")}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestDeaggregateEventAndSDKRecords(t *testing.T) {
	at := time.Unix(1700000000, 0).UTC()
	agg := Aggregate([]UserRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}})
	want := []SubRecord{
		{UserRecord: UserRecord{PartitionKey: "a", Data: []byte("1")}, SequenceNumber: "49", SubSequenceNumber: 0, Aggregated: true, ApproximateArrivalTimestamp: at},
		{UserRecord: UserRecord{PartitionKey: "b", Data: []byte("2")}, SequenceNumber: "49", SubSequenceNumber: 1, Aggregated: true, ApproximateArrivalTimestamp: at},
		{UserRecord: UserRecord{PartitionKey: "p", Data: []byte("plain")}, SequenceNumber: "50", ApproximateArrivalTimestamp: at},
	}

	ev := func(data []byte, pk, seq string) events.KinesisEventRecord {
		var r events.KinesisEventRecord
		r.Kinesis = events.KinesisRecord{Data: data, PartitionKey: pk, SequenceNumber: seq,
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: at}}
		return r
	}
	var got []SubRecord
	for _, r := range []events.KinesisEventRecord{ev(agg, "a", "49"), ev([]byte("plain"), "p", "50")} {
		subs, err := DeaggregateEventRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, subs...)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("event records (-want +got):\n%s", d)
	}

	sdk := []types.Record{
		{Data: agg, PartitionKey: aws.String("a"), SequenceNumber: aws.String("49"), ApproximateArrivalTimestamp: &at},
		{Data: []byte("plain"), PartitionKey: aws.String("p"), SequenceNumber: aws.String("50"), ApproximateArrivalTimestamp: &at},
	}
	got, err := DeaggregateRecords(sdk)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sdk records (-want +got):\n%s", d)
	}

	bad := bytes.Clone(agg)
	bad[6] ^= 1
	_, err = DeaggregateEventRecord(ev(bad, "a", "51"))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "51") {
		t.Errorf("corrupt event record: err = %v, want ErrCorrupt naming sequence number 51", err)
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(Aggregate(goldenRecords()))
	f.Add([]byte("{}"))
	f.Add(withMD5([]byte{0x0a, 0x01, 'k', 0x1a, 0x03, 0x08, 0x00, 0x1a}))
	f.Add(append([]byte(Magic), make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Deaggregate(data, "pk", "")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if !IsAggregated(data) {
			if len(recs) != 1 || !bytes.Equal(recs[0].Data, data) {
				t.Fatalf("plain record not passed through: %v", recs)
			}
			return
		}
		// Whatever decoded must survive a round trip through our own encoder.
		again, err := Deaggregate(Aggregate(recs), "pk", "")
		if err != nil {
			t.Fatalf("re-aggregating: %v", err)
		}
		if len(recs) == 0 && len(again) == 0 {
			return
		}
		if d := cmp.Diff(recs, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

func BenchmarkAggregate(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 300) // a typical trip record is ~300-400 bytes of JSON
	keys := make([]string, 265)
	for i := range keys {
		keys[i] = fmt.Sprint(i + 1)
	}
	var a Aggregator
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		r := UserRecord{PartitionKey: keys[i%len(keys)], Data: data}
		if a.SizeWith(r) > 64<<10 {
			buf = a.AppendTo(buf[:0])
			a.Reset()
		}
		a.Add(r)
	}
}

func BenchmarkDeaggregate(b *testing.B) {
	var recs []UserRecord
	for i := range 200 {
		recs = append(recs, UserRecord{PartitionKey: fmt.Sprint(i % 50), Data: bytes.Repeat([]byte("x"), 300)})
	}
	agg := Aggregate(recs)
	b.ReportAllocs()
	b.SetBytes(int64(len(agg)))
	for b.Loop() {
		if _, err := Deaggregate(agg, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

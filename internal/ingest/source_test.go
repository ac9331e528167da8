package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
)

type parquetTrip struct {
	VendorID     int32     `parquet:"VendorID"`
	Pickup       time.Time `parquet:"tpep_pickup_datetime,timestamp(microsecond)"`
	Dropoff      time.Time `parquet:"tpep_dropoff_datetime,timestamp(microsecond)"`
	Passengers   int64     `parquet:"passenger_count"`
	Distance     float64   `parquet:"trip_distance"`
	PULocationID int32     `parquet:"PULocationID"`
	DOLocationID int32     `parquet:"DOLocationID"`
	Fare         float64   `parquet:"fare_amount"`
	Total        float64   `parquet:"total_amount"`
}

// TestParquetContinuation runs a Parquet object through a chain of continuations (real converter) and
// compares it with a one-shot run.
func TestParquetContinuation(t *testing.T) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[parquetTrip](&buf, parquet.MaxRowsPerRowGroup(64))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]parquetTrip, 300)
	for i := range rows {
		rows[i] = parquetTrip{VendorID: 2, Pickup: base.Add(time.Duration(i) * time.Minute), Dropoff: base.Add(time.Duration(i)*time.Minute + 9*time.Minute),
			Passengers: 1, Distance: 1.25, PULocationID: int32(1 + i%265), DOLocationID: 132, Fare: 10, Total: 14.5}
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	key := "raw/2024/yellow_tripdata_2024-01.parquet"
	one := newEnv(t, nil)
	if res, err := one.handle(context.Background(), one.putObject(key, buf.Bytes())); err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("one-shot: %+v %v", res, err)
	}
	want := one.sink.data()
	if len(want) != 300 {
		t.Fatalf("one-shot run sent %d records, want 300", len(want))
	}
	e := newEnv(t, nil)
	e.s3.objects = map[string]fakeObject{testBucket + "/" + key: one.s3.objects[testBucket+"/"+key]}
	e.clock.step = time.Second
	results := e.runChain(e.putObjectEvent(key), 100*time.Second)
	if len(results) < 3 {
		t.Fatalf("%d invocations, want a chain", len(results))
	}
	if diff := cmp.Diff(want, e.sink.data()); diff != "" {
		t.Errorf("chain differs from one-shot (-want +got):\n%s", diff)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusDone || m.Counts.RowsRead != 300 || m.Format != "parquet" {
		t.Errorf("manifest: %s %s %+v", m.Status, m.Format, m.Counts)
	}
	checkReconciles(t, m)
	var rec map[string]any
	if err := json.Unmarshal([]byte(want[0]), &rec); err != nil || rec["pu_location_id"] == nil {
		t.Errorf("record %s: %v", want[0], err)
	}
}

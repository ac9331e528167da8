package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
)

func TestS3ReaderAtMatchesBytesReader(t *testing.T) {
	f := newFakeS3()
	data := make([]byte, 9*blockSize+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	etag := f.put(testBucket, "raw/x.parquet", data)
	o := objectRef{Bucket: testBucket, Key: "raw/x.parquet", ETag: unquoteETag(etag), Size: int64(len(data))}
	ra := newS3ReaderAt(context.Background(), f, o, int64(len(data)))
	want := bytes.NewReader(data)
	reads := 0
	check := func(off int64, n int) {
		t.Helper()
		reads++
		got, wantBuf := make([]byte, n), make([]byte, n)
		gn, gerr := ra.ReadAt(got, off)
		wn, werr := want.ReadAt(wantBuf, off)
		if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(got[:gn], wantBuf[:wn]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
		}
	}
	check(int64(len(data))-8, 8)    // a footer
	check(int64(len(data))-4, 100)  // past the end: io.EOF
	check(0, 4)                     // the magic
	check(blockSize-10, 20)         // across a block boundary
	check(2*blockSize, 3*blockSize) // larger than one block
	check(int64(len(data)), 1)      // at the end
	for range 200 {
		off := rng.Int64N(int64(len(data)))
		check(off, 1+rng.IntN(64<<10))
	}
	if g := ra.getCount(); g > reads {
		t.Errorf("%d GETs for %d reads: the cache does not work", g, reads)
	}
	ra.mu.Lock()
	cached := ra.lru.Len()
	ra.mu.Unlock()
	if cached > cacheBlocks {
		t.Errorf("%d blocks cached, limit %d", cached, cacheBlocks)
	}
	// The object changed: a clear error, not garbage.
	f.put(testBucket, "raw/x.parquet", data[:100])
	ra = newS3ReaderAt(context.Background(), f, o, int64(len(data)))
	if _, err := ra.ReadAt(make([]byte, 10), 0); err == nil {
		t.Error("ReadAt of a replaced object succeeded")
	}
}

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

var _ io.ReaderAt = (*s3ReaderAt)(nil)

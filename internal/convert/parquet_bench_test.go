package convert

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/testenv"
)

// benchParquet converts data (a whole Parquet file in memory) once per iteration.
func benchParquet(b *testing.B, data []byte, key string) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var rows int64
	for b.Loop() {
		rr, err := NewParquetReader(bytes.NewReader(data), int64(len(data)), Options{Source: Source{Bucket: "b", Key: key}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	cpu := (cpuTime() - cpu0).Seconds()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/cpu, "rows/cpu-s")
}

// BenchmarkParquetGreen2024 reads TLC's own green 2024-01 file (pyarrow, every column dictionary-encoded).
func BenchmarkParquetGreen2024(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testenv.TLCDir(b), "parquet", "green_tripdata_2024-01.parquet"))
	if err != nil {
		b.Fatal(err)
	}
	benchParquet(b, data, "green_tripdata_2024-01.parquet")
}

// BenchmarkParquetYellowPlain reads a generated yellow file whose columns are all plain-encoded
// (no dictionary): every value takes the typed conversion, none is a copied dictionary entry.
func BenchmarkParquetYellowPlain(b *testing.B) {
	t := &testing.T{}
	types := pqTypes()
	col := func(name, typ string) pqGenColumn {
		return pqGenColumn{name: name, node: types[typ].node, gen: types[typ].gen}
	}
	cols := []pqGenColumn{col("VendorID", "location"), col("tpep_pickup_datetime", "ts_2024"), col("tpep_dropoff_datetime", "ts_2024"),
		col("passenger_count", "count"), col("trip_distance", "amount"), col("RatecodeID", "count"), col("store_and_fwd_flag", "flag"),
		col("PULocationID", "location"), col("DOLocationID", "location"), col("payment_type", "count"), col("fare_amount", "amount"),
		col("extra", "amount"), col("mta_tax", "amount"), col("tip_amount", "amount"), col("tolls_amount", "amount"),
		col("improvement_surcharge", "amount"), col("total_amount", "amount"), col("congestion_surcharge", "amount")}
	data := writeGenerated(t, 1, 200_000, cols, nil, false, parquet.Compression(&parquet.Snappy))
	if t.Failed() {
		b.Fatal("writing the file failed")
	}
	benchParquet(b, data, "yellow_tripdata_2024-01.parquet")
}

package compact

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/process"
)

const testBucket = "test-bucket"

var nyc = func() *time.Location {
	l, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return l
}()

func ptr[T any](v T) *T { return &v }

// genTrips returns n distinct trips picked up on date (New York), deterministic for seed. Ids are
// "<date>-<seed>-<i>".
func genTrips(date string, seed uint64, n int) []process.TripRow {
	day, err := time.ParseInLocation(time.DateOnly, date, nyc)
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	boroughs := []string{"Manhattan", "Queens", "Brooklyn", "Bronx"}
	rows := make([]process.TripRow, n)
	for i := range rows {
		pick := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Microsecond)
		drop := pick.Add(time.Duration(60+rng.IntN(3600)) * time.Second)
		r := process.TripRow{
			RecordID:              fmt.Sprintf("%s-%d-%06d", date, seed, i),
			TaxiType:              "yellow",
			PickupDatetime:        pick.UTC(),
			DropoffTime:           ptr(drop.UTC()),
			PassengerCount:        ptr(int32(1 + rng.IntN(4))),
			TripDistance:          ptr(float64(rng.IntN(2000)) / 100),
			PULocationID:          ptr(int32(1 + rng.IntN(265))),
			DOLocationID:          ptr(int32(1 + rng.IntN(265))),
			PaymentType:           ptr(int32(1 + rng.IntN(2))),
			FareAmount:            ptr(float64(rng.IntN(8000)) / 100),
			TotalAmount:           ptr(float64(rng.IntN(10000)) / 100),
			PickupHour:            int32(pick.Hour()),
			DurationS:             ptr(int64(drop.Sub(pick).Seconds())),
			KinesisSequenceNumber: fmt.Sprintf("4960%052d", seed*1_000_000+uint64(i)),
			KinesisSubSequence:    int32(i % 7),
		}
		if i%3 == 0 {
			r.VendorID = ptr(int32(2))
			r.TipAmount = ptr(1.5)
			r.PUBorough = ptr(boroughs[i%len(boroughs)])
		}
		if i%5 == 0 {
			r.QualityFlags = ptr("zero_distance")
		}
		rows[i] = r
	}
	return rows
}

// encode writes rows as one Parquet file the way ProcessFunction does (its schema, Snappy).
func encode(t testing.TB, rows []process.TripRow) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[process.TripRow](&buf, parquet.Compression(&snappyCodec))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newTestBucket opens a local bucket in a temporary folder.
func newTestBucket(t testing.TB) *bucket.Bucket {
	t.Helper()
	b, err := bucket.Open(filepath.Join(t.TempDir(), "bucket"), testBucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func put(t testing.TB, s ObjectStore, key string, body []byte) {
	t.Helper()
	if _, err := s.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// putSources writes rows as files of per rows each into the partition of date, named like
// ProcessFunction's objects, and returns their keys.
func putSources(t testing.TB, s ObjectStore, date, shard string, rows []process.TripRow, per int) []string {
	t.Helper()
	var keys []string
	for i := 0; i < len(rows); i += per {
		key := process.TripsKey(date, shard, fmt.Sprintf("4960%052d", i))
		put(t, s, key, encode(t, rows[i:min(i+per, len(rows))]))
		keys = append(keys, key)
	}
	return keys
}

// keys lists the keys under prefix.
func keys(t testing.TB, s ObjectStore, prefix string) []string {
	t.Helper()
	var out []string
	pages := s3.NewListObjectsV2Paginator(s, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// snapshot copies every Parquet object under processed/trips/ into a folder (same relative paths),
// so that DuckDB can compare before and after.
func snapshot(t testing.TB, s ObjectStore) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range keys(t, s, TripsPrefix) {
		out, err := s.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tripsGlob is the DuckDB glob of the Parquet files under a bucket folder (or snapshot).
func tripsGlob(dir string) string {
	return sqlString(filepath.ToSlash(filepath.Join(dir, "processed", "trips")) + "/pickup_date=*/*.parquet")
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func newCompactor(t testing.TB, s ObjectStore, opts Options) *Compactor {
	t.Helper()
	opts.Bucket = testBucket
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	c, err := NewCompactor(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encodeWithExtraColumn writes a trips file with one more column than process.TripRow (a newer
// ProcessFunction's file).
func encodeWithExtraColumn(t testing.TB) []byte {
	t.Helper()
	type newer struct {
		process.TripRow
		PULocationSource string `parquet:"pu_location_source_v9"`
	}
	rows := genTrips("2019-01-01", 99, 3)
	out := make([]newer, len(rows))
	for i := range rows {
		out[i] = newer{TripRow: rows[i], PULocationSource: "reported"}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[newer](&buf)
	if _, err := w.Write(out); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

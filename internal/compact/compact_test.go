package compact

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/testpeers"
)

// num reads a DuckDB JSON value (json.Number or a BIGINT rendered as a string) as an int64.
func num(t testing.TB, v any) int64 {
	t.Helper()
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		t.Fatalf("not an integer: %v", x)
	default:
		t.Fatalf("not a number: %#v", v)
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}

// TestCompactMergesPartitions merges three partitions of small files with duplicates, and checks with
// DuckDB that every distinct row is still there once, sorted, in one file per partition.
// TestCompactMergesPartitions: through runs on disk merged in two passes (small RunBytes and fan-in),
// and through the in-memory path (every plan's rows fit the buffer: the sorted buffer is the only run),
// the same rows come out, each once, sorted, as DuckDB reads them.
func TestCompactMergesPartitions(t *testing.T) {
	t.Run("runs on disk", func(t *testing.T) { testCompactMerges(t, Options{RunBytes: 64 << 10, RunFanIn: 3}, true) })
	t.Run("in memory", func(t *testing.T) { testCompactMerges(t, Options{}, false) })
}

func testCompactMerges(t *testing.T, opts Options, onDisk bool) {
	b := newTestBucket(t)
	dates := []string{"2019-01-01", "2019-01-02", "2019-01-03"}
	distinct := 0
	for i, d := range dates {
		rows := genTrips(d, uint64(i+1), 500+200*i)
		distinct += len(rows)
		putSources(t, b, d, "shardId-000000000000", rows, 37)
		// Residual duplicates (a retried batch) from another shard name.
		putSources(t, b, d, "shardId-000000000001", rows[100:160], 25)
	}
	// An object of another layout and a stray key are left alone.
	put(t, b, TripsPrefix+"README.txt", []byte("not a partition"))
	before := snapshot(t, b)

	c := newCompactor(t, b, opts)
	res, err := c.Run(context.Background(), Request{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || res.Compacted != 3 || res.Plans != 3 || len(res.Errors) > 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Duplicates != 3*60 || res.RowsOut != int64(distinct) || res.RowsIn != int64(distinct+180) {
		t.Errorf("rows in %d, out %d, duplicates %d; want %d, %d, 180", res.RowsIn, res.RowsOut, res.Duplicates, distinct+180, distinct)
	}
	if res.FilesAfter != 3 || res.TargetsWritten != 3 || res.FilesBefore != res.SourcesMerged {
		t.Errorf("files before %d after %d, targets %d, sources %d", res.FilesBefore, res.FilesAfter, res.TargetsWritten, res.SourcesMerged)
	}
	for _, op := range res.Details {
		if onDisk && op.Runs < 2 {
			t.Errorf("%s: %d runs; the test wants several", op.Partition, op.Runs)
		}
		if !onDisk && op.Runs != 1 {
			t.Errorf("%s: %d runs; the test wants the buffer as the only run", op.Partition, op.Runs)
		}
	}
	after := keys(t, b, TripsPrefix)
	want := []string{TripsPrefix + "README.txt"}
	for _, d := range dates {
		got := keys(t, b, PartitionPrefix(d))
		if len(got) != 1 || !strings.HasPrefix(got[0], PartitionPrefix(d)+targetTag) {
			t.Errorf("%s after compaction: %v, want one %s* file", d, got, targetTag)
		}
		want = append(want, got...)
	}
	if len(after) != len(want) {
		t.Errorf("objects after: %v", after)
	}
	if got := keys(t, b, PlanPrefix); len(got) != 0 {
		t.Errorf("plan manifests left: %v", got)
	}

	dir := b.Dir()
	r := testpeers.DuckDBRows(t,
		// Every distinct row before is there once after, field by field.
		fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM read_parquet(%s)`, tripsGlob(dir)),
		fmt.Sprintf(`SELECT count(*) AS n FROM ((SELECT DISTINCT * FROM read_parquet(%s, hive_partitioning=true))
			EXCEPT ALL (SELECT * FROM read_parquet(%s, hive_partitioning=true)))`, tripsGlob(before), tripsGlob(dir)),
		fmt.Sprintf(`SELECT count(*) AS n FROM ((SELECT * FROM read_parquet(%s, hive_partitioning=true))
			EXCEPT ALL (SELECT DISTINCT * FROM read_parquet(%s, hive_partitioning=true)))`, tripsGlob(dir), tripsGlob(before)),
		// Sorted by pickup time, then record_id, within each file.
		fmt.Sprintf(`SELECT count(*) AS n FROM (SELECT pickup_datetime AS p, record_id AS r,
			lag(pickup_datetime) OVER w AS pp, lag(record_id) OVER w AS pr
			FROM read_parquet(%s, filename=true, file_row_number=true)
			WINDOW w AS (PARTITION BY filename ORDER BY file_row_number)) WHERE pp > p OR (pp = p AND pr >= r)`, tripsGlob(dir)),
		// Every column chunk names its column (issue 12: empty path_in_schema breaks Spark and Athena).
		fmt.Sprintf(`SELECT count(*) AS n, count(*) FILTER (WHERE path_in_schema IS NULL OR path_in_schema = '') AS empty
			FROM parquet_metadata(%s)`, tripsGlob(dir)),
	)
	if n, d := num(t, r[0][0]["n"]), num(t, r[0][0]["d"]); n != int64(distinct) || d != int64(distinct) {
		t.Errorf("DuckDB after: count(*) %d, count(DISTINCT record_id) %d, want %d", n, d, distinct)
	}
	if n := num(t, r[1][0]["n"]); n != 0 {
		t.Errorf("%d distinct rows of before are missing after", n)
	}
	if n := num(t, r[2][0]["n"]); n != 0 {
		t.Errorf("%d rows after are not rows of before (or are there twice)", n)
	}
	if n := num(t, r[3][0]["n"]); n != 0 {
		t.Errorf("%d rows out of (pickup_datetime, record_id) order", n)
	}
	if n, e := num(t, r[4][0]["n"]), num(t, r[4][0]["empty"]); n == 0 || e != 0 {
		t.Errorf("column chunks %d, with an empty path_in_schema %d", n, e)
	}

	// A second run finds nothing to do.
	res2, err := c.Run(context.Background(), Request{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Plans != 0 || res2.FilesBefore != 3 || res2.FilesAfter != 3 || !res2.Complete {
		t.Errorf("second run %+v, want nothing to do", res2)
	}
}

// TestCompactRange compacts only the partitions of the requested dates.
func TestCompactRange(t *testing.T) {
	b := newTestBucket(t)
	for i, d := range []string{"2019-01-01", "2019-01-02", "2019-01-03", "2019-01-04"} {
		putSources(t, b, d, "shardId-000000000000", genTrips(d, uint64(i), 50), 10)
	}
	c := newCompactor(t, b, Options{})
	res, err := c.Run(context.Background(), Request{From: "2019-01-02", To: "2019-01-03"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range []string{"2019-01-01", "2019-01-02", "2019-01-03", "2019-01-04"} {
		got[d] = len(keys(t, b, PartitionPrefix(d)))
	}
	if diff := cmp.Diff(map[string]int{"2019-01-01": 5, "2019-01-02": 1, "2019-01-03": 1, "2019-01-04": 5}, got); diff != "" {
		t.Errorf("files per partition (-want +got):\n%s", diff)
	}
	if res.Partitions != 2 || res.Compacted != 2 {
		t.Errorf("result %+v", res)
	}
	// StartAfter (a continuation) skips the partitions up to and including it.
	res, err = c.Run(context.Background(), Request{StartAfter: "2019-01-03"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions != 1 || res.Compacted != 1 || len(keys(t, b, PartitionPrefix("2019-01-01"))) != 5 {
		t.Errorf("start_after run %+v", res)
	}
}

func TestCompactDryRunChangesNothing(t *testing.T) {
	b := newTestBucket(t)
	putSources(t, b, "2020-02-29", "shardId-000000000000", genTrips("2020-02-29", 1, 100), 10)
	before := keys(t, b, "")
	res, err := newCompactor(t, b, Options{}).Run(context.Background(), Request{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, keys(t, b, "")); diff != "" {
		t.Errorf("a dry run changed the bucket:\n%s", diff)
	}
	if res.Plans != 1 || res.SourcesMerged != 10 || res.FilesBefore != 10 || res.FilesAfter != 1 {
		t.Errorf("dry run %+v", res)
	}
}

func TestRequestValidate(t *testing.T) {
	for _, r := range []Request{{From: "2019-1-1"}, {To: "yesterday"}, {From: "2019-02-01", To: "2019-01-01"}, {StartAfter: "2019-13-01"}, {MaxPlanBytes: -1}} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
	if err := (Request{From: "2019-01-01", To: "2019-01-01"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestKeys(t *testing.T) {
	if d, ok := dateOfKey("processed/trips/pickup_date=2019-01-31/x.parquet"); !ok || d != "2019-01-31" {
		t.Errorf("dateOfKey = %q %v", d, ok)
	}
	for _, k := range []string{"processed/trips/pickup_date=unknown/x.parquet", "processed/trips/x.parquet", "processed/trips/pickup_date=2019-01-31"} {
		if _, ok := dateOfKey(k); ok {
			t.Errorf("dateOfKey(%q) ok", k)
		}
	}
	if d, ok := dateOfPlanKey(PlanKey("2019-01-31")); !ok || d != "2019-01-31" {
		t.Errorf("dateOfPlanKey = %q %v", d, ok)
	}
	// The continuation's StartAfter key sorts after every key of its partition and before the next.
	after := TripsPrefix + PartitionKey + "=2019-01-31" + "0"
	if !(PartitionPrefix("2019-01-31")+"\U0010FFFF" < after && after < PartitionPrefix("2019-02-01")) {
		t.Error("start-after key out of place")
	}
}

// TestOlderSchemaSourcesConvert: a file written before a column was added (fewer columns) merges with
// current ones; the missing columns are null.
func TestOlderSchemaSourcesConvert(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-07-01"
	putSources(t, b, d, "shardId-000000000000", genTrips(d, 1, 30), 15)
	type older struct {
		RecordID       string    `parquet:"record_id"`
		TaxiType       string    `parquet:"taxi_type,dict"`
		PickupDatetime time.Time `parquet:"pickup_datetime,timestamp(microsecond:utc)"`
		TotalAmount    *float64  `parquet:"total_amount,optional"`
		PickupHour     int32     `parquet:"pickup_hour"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[older](&buf)
	if _, err := w.Write([]older{{RecordID: "old-1", TaxiType: "green", PickupDatetime: time.Date(2019, 7, 1, 16, 0, 0, 0, time.UTC), TotalAmount: ptr(12.5), PickupHour: 12}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	put(t, b, PartitionPrefix(d)+"old.parquet", buf.Bytes())
	res, err := newCompactor(t, b, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 || res.RowsOut != 31 {
		t.Fatalf("%v %+v", err, res)
	}
	r := testpeers.DuckDBRows(t, fmt.Sprintf(`SELECT taxi_type, total_amount, fare_amount IS NULL AS no_fare, kinesis_sequence_number
		FROM read_parquet(%s) WHERE record_id = 'old-1'`, tripsGlob(b.Dir())))
	want := []map[string]any{{"taxi_type": "green", "total_amount": 12.5, "no_fare": true, "kinesis_sequence_number": ""}}
	if diff := cmp.Diff(want, r[0]); diff != "" {
		t.Errorf("the old row after compaction (-want +got):\n%s", diff)
	}
}

// TestRowsWithoutRecordIDAreKept: rows of files without a record_id (converted to "") are never taken
// for duplicates, even with the same pickup time.
func TestRowsWithoutRecordIDAreKept(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-07-02"
	type noID struct {
		TaxiType       string    `parquet:"taxi_type"`
		PickupDatetime time.Time `parquet:"pickup_datetime,timestamp(microsecond:utc)"`
	}
	at := time.Date(2019, 7, 2, 16, 0, 0, 0, time.UTC)
	for i := range 3 {
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[noID](&buf)
		if _, err := w.Write([]noID{{"green", at}, {"green", at}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		put(t, b, fmt.Sprintf("%sold-%d.parquet", PartitionPrefix(d), i), buf.Bytes())
	}
	res, err := newCompactor(t, b, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 || res.RowsOut != 6 || res.Duplicates != 0 {
		t.Fatalf("%v %+v: want the 6 rows kept", err, res)
	}
}

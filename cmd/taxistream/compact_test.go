package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// localTrips runs a generated month through `taxistream local` without compaction, in small batches
// (many objects per partition), and returns the bucket folder.
func localTrips(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "yellow_tripdata_2019-02.csv")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"gen", "-month", "2", "-rows", "2000", "-o", file}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("gen: exit %d\n%s", code, &stderr)
	}
	code := run(context.Background(), []string{"local", "--limits-off", "--quiet", "--compact=false",
		"--param", "BatchSize=2", "--dir", filepath.Join(dir, "cloud"), "--template", filepath.Join(testenv.Root(t), "template.yaml"), file},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("local: exit %d\n%s\n%s", code, &stdout, &stderr)
	}
	if strings.Contains(stdout.String(), "compaction ") {
		t.Errorf("--compact=false compacted:\n%s", &stdout)
	}
	return filepath.Join(dir, "cloud", "bucket")
}

// parquetFiles lists the Parquet files under dir/processed/trips/ (relative, slash-separated).
func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "processed", "trips")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runCompact(t *testing.T, args ...string) compact.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"compact", "--json"}, args...), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("compact %v: exit %d\n%s\n%s", args, code, &stdout, &stderr)
	}
	var r compact.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("compact --json: %v\n%s", err, &stdout)
	}
	return r
}

// TestCompactCommand compacts a local run's bucket folder with `taxistream compact`: a dry run changes
// nothing, the run leaves one file per partition, and DuckDB finds the same trips before and after.
// The same objects in an S3 bucket (gofakes3 over HTTP, the real SDK client) compact the same way.
func TestCompactCommand(t *testing.T) {
	bucketDir := localTrips(t)
	before := parquetFiles(t, bucketDir)
	snapshot := t.TempDir()
	for _, rel := range before {
		body, err := os.ReadFile(filepath.Join(bucketDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(snapshot, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	dry := runCompact(t, "--dry-run", bucketDir)
	if got := parquetFiles(t, bucketDir); len(got) != len(before) || dry.Plans == 0 || dry.FilesAfter >= dry.FilesBefore {
		t.Fatalf("dry run: %d files after (want %d), result %+v", len(got), len(before), dry)
	}
	res := runCompact(t, bucketDir)
	after := parquetFiles(t, bucketDir)
	if res.FilesBefore != len(before) || res.FilesAfter != len(after) || len(after) != res.Partitions || res.RowsOut != res.RowsIn-res.Duplicates {
		t.Errorf("compaction: %+v; %d files before, %d after", res, len(before), len(after))
	}
	glob := func(d string) string { return "'" + filepath.ToSlash(d) + "/processed/trips/pickup_date=*/*.parquet'" }
	// A partition whose trips all came in one batch has one file and is left alone (worthPlanning):
	// how many do depends on how the event source mapping cut the batches, so the rows after are
	// compared with the rows before, not with what the compaction wrote.
	r := testpeers.DuckDBRows(t,
		fmt.Sprintf(`SELECT count(*) AS n FROM ((SELECT DISTINCT * FROM read_parquet(%s)) EXCEPT ALL (SELECT * FROM read_parquet(%s)))`, glob(snapshot), glob(bucketDir)),
		fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM read_parquet(%s)`, glob(bucketDir)),
		fmt.Sprintf(`SELECT count(*) AS n FROM read_parquet(%s)`, glob(snapshot)))
	if fmt.Sprint(r[0][0]["n"]) != "0" || fmt.Sprint(r[1][0]["n"]) != fmt.Sprint(r[1][0]["d"]) ||
		fmt.Sprint(r[1][0]["n"]) != fmt.Sprint(anyInt(r[2][0]["n"])-int64(res.Duplicates)) || res.RowsOut == 0 {
		t.Errorf("DuckDB: missing after %v; after %v rows, %v distinct; before %v rows, %d duplicates dropped; compaction wrote %d",
			r[0][0]["n"], r[1][0]["n"], r[1][0]["d"], r[2][0]["n"], res.Duplicates, res.RowsOut)
	}
	again := runCompact(t, bucketDir)
	if again.Plans != 0 || again.FilesAfter != len(after) {
		t.Errorf("second run: %+v, want nothing to do", again)
	}

	// The same objects in S3.
	fake := testpeers.StartS3(t)
	for k, v := range fake.Env() {
		t.Setenv(k, v)
	}
	fake.CreateBucket(t, "trips-bucket")
	for _, rel := range before {
		body, err := os.ReadFile(filepath.Join(snapshot, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		fake.Put(t, "trips-bucket", rel, body)
	}
	s3res := runCompact(t, "s3://trips-bucket")
	if s3res.FilesBefore != len(before) || s3res.FilesAfter != res.FilesAfter || s3res.RowsOut != res.RowsOut || len(s3res.Errors) > 0 {
		t.Errorf("s3:// compaction %+v, want what the folder's gave (%d → %d files, %d rows)", s3res, len(before), res.FilesAfter, res.RowsOut)
	}
	if n := len(fake.Requests("/trips-bucket/" + compact.PlanPrefix)); n == 0 {
		t.Error("no plan manifest was written through the S3 API")
	}
}

func TestCompactCommandUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--from", "2019-13-01", "."}, {"s3://bucket/processed/"}, {filepath.Join(t.TempDir(), "nope")}, {t.TempDir()}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"compact"}, args...), nil, &stdout, &stderr); code != 2 {
			t.Errorf("compact %v: exit %d, want 2\n%s", args, code, &stderr)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"compact", "--help"}, nil, &stdout, &stderr); code != 0 {
		t.Errorf("compact --help: exit %d", code)
	}
}

// anyInt reads a count DuckDB returned (a number or a numeric string).
func anyInt(v any) int64 {
	var n int64
	fmt.Sscan(fmt.Sprint(v), &n)
	return n
}

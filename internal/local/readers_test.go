package local

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// docColumn is a column of a table in docs/parquet-schema.md.
type docColumn struct {
	Name, Physical, Logical string
	Nullable                bool
	DuckDB                  string
}

var docRow = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| ([A-Z0-9_]+) \\| ([^|]+?) \\| (yes|no) \\| ([^|]+?) \\|")

// documentedSchema returns the columns of the tables under the "## <section>" heading of
// docs/parquet-schema.md: the schema the readers check the files against.
func documentedSchema(t *testing.T, section string) []docColumn {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(t), "docs", "parquet-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cols []docColumn
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == section
			continue
		}
		if m := docRow.FindStringSubmatch(line); in && m != nil {
			cols = append(cols, docColumn{Name: m[1], Physical: m[2], Logical: m[3], Nullable: m[4] == "yes", DuckDB: m[5]})
		}
	}
	if len(cols) == 0 {
		t.Fatalf("docs/parquet-schema.md has no column table under %q", section)
	}
	return cols
}

// hyparquetColumn is what hyparquet must decode from the footer for a documented column.
func (c docColumn) hyparquetColumn(t *testing.T) testpeers.HyparquetColumn {
	t.Helper()
	h := testpeers.HyparquetColumn{Name: c.Name, Type: c.Physical, RepetitionType: "REQUIRED"}
	if c.Nullable {
		h.RepetitionType = "OPTIONAL"
	}
	switch c.Logical {
	case "—":
	case "STRING":
		h.LogicalType, h.ConvertedType = map[string]any{"type": "STRING"}, "UTF8"
	case "INT(32)", "INT(64)":
		bits := 32.0
		if c.Logical == "INT(64)" {
			bits = 64
		}
		h.LogicalType = map[string]any{"type": "INTEGER", "bitWidth": bits, "isSigned": true}
		h.ConvertedType = fmt.Sprintf("INT_%d", int(bits))
	case "TIMESTAMP(MICROS, UTC)":
		h.LogicalType, h.ConvertedType = map[string]any{"type": "TIMESTAMP", "isAdjustedToUTC": true, "unit": "MICROS"}, "TIMESTAMP_MICROS"
	default:
		t.Fatalf("docs/parquet-schema.md: column %s: logical type %q is not one this test knows", c.Name, c.Logical)
	}
	return h
}

// jsType is the JavaScript type hyparquet gives a documented column's values.
func (c docColumn) jsType() string {
	switch {
	case strings.HasPrefix(c.Logical, "TIMESTAMP"):
		return "Date"
	case c.Physical == "INT64":
		return "bigint"
	case c.Physical == "BYTE_ARRAY":
		return "string"
	}
	return "number"
}

// parquetFiles lists the *.parquet files under dir.
func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestReadersReadProcessed runs every real TLC sample (samples/, heads/, parquet/) and the demo
// through the local pipeline, then reads every object under processed/trips/ and
// processed/zone_stats/ with DuckDB and with hyparquet, and the Firehose archive and the quarantine
// with DuckDB: row counts equal the summary's, every column has the name and type
// docs/parquet-schema.md gives it (timestamps as UTC instants), no column chunk has a wrong
// path_in_schema, pickup_date is read as a column from the Hive partition, and trips read back field
// by field equal the records ProcessFunction received (the archive's copy of the stream).
func TestReadersReadProcessed(t *testing.T) {
	tlc := testenv.TLCDir(t)
	testpeers.RequireReaders(t)
	t.Parallel()
	tripCols := documentedSchema(t, "processed/trips/")
	zoneCols := documentedSchema(t, "processed/zone_stats/")

	files := map[string]string{}
	for _, sub := range []string{"samples", "heads", "parquet"} {
		names, err := filepath.Glob(filepath.Join(tlc, sub, "*"))
		if err != nil || len(names) == 0 {
			t.Fatalf("no files under %s: %v", filepath.Join(tlc, sub), err)
		}
		for _, n := range names {
			files["raw/"+sub+"/"+filepath.Base(n)] = n
		}
	}
	c := startCloud(t, Options{LimitsOff: true})
	putFiles(t, c, files)
	// The demo's rows: 8,000 by default, to keep `make test` short; TAXISTREAM_READERS_DEMO_ROWS=60000
	// reads what `make run` writes.
	demoRows := int64(8000)
	if v := os.Getenv("TAXISTREAM_READERS_DEMO_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < int64(len(DemoFiles)) {
			t.Fatalf("TAXISTREAM_READERS_DEMO_ROWS=%q: want a number of rows", v)
		}
		demoRows = n
	}
	if _, err := PutDemo(context.Background(), c, demoRows); err != nil {
		t.Fatal(err)
	}
	s := drainAndSummarize(t, c, 6*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	if s.Objects != len(files)+len(DemoFiles) || s.ProcessedDuplicates != 0 {
		t.Fatalf("%d objects (want %d), processed_duplicates %d", s.Objects, len(files)+len(DemoFiles), s.ProcessedDuplicates)
	}
	dir := c.Bucket.Dir()
	tripsDir, zonesDir := filepath.Join(dir, "processed", "trips"), filepath.Join(dir, "processed", "zone_stats")
	tripFiles, zoneFiles := parquetFiles(t, tripsDir), parquetFiles(t, zonesDir)
	if len(tripFiles) != s.TripObjects || len(zoneFiles) != s.Windows || s.Windows == 0 {
		t.Fatalf("%d trip files, %d zone_stats files on disk; the summary says %d and %d", len(tripFiles), len(zoneFiles), s.TripObjects, s.Windows)
	}
	trips := "read_parquet(" + testpeers.SQLString(filepath.Join(tripsDir, "**", "*.parquet")) + ", hive_partitioning = true)"
	zones := "read_parquet(" + testpeers.SQLString(filepath.Join(zonesDir, "**", "*.parquet")) + ", hive_partitioning = true)"
	ndjson := func(sub, glob string) string {
		return "read_json(" + testpeers.SQLString(filepath.Join(dir, sub, "**", glob)) + ", format = 'newline_delimited', columns = {record_id: 'VARCHAR'})"
	}

	// The records to compare field by field: the first and last trip of every source object.
	res := testpeers.DuckDB(t, "SELECT min(record_id), max(record_id) FROM "+trips+" GROUP BY substr(record_id, 1, 16) ORDER BY 1")
	var ids []string
	for _, r := range res[0].Rows {
		ids = append(ids, r[0].(string), r[1].(string))
	}
	if len(ids) < 2*(len(files)+len(DemoFiles))-10 {
		t.Errorf("trips of only %d source objects in processed/trips, want about %d", len(ids)/2, len(files)+len(DemoFiles))
	}
	input := archivedRecords(t, filepath.Join(dir, "archive"), ids)

	t.Run("duckdb", func(t *testing.T) {
		quoted := make([]string, len(ids))
		for i, id := range ids {
			quoted[i] = testpeers.SQLString(id)
		}
		expected := make([]string, len(tripCols))
		for i, c := range tripCols {
			expected[i] = fmt.Sprintf("(%d, %s)", i, testpeers.SQLString(c.Name))
		}
		res := testpeers.DuckDB(t,
			// 0: counts
			"SELECT count(*), count(DISTINCT record_id), count(DISTINCT filename) FROM read_parquet("+
				testpeers.SQLString(filepath.Join(tripsDir, "**", "*.parquet"))+", hive_partitioning = true, filename = true)",
			// 1: the schema DuckDB reads, the partition column last
			"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+trips+")",
			// 2: every column chunk's path_in_schema, as DuckDB reads the footers
			"SELECT count(*), count(*) FILTER (WHERE m.path_in_schema IS DISTINCT FROM e.name) FROM parquet_metadata("+
				testpeers.SQLString(filepath.Join(tripsDir, "**", "*.parquet"))+") m LEFT JOIN (VALUES "+strings.Join(expected, ", ")+") e(id, name) ON m.column_id = e.id",
			// 3: the partition is the New York date of the pickup instant
			"SELECT count(*) FILTER (WHERE strftime(timezone('America/New_York', pickup_datetime), '%Y-%m-%d') <> strftime(pickup_date, '%Y-%m-%d')), "+
				"count(DISTINCT pickup_date) FROM "+trips,
			// 4: the trips to compare
			"SELECT * FROM "+trips+" WHERE record_id IN ("+strings.Join(quoted, ", ")+")",
			// 5, 6: the zone statistics: rows, and the trips they count
			"SELECT count(*), sum(trips) FROM "+zones,
			"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+zones+")",
			// 7, 8: the archive and the quarantine
			"SELECT count(*), count(DISTINCT record_id) FROM "+ndjson("archive", "*.gz"),
			"SELECT count(*), count(record_id) FROM "+ndjson("quarantine", "*.jsonl.gz"),
			// 9: created_by of every footer
			"SELECT DISTINCT created_by FROM parquet_file_metadata("+testpeers.SQLString(filepath.Join(dir, "processed", "**", "*.parquet"))+")",
		)
		want := fmt.Sprint([]any{fmt.Sprint(s.TripsProcessed), fmt.Sprint(s.TripsDistinct), fmt.Sprint(s.TripObjects)})
		if got := fmt.Sprint(res[0].Rows[0]); got != want || s.TripsDistinct != s.TripsProcessed {
			t.Errorf("DuckDB: rows, distinct record ids, files = %s; the summary says %s", got, want)
		}
		wantSchema := [][]any{}
		for _, c := range tripCols {
			wantSchema = append(wantSchema, []any{c.Name, c.DuckDB})
		}
		wantSchema = append(wantSchema, []any{"pickup_date", "DATE"})
		if diff := cmp.Diff(wantSchema, res[1].Rows); diff != "" {
			t.Errorf("DuckDB's schema of processed/trips (-documented +read):\n%s", diff)
		}
		if chunks, wrong := res[2].Rows[0][0], res[2].Rows[0][1]; wrong != "0" || chunks != fmt.Sprint(int64(len(tripCols))*int64(s.TripObjects)) {
			t.Errorf("DuckDB: %v of %v column chunks have a path_in_schema other than their column's name (want 0 of %d)", wrong, chunks, len(tripCols)*s.TripObjects)
		}
		if bad := res[3].Rows[0][0]; bad != "0" {
			t.Errorf("DuckDB: %v trips whose pickup_date partition is not the New York date of their pickup", bad)
		}
		t.Logf("DuckDB read %v rows in %v files, %v pickup dates", res[0].Rows[0][0], res[0].Rows[0][2], res[3].Rows[0][1])
		compareTrips(t, "DuckDB", tripCols, duckRows(res[4]), input, duckValue)

		if got, want := fmt.Sprint(res[5].Rows[0]), fmt.Sprint([]any{fmt.Sprint(s.ZoneStatsRows), fmt.Sprint(s.TripsProcessed)}); got != want {
			t.Errorf("DuckDB: zone_stats rows and their trips = %s, want the summary's zone_stats_rows and trips_processed %s", got, want)
		}
		wantZones := [][]any{}
		for _, c := range zoneCols {
			wantZones = append(wantZones, []any{c.Name, c.DuckDB})
		}
		t.Logf("DuckDB reads the window_start partition as %v", res[6].Rows[len(res[6].Rows)-1])
		if got := res[6].Rows; len(got) != len(wantZones)+1 || got[len(got)-1][0] != "window_start" {
			t.Errorf("DuckDB's schema of processed/zone_stats: %v, want the documented columns and the window_start partition", got)
		} else if diff := cmp.Diff(wantZones, got[:len(got)-1]); diff != "" {
			t.Errorf("DuckDB's schema of processed/zone_stats (-documented +read):\n%s", diff)
		}
		if got, want := fmt.Sprint(res[7].Rows[0]), fmt.Sprint([]any{fmt.Sprint(s.ArchiveRecords), fmt.Sprint(s.ArchiveDistinct)}); got != want {
			t.Errorf("DuckDB: archive lines and distinct record ids = %s, the summary says %s", got, want)
		}
		if got := res[8].Rows[0]; got[0] != fmt.Sprint(s.Quarantined) {
			t.Errorf("DuckDB: %v quarantine lines, the summary says %d", got[0], s.Quarantined)
		}
		if got := res[9].Rows; len(got) != 1 || got[0][0] != process.CreatedBy() {
			t.Errorf("DuckDB: created_by %v, want only %q", got, process.CreatedBy())
		}
	})

	t.Run("hyparquet", func(t *testing.T) {
		h := testpeers.Hyparquet(t, tripFiles, "record_id", ids)
		checkHyparquet(t, h, tripCols, s.TripObjects, s.TripsProcessed)
		compareTrips(t, "hyparquet", tripCols, h.Rows, input, hyparquetValue)
		z := testpeers.Hyparquet(t, zoneFiles, "", nil)
		checkHyparquet(t, z, zoneCols, s.Windows, s.ZoneStatsRows)
		t.Logf("hyparquet read %d rows in %d trip files and %d rows in %d zone_stats files", s.TripsProcessed, len(h.Files), s.ZoneStatsRows, len(z.Files))
	})
}

// checkHyparquet checks what hyparquet read against the documented columns and the summary's counts.
func checkHyparquet(t *testing.T, h testpeers.HyparquetResult, cols []docColumn, files int, rows int64) {
	t.Helper()
	var numRows, read int64
	for _, f := range h.Files {
		numRows += f.NumRows
		read += f.RowsRead
		if len(f.ChunkProblems) > 0 {
			t.Errorf("hyparquet: %s: %v", f.Path, f.ChunkProblems)
		}
		if f.CreatedBy != process.CreatedBy() {
			t.Errorf("hyparquet: %s: created_by %q, want %q", f.Path, f.CreatedBy, process.CreatedBy())
		}
	}
	if len(h.Files) != files || numRows != rows || read != rows {
		t.Errorf("hyparquet: %d files, %d rows in the footers, %d rows read; the summary says %d files, %d rows", len(h.Files), numRows, read, files, rows)
	}
	want := make([]testpeers.HyparquetColumn, len(cols))
	for i, c := range cols {
		want[i] = c.hyparquetColumn(t)
	}
	if len(h.Schemas) != 1 {
		t.Fatalf("hyparquet: %d distinct schemas, want 1", len(h.Schemas))
	}
	if diff := cmp.Diff(want, h.Schemas[0].Columns); diff != "" {
		t.Errorf("hyparquet: schema (-documented +read):\n%s", diff)
	}
	for _, c := range cols {
		for ty, n := range h.Types[c.Name] {
			if ty != c.jsType() && (ty != "null" || !c.Nullable) {
				t.Errorf("hyparquet: column %s has %d values of type %s, want %s", c.Name, n, ty, c.jsType())
			}
		}
		if h.Types[c.Name] == nil {
			t.Errorf("hyparquet: no values read for column %s", c.Name)
		}
	}
}

// archivedRecords reads the records with the given ids from the Firehose archive (the stream's
// records as ProcessFunction received them), numbers kept as written.
func archivedRecords(t *testing.T, dir string, ids []string) map[string]map[string]any {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]map[string]any{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			if id := recordID(sc.Bytes()); want[id] {
				dec := json.NewDecoder(strings.NewReader(sc.Text()))
				dec.UseNumber()
				var m map[string]any
				if err := dec.Decode(&m); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				out[id] = m
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(want) {
		t.Fatalf("%d of %d records found in the archive", len(out), len(want))
	}
	return out
}

// duckRows turns a DuckDB result into rows keyed by column name.
func duckRows(r testpeers.DuckDBResult) []map[string]any {
	var rows []map[string]any
	for _, vals := range r.Rows {
		m := map[string]any{}
		for i, c := range r.Columns {
			m[c] = vals[i]
		}
		rows = append(rows, m)
	}
	return rows
}

// A reader's value of a column, decoded from its JSON form into what the record's value must equal:
// time.Time, int64, float64, string or nil.
type readerValue func(c docColumn, v any) (any, error)

// duckValue decodes DuckDB's JSON values: timestamps "2019-01-15 13:00:00[.ffffff]+00", BIGINT as a
// string, INTEGER and DOUBLE as numbers.
func duckValue(c docColumn, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case strings.HasPrefix(c.Logical, "TIMESTAMP"):
		return time.Parse("2006-01-02 15:04:05.999999-07", v.(string))
	case c.Physical == "INT64":
		return strconv.ParseInt(v.(string), 10, 64)
	case c.Physical == "INT32":
		return int64(v.(float64)), nil
	case c.Physical == "DOUBLE":
		return v.(float64), nil
	}
	return v.(string), nil
}

// hyparquetValue decodes hyparquet's values as the script writes them: Dates as ISO 8601 UTC,
// bigints as strings, numbers, strings.
func hyparquetValue(c docColumn, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case strings.HasPrefix(c.Logical, "TIMESTAMP"):
		return time.Parse(time.RFC3339Nano, v.(string))
	case c.Physical == "INT64":
		return strconv.ParseInt(v.(string), 10, 64)
	case c.Physical == "INT32":
		return int64(v.(float64)), nil
	case c.Physical == "DOUBLE":
		return v.(float64), nil
	}
	return v.(string), nil
}

// recordValue is what a column must hold for a record's field, or false when the record does not
// say (the column is then null).
func recordValue(c docColumn, v any) (any, bool, error) {
	if v == nil {
		return nil, false, nil
	}
	switch {
	case strings.HasPrefix(c.Logical, "TIMESTAMP"):
		tm, err := time.Parse(time.RFC3339Nano, v.(string))
		return tm, true, err
	case c.Physical == "INT32" || c.Physical == "INT64":
		n, err := strconv.ParseInt(string(v.(json.Number)), 10, 64)
		return n, true, err
	case c.Physical == "DOUBLE":
		f, err := strconv.ParseFloat(string(v.(json.Number)), 64)
		return f, true, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, false, fmt.Errorf("%v is not a string", v)
	}
	return s, true, nil
}

// compareTrips compares a reader's rows with the records, field by field: every field of a record
// that is a column holds the record's value (instants equal, numbers equal as doubles or integers),
// every column of the record contract the record lacks is null, and pickup_hour and duration_s follow
// from the times.
func compareTrips(t *testing.T, reader string, cols []docColumn, rows []map[string]any, records map[string]map[string]any, decode readerValue) {
	t.Helper()
	if len(rows) != len(records) {
		t.Errorf("%s returned %d of the %d trips asked for", reader, len(rows), len(records))
	}
	contract := cols[:slices.IndexFunc(cols, func(c docColumn) bool { return c.Name == "duration_s" })]
	fields := 0
	defer func() {
		t.Logf("%s: %d trips compared with their records, %d non-null fields equal", reader, len(rows), fields)
		if fields < 10*len(rows) {
			t.Errorf("%s: only %d fields compared in %d trips", reader, fields, len(rows))
		}
	}()
	for _, row := range rows {
		id, _ := row["record_id"].(string)
		rec, ok := records[id]
		if !ok {
			t.Errorf("%s: a row with record_id %q that was not asked for", reader, id)
			continue
		}
		for _, c := range contract {
			got, err := decode(c, row[c.Name])
			if err != nil {
				t.Errorf("%s: %s.%s = %v: %v", reader, id, c.Name, row[c.Name], err)
				continue
			}
			want, present, err := recordValue(c, rec[c.Name])
			if err != nil {
				t.Errorf("record %s.%s = %v: %v", id, c.Name, rec[c.Name], err)
				continue
			}
			if !present {
				if got != nil {
					t.Errorf("%s: %s.%s = %v, the record has no value", reader, id, c.Name, got)
				}
				continue
			}
			if !sameValue(got, want) {
				t.Errorf("%s: %s.%s = %v, the record says %v (%v)", reader, id, c.Name, got, want, rec[c.Name])
			}
			fields++
		}
		pickup, _ := time.Parse(time.RFC3339, rec["pickup_datetime"].(string))
		hour, _ := decode(docColumn{Physical: "INT32"}, row["pickup_hour"])
		if hour != int64(pickup.Hour()) {
			t.Errorf("%s: %s.pickup_hour = %v, the New York pickup time is %s", reader, id, hour, rec["pickup_datetime"])
		}
		if d, ok := rec["dropoff_datetime"].(string); ok {
			dropoff, _ := time.Parse(time.RFC3339, d)
			dur, _ := decode(docColumn{Physical: "INT64"}, row["duration_s"])
			if dur != int64(dropoff.Sub(pickup)/time.Second) {
				t.Errorf("%s: %s.duration_s = %v, want %v", reader, id, dur, dropoff.Sub(pickup))
			}
		}
		if p, ok := row["pickup_date"]; ok && p != rec["pickup_datetime"].(string)[:10] {
			t.Errorf("%s: %s.pickup_date = %v, the record's pickup is %s", reader, id, p, rec["pickup_datetime"])
		}
	}
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case float64:
		g, ok := got.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w))
	}
	return got == want
}

package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var testSource = Source{Bucket: "bucket", Key: "raw/file.csv", Version: "v1"}

// drain reads a RowReader to the end: records as JSON lines, rejects as "REJECT <json>" lines.
func drain(t testing.TB, rr RowReader) (out []byte, rejects []*RowError) {
	t.Helper()
	var buf bytes.Buffer
	for i := 0; ; i++ {
		if i > 10_000_000 {
			t.Fatal("reader does not end")
		}
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			rejects = append(rejects, re)
			b, _ := json.Marshal(re)
			buf.WriteString("REJECT ")
			buf.Write(b)
			buf.WriteByte('\n')
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if len(rec.JSON) == 0 || rec.JSON[len(rec.JSON)-1] != '\n' {
			t.Fatalf("record without trailing newline: %q", rec.JSON)
		}
		if !json.Valid(rec.JSON) {
			t.Fatalf("invalid JSON: %s", rec.JSON)
		}
		if !bytes.Contains(rec.JSON, []byte(`"record_id":"`+rec.ID+`"`)) {
			t.Fatalf("record ID %q not in %s", rec.ID, rec.JSON)
		}
		buf.Write(rec.JSON)
	}
	st := rr.Stats()
	if st.RowsRead != st.Records+st.Rejected {
		t.Fatalf("stats %+v: rows read != records + rejected", st)
	}
	if int(st.Rejected) != len(rejects) {
		t.Fatalf("stats say %d rejected, saw %d", st.Rejected, len(rejects))
	}
	return buf.Bytes(), rejects
}

func convertString(t testing.TB, csv string, opts Options) (string, []*RowError) {
	t.Helper()
	if opts.Source == (Source{}) {
		opts.Source = testSource
	}
	rr, err := NewCSVReader(strings.NewReader(csv), opts)
	if err != nil {
		t.Fatal(err)
	}
	out, rej := drain(t, rr)
	return string(out), rej
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestGoldenHeads converts the first KiB of every TLC layout 2009–2020 (../shared/data/tlc/heads).
func TestGoldenHeads(t *testing.T) {
	dir := filepath.Join(testenv.TLCDir(t), "heads")
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no head files in %s (%v)", dir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".csv")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rr, err := NewCSVReader(bytes.NewReader(data), Options{Source: Source{Bucket: "tlc", Key: filepath.Base(f)}})
			if err != nil {
				t.Fatal(err)
			}
			out, _ := drain(t, rr)
			golden(t, "heads_"+name, out)
		})
	}
}

// TestGoldenLayouts converts generated files of every layout (no shared data needed).
func TestGoldenLayouts(t *testing.T) {
	for _, tc := range []struct {
		taxi   string
		layout int
	}{
		{"yellow", 2009}, {"yellow", 2014}, {"yellow", 2015}, {"yellow", 2017}, {"yellow", 2019}, {"yellow", 2023}, {"yellow", 2025},
		{"green", 2013}, {"green", 2015}, {"green", 2017}, {"green", 2019}, {"green", 2025},
		{"fhv", 2015}, {"fhv", 2017}, {"fhv", 2019}, {"fhv", 2020}, {"fhvhv", 2019}, {"fhvhv", 2022},
	} {
		name := tc.taxi + "_" + strconv.Itoa(tc.layout)
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := gen.Write(&buf, gen.Options{Taxi: tc.taxi, Layout: tc.layout, Rows: 5, Seed: 3, BadRowRate: 0.4}); err != nil {
				t.Fatal(err)
			}
			out, _ := convertString(t, buf.String(), Options{FileName: name + ".csv"})
			golden(t, "layout_"+name, []byte(out))
		})
	}
}

// TestSharedFiles converts every shared sample: the heads lose exactly their cut-off last line,
// everything else converts without a reject.
func TestSharedFiles(t *testing.T) {
	root := testenv.TLCDir(t)
	for _, sub := range []string{"heads", "samples", "zones"} {
		files, _ := filepath.Glob(filepath.Join(root, sub, "*.csv"))
		if len(files) == 0 {
			t.Fatalf("no files in %s/%s", root, sub)
		}
		for _, f := range files {
			t.Run(sub+"/"+filepath.Base(f), func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				rr, err := NewCSVReader(bytes.NewReader(data), Options{Source: Source{Key: filepath.Base(f)}})
				if err != nil {
					t.Fatal(err)
				}
				out, rej := drain(t, rr)
				st := rr.Stats()
				if sub != "heads" {
					if len(rej) != 0 {
						t.Fatalf("got %d rejects, want 0; first: %v", len(rej), rej[0])
					}
					// Every non-blank line after the header is a record.
					lines := 0
					for _, l := range strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' || r == '\r' }) {
						if strings.TrimSpace(l) != "" {
							lines++
						}
					}
					if st.Records != int64(lines-1) {
						t.Errorf("records %d, want %d", st.Records, lines-1)
					}
					return
				}
				if len(rej) != 1 {
					t.Fatalf("got %d rejects, want exactly the cut-off last line: %v", len(rej), rej)
				}
				re := rej[0]
				if re.Code != CodeTruncatedRow || re.Row != st.RowsRead || re.Raw == "" || re.Line < 2 {
					t.Errorf("reject %+v: want truncated_row on the last row %d", re, st.RowsRead)
				}
				if !bytes.HasSuffix(data, []byte(re.Raw)) {
					t.Errorf("raw %q is not the end of the file", re.Raw)
				}
				if st.Records < 3 || bytes.Count(out, []byte("\n")) != int(st.Records)+len(rej) {
					t.Errorf("records %d", st.Records)
				}
			})
		}
	}
}

func TestParquetShared(t *testing.T) {
	path := filepath.Join(testenv.TLCDir(t), "parquet", "green_tripdata_2024-01.parquet")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	rr, err := NewParquetReader(f, fi.Size(), Options{Source: Source{Key: "green_tripdata_2024-01.parquet"}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := rr.Next()
	if err != nil {
		t.Fatal(err)
	}
	// Row 1 as pandas shows it: 2024-01-01 00:46:55 (a local, not UTC-adjusted, timestamp), floats 1.0.
	for _, want := range []string{`"taxi_type":"green"`, `"vendor_id":2`, `"pickup_datetime":"2024-01-01T00:46:55-05:00"`,
		`"ratecode_id":1,`, `"passenger_count":1,`, `"payment_type":1,`, `"trip_type":1,`, `"trip_distance":1.98`, `"ehail_fee":null`, `"pu_location_id":236`} {
		if !bytes.Contains(rec.JSON, []byte(want)) {
			t.Errorf("first record lacks %s: %s", want, rec.JSON)
		}
	}
	if got := rr.Value("pu_location_id"); got != "236" {
		t.Errorf("Value(pu_location_id) = %q, want 236", got)
	}
	first := append([]byte(nil), rec.JSON...)
	rest, rej := drain(t, rr)
	if len(rej) != 0 {
		t.Fatalf("%d rejects: %v", len(rej), rej[0])
	}
	st := rr.Stats()
	if st.Records != 56551 || rr.Checkpoint().Offset != 56551 {
		t.Fatalf("records %d, checkpoint %+v", st.Records, rr.Checkpoint())
	}
	all := append(first, rest...)
	// Resume in the middle: identical remaining output.
	cut := 40000
	rr2, err := NewParquetReader(f, fi.Size(), Options{Source: Source{Key: "green_tripdata_2024-01.parquet"}, Resume: &Checkpoint{Offset: int64(cut)}})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := drain(t, rr2)
	lines := bytes.SplitAfter(all, []byte("\n"))
	if want := bytes.Join(lines[cut:], nil); !bytes.Equal(tail, want) {
		t.Errorf("resumed output differs (%d vs %d bytes)", len(tail), len(want))
	}
}

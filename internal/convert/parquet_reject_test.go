package convert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/tlc"
)

// yellowPQ is the yellow layout as TLC publishes it in Parquet (a subset of its columns, in TLC's
// order): local (isAdjustedToUTC=false) microsecond timestamps, DOUBLE passenger_count and RatecodeID,
// INT32 location ids. Every column is optional, as in TLC's files; nil is a Parquet null.
type yellowPQ struct {
	VendorID       *int32   `parquet:"VendorID,optional"`
	Pickup         *int64   `parquet:"tpep_pickup_datetime,timestamp(microsecond:local)"`
	Dropoff        *int64   `parquet:"tpep_dropoff_datetime,timestamp(microsecond:local)"`
	PassengerCount *float64 `parquet:"passenger_count,optional"`
	TripDistance   *float64 `parquet:"trip_distance,optional"`
	RatecodeID     *float64 `parquet:"RatecodeID,optional"`
	StoreAndFwd    *string  `parquet:"store_and_fwd_flag,optional"`
	PULocationID   *int32   `parquet:"PULocationID,optional"`
	DOLocationID   *int32   `parquet:"DOLocationID,optional"`
	PaymentType    *int64   `parquet:"payment_type,optional"`
	FareAmount     *float64 `parquet:"fare_amount,optional"`
	TotalAmount    *float64 `parquet:"total_amount,optional"`
}

func ptr[T any](v T) *T { return &v }

// wall is a NYC wall-clock time stored as if it were UTC, in microseconds (TLC's encoding).
func wall(s string) *int64 {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return ptr(t.UnixMicro())
}

// goodYellow is a complete, valid row; the tests change one value at a time.
func goodYellow() yellowPQ {
	return yellowPQ{
		VendorID: ptr[int32](2), Pickup: wall("2024-01-01 00:46:55"), Dropoff: wall("2024-01-01 00:58:25"),
		PassengerCount: ptr(1.0), TripDistance: ptr(1.98), RatecodeID: ptr(1.0), StoreAndFwd: ptr("N"),
		PULocationID: ptr[int32](236), DOLocationID: ptr[int32](79), PaymentType: ptr[int64](1),
		FareAmount: ptr(12.5), TotalAmount: ptr(17.3),
	}
}

// writeParquet writes rows to a Parquet file in t.TempDir() and returns its path.
func writeParquet[T any](t *testing.T, rows []T, opts ...parquet.WriterOption) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "yellow_tripdata_2024-01.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// openParquet opens path with NewParquetReader; the file is closed at the end of the test.
func openParquet(t *testing.T, path string, opts Options) (RowReader, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return NewParquetReader(f, fi.Size(), opts)
}

// pqWant is what one Parquet row must give: a record containing every string of json, or (code != "")
// a *RowError with this code and column.
type pqWant struct {
	json   []string
	code   string
	column int    // 1-based
	field  string // header name
	raw    string // substring of RowError.Raw
}

// pqCase is a row and what it must give.
type pqCase struct {
	name string
	row  yellowPQ
	want pqWant
}

func yellowRejectCases() []pqCase {
	tenth, fifth := 0.1, 0.2 // variables: 0.1+0.2 in constants is exactly 0.3
	with := func(f func(*yellowPQ)) yellowPQ {
		r := goodYellow()
		f(&r)
		return r
	}
	return []pqCase{
		{"good", goodYellow(), pqWant{json: []string{
			`"taxi_type":"yellow","vendor_id":2,"pickup_datetime":"2024-01-01T00:46:55-05:00","dropoff_datetime":"2024-01-01T00:58:25-05:00",` +
				`"passenger_count":1,"trip_distance":1.98,"ratecode_id":1,"store_and_fwd_flag":"N","pu_location_id":236,"do_location_id":79,` +
				`"payment_type":1,"fare_amount":12.5,"total_amount":17.3}` + "\n"}}},
		// A non-whole DOUBLE in an integer field is rejected, never truncated to 1.
		{"passenger_count 1.5", with(func(r *yellowPQ) { r.PassengerCount = ptr(1.5) }),
			pqWant{code: CodeBadInteger, column: 4, field: "passenger_count", raw: ",1.5,"}},
		// NaN is the placeholder of a missing value (pandas writes it so): null, as in CSV.
		{"passenger_count NaN", with(func(r *yellowPQ) { r.PassengerCount = ptr(math.NaN()) }),
			pqWant{json: []string{`"passenger_count":null,"trip_distance":1.98,`}}},
		// 1e21 is written 1e+21: an exponent, which the integer rule rejects.
		{"passenger_count 1e21", with(func(r *yellowPQ) { r.PassengerCount = ptr(1e21) }),
			pqWant{code: CodeBadInteger, column: 4, field: "passenger_count", raw: ",1e+21,"}},
		{"RatecodeID 99.5", with(func(r *yellowPQ) { r.RatecodeID = ptr(99.5) }),
			pqWant{code: CodeBadInteger, column: 6, field: "RatecodeID", raw: ",99.5,"}},
		{"trip_distance NaN", with(func(r *yellowPQ) { r.TripDistance = ptr(math.NaN()) }),
			pqWant{json: []string{`"passenger_count":1,"trip_distance":null,`}}},
		{"fare_amount +Inf", with(func(r *yellowPQ) { r.FareAmount = ptr(math.Inf(1)) }),
			pqWant{code: CodeBadNumber, column: 11, field: "fare_amount", raw: ",+Inf,"}},
		{"total_amount -Inf", with(func(r *yellowPQ) { r.TotalAmount = ptr(math.Inf(-1)) }),
			pqWant{code: CodeBadNumber, column: 12, field: "total_amount", raw: ",-Inf"}},
		// Two bad values: the first column (in the file's order) is the one reported.
		{"two bad values", with(func(r *yellowPQ) { r.TripDistance, r.FareAmount = ptr(math.Inf(1)), ptr(math.NaN()) }),
			pqWant{code: CodeBadNumber, column: 5, field: "trip_distance", raw: ",+Inf,"}},
		// Years outside 1900–2999 are rejected (contract: "Years 1900–2999 are accepted").
		{"pickup in 1850", with(func(r *yellowPQ) { r.Pickup = wall("1850-01-01 00:00:00") }),
			pqWant{code: CodeBadDatetime, column: 2, field: "tpep_pickup_datetime", raw: "1850-01-01 00:00:00"}},
		// A null is an empty value, and "an empty value is null" for every kind — a pickup time included:
		// the row is a record with pickup_datetime null, not a reject.
		{"null pickup", with(func(r *yellowPQ) { r.Pickup = nil }), pqWant{json: []string{
			`"vendor_id":2,"pickup_datetime":null,"dropoff_datetime":"2024-01-01T00:58:25-05:00","passenger_count":1,`}}},
		{"null passenger_count and amounts", with(func(r *yellowPQ) { r.PassengerCount, r.FareAmount, r.TotalAmount = nil, nil, nil }),
			pqWant{json: []string{`"passenger_count":null,"trip_distance":1.98,`, `"fare_amount":null,"total_amount":null}`}}},
		// Whole doubles become integers (-0 → 0); doubles are the shortest text that reads back the same.
		{"whole doubles and shortest text", with(func(r *yellowPQ) {
			r.PassengerCount, r.RatecodeID, r.TripDistance, r.FareAmount, r.TotalAmount = ptr(math.Copysign(0, -1)), ptr(99.0), ptr(tenth+fifth), ptr(1e-7), ptr(-52.0)
		}), pqWant{json: []string{`"passenger_count":0,"trip_distance":0.30000000000000004,"ratecode_id":99,`,
			`"fare_amount":1e-07,"total_amount":-52}`}}},
		{"DST gap", with(func(r *yellowPQ) { r.Pickup = wall("2024-03-10 02:30:00") }),
			pqWant{json: []string{`"pickup_datetime":"2024-03-10T02:30:00-05:00"`}}},
		{"bad flag", with(func(r *yellowPQ) { r.StoreAndFwd = ptr("X") }),
			pqWant{code: CodeBadFlag, column: 7, field: "store_and_fwd_flag", raw: ",X,"}},
		{"all null", yellowPQ{}, pqWant{json: []string{
			`"taxi_type":"yellow","vendor_id":null,"pickup_datetime":null,"dropoff_datetime":null,"passenger_count":null,"trip_distance":null,` +
				`"ratecode_id":null,"store_and_fwd_flag":null,"pu_location_id":null,"do_location_id":null,"payment_type":null,"fare_amount":null,"total_amount":null}` + "\n"}}},
		{"good again", goodYellow(), pqWant{json: []string{`"passenger_count":1,`}}},
	}
}

// checkParquetRows reads rr to the end and checks every row against cases[first:]; rows are numbered
// from first+1.
func checkParquetRows(t *testing.T, rr RowReader, cases []pqCase, first int) {
	t.Helper()
	var records, rejected int64
	reasons := map[string]int64{}
	for i := first; ; i++ {
		rec, err := rr.Next()
		if i == len(cases) {
			if err != io.EOF {
				t.Fatalf("after the last row: got %v, %q; want io.EOF", err, rec.JSON)
			}
			if _, err := rr.Next(); err != io.EOF {
				t.Fatalf("Next after io.EOF: %v", err)
			}
			break
		}
		c := cases[i]
		row := int64(i + 1)
		if got := rr.Checkpoint(); got.Offset != row || got.Row != row || got.Line != row {
			t.Errorf("row %d (%s): checkpoint %+v, want offset/line/row %d", row, c.name, got, row)
		}
		var re *RowError
		if c.want.code == "" {
			if err != nil {
				t.Errorf("row %d (%s): want a record, got %v (raw %q)", row, c.name, err, rowErrRaw(err))
				continue
			}
			records++
			if rec.Line != row || rec.Row != row {
				t.Errorf("row %d (%s): record Line %d Row %d", row, c.name, rec.Line, rec.Row)
			}
			if want := fmt.Sprintf("%016x", row); !strings.HasSuffix(rec.ID, want) || len(rec.ID) != 32 {
				t.Errorf("row %d (%s): record_id %q does not end in %s", row, c.name, rec.ID, want)
			}
			for _, w := range c.want.json {
				if !bytes.Contains(rec.JSON, []byte(w)) {
					t.Errorf("row %d (%s): record lacks\n  %s\ngot\n  %s", row, c.name, w, rec.JSON)
				}
			}
			continue
		}
		if !errors.As(err, &re) {
			t.Errorf("row %d (%s): want a *RowError %s, got %v (record %s)", row, c.name, c.want.code, err, rec.JSON)
			continue
		}
		rejected++
		reasons[re.Code]++
		if re.Code != c.want.code || re.Column != c.want.column || re.Field != c.want.field {
			t.Errorf("row %d (%s): got code %q column %d field %q, want %q %d %q (%v)", row, c.name,
				re.Code, re.Column, re.Field, c.want.code, c.want.column, c.want.field, re)
		}
		if re.Line != row || re.Row != row || re.Offset != row-1 {
			t.Errorf("row %d (%s): RowError line %d row %d offset %d", row, c.name, re.Line, re.Row, re.Offset)
		}
		if !strings.Contains(re.Raw, c.want.raw) {
			t.Errorf("row %d (%s): raw %q lacks %q", row, c.name, re.Raw, c.want.raw)
		}
		if !errors.Is(err, ErrBadValue) {
			t.Errorf("row %d (%s): Err %v is not ErrBadValue", row, c.name, re.Err)
		}
		if f, _ := tlc.Lookup(c.want.field); !strings.HasPrefix(re.Detail, f.Name+": ") {
			t.Errorf("row %d (%s): detail %q does not start with the field %s", row, c.name, re.Detail, f.Name)
		}
		if rec.JSON != nil {
			t.Errorf("row %d (%s): a reject came with a record %q", row, c.name, rec.JSON)
		}
	}
	st := rr.Stats()
	if st.RowsRead != st.Records+st.Rejected || st.RowsRead != int64(len(cases)-first) ||
		st.Records != records || st.Rejected != rejected {
		t.Errorf("stats %+v; saw %d records, %d rejected of %d rows", st, records, rejected, len(cases)-first)
	}
	if len(st.Reasons) != len(reasons) {
		t.Errorf("stats reasons %v, want %v", st.Reasons, reasons)
	}
	for k, v := range reasons {
		if st.Reasons[k] != v {
			t.Errorf("stats reasons %v, want %v", st.Reasons, reasons)
			break
		}
	}
}

func rowErrRaw(err error) string {
	var re *RowError
	if errors.As(err, &re) {
		return re.Raw
	}
	return ""
}

// TestParquetRejects: bad values in a TLC-shaped yellow Parquet file are rejected one row at a time with
// a stable code and the column that is bad; the good rows around them are records; Stats reconcile.
// The file has row groups of 4 rows, so rows and rejects also cross row-group boundaries.
func TestParquetRejects(t *testing.T) {
	cases := yellowRejectCases()
	rows := make([]yellowPQ, len(cases))
	for i, c := range cases {
		rows[i] = c.row
	}
	for _, rg := range []int64{4, 1 << 20} {
		t.Run(fmt.Sprintf("rowgroup=%d", rg), func(t *testing.T) {
			path := writeParquet(t, rows, parquet.MaxRowsPerRowGroup(rg))
			rr, err := openParquet(t, path, Options{Source: Source{Key: "yellow_tripdata_2024-01.parquet"}})
			if err != nil {
				t.Fatal(err)
			}
			checkParquetRows(t, rr, cases, 0)
			st := rr.Stats()
			want := map[string]int64{CodeBadInteger: 3, CodeBadNumber: 3, CodeBadDatetime: 1, CodeBadFlag: 1}
			if st.Records != 9 || st.Rejected != 8 || fmt.Sprint(st.Reasons) != fmt.Sprint(want) {
				t.Errorf("stats %+v, want 9 records, 8 rejected, reasons %v", st, want)
			}
			// Resuming at every row gives the same rows, numbers and rejects.
			for off := 1; off <= len(cases); off++ {
				rr, err := openParquet(t, path, Options{Source: Source{Key: "yellow_tripdata_2024-01.parquet"}, Resume: &Checkpoint{Offset: int64(off)}})
				if err != nil {
					t.Fatalf("resume at %d: %v", off, err)
				}
				checkParquetRows(t, rr, cases, off)
			}
		})
	}
}

// TestParquetFloatColumns: FLOAT (32-bit) columns, which TLC does not use but other exporters do.
func TestParquetFloatColumns(t *testing.T) {
	type row struct {
		Pickup         *int64   `parquet:"tpep_pickup_datetime,timestamp(microsecond:local)"`
		PassengerCount *float32 `parquet:"passenger_count,optional"`
		TripDistance   *float32 `parquet:"trip_distance,optional"`
	}
	p := wall("2024-01-01 00:46:55")
	path := writeParquet(t, []row{
		{p, ptr[float32](2), ptr[float32](0.1)},
		{p, ptr[float32](1.5), ptr[float32](1)},
		{p, ptr[float32](1), ptr(float32(math.NaN()))},
		{p, ptr[float32](1), ptr(float32(math.Inf(1)))},
	})
	rr, err := openParquet(t, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		json, code string
		column     int
	}
	want := []result{
		{json: `"passenger_count":2,"trip_distance":0.1}`},
		{code: CodeBadInteger, column: 2},
		{json: `"passenger_count":1,"trip_distance":null}`}, // NaN: a missing value
		{code: CodeBadNumber, column: 3},
	}
	for i, w := range want {
		rec, err := rr.Next()
		var re *RowError
		switch {
		case w.code == "" && (err != nil || !bytes.Contains(rec.JSON, []byte(w.json))):
			t.Errorf("row %d: got %s, %v; want a record with %s", i+1, rec.JSON, err, w.json)
		case w.code != "" && (!errors.As(err, &re) || re.Code != w.code || re.Column != w.column || re.Row != int64(i+1)):
			t.Errorf("row %d: got %v; want %s in column %d", i+1, err, w.code, w.column)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Errorf("want io.EOF, got %v", err)
	}
}

// TestParquetCorrupt: a cut-off or damaged file gives a plain error (not a *RowError, not a panic)
// from NewParquetReader or Next, and the reader does not loop.
func TestParquetCorrupt(t *testing.T) {
	rows := make([]yellowPQ, 2000)
	for i := range rows {
		rows[i] = goodYellow()
		rows[i].TripDistance = ptr(float64(i) / 7)
	}
	good, err := os.ReadFile(writeParquet(t, rows, parquet.MaxRowsPerRowGroup(500)))
	if err != nil {
		t.Fatal(err)
	}
	garbage := func(b []byte, from, to int) []byte {
		b = append([]byte(nil), b...)
		for i := from; i < to; i++ {
			b[i] = byte(i*131 + 7)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", []byte("PAR1")},
		{"first half", good[:len(good)/2]},
		{"second half", good[len(good)/2:]},
		{"last byte cut", good[:len(good)-1]},
		{"footer length garbage", garbage(good, len(good)-8, len(good)-4)},
		{"footer garbage", garbage(good, len(good)-200, len(good)-8)},
		{"data pages garbage", garbage(good, 4, len(good)/2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cut.parquet")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic: %v", p)
				}
			}()
			rr, err := openParquet(t, path, Options{})
			if err != nil {
				var re *RowError
				if errors.As(err, &re) {
					t.Fatalf("NewParquetReader gave a *RowError: %v", err)
				}
				t.Logf("NewParquetReader: %v", err)
				return
			}
			n := 0
			for ; n <= len(rows); n++ {
				_, err := rr.Next()
				if err == nil {
					continue
				}
				var re *RowError
				if errors.As(err, &re) {
					continue // a damaged value may read as a bad one: the reader goes on
				}
				if err == io.EOF {
					t.Fatalf("damaged file read to io.EOF without an error after %d rows (%+v)", n, rr.Stats())
				}
				t.Logf("Next after %d rows: %v", n, err)
				if _, err2 := rr.Next(); err2 == nil || err2 == io.EOF || err2.Error() != err.Error() {
					t.Errorf("Next after the fatal error: %v, want the same error again", err2)
				}
				return
			}
			t.Fatalf("reader returned more than %d rows", n)
		})
	}
}

// TestParquetDecimal: DECIMAL columns (not in TLC's files, but what Spark and database exports write)
// are their exact value, not the stored unscaled integer (fare 12.50 stored as 1250 with scale 2).
func TestParquetDecimal(t *testing.T) {
	type row struct {
		Pickup         *int64   `parquet:"tpep_pickup_datetime,timestamp(microsecond:local)"`
		FareAmount     int32    `parquet:"fare_amount,decimal(2:9)"`
		TotalAmount    int64    `parquet:"total_amount,decimal(2:18)"`
		PassengerCount int32    `parquet:"passenger_count,decimal(0:9)"`
		TripDistance   [9]byte  `parquet:"trip_distance,decimal(3:20)"`
		Tolls          *int64   `parquet:"tolls_amount,decimal(4:18),optional"`
		RatecodeID     int64    `parquet:"RatecodeID,decimal(1:18)"`
		Extra          *float64 `parquet:"extra,optional"`
	}
	be := func(v int64) (b [9]byte) { // 9-byte big-endian two's complement
		for i := 8; i >= 0; i-- {
			b[i] = byte(v)
			v >>= 8
		}
		return b
	}
	p := wall("2024-01-01 00:46:55")
	path := writeParquet(t, []row{
		{p, 1250, -705, 3, be(1980), ptr[int64](5), 10, nil},
		{p, -5, 0, 0, be(-1), nil, 15, nil}, // RatecodeID 1.5: not an integer
		{p, 7, 100, 1, be(-123456), ptr[int64](-10000), -20, nil},
	})
	rr, err := openParquet(t, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		`"pickup_datetime":"2024-01-01T00:46:55-05:00","fare_amount":12.50,"total_amount":-7.05,"passenger_count":3,"trip_distance":1.980,"tolls_amount":0.0005,"ratecode_id":1,"extra":null}`,
		CodeBadInteger,
		`"fare_amount":0.07,"total_amount":1.00,"passenger_count":1,"trip_distance":-123.456,"tolls_amount":-1.0000,"ratecode_id":-2,`,
	} {
		rec, err := rr.Next()
		var re *RowError
		if errors.As(err, &re) {
			if re.Code != want || re.Field != "RatecodeID" || re.Column != 7 || !strings.Contains(re.Raw, ",-0.05,0.00,0,-0.001,,1.5,") {
				t.Errorf("row %d: %v (raw %q), want %s", i+1, err, re.Raw, want)
			}
			continue
		}
		if err != nil || !bytes.Contains(rec.JSON, []byte(want)) {
			t.Errorf("row %d: got %s, %v\nwant %s", i+1, rec.JSON, err, want)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Errorf("want io.EOF, got %v", err)
	}
}

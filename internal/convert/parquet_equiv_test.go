package convert

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"

	"github.com/taxistream/taxistream/internal/testenv"
)

// referenceReader is the Parquet reader as it was before the typed path (issue 17): parquet-go's row
// reader, each value written as the text TLC would have written in CSV (appendText), the row run
// through the plan. The typed reader must give exactly what it gives.
type referenceReader struct {
	f      *parquet.File
	cols   []pqColumn
	p      *plan
	conv   *rowConv
	rg     int
	rows   parquet.Rows
	batch  []parquet.Row
	n, i   int
	next   int64
	text   []byte
	fields [][]byte
	stats  Stats
}

func newReferenceReader(t *testing.T, data []byte, opts Options) *referenceReader {
	t.Helper()
	rr, err := NewParquetReader(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("opening: %v", err)
	}
	pr := rr.(*parquetReader) // the same schema reading and plan
	ref := &referenceReader{f: pr.f, cols: pr.cols, p: pr.p, conv: newRowConv(pr.p), batch: make([]parquet.Row, 64),
		fields: make([][]byte, len(pr.cols))}
	if opts.Resume != nil {
		ref.next = opts.Resume.Offset
	}
	ref.seek(t, ref.next)
	return ref
}

func (r *referenceReader) seek(t *testing.T, idx int64) {
	r.n, r.i = 0, 0
	var start int64
	for g, rg := range r.f.RowGroups() {
		if idx < start+rg.NumRows() {
			r.rg, r.rows = g, rg.Rows()
			if idx > start {
				if err := r.rows.SeekToRow(idx - start); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
		start += rg.NumRows()
	}
	r.rows = nil
}

// verifyValues checks every value the typed path writes against the general path's conversion of the
// same value: the same JSON, or both reject it. Rows with a rejected value are written by the general
// path, so without this the typed path's values of those rows would never be compared.
func verifyValues(t *testing.T, pr *parquetReader) func(int, []byte, bool) {
	var conv *rowConv
	var vals int64
	t.Cleanup(func() {
		if vals == 0 && pr.typed > 0 {
			t.Errorf("typed rows but no values verified")
		}
	})
	return func(col int, got []byte, ok bool) {
		vals++
		if conv == nil {
			conv = newRowConv(pr.p)
		}
		cur := &pr.cur[col]
		v := cur.value()
		want, wok := []byte(nil), true
		if v.IsNull() {
			want = []byte("null")
		} else {
			var text []byte
			text, wok = appendText(nil, cur.col, v)
			if wok {
				want, wok = conv.field(nil, &pr.p.outs[col], text)
			}
		}
		if ok != wok || (ok && string(got) != string(want)) {
			t.Fatalf("column %q (%v): value %v: typed path %q (ok %v), general path %q (ok %v)", cur.col.name, cur.col.mode, v, got, ok, want, wok)
		}
	}
}

// result is what one Next gave, in comparable form.
type result struct {
	JSON  string
	ID    string
	Line  int64
	Row   int64
	Err   *RowError
	Fatal string
	Check Checkpoint
	Keys  map[string]string // Value() of some fields
}

var valueFields = []string{"pu_location_id", "vendor_id", "pickup_datetime", "trip_distance", "payment_type", "store_and_fwd_flag"}

func (r *referenceReader) next1(t *testing.T) (result, bool) {
	for r.i >= r.n {
		if r.rows == nil {
			return result{}, false
		}
		n, err := r.rows.ReadRows(r.batch)
		r.n, r.i = n, 0
		if n > 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("reference reader: %v", err)
		}
		r.seek(t, r.next)
	}
	row := r.batch[r.i]
	r.i++
	r.next++
	rowNo := r.next
	r.stats.RowsRead++
	r.text = r.text[:0]
	bnd := make([][2]int, len(r.cols))
	var bad convErr
	for _, v := range row {
		c := v.Column()
		if c < 0 || c >= len(r.cols) || v.IsNull() {
			continue
		}
		s := len(r.text)
		var ok bool
		r.text, ok = appendText(r.text, &r.cols[c], v)
		if !ok && bad.code == "" {
			bad = convErr{col: c, code: CodeBadParquetVal, detail: fmt.Sprintf("%s: a %s value this converter cannot read", r.cols[c].name, v.Kind())}
		}
		bnd[c] = [2]int{s, len(r.text)}
	}
	for c := range r.fields {
		r.fields[c] = r.text[bnd[c][0]:bnd[c][1]]
	}
	cp := Checkpoint{Offset: r.next, Line: r.next, Row: r.next, TaxiType: r.p.taxi}
	if bad.code == "" {
		e, ok := r.conv.convert(r.fields, rowNo)
		if ok {
			r.stats.Records++
			res := result{JSON: string(r.conv.out), ID: string(r.conv.out[len(`{"record_id":"`):][:32]), Line: rowNo, Row: rowNo, Check: cp, Keys: map[string]string{}}
			for _, k := range valueFields {
				res.Keys[k] = r.conv.lookupValue(k)
			}
			return res, true
		}
		bad = e
	}
	r.stats.Rejected++
	if r.stats.Reasons == nil {
		r.stats.Reasons = map[string]int64{}
	}
	r.stats.Reasons[bad.code]++
	var raw []byte
	for c, f := range r.fields {
		if c > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, f...)
	}
	re := &RowError{Line: rowNo, Row: rowNo, Offset: rowNo - 1, Code: bad.code, Detail: bad.detail,
		Raw: string(capBytes(raw, MaxRawBytes)), Err: errorForCode(bad.code)}
	if bad.col >= 0 {
		re.Column, re.Field = bad.col+1, r.p.header[bad.col]
	}
	return result{Err: re, Check: cp}, true
}

// readAll reads rr to the end.
func readAll(t *testing.T, rr RowReader) []result {
	t.Helper()
	var out []result
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return out
		}
		res := result{Check: rr.Checkpoint()}
		var re *RowError
		switch {
		case errors.As(err, &re):
			res.Err = re
		case err != nil:
			res.Fatal = err.Error()
			return append(out, res)
		default:
			res.JSON, res.ID, res.Line, res.Row = string(rec.JSON), rec.ID, rec.Line, rec.Row
			res.Keys = map[string]string{}
			for _, k := range valueFields {
				res.Keys[k] = rr.Value(k)
			}
		}
		out = append(out, res)
	}
}

var cmpRowErr = cmp.Comparer(func(a, b *RowError) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Line == b.Line && a.Row == b.Row && a.Column == b.Column && a.Field == b.Field && a.Offset == b.Offset &&
		a.Code == b.Code && a.Detail == b.Detail && a.Raw == b.Raw && errors.Is(a.Err, b.Err)
})

// checkAgainstReference compares the typed reader, the reader with every row on the general path and
// the reference reader on data from opts.Resume (nil: the start). It returns the reference's results
// and how many rows the typed reader wrote on its typed path.
func checkAgainstReference(t *testing.T, data []byte, opts Options) ([]result, int64) {
	t.Helper()
	ref := newReferenceReader(t, data, opts)
	var want []result
	for {
		r, ok := ref.next1(t)
		if !ok {
			break
		}
		want = append(want, r)
	}
	var typed int64
	for _, general := range []bool{false, true} {
		rr, err := NewParquetReader(bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			t.Fatal(err)
		}
		pr := rr.(*parquetReader)
		pr.general = general
		pr.verify = verifyValues(t, pr)
		got := readAll(t, rr)
		if diff := cmp.Diff(want, got, cmpRowErr); diff != "" {
			t.Fatalf("general=%v: differs from the reference reader (-want +got):\n%s", general, diff)
		}
		st := rr.Stats()
		if diff := cmp.Diff(ref.stats, st); diff != "" {
			t.Fatalf("general=%v: stats differ (-want +got):\n%s", general, diff)
		}
		if !general {
			typed = pr.typed
		} else if pr.typed != 0 {
			t.Fatalf("general=true: %d rows took the typed path", pr.typed)
		}
	}
	return want, typed
}

// pqGenColumn is a column of a generated test file: a name (which decides the field's kind) and a
// physical type with its values.
type pqGenColumn struct {
	name string
	node parquet.Node
	gen  func(r *rand.Rand) parquet.Value // a non-null value
}

// pqTypes are the value generators per Parquet type, rich in edge cases.
func pqTypes() map[string]struct {
	node parquet.Node
	gen  func(r *rand.Rand) parquet.Value
} {
	pick := func(r *rand.Rand, xs ...float64) float64 { return xs[r.IntN(len(xs))] }
	double := func(r *rand.Rand) float64 {
		switch r.IntN(10) {
		case 0:
			return pick(r, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 1e21, 1e-7, 5e-324, math.MaxFloat64, 1e11, 99999999999.5, 1e15, -1e15, 0.1+0.2)
		case 1:
			return r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-15))
		case 2:
			return float64(r.IntN(2000) - 1000)
		case 3:
			return float64(r.IntN(2000000)-1000000) / 1000
		case 4:
			return float64(r.IntN(10)) + 0.5
		default:
			return float64(r.IntN(20000)-1000) / 100
		}
	}
	wallMicros := func(r *rand.Rand) int64 {
		var t time.Time
		switch r.IntN(8) {
		case 0: // around the DST changes of 2024 and odd years
			t = time.Date(pick3(r, 2024, 1899, 3000, 2088, 1900, 2999), time.Month(pick3(r, 3, 11, 1, 12)), pick3(r, 10, 3, 1, 31), r.IntN(4), r.IntN(60), r.IntN(60), 0, time.UTC)
		case 1: // fractions of a second
			t = time.Date(2024, 1, 1+r.IntN(31), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e6)*1000, time.UTC)
		case 2: // before 1970
			t = time.Date(1950+r.IntN(20), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		default:
			t = time.Date(2019+r.IntN(6), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		}
		return t.UnixMicro()
	}
	bytesGen := func(r *rand.Rand) []byte {
		return []byte(pickS(r, "N", "Y", "X", "", " ", "1", "0", "y", "VTS", "CMT", "CRD", "CSH", "No Charge", "HV0003", "B02512",
			"12", "-3", "1.5", "1e5", " 7 ", "\xff\xfe", "quo\"te", "back\\slash", "ünï", "2024-01-01 00:46:55", "1/1/2018 2:21 PM",
			"2024-03-10 02:30:00", "2024-01-01T05:00:00Z", "0.10", "007", "+5", ".5", "5.",
			"NA", "null", `\N`, "NaN", "-", " n/a ", "NULL"))
	}
	return map[string]struct {
		node parquet.Node
		gen  func(r *rand.Rand) parquet.Value
	}{
		"int32": {parquet.Leaf(parquet.Int32Type), func(r *rand.Rand) parquet.Value {
			return parquet.Int32Value(int32(pick(r, 0, 1, 2, 236, -5, 999, 1000, math.MaxInt32, math.MinInt32)))
		}},
		"int64": {parquet.Leaf(parquet.Int64Type), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(int64(pick(r, 0, 1, 2, 4, 265, -1, 1e12, -1e18)))
		}},
		"double": {parquet.Leaf(parquet.DoubleType), func(r *rand.Rand) parquet.Value { return parquet.DoubleValue(double(r)) }},
		"float":  {parquet.Leaf(parquet.FloatType), func(r *rand.Rand) parquet.Value { return parquet.FloatValue(float32(double(r))) }},
		"string": {parquet.String(), func(r *rand.Rand) parquet.Value { return parquet.ByteArrayValue(bytesGen(r)) }},
		"bytes":  {parquet.Leaf(parquet.ByteArrayType), func(r *rand.Rand) parquet.Value { return parquet.ByteArrayValue(bytesGen(r)) }},
		"bool":   {parquet.Leaf(parquet.BooleanType), func(r *rand.Rand) parquet.Value { return parquet.BooleanValue(r.IntN(2) == 0) }},
		"ts_local_us": {parquet.TimestampAdjusted(parquet.Microsecond, false), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(wallMicros(r))
		}},
		"ts_local_ms": {parquet.TimestampAdjusted(parquet.Millisecond, false), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(floorDiv(wallMicros(r), 1000))
		}},
		"ts_local_ns": {parquet.TimestampAdjusted(parquet.Nanosecond, false), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(wallMicros(r) * 1000)
		}},
		"ts_utc_us": {parquet.TimestampAdjusted(parquet.Microsecond, true), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(wallMicros(r))
		}},
		"date":    {parquet.Date(), func(r *rand.Rand) parquet.Value { return parquet.Int32Value(int32(r.IntN(40000) - 10000)) }},
		"decimal": {parquet.Decimal(2, 18, parquet.Int64Type), func(r *rand.Rand) parquet.Value { return parquet.Int64Value(int64(r.IntN(100000) - 500)) }},
		"int96": {parquet.Leaf(parquet.Int96Type), func(r *rand.Rand) parquet.Value {
			return parquet.Int96Value(deprecated.Int96{uint32(r.IntN(86400)) * 1000, 0, uint32(2440588 + 19000 + r.IntN(400))})
		}},
		// Clean values as in TLC's files.
		"amount":   {parquet.Leaf(parquet.DoubleType), func(r *rand.Rand) parquet.Value { return parquet.DoubleValue(float64(r.IntN(20000)) / 100) }},
		"count":    {parquet.Leaf(parquet.DoubleType), func(r *rand.Rand) parquet.Value { return parquet.DoubleValue(float64(r.IntN(7))) }},
		"location": {parquet.Leaf(parquet.Int32Type), func(r *rand.Rand) parquet.Value { return parquet.Int32Value(int32(1 + r.IntN(265))) }},
		"flag":     {parquet.String(), func(r *rand.Rand) parquet.Value { return parquet.ByteArrayValue([]byte(pickS(r, "N", "N", "Y"))) }},
		"ts_2024": {parquet.TimestampAdjusted(parquet.Microsecond, false), func(r *rand.Rand) parquet.Value {
			return parquet.Int64Value(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() + r.Int64N(31*86400)*1e6)
		}},
		"fixed4": {parquet.Leaf(parquet.FixedLenByteArrayType(4)), func(r *rand.Rand) parquet.Value {
			return parquet.FixedLenByteArrayValue([]byte(pickS(r, "AB12", "N   ", "\x00\x01\x02\x03")))
		}},
	}
}

func pick3(r *rand.Rand, xs ...int) int { return xs[r.IntN(len(xs))] }
func pickS(r *rand.Rand, xs ...string) string {
	return xs[r.IntN(len(xs))]
}

// kindNames are column names that give each kind of field (and one the schema does not know).
var kindNames = []string{"VendorID", "tpep_pickup_datetime", "passenger_count", "trip_distance", "store_and_fwd_flag",
	"PULocationID", "payment_type", "dispatching_base_num", "my_extra_column"}

// writeGenerated writes rows of cols (nullPct % nulls) as a Parquet file. encode wraps every leaf
// (e.g. dictionary encoding); required makes the columns required.
func writeGenerated(t *testing.T, seed uint64, rows int, cols []pqGenColumn, encode func(parquet.Node) parquet.Node, required bool, opts ...parquet.WriterOption) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 17))
	group := parquet.Group{}
	for _, c := range cols {
		n := c.node
		if encode != nil {
			n = encode(n)
		}
		if required {
			group[c.name] = parquet.Required(n)
		} else {
			group[c.name] = parquet.Optional(n)
		}
	}
	schema := parquet.NewSchema("trip", group)
	// The group orders its fields by name: find each generator's column index.
	gens := make([]func(*rand.Rand) parquet.Value, len(cols))
	for i, path := range schema.Columns() {
		for _, c := range cols {
			if c.name == path[0] {
				gens[i] = c.gen
			}
		}
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, append([]parquet.WriterOption{schema}, opts...)...)
	batch := make([]parquet.Row, 0, 100)
	for range rows {
		row := make(parquet.Row, len(gens))
		for i, g := range gens {
			if !required && r.IntN(10) == 0 {
				row[i] = parquet.Value{}.Level(0, 0, i)
			} else {
				def := 1
				if required {
					def = 0
				}
				row[i] = g(r).Level(0, def, i)
			}
		}
		batch = append(batch, row)
		if len(batch) == cap(batch) {
			if _, err := w.WriteRows(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := w.WriteRows(batch); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestParquetTypedMatchesGeneral: for every Parquet type in every kind of field (plain and
// dictionary-encoded, optional and required, data pages v1 and v2, small pages and row groups, read
// from the start and resumed), the typed reader gives exactly what the reference reader (the general
// path before issue 17) gives: records, record ids, rejects with their column, reason and raw text,
// checkpoints, Value() and stats; and so does the reader with every row forced onto the general path.
func TestParquetTypedMatchesGeneral(t *testing.T) {
	types := pqTypes()
	encodings := map[string]func(parquet.Node) parquet.Node{
		"plain": nil,
		"dict":  func(n parquet.Node) parquet.Node { return parquet.Encoded(n, &parquet.RLEDictionary) },
	}
	for tname, typ := range types {
		for ename, enc := range encodings {
			for _, required := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/required=%v", tname, ename, required)
				t.Run(name, func(t *testing.T) {
					var cols []pqGenColumn
					for _, n := range kindNames {
						cols = append(cols, pqGenColumn{name: n, node: typ.node, gen: typ.gen})
					}
					seed := uint64(len(name)) * 7919
					// Data pages v1 and v2 alternate over the cases (both appear with every encoding).
					v := 1 + int(seed/7919+uint64(len(tname)))%2
					data := writeGenerated(t, seed, 500, cols, enc, required,
						parquet.MaxRowsPerRowGroup(300), parquet.PageBufferSize(512), parquet.DataPageVersion(v))
					opts := Options{Source: Source{Bucket: "b", Key: "raw/yellow_tripdata_2024-01.parquet", Version: "v"}}
					all, _ := checkAgainstReference(t, data, opts)
					if len(all) != 500 {
						t.Fatalf("%d rows, want 500", len(all))
					}
					for _, off := range []int64{1, 300, 333, 500} {
						opts.Resume = &Checkpoint{Offset: off}
						checkAgainstReference(t, data, opts)
					}
				})
			}
		}
	}
}

// TestParquetTypedMixed: a TLC-like file mixing the types as TLC publishes them, a file whose header
// has the same field twice (the general plan) and a file that is not a trip file.
func TestParquetTypedMixed(t *testing.T) {
	types := pqTypes()
	col := func(name, typ string) pqGenColumn {
		return pqGenColumn{name: name, node: types[typ].node, gen: types[typ].gen}
	}
	dict := func(n parquet.Node) parquet.Node { return parquet.Encoded(n, &parquet.RLEDictionary) }
	for _, tc := range []struct {
		name     string
		cols     []pqGenColumn
		minTyped int64 // rows of 900 that must take the typed path
	}{
		{"tlc", []pqGenColumn{col("VendorID", "location"), col("tpep_pickup_datetime", "ts_2024"), col("tpep_dropoff_datetime", "ts_local_us"),
			col("passenger_count", "count"), col("trip_distance", "amount"), col("RatecodeID", "count"), col("store_and_fwd_flag", "flag"),
			col("PULocationID", "location"), col("DOLocationID", "location"), col("payment_type", "int64"), col("fare_amount", "double"),
			col("airport_fee", "amount")}, 400},
		{"duplicate field", []pqGenColumn{col("pickup_datetime", "ts_local_us"), col("tpep_pickup_datetime", "string"), col("trip_distance", "double")}, 0},
		{"not a trip file", []pqGenColumn{col("a", "double"), col("b", "string"), col("c", "ts_local_us"), col("d", "int32")}, 300},
	} {
		for _, enc := range []func(parquet.Node) parquet.Node{nil, dict} {
			t.Run(tc.name, func(t *testing.T) {
				data := writeGenerated(t, 3, 900, tc.cols, enc, false, parquet.MaxRowsPerRowGroup(400), parquet.PageBufferSize(1024))
				_, typed := checkAgainstReference(t, data, Options{Source: Source{Key: "raw/x.parquet"}})
				if typed < tc.minTyped {
					t.Errorf("%d rows on the typed path, want at least %d", typed, tc.minTyped)
				}
				checkAgainstReference(t, data, Options{Source: Source{Key: "raw/x.parquet"}, Resume: &Checkpoint{Offset: 450}})
			})
		}
	}
}

// TestParquetGolden pins the records of TLC's own green 2024-01 file (pyarrow, every column
// dictionary-encoded): the SHA-256 of the output of `taxistream convert` before the typed path
// (commit 3b31988), and the typed reader matches the reference reader row by row, resumed too.
func TestParquetGolden(t *testing.T) {
	path := filepath.Join(testenv.TLCDir(t), "parquet", "green_tripdata_2024-01.parquet")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// As `taxistream convert -bucket golden -version v1 green_tripdata_2024-01.parquet` (in its folder).
	opts := Options{Source: Source{Bucket: "golden", Key: "green_tripdata_2024-01.parquet", Version: "v1"}, FileName: "green_tripdata_2024-01.parquet"}
	rr, err := NewParquetReader(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, r := range readAll(t, rr) {
		if r.Err != nil || r.Fatal != "" {
			t.Fatalf("row %d: %v %s", r.Check.Row, r.Err, r.Fatal)
		}
		io.WriteString(h, r.JSON)
	}
	const want = "d491a3e779ee112c08db54b07138267350e6ea021b251c12f52034055e4f8e9c"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("SHA-256 of the records %s, want %s (the output before the typed reader)", got, want)
	}
	if _, typed := checkAgainstReference(t, data, opts); typed != 56551 {
		t.Errorf("%d rows on the typed path, want all 56551", typed)
	}
	opts.Resume = &Checkpoint{Offset: 31337}
	checkAgainstReference(t, data, opts)
}

// TestAppendFloatFast: appendFloatFast writes exactly what appendFloat writes, or declines.
func TestAppendFloatFast(t *testing.T) {
	check := func(f float64) {
		got, ok := appendFloatFast(nil, f)
		if !ok {
			return
		}
		if want := appendFloat(nil, f); string(got) != string(want) {
			t.Fatalf("appendFloatFast(%v) = %s, appendFloat = %s", f, got, want)
		}
	}
	// Every amount with up to 3 decimals up to ±2,000 (in steps of 0.001) and ±2e6 in steps of 0.1.
	for n := -2_000_000; n <= 2_000_000; n++ {
		check(float64(n) / 1000)
		check(float64(n) / 10)
		check(float64(n)*997 + 0.5)
	}
	r := rand.New(rand.NewPCG(1, 2))
	declined := 0
	for range 1_000_000 {
		f := r.NormFloat64() * math.Pow(10, float64(r.IntN(24)-12))
		if _, ok := appendFloatFast(nil, f); !ok {
			declined++
		}
		check(f)
		check(math.Round(f*100) / 100)
		check(math.Nextafter(math.Round(f*1000)/1000, math.Inf(1)))
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1e11, -1e11, 99999999999.999, 0.001, 0.0005, 1e-3, 123456.789} {
		check(f)
	}
	if _, ok := appendFloatFast(nil, 12.34); !ok {
		t.Error("appendFloatFast declined 12.34")
	}
	t.Logf("%d of 1,000,000 random doubles declined", declined)
}

func FuzzAppendFloatFast(f *testing.F) {
	for _, v := range []float64{0, 1.98, 12.5, -52, 0.30000000000000004, 1e-7, 99999999999.5} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if got, ok := appendFloatFast(nil, v); ok {
			if want := appendFloat(nil, v); string(got) != string(want) {
				t.Fatalf("appendFloatFast(%v) = %s, appendFloat = %s", v, got, want)
			}
		}
	})
}

// TestAppendLocalTime: the typed timestamp writes what appendTime writes for the text, over every
// hour of 1900–2999's DST edges and random instants, or declines.
func TestAppendLocalTime(t *testing.T) {
	var tc1, tc2 timeCache
	check := func(c *pqCursor, v int64) {
		got, ok := c.appendLocalTime(nil, v, &tc1)
		text := appendTimestamp(nil, v, c.col)
		want, wok := tc2.appendTime(nil, text)
		if ok && (!wok || string(got) != string(want)) {
			t.Fatalf("%s (%d %v): typed %s, text path %s (%v)", text, v, c.col.unit, got, want, wok)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, unit := range []time.Duration{time.Microsecond, time.Millisecond, time.Nanosecond} {
		c := &pqCursor{col: &pqColumn{ts: tsLocal, unit: unit}}
		scale := int64(time.Second / unit)
		for _, y := range []int{1899, 1900, 1901, 1969, 1970, 2000, 2019, 2024, 2088, 2262, 2999, 3000} {
			if unit == time.Nanosecond && (y < 1678 || y > 2261) {
				continue // outside int64 nanoseconds
			}
			for h := int64(0); h < 366*24; h++ {
				base := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + h*3600
				check(c, (base+int64(r.IntN(3600)))*scale)
				check(c, base*scale)
				check(c, (base+3599)*scale)
				check(c, base*scale+1)
			}
		}
		for range 200_000 {
			check(c, r.Int64N(1<<50)-1<<49)
		}
	}
}

func FuzzAppendLocalTime(f *testing.F) {
	f.Add(int64(1704070015000000), uint8(0))
	f.Add(int64(-2208988800000000), uint8(1))
	f.Fuzz(func(t *testing.T, v int64, u uint8) {
		unit := []time.Duration{time.Microsecond, time.Millisecond, time.Nanosecond}[int(u)%3]
		c := &pqCursor{col: &pqColumn{ts: tsLocal, unit: unit}}
		var tc1, tc2 timeCache
		got, ok := c.appendLocalTime(nil, v, &tc1)
		if !ok {
			return
		}
		want, wok := tc2.appendTime(nil, appendTimestamp(nil, v, c.col))
		if !wok || string(got) != string(want) {
			t.Fatalf("%d %v: typed %s, text path %s (%v)", v, unit, got, want, wok)
		}
	})
}

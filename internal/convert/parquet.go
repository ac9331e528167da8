package convert

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/taxistream/taxistream/internal/tlc"
)

// How a Parquet file becomes records.
//
// The reader walks the column chunks of one row group at a time, page by page (one cursor per
// column), and writes each row's record straight from the typed values: integers, doubles and local
// timestamps go to JSON with no text in between, and a dictionary-encoded column chunk has each
// dictionary entry converted once, the first time a row uses it, and then copied. What a value becomes
// is defined by the general path: the value's text as TLC would have written it in CSV (appendText),
// run through the same plan as a CSV row (rowConv.convert). The typed path only decides how fast a
// record is written, never what it says: a value it is not sure of takes the general conversion, and
// a row with a rejected value is done entirely by the general path (so a RowError carries the same
// column, reason and raw text as before). TestParquetTypedMatchesGeneral and FuzzParquetTyped compare
// the two paths; TestParquetGolden pins the output on TLC's own file.

// Timestamp semantics of a Parquet column.
type tsKind uint8

const (
	tsNone  tsKind = iota
	tsLocal        // isAdjustedToUTC=false: NYC wall clock stored as if it were UTC (what TLC publishes)
	tsUTC          // isAdjustedToUTC=true: a real instant, converted to New York time
	tsInt96        // legacy INT96 (Spark/Impala): an instant
)

// pqMode is how a column's values are read: typed slices of each page (the fast modes) or, for the
// types the typed path does not handle, parquet.Values.
type pqMode uint8

const (
	modeValues  pqMode = iota // page.Values(): booleans, INT96, FLOAT, fixed-length arrays, decimals, dates, UTC timestamps
	modeInt32                 // INT32 without a date or decimal annotation
	modeInt64                 // INT64 without a timestamp or decimal annotation
	modeLocalTS               // INT64 local (not UTC-adjusted) timestamp
	modeDouble                // DOUBLE
	modeBytes                 // BYTE_ARRAY that is not a decimal
)

type pqColumn struct {
	name string
	ts   tsKind
	unit time.Duration // of tsLocal/tsUTC
	date bool
	dec  bool // DECIMAL: the stored value is the unscaled integer
	// scale is the DECIMAL's digits after the point (value = unscaled / 10^scale).
	scale  int
	kind   parquet.Kind
	maxDef byte
	mode   pqMode
}

// parquetReader reads a flat Parquet file row by row (see the comment at the top of this file).
type parquetReader struct {
	f      *parquet.File
	cols   []pqColumn
	header []string
	p      *plan
	conv   *rowConv
	cur    []pqCursor
	rg     int   // current row group (len(RowGroups) at the end)
	rgLeft int64 // rows of the current row group not read yet
	next   int64 // global index of the next row
	text   []byte
	fields [][]byte
	vals   []parquet.Value // the current row's values, for the general path
	scr    []byte          // scratch text of one value
	idSlab []byte
	stats  Stats
	fatal  error
	// general makes every row take the general path (the tests compare the two paths).
	general bool
	typed   int64 // rows written by the typed path (for the tests)
	// verify, when set (tests), sees every value the typed path writes: column, JSON, ok.
	verify func(col int, js []byte, ok bool)
}

// NewParquetReader reads a Parquet file (flat schema: one field per column, as TLC publishes).
// opts.Resume.Offset is the index of the next row.
//
// parquet-go panics on some malformed schemas; a crafted file must not crash the caller, so a panic
// while opening or reading becomes an error ("opening parquet: ..." / "reading parquet: ...").
func NewParquetReader(r io.ReaderAt, size int64, opts Options) (_ RowReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("opening parquet: malformed file: %v", p)
		}
	}()
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("opening parquet: %w", err)
	}
	pr := &parquetReader{f: f}
	schema := f.Schema()
	for _, path := range schema.Columns() {
		leaf, ok := schema.Lookup(path...)
		if !ok {
			return nil, fmt.Errorf("parquet column %q not found in its own schema", strings.Join(path, "."))
		}
		if leaf.MaxRepetitionLevel > 0 {
			return nil, fmt.Errorf("parquet column %q is repeated: only flat files are supported", strings.Join(path, "."))
		}
		if leaf.MaxDefinitionLevel > 255 {
			return nil, fmt.Errorf("parquet column %q is nested %d levels deep", strings.Join(path, "."), leaf.MaxDefinitionLevel)
		}
		c := pqColumn{name: strings.Join(path, "."), maxDef: byte(leaf.MaxDefinitionLevel)}
		t := leaf.Node.Type()
		c.kind = t.Kind()
		if lt := t.LogicalType(); lt != nil {
			switch v := lt.Value.(type) {
			case *format.TimestampType:
				c.ts, c.unit = tsLocal, v.Unit.Value.Duration()
				if v.IsAdjustedToUTC {
					c.ts = tsUTC
				}
			case *format.DateType:
				c.date = true
			case *format.DecimalType:
				c.dec, c.scale = true, int(v.Scale)
			}
		} else if ct := t.ConvertedType(); ct != nil {
			switch *ct {
			case deprecated.TimestampMillis:
				c.ts, c.unit = tsUTC, time.Millisecond
			case deprecated.TimestampMicros:
				c.ts, c.unit = tsUTC, time.Microsecond
			case deprecated.Date:
				c.date = true
			}
		}
		if c.kind == parquet.Int96 {
			c.ts = tsInt96
		}
		c.mode = modeOf(&c)
		pr.cols = append(pr.cols, c)
		pr.header = append(pr.header, c.name)
	}
	fileName := opts.FileName
	if fileName == "" {
		fileName = opts.Source.Key
	}
	taxi := opts.TaxiType
	if opts.Resume != nil {
		pr.next = opts.Resume.Offset
		if taxi == "" {
			taxi = opts.Resume.TaxiType
		}
		if pr.next < 0 || pr.next > f.NumRows() {
			return nil, fmt.Errorf("resuming parquet at row %d of %d", pr.next, f.NumRows())
		}
	}
	pr.p = compile(pr.header, taxi, fileName, opts.Source)
	pr.conv = newRowConv(pr.p)
	pr.fields = make([][]byte, len(pr.cols))
	pr.vals = make([]parquet.Value, len(pr.cols))
	pr.cur = make([]pqCursor, len(pr.cols))
	for i := range pr.cur {
		pr.cur[i].col = &pr.cols[i]
	}
	if err := pr.seek(pr.next); err != nil {
		return nil, err
	}
	return pr, nil
}

func modeOf(c *pqColumn) pqMode {
	switch {
	case c.kind == parquet.Int32 && !c.date && !c.dec:
		return modeInt32
	case c.kind == parquet.Int64 && c.ts == tsLocal && !c.dec:
		return modeLocalTS
	case c.kind == parquet.Int64 && c.ts == tsNone && !c.dec:
		return modeInt64
	case c.kind == parquet.Double:
		return modeDouble
	case c.kind == parquet.ByteArray && !c.dec:
		return modeBytes
	}
	return modeValues
}

// seek opens the row group holding global row index idx, every column positioned at that row.
func (pr *parquetReader) seek(idx int64) error {
	pr.closePages()
	var start int64
	for g, rg := range pr.f.RowGroups() {
		n := rg.NumRows()
		if idx < start+n {
			chunks := rg.ColumnChunks()
			if len(chunks) != len(pr.cur) {
				return fmt.Errorf("reading parquet row group %d: %d column chunks for %d columns", g, len(chunks), len(pr.cur))
			}
			pr.rg, pr.rgLeft = g, start+n-idx
			for i := range pr.cur {
				c := &pr.cur[i]
				c.pages = chunks[i].Pages()
				if idx > start {
					if err := c.pages.SeekToRow(idx - start); err != nil {
						return fmt.Errorf("seeking parquet row %d: %w", idx, err)
					}
				}
			}
			return nil
		}
		start += n
	}
	pr.rg, pr.rgLeft = len(pr.f.RowGroups()), 0
	return nil
}

func (pr *parquetReader) closePages() {
	for i := range pr.cur {
		pr.cur[i].close()
	}
}

func (pr *parquetReader) Next() (rec Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			pr.fatal = fmt.Errorf("reading parquet: malformed file: %v", p)
			rec, err = Record{}, pr.fatal
		}
	}()
	if pr.fatal != nil {
		return Record{}, pr.fatal
	}
	for pr.rgLeft == 0 {
		if pr.rg >= len(pr.f.RowGroups()) {
			pr.closePages()
			pr.fatal = io.EOF
			return Record{}, io.EOF
		}
		// This row group is done: on to the next.
		if err := pr.seek(pr.next); err != nil {
			pr.fatal = err
			return Record{}, err
		}
	}
	for i := range pr.cur {
		if err := pr.cur[i].advance(); err != nil {
			pr.fatal = fmt.Errorf("reading parquet row group %d, column %q: %w", pr.rg, pr.cols[i].name, err)
			return Record{}, pr.fatal
		}
	}
	pr.rgLeft--
	pr.next++
	rowNo := pr.next
	pr.stats.RowsRead++
	if pr.p.fast != nil && !pr.general {
		ok, err := pr.typedRow(rowNo)
		if err != nil {
			pr.fatal = fmt.Errorf("reading parquet row group %d: %w", pr.rg, err)
			return Record{}, pr.fatal
		}
		if ok {
			pr.stats.Records++
			pr.typed++
			return Record{JSON: pr.conv.out, ID: idString(&pr.idSlab, pr.conv.out[len(`{"record_id":"`):][:32]), Line: rowNo, Row: rowNo}, nil
		}
	}
	return pr.generalRow(rowNo)
}

// generalRow converts the current row the general way: the text of every value, then the plan.
func (pr *parquetReader) generalRow(rowNo int64) (Record, error) {
	for i := range pr.cur {
		pr.vals[i] = pr.cur[i].value()
	}
	pr.text = pr.text[:0]
	var bounds [64][2]int
	var bnd [][2]int
	if len(pr.cols) <= len(bounds) {
		bnd = bounds[:len(pr.cols)]
	} else {
		bnd = make([][2]int, len(pr.cols))
	}
	var bad convErr
	for c, v := range pr.vals {
		if v.IsNull() {
			continue
		}
		s := len(pr.text)
		var ok bool
		pr.text, ok = appendText(pr.text, &pr.cols[c], v)
		if !ok && bad.code == "" {
			bad = convErr{col: c, code: CodeBadParquetVal, detail: fmt.Sprintf("%s: a %s value this converter cannot read", pr.cols[c].name, v.Kind())}
		}
		bnd[c] = [2]int{s, len(pr.text)}
	}
	for c := range pr.fields {
		pr.fields[c] = pr.text[bnd[c][0]:bnd[c][1]]
	}
	if bad.code == "" {
		e, ok := pr.conv.convert(pr.fields, rowNo)
		if ok {
			pr.stats.Records++
			return Record{JSON: pr.conv.out, ID: idString(&pr.idSlab, pr.conv.out[len(`{"record_id":"`):][:32]), Line: rowNo, Row: rowNo}, nil
		}
		bad = e
	}
	pr.stats.Rejected++
	if pr.stats.Reasons == nil {
		pr.stats.Reasons = map[string]int64{}
	}
	pr.stats.Reasons[bad.code]++
	raw := make([]byte, 0, len(pr.text)+len(pr.fields))
	for c, f := range pr.fields {
		if c > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, f...)
	}
	re := &RowError{Line: rowNo, Row: rowNo, Offset: rowNo - 1, Code: bad.code, Detail: bad.detail,
		Raw: string(capBytes(raw, MaxRawBytes)), Err: errorForCode(bad.code)}
	if bad.col >= 0 {
		re.Column, re.Field = bad.col+1, pr.header[bad.col]
	}
	return Record{}, re
}

// typedRow writes the current row's record into pr.conv.out from the typed values. ok is false when
// a value is rejected (or cannot be read): the row is then done by generalRow. The plan is a fast
// plan: output field i is column i.
func (pr *parquetReader) typedRow(row int64) (ok bool, err error) {
	fp := pr.p.fast
	c := pr.conv
	out := c.out[:0]
	if cap(out) < headSize+256 {
		out = make([]byte, 0, 4096)
	}
	*(*[headSize]byte)(out[:headSize]) = fp.head
	putHex16(out[headRowAt:headRowAt+16], uint64(row))
	out = out[:fp.headLen]
	outs := pr.p.outs
	spans := c.spans[:len(outs)]
	for i := range outs {
		o := &outs[i]
		cur := &pr.cur[i]
		if cap(out)-len(out) < 256 {
			out = append(out, make([]byte, 4096)...)[:len(out)]
		}
		out = appendShort(out, o.key)
		start := len(out)
		ok = true
		switch {
		case cur.null:
			out = append(out, jsNull...)
		case cur.dict != nil:
			out, ok, err = pr.dictValue(out, cur, o)
		case cur.col.mode == modeValues:
			out, ok = pr.generalValue(out, cur.col, o, cur.val)
		default:
			out, ok = pr.typedValue(out, cur, o, &cur.data, cur.at)
		}
		if pr.verify != nil && err == nil {
			pr.verify(i, out[start:], ok)
		}
		if err != nil || !ok {
			c.out = out
			return false, err
		}
		spans[i] = [2]int32{int32(start), int32(len(out))}
	}
	c.out = append(out, '}', '\n')
	return true, nil
}

// dictValue copies the converted dictionary entry of the current value, converting it on first use.
func (pr *parquetReader) dictValue(out []byte, cur *pqCursor, o *outField) ([]byte, bool, error) {
	d := cur.dict
	i := cur.at
	if i >= len(d.spans) {
		return out, false, fmt.Errorf("column %q: dictionary index %d out of range (%d entries)", cur.col.name, i, len(d.spans))
	}
	s := d.spans[i]
	switch s[0] {
	case dictUnseen:
		start := len(out)
		var ok bool
		out, ok = pr.typedValue(out, cur, o, &d.data, i) // only typed modes keep a dictionary (nextPage)
		if !ok {
			d.spans[i] = [2]int32{dictRejected, 0}
			return out, false, nil
		}
		a := len(d.arena)
		d.arena = append(d.arena, out[start:]...)
		d.spans[i] = [2]int32{int32(a), int32(len(d.arena))}
		if cap(d.arena)-len(d.arena) < 32 {
			// appendShort copies entries with 16- and 32-byte loads: keep the slack it reads.
			d.arena = append(d.arena, make([]byte, 32)...)[:len(d.arena)]
		}
		return out, true, nil
	case dictRejected:
		return out, false, nil
	}
	return appendShort(out, d.arena[s[0]:s[1]]), true, nil
}

// typedValue writes value i of v (a page's or a dictionary's typed values) for output field o, as
// generalValue would, without its text when the value has a common shape.
func (pr *parquetReader) typedValue(out []byte, cur *pqCursor, o *outField, v *pqData, i int) ([]byte, bool) {
	col := cur.col
	switch col.mode {
	case modeInt32, modeInt64:
		var x int64
		if col.mode == modeInt32 {
			x = int64(v.i32[i])
		} else {
			x = v.i64[i]
		}
		switch o.kind {
		case tlc.KindInt, tlc.KindNumber, tlc.KindText, tlc.KindVendor, tlc.KindPayment:
			// The text of an integer is already the JSON integer in each of these kinds.
			return strconv.AppendInt(out, x, 10), true
		}
		if col.mode == modeInt32 {
			return pr.generalValue(out, col, o, parquet.Int32Value(int32(x)))
		}
		return pr.generalValue(out, col, o, parquet.Int64Value(x))
	case modeLocalTS:
		x := v.i64[i]
		if o.kind == tlc.KindTime {
			if b, ok := cur.appendLocalTime(out, x, &pr.conv.tc); ok {
				return b, true
			}
		}
		return pr.generalValue(out, col, o, parquet.Int64Value(x))
	case modeDouble:
		f := v.f64[i]
		switch o.kind {
		case tlc.KindNumber, tlc.KindText:
			if b, ok := appendFloatFast(out, f); ok {
				return b, true
			}
		case tlc.KindInt, tlc.KindVendor, tlc.KindPayment:
			// A whole double's text is its integer digits ("2", "-0" → 0), which each kind keeps.
			if f == math.Trunc(f) && f > -1e15 && f < 1e15 {
				return strconv.AppendInt(out, int64(f), 10), true
			}
		}
		return pr.generalValue(out, col, o, parquet.DoubleValue(f))
	case modeBytes:
		if i+1 >= len(v.off) || v.off[i] > v.off[i+1] || int(v.off[i+1]) > len(v.ba) {
			return out, false
		}
		// A byte array's text is its bytes: only the plan's conversion is left.
		return pr.conv.field(out, o, v.ba[v.off[i]:v.off[i+1]])
	}
	return out, false
}

// generalValue writes v for output field o the general way: its text, then the plan's conversion.
func (pr *parquetReader) generalValue(out []byte, col *pqColumn, o *outField, v parquet.Value) ([]byte, bool) {
	if v.IsNull() {
		return append(out, jsNull...), true
	}
	var ok bool
	pr.scr, ok = appendText(pr.scr[:0], col, v)
	if !ok {
		return out, false
	}
	return pr.conv.field(out, o, pr.scr)
}

// field converts one value of a single-column output field exactly as convert does.
func (c *rowConv) field(out []byte, o *outField, v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return append(out, jsNull...), true
	}
	if o.kind == tlc.KindTime {
		start := len(out)
		if b, ok := c.tc.appendTime(out, v); ok {
			return b, true
		}
		out = out[:start]
	}
	b, _, ok := c.value(out, o.kind, v)
	return b, ok
}

// appendText writes a Parquet value as the CSV text TLC would have written.
func appendText(b []byte, c *pqColumn, v parquet.Value) ([]byte, bool) {
	switch v.Kind() {
	case parquet.Boolean:
		return strconv.AppendBool(b, v.Boolean()), true
	case parquet.Int32:
		if c.date {
			return time.Unix(int64(v.Int32())*86400, 0).UTC().AppendFormat(b, time.DateOnly), true
		}
		if c.dec {
			return appendDecimal(b, big.NewInt(int64(v.Int32())), c.scale), true
		}
		return strconv.AppendInt(b, int64(v.Int32()), 10), true
	case parquet.Int64:
		if c.ts != tsNone {
			return appendTimestamp(b, v.Int64(), c), true
		}
		if c.dec {
			return appendDecimal(b, big.NewInt(v.Int64()), c.scale), true
		}
		return strconv.AppendInt(b, v.Int64(), 10), true
	case parquet.Int96:
		i := v.Int96()
		nanos := int64(uint64(i[1])<<32 | uint64(i[0]))
		days := int64(i[2]) - 2440588 // Julian day of 1970-01-01
		t := time.Unix(days*86400, nanos).UTC()
		return t.AppendFormat(b, time.RFC3339Nano), true
	case parquet.Float:
		return appendFloat32(b, v.Float()), true
	case parquet.Double:
		return appendFloat(b, v.Double()), true
	case parquet.ByteArray, parquet.FixedLenByteArray:
		if c.dec {
			// Big-endian two's complement unscaled integer.
			raw := v.ByteArray()
			n := new(big.Int).SetBytes(raw)
			if len(raw) > 0 && raw[0]&0x80 != 0 {
				n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
			}
			return appendDecimal(b, n, c.scale), true
		}
		return append(b, v.ByteArray()...), true
	}
	return b, false
}

// appendDecimal writes the DECIMAL with unscaled value n and scale digits after the point, exactly
// (1250 with scale 2 → 12.50, -5 with scale 2 → -0.05).
func appendDecimal(b []byte, n *big.Int, scale int) []byte {
	if n.Sign() < 0 {
		b = append(b, '-')
		n = new(big.Int).Neg(n)
	}
	digits := n.Text(10)
	if scale <= 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

func appendFloat32(b []byte, f float32) []byte {
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}

// appendTimestamp writes a Parquet timestamp: local ones as NYC wall-clock text (the converter adds the
// offset by the documented rule), UTC-adjusted ones as RFC 3339 instants (converted to New York time).
func appendTimestamp(b []byte, v int64, c *pqColumn) []byte {
	var t time.Time
	switch c.unit {
	case time.Millisecond:
		t = time.UnixMilli(v)
	case time.Microsecond:
		t = time.UnixMicro(v)
	default:
		t = time.Unix(0, v)
	}
	t = t.UTC()
	if c.ts == tsLocal {
		return t.AppendFormat(b, "2006-01-02 15:04:05.999999999")
	}
	return t.AppendFormat(b, time.RFC3339Nano)
}

// appendFloatFast writes what appendFloat writes for the doubles with at most three decimals (amounts,
// miles) without the general shortest-digits search. If f is n/100 for an integer n (the division
// giving f back exactly), its digits are n's with the point two places in and trailing zeros dropped;
// otherwise the same with n/1000. Below 1e11 no other n/10^k with k ≤ 3 gives f, and a representation
// with fewer digits would be one of them, so these are the shortest digits that read back as f, which
// is what appendFloat writes. ok is false for any other value (NaN, ±Inf, -0, more decimals,
// |f| ≥ 1e11): the caller takes appendFloat. TestAppendFloatFast and FuzzAppendFloatFast compare the two.
func appendFloatFast(dst []byte, f float64) ([]byte, bool) {
	if !(f > -1e11 && f < 1e11) {
		return dst, false
	}
	k := 2
	n := math.Round(f * 100)
	if n/100 != f {
		k = 3
		if n = math.Round(f * 1000); n/1000 != f {
			return dst, false
		}
	}
	if n == 0 {
		if math.Signbit(f) {
			return dst, false // -0
		}
		return append(dst, '0'), true
	}
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	u := uint64(n)
	for k > 0 && u%10 == 0 {
		u /= 10
		k--
	}
	// Digits backwards into buf: k fraction digits and the point, then the integer part (at least 0).
	var buf [24]byte
	i := len(buf)
	if k > 0 {
		for range k {
			i--
			buf[i] = byte('0' + u%10)
			u /= 10
		}
		i--
		buf[i] = '.'
	}
	for {
		i--
		buf[i] = byte('0' + u%10)
		if u /= 10; u == 0 {
			break
		}
	}
	return append(dst, buf[i:]...), true
}

// appendLocalTime writes a local timestamp (NYC wall clock stored as if UTC) as appendTime writes its
// text "YYYY-MM-DD HH:MM:SS": quoted RFC 3339 with the New York offset of that hour. ok is false for
// fractional seconds and years outside 1900–2999 (the general path decides those).
func (c *pqCursor) appendLocalTime(dst []byte, v int64, tc *timeCache) ([]byte, bool) {
	var sec int64
	switch c.col.unit {
	case time.Microsecond:
		sec = floorDiv(v, 1e6)
		if sec*1e6 != v {
			return dst, false
		}
	case time.Millisecond:
		sec = floorDiv(v, 1e3)
		if sec*1e3 != v {
			return dst, false
		}
	case time.Nanosecond:
		sec = floorDiv(v, 1e9)
		if sec*1e9 != v {
			return dst, false
		}
	default:
		return dst, false
	}
	hour := floorDiv(sec, 3600)
	if hour != c.hour || !c.hourOK {
		days := floorDiv(hour, 24)
		y, m, d := civil(days)
		if y < minYear || y > maxYear {
			return dst, false
		}
		h := int(hour - days*24)
		off := tc.offset(y, m, d, h)
		t := &c.tmpl
		t[0] = '"'
		t[1], t[2], t[3], t[4] = byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10)
		t[5], t[6], t[7], t[8] = '-', byte('0'+m/10), byte('0'+m%10), '-'
		t[9], t[10], t[11] = byte('0'+d/10), byte('0'+d%10), 'T'
		t[12], t[13], t[14], t[17] = byte('0'+h/10), byte('0'+h%10), ':', ':'
		copy(t[20:26], off[:])
		t[26] = '"'
		c.hour, c.hourOK = hour, true
	}
	s := int(sec - hour*3600)
	mi, se := s/60, s%60
	t := &c.tmpl
	t[15], t[16], t[18], t[19] = byte('0'+mi/10), byte('0'+mi%10), byte('0'+se/10), byte('0'+se%10)
	return append(dst, t[:27]...), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civil returns the proleptic Gregorian date of days since 1970-01-01 (the days-from-civil inverse in
// 400-year eras of 146,097 days, with years starting on March 1 so the leap day is last).
func civil(days int64) (year, month, day int) {
	z := days + 719468 // days since 0000-03-01
	era := floorDiv(z, 146097)
	doe := z - era*146097                                  // day of era, 0–146096
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // year of era, 0–399
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // day of the March-based year, 0–365
	mp := (5*doy + 2) / 153                                // month from March, 0–11
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func (pr *parquetReader) Value(field string) string { return pr.conv.lookupValue(field) }

func (pr *parquetReader) Checkpoint() Checkpoint {
	return Checkpoint{Offset: pr.next, Line: pr.next, Row: pr.next, TaxiType: pr.p.taxi}
}

func (pr *parquetReader) Stats() Stats {
	s := pr.stats
	if s.Reasons != nil {
		s.Reasons = make(map[string]int64, len(pr.stats.Reasons))
		for k, v := range pr.stats.Reasons {
			s.Reasons[k] = v
		}
	}
	return s
}

// pqData holds the typed values of a page or a dictionary (the slice of the column's mode).
type pqData struct {
	i32 []int32
	i64 []int64
	f64 []float64
	ba  []byte
	off []uint32 // len = values + 1
}

// n returns how many values d holds in mode m.
func (d *pqData) n(m pqMode) int {
	switch m {
	case modeInt32:
		return len(d.i32)
	case modeInt64, modeLocalTS:
		return len(d.i64)
	case modeDouble:
		return len(d.f64)
	case modeBytes:
		return max(len(d.off)-1, 0)
	}
	return 0
}

// load points d at the values of vs (kind given by the mode; a mismatch panics in parquet-go and
// becomes a malformed-file error).
func (d *pqData) load(m pqMode, vs interface {
	Int32() []int32
	Int64() []int64
	Double() []float64
	ByteArray() ([]byte, []uint32)
}) {
	*d = pqData{}
	switch m {
	case modeInt32:
		d.i32 = vs.Int32()
	case modeInt64, modeLocalTS:
		d.i64 = vs.Int64()
	case modeDouble:
		d.f64 = vs.Double()
	case modeBytes:
		d.ba, d.off = vs.ByteArray()
	}
}

// Rendered dictionary entries: spans[i] is {start, end} in arena, or one of these markers.
const (
	dictUnseen   = -1
	dictRejected = -2
)

// pqDict is a column chunk's dictionary with each entry's converted JSON value, filled on first use.
type pqDict struct {
	src   parquet.Dictionary
	data  pqData // the entries, typed (fast modes)
	spans [][2]int32
	arena []byte
}

func (d *pqDict) reset(src parquet.Dictionary, m pqMode) {
	d.src = src
	n := src.Len()
	if m != modeValues {
		vs := src.Page().Data()
		d.data.load(m, &vs)
		n = min(n, d.data.n(m))
	}
	if cap(d.spans) < n {
		d.spans = make([][2]int32, n)
	}
	d.spans = d.spans[:n]
	for i := range d.spans {
		d.spans[i][0] = dictUnseen
	}
	d.arena = d.arena[:0]
	if cap(d.arena) < 32 {
		d.arena = make([]byte, 0, 4096)
	}
}

// pqCursor walks one column chunk value by value.
type pqCursor struct {
	col   *pqColumn
	pages parquet.Pages
	page  parquet.Page
	n, li int    // levels in the page, next level
	defs  []byte // definition levels (nil: every level has a value)
	vi    int    // next value in the page's values (non-null ones)
	nv    int    // values in the page
	data  pqData
	idx   []int32 // dictionary indexes of the page (dictionary-encoded pages)
	dict  *pqDict // non-nil while the page is dictionary-encoded
	dicts pqDict  // the column's dictionary cache, reused across chunks
	vr    parquet.ValueReader
	vbuf  []parquet.Value
	vpos  int
	// The current value: null, or at (index into data or, with dict, into the dictionary), or val
	// (modeValues).
	null bool
	at   int
	val  parquet.Value
	// appendLocalTime's template for the last hour written.
	hour   int64
	hourOK bool
	tmpl   [32]byte
}

var errColumnShort = errors.New("the column chunk ends before the row group's last row")

// advance moves to the next row's value.
func (c *pqCursor) advance() error {
	for c.li >= c.n {
		if err := c.nextPage(); err != nil {
			return err
		}
	}
	if c.col.mode == modeValues {
		if c.vpos >= len(c.vbuf) {
			if len(c.vbuf) == 0 {
				c.vbuf = make([]parquet.Value, 256)
			}
			n, err := c.vr.ReadValues(c.vbuf[:cap(c.vbuf)])
			if n == 0 {
				if err == nil || errors.Is(err, io.EOF) {
					err = errColumnShort
				}
				return err
			}
			c.vbuf, c.vpos = c.vbuf[:n], 0
		}
		c.val = c.vbuf[c.vpos]
		c.vpos++
		c.li++
		c.null = c.val.IsNull()
		return nil
	}
	if c.defs != nil && c.defs[c.li] != c.col.maxDef {
		c.li++
		c.null = true
		return nil
	}
	c.li++
	c.null = false
	if c.vi >= c.nv {
		return fmt.Errorf("page has fewer values (%d) than defined levels", c.nv)
	}
	if c.dict != nil {
		c.at = int(c.idx[c.vi])
		if c.at < 0 || c.at >= len(c.dict.spans) {
			return fmt.Errorf("dictionary index %d out of range (%d entries)", c.at, len(c.dict.spans))
		}
	} else {
		c.at = c.vi
	}
	c.vi++
	return nil
}

func (c *pqCursor) nextPage() error {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages == nil {
		return errColumnShort
	}
	p, err := c.pages.ReadPage()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errColumnShort
		}
		return err
	}
	c.page = p
	c.n, c.li, c.vi = int(p.NumValues()), 0, 0
	c.dict = nil
	if c.col.mode == modeValues {
		c.vr, c.vbuf, c.vpos = p.Values(), c.vbuf[:0], 0
		return nil
	}
	c.defs = p.DefinitionLevels()
	if c.col.maxDef == 0 || len(c.defs) == 0 {
		c.defs = nil
	} else if len(c.defs) < c.n {
		return fmt.Errorf("page has %d definition levels for %d values", len(c.defs), c.n)
	}
	vs := p.Data()
	if d := p.Dictionary(); d != nil {
		if c.dicts.src != d {
			c.dicts.reset(d, c.col.mode)
		}
		c.dict = &c.dicts
		c.idx = vs.Int32()
		c.nv = len(c.idx)
		return nil
	}
	c.data.load(c.col.mode, &vs)
	c.nv = c.data.n(c.col.mode)
	return nil
}

// value returns the current value as a parquet.Value (for the general path).
func (c *pqCursor) value() parquet.Value {
	switch {
	case c.null:
		return parquet.Value{}
	case c.col.mode == modeValues:
		return c.val
	case c.dict != nil:
		return c.dict.src.Index(int32(c.at))
	}
	switch c.col.mode {
	case modeInt32:
		return parquet.Int32Value(c.data.i32[c.at])
	case modeInt64, modeLocalTS:
		return parquet.Int64Value(c.data.i64[c.at])
	case modeDouble:
		return parquet.DoubleValue(c.data.f64[c.at])
	case modeBytes:
		return parquet.ByteArrayValue(c.data.ba[c.data.off[c.at]:c.data.off[c.at+1]])
	}
	return parquet.Value{}
}

func (c *pqCursor) close() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
	c.n, c.li, c.nv, c.vi, c.dict = 0, 0, 0, 0, nil
	c.vr, c.vbuf, c.vpos = nil, c.vbuf[:0], 0
	// The next chunk's dictionary is a new one even if parquet-go hands out the same object again.
	c.dicts.src = nil
}

package convert

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// parquetBatch is how many rows are decoded at a time (memory: one row group's pages plus this).
const parquetBatch = 512

// Timestamp semantics of a Parquet column.
type tsKind uint8

const (
	tsNone  tsKind = iota
	tsLocal        // isAdjustedToUTC=false: NYC wall clock stored as if it were UTC (what TLC publishes)
	tsUTC          // isAdjustedToUTC=true: a real instant, converted to New York time
	tsInt96        // legacy INT96 (Spark/Impala): an instant
)

type pqColumn struct {
	name string
	ts   tsKind
	unit time.Duration // of tsLocal/tsUTC
	date bool
	dec  bool // DECIMAL: the stored value is the unscaled integer
	// scale is the DECIMAL's digits after the point (value = unscaled / 10^scale).
	scale int
}

// parquetReader turns each Parquet row into the CSV text of its values and runs it through the same
// plan as a CSV row: one record contract for both formats.
type parquetReader struct {
	f       *parquet.File
	cols    []pqColumn
	header  []string
	p       *plan
	conv    *rowConv
	rg      int   // current row group
	rgStart int64 // global index of the current row group's first row
	rows    parquet.Rows
	batch   []parquet.Row
	n, i    int   // decoded rows in batch, next one
	next    int64 // global index of the next row
	text    []byte
	fields  [][]byte
	idSlab  []byte
	stats   Stats
	fatal   error
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
	pr := &parquetReader{f: f, batch: make([]parquet.Row, parquetBatch)}
	schema := f.Schema()
	for _, path := range schema.Columns() {
		leaf, ok := schema.Lookup(path...)
		if !ok {
			return nil, fmt.Errorf("parquet column %q not found in its own schema", strings.Join(path, "."))
		}
		if leaf.MaxRepetitionLevel > 0 {
			return nil, fmt.Errorf("parquet column %q is repeated: only flat files are supported", strings.Join(path, "."))
		}
		c := pqColumn{name: strings.Join(path, ".")}
		t := leaf.Node.Type()
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
		if t.Kind() == parquet.Int96 {
			c.ts = tsInt96
		}
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
		pr.stats = Stats{} // counters are per reader
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
	if err := pr.seek(pr.next); err != nil {
		return nil, err
	}
	return pr, nil
}

// seek opens the row group holding global row index idx.
func (pr *parquetReader) seek(idx int64) error {
	if pr.rows != nil {
		pr.rows.Close()
		pr.rows = nil
	}
	pr.n, pr.i = 0, 0
	var start int64
	for g, rg := range pr.f.RowGroups() {
		if idx < start+rg.NumRows() {
			pr.rg, pr.rgStart = g, start
			pr.rows = rg.Rows()
			if idx > start {
				if err := pr.rows.SeekToRow(idx - start); err != nil {
					return fmt.Errorf("seeking parquet row %d: %w", idx, err)
				}
			}
			return nil
		}
		start += rg.NumRows()
	}
	pr.rg = len(pr.f.RowGroups())
	return nil
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
	for pr.i >= pr.n {
		if pr.rows == nil {
			pr.fatal = io.EOF
			return Record{}, io.EOF
		}
		n, err := pr.rows.ReadRows(pr.batch)
		pr.n, pr.i = n, 0
		if n > 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			pr.fatal = fmt.Errorf("reading parquet row group %d: %w", pr.rg, err)
			return Record{}, pr.fatal
		}
		// This row group is done: on to the next.
		if err := pr.seek(pr.next); err != nil {
			pr.fatal = err
			return Record{}, err
		}
	}
	row := pr.batch[pr.i]
	pr.i++
	pr.next++
	rowNo := pr.next
	pr.stats.RowsRead++
	pr.text = pr.text[:0]
	var bounds [64][2]int
	var bnd [][2]int
	if len(pr.cols) <= len(bounds) {
		bnd = bounds[:len(pr.cols)]
	} else {
		bnd = make([][2]int, len(pr.cols))
	}
	for c := range bnd {
		bnd[c] = [2]int{0, 0}
	}
	var bad convErr
	for _, v := range row {
		c := v.Column()
		if c < 0 || c >= len(pr.cols) || v.IsNull() {
			continue
		}
		s := len(pr.text)
		var ok bool
		pr.text, ok = pr.appendText(pr.text, &pr.cols[c], v)
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

// appendText writes a Parquet value as the CSV text TLC would have written.
func (pr *parquetReader) appendText(b []byte, c *pqColumn, v parquet.Value) ([]byte, bool) {
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

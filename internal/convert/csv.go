package convert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"unsafe"
)

const (
	initialBufSize = 256 << 10
	// MaxRowBytes bounds one CSV row (and so the reader's memory); a longer row ends the file with an
	// error, as does an unterminated quote running that long.
	MaxRowBytes = 16 << 20
	idSlabSize  = 64 << 10
)

// ErrRowTooLong is returned (wrapped) when a row exceeds MaxRowBytes.
var ErrRowTooLong = errors.New("csv row longer than MaxRowBytes")

// csvReader is the streaming CSV RowReader: a hand-rolled scanner over its own buffer (fields are
// slices of the buffer, no per-row allocation), a header compiled to a plan, and a reused output buffer.
type csvReader struct {
	src      io.Reader
	buf      []byte
	pos, end int   // unread bytes are buf[pos:end]
	base     int64 // stream offset of buf[0]
	eof      bool
	rerr     error

	line       int64 // physical lines consumed
	row        int64 // data rows consumed
	prevFields int   // field count of the last data row
	start      int64 // offset the reader started at

	header []string
	p      *plan
	conv   *rowConv
	fields [][]byte
	quoted []byte // unescaped quoted fields of the current row
	idSlab []byte // record ids are written here and never modified (see Record.ID)
	stats  Stats
	fatal  error
	noFast bool // tests: take the general path for every row
}

// physRow is one row as scanned: raw text buf[start:stop] without its terminator.
type physRow struct {
	start, stop, next int
	lines             int
	terminated        bool // ended by a line end (not by the end of the input)
	openQuote         bool // a quoted field still open at the end of the input
	badQuote          bool // text after a closing quote
	blank             bool
}

// NewCSVReader reads CSV text (already decompressed) from r. It reads the header now (unless
// opts.Resume gives it); an empty input yields a reader whose Next returns io.EOF.
func NewCSVReader(r io.Reader, opts Options) (RowReader, error) {
	cr := &csvReader{src: r, buf: make([]byte, initialBufSize), fields: make([][]byte, 0, 32)}
	fileName := opts.FileName
	if fileName == "" {
		fileName = opts.Source.Key
	}
	taxi := opts.TaxiType
	if cp := opts.Resume; cp != nil {
		cr.base, cr.start = cp.Offset, cp.Offset
		cr.line, cr.row, cr.prevFields = cp.Line, cp.Row, cp.Fields
		cr.header = cp.Header
		if taxi == "" {
			taxi = cp.TaxiType
		}
	} else {
		if err := cr.readHeader(); err != nil {
			return nil, err
		}
	}
	if cr.header == nil {
		cr.fatal = io.EOF
		return cr, nil
	}
	cr.p = compile(cr.header, taxi, fileName, opts.Source)
	cr.conv = newRowConv(cr.p)
	return cr, nil
}

func (r *csvReader) readHeader() error {
	for r.end-r.pos < 3 && !r.eof {
		if err := r.fill(); err != nil {
			return fmt.Errorf("reading csv header: %w", err)
		}
	}
	if bytes.HasPrefix(r.buf[r.pos:r.end], []byte("\ufeff")) {
		r.pos += 3
	}
	for {
		pr, err := r.readRow()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading csv header: %w", err)
		}
		r.line += int64(pr.lines)
		r.pos = pr.next
		if pr.blank {
			continue
		}
		r.header = make([]string, len(r.fields))
		for i, f := range r.fields {
			r.header[i] = string(f)
		}
		return nil
	}
}

// fill reads more input, keeping buf[pos:end]; it grows the buffer when a row does not fit.
func (r *csvReader) fill() error {
	if r.rerr != nil {
		return r.rerr
	}
	if r.pos > 0 {
		n := copy(r.buf, r.buf[r.pos:r.end])
		r.base += int64(r.pos)
		r.end, r.pos = n, 0
	}
	if r.end == len(r.buf) {
		if len(r.buf) >= MaxRowBytes {
			return ErrRowTooLong
		}
		nb := make([]byte, 2*len(r.buf))
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	for tries := 0; ; tries++ {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err == io.EOF {
			r.eof = true
			return nil
		}
		if err != nil {
			r.rerr = err
			return err
		}
		if n > 0 {
			return nil
		}
		if tries >= 100 {
			r.rerr = io.ErrNoProgress
			return r.rerr
		}
	}
}

// readRow scans the next row into r.fields; io.EOF when the input is exhausted.
func (r *csvReader) readRow() (physRow, error) {
	for {
		data := r.buf[r.pos:r.end]
		if len(data) == 0 && r.eof {
			return physRow{}, io.EOF
		}
		if pr, ok := r.scan(data); ok {
			pr.start += r.pos
			pr.stop += r.pos
			pr.next += r.pos
			return pr, nil
		}
		if err := r.fill(); err != nil {
			return physRow{}, err
		}
	}
}

// scan splits one row off data; ok is false when more input is needed to tell where the row ends.
// Positions in the result are relative to data.
func (r *csvReader) scan(data []byte) (physRow, bool) {
	nl := bytes.IndexByte(data, '\n')
	seg := data
	if nl >= 0 {
		seg = data[:nl]
	}
	q := bytes.IndexByte(seg, '"')
	cr := bytes.IndexByte(seg, '\r')
	if q >= 0 && (cr < 0 || q < cr) {
		return r.scanQuoted(data)
	}
	var pr physRow
	switch {
	case cr >= 0:
		if cr+1 == len(data) && !r.eof {
			return pr, false // a CR at the end of the buffer: CRLF or CR-only?
		}
		pr.stop, pr.next = cr, cr+1
		if cr+1 < len(data) && data[cr+1] == '\n' {
			pr.next++
		}
		pr.terminated = true
	case nl >= 0:
		pr.stop, pr.next, pr.terminated = nl, nl+1, true
	default:
		if !r.eof {
			return pr, false
		}
		pr.stop, pr.next = len(data), len(data)
	}
	pr.lines = 1
	line := data[:pr.stop]
	pr.blank = len(line) == 0
	r.fields = splitCommas(r.fields[:0], line)
	return pr, true
}

// splitCommas appends the comma-separated fields of line to f, eight bytes at a time (SWAR: a byte of
// w^0x2c.. is zero exactly where line has a comma).
func splitCommas(f [][]byte, line []byte) [][]byte {
	const lo7, commas = 0x7f7f7f7f7f7f7f7f, 0x2c2c2c2c2c2c2c2c
	s, i := 0, 0
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:]) ^ commas
		m := ^(((x & lo7) + lo7) | x | lo7) // high bit set exactly in the zero bytes
		for m != 0 {
			j := i + bits.TrailingZeros64(m)>>3
			f = append(f, line[s:j])
			s = j + 1
			m &= m - 1
		}
	}
	for ; i < len(line); i++ {
		if line[i] == ',' {
			f = append(f, line[s:i])
			s = i + 1
		}
	}
	return append(f, line[s:])
}

// countLines counts line ends (LF, CRLF, lone CR) inside a quoted field.
func countLines(b []byte) int {
	n := 0
	for i, c := range b {
		if c == '\n' || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			n++
		}
	}
	return n
}

// scanQuoted is the general scanner for rows with quotes (RFC 4180: "" inside a quoted field is a
// quote; quoted fields may hold separators and line ends). A quote inside an unquoted field is literal.
func (r *csvReader) scanQuoted(data []byte) (physRow, bool) {
	var pr physRow
	if cap(r.quoted) < len(data) {
		r.quoted = make([]byte, 0, len(data)+1024)
	}
	q := r.quoted[:0] // never grows past cap: unescaped text is shorter than data
	f := r.fields[:0]
	i, lines := 0, 0
	for {
		var field []byte
		if i < len(data) && data[i] == '"' {
			i++
			qs, seg, esc := i, i, false
			qstart := len(q)
			for {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					if !r.eof {
						return pr, false
					}
					// Open quote at the end of the input: the row is cut off.
					lines += countLines(data[qs:])
					if esc {
						q = append(q, data[seg:]...)
						field = q[qstart:]
					} else {
						field = data[qs:]
					}
					r.fields = append(f, field)
					pr.stop, pr.next, pr.lines, pr.openQuote = len(data), len(data), lines+1, true
					return pr, true
				}
				i += j
				if i+1 == len(data) && !r.eof {
					return pr, false // "" or a closing quote?
				}
				if i+1 < len(data) && data[i+1] == '"' {
					q = append(q, data[seg:i+1]...)
					i += 2
					seg, esc = i, true
					continue
				}
				break
			}
			lines += countLines(data[qs:i])
			if esc {
				q = append(q, data[seg:i]...)
				field = q[qstart:]
			} else {
				field = data[qs:i]
			}
			i++ // the closing quote
			if i < len(data) && data[i] != ',' && data[i] != '\r' && data[i] != '\n' {
				pr.badQuote = true
				for i < len(data) && data[i] != ',' && data[i] != '\r' && data[i] != '\n' {
					i++
				}
				if i == len(data) && !r.eof {
					return pr, false
				}
			}
		} else {
			s := i
			for i < len(data) && data[i] != ',' && data[i] != '\r' && data[i] != '\n' {
				i++
			}
			if i == len(data) && !r.eof {
				return pr, false
			}
			field = data[s:i]
		}
		f = append(f, field)
		if i == len(data) {
			r.fields = f
			pr.stop, pr.next, pr.lines = i, i, lines+1
			return pr, true
		}
		switch data[i] {
		case ',':
			i++
			continue
		case '\r':
			if i+1 == len(data) && !r.eof {
				return pr, false
			}
			pr.next = i + 1
			if i+1 < len(data) && data[i+1] == '\n' {
				pr.next++
			}
		default: // '\n'
			pr.next = i + 1
		}
		r.fields = f
		pr.stop, pr.lines, pr.terminated = i, lines+1, true
		return pr, true
	}
}

// Next returns the next record, a *RowError for a rejected row, or io.EOF.
func (r *csvReader) Next() (Record, error) {
	if r.fatal != nil {
		return Record{}, r.fatal
	}
	if r.p.fast != nil && !r.noFast {
		// One pass over a complete line (fastrow.go); any row it is not sure of goes the general way.
		data := r.buf[r.pos:r.end]
		if nl := bytes.IndexByte(data, '\n'); nl > 0 {
			line := data[:nl]
			if line[nl-1] == '\r' {
				line = line[:nl-1]
			}
			if len(line) > 0 {
				if n, ok := r.conv.fastRow(line, r.row+1); ok {
					r.line++
					r.pos += nl + 1
					r.row++
					r.prevFields = n
					r.stats.RowsRead++
					r.stats.Records++
					return Record{JSON: r.conv.out, ID: r.id(), Line: r.line, Row: r.row}, nil
				}
			}
		}
	}
	for {
		pr, err := r.readRow()
		if err == io.EOF {
			r.fatal = io.EOF
			return Record{}, io.EOF
		}
		if err != nil {
			// The checkpoint still points at the start of this row: resume from there.
			r.fatal = fmt.Errorf("reading csv at line %d (offset %d): %w", r.line+1, r.base+int64(r.pos), err)
			return Record{}, r.fatal
		}
		lineNo := r.line + 1
		r.line += int64(pr.lines)
		r.pos = pr.next
		if pr.blank {
			continue
		}
		r.row++
		r.stats.RowsRead++
		n, ncols := len(r.fields), r.p.ncols
		prev := r.prevFields
		r.prevFields = n
		var ce convErr
		switch {
		case pr.openQuote:
			ce = convErr{col: n - 1, code: CodeTruncatedRow, detail: "the input ends inside a quoted field (cut-off last line)"}
		case !pr.terminated && n != ncols && n != prev:
			ce = convErr{col: -1, code: CodeTruncatedRow, detail: fmt.Sprintf("the last line has no line end and %d fields where the header has %d (cut-off last line)", n, ncols)}
		case pr.badQuote:
			ce = convErr{col: -1, code: CodeBadQuote, detail: "text after a closing quote"}
		case n < ncols:
			ce = convErr{col: -1, code: CodeTooFewFields, detail: fmt.Sprintf("%d fields where the header has %d", n, ncols)}
		default:
			for i := ncols; i < n; i++ {
				if len(trimSpace(r.fields[i])) > 0 {
					ce = convErr{col: i, code: CodeExtraFields, detail: fmt.Sprintf("field %d is not empty but the header has %d names", i+1, ncols)}
					break
				}
			}
			if ce.code == "" {
				if e, ok := r.conv.convert(r.fields[:ncols], r.row); !ok {
					ce = e
				}
			}
		}
		if ce.code != "" {
			return Record{}, r.reject(ce, lineNo, r.base+int64(pr.start), r.buf[pr.start:pr.stop])
		}
		r.stats.Records++
		return Record{JSON: r.conv.out, ID: r.id(), Line: lineNo, Row: r.row}, nil
	}
}

// id returns the record_id of the current record as a string that stays valid: it is copied into a
// slab that is appended to and never rewritten, so there is one allocation per ~2,000 records.
func (r *csvReader) id() string { return idString(&r.idSlab, r.conv.out[len(`{"record_id":"`):][:32]) }

func idString(slab *[]byte, id []byte) string {
	if cap(*slab)-len(*slab) < len(id) {
		*slab = make([]byte, 0, idSlabSize)
	}
	s := len(*slab)
	*slab = append(*slab, id...)
	b := (*slab)[s:]
	return unsafe.String(&b[0], len(b))
}

func (r *csvReader) reject(ce convErr, line, offset int64, raw []byte) *RowError {
	r.stats.Rejected++
	if r.stats.Reasons == nil {
		r.stats.Reasons = map[string]int64{}
	}
	r.stats.Reasons[ce.code]++
	e := &RowError{Line: line, Row: r.row, Offset: offset, Code: ce.code, Detail: ce.detail,
		Raw: string(capBytes(raw, MaxRawBytes))}
	if ce.col >= 0 {
		e.Column = ce.col + 1
		if ce.col < len(r.header) {
			e.Field = r.header[ce.col]
		} else {
			e.Field = "column_" + strconv.Itoa(ce.col+1)
		}
	}
	e.Err = errorForCode(ce.code)
	return e
}

// Value returns the JSON text of a field of the last record ("" when absent or null).
func (r *csvReader) Value(field string) string {
	if r.conv == nil {
		return ""
	}
	return r.conv.lookupValue(field)
}

// Checkpoint returns the position of the next row.
func (r *csvReader) Checkpoint() Checkpoint {
	cp := Checkpoint{Offset: r.base + int64(r.pos), Line: r.line, Row: r.row, Header: r.header, Fields: r.prevFields}
	if r.p != nil {
		cp.TaxiType = r.p.taxi
	}
	return cp
}

// Stats returns the counters so far.
func (r *csvReader) Stats() Stats {
	s := r.stats
	s.Bytes = r.base + int64(r.pos) - r.start
	if s.Reasons != nil {
		s.Reasons = make(map[string]int64, len(r.stats.Reasons))
		for k, v := range r.stats.Reasons {
			s.Reasons[k] = v
		}
	}
	return s
}

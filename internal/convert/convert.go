// Package convert turns TLC trip files (CSV, gzip'd CSV, Parquet) into the canonical JSON records of
// the record contract (docs/record-contract.md), one row at a time, in constant memory.
package convert

import (
	"errors"
	"fmt"
	"strings"
)

// Source identifies the object a file came from; it feeds record_id.
type Source struct {
	Bucket  string
	Key     string
	Version string // object version id, or the ETag when the bucket is not versioned
}

// Checkpoint is the position of the next unread row: everything needed to resume a file from there.
// For CSV, Offset is the byte offset of the next row in the (decompressed) CSV text.
// For Parquet, Offset is the index of the next row (0-based) and Header is empty.
type Checkpoint struct {
	Offset   int64    `json:"offset"`
	Line     int64    `json:"line"`      // physical line number (1-based) of the last line consumed
	Row      int64    `json:"row"`       // data rows consumed so far (records + rejected)
	Header   []string `json:"header"`    // the raw header names, as read from line 1
	TaxiType string   `json:"taxi_type"` // yellow|green|fhv|fhvhv|"" (not TLC)
	// Fields is the field count of the last data row (CSV): a last line without a line end is taken as
	// cut off when its count differs from both the header's and this one. Added to the pinned API.
	Fields int `json:"fields,omitempty"`
}

// Options configure a Reader.
type Options struct {
	Source   Source
	FileName string // used to detect the taxi type when the header is ambiguous; defaults to Source.Key
	TaxiType string // forces the taxi type; "" detects it
	// Resume, when set, says the input starts at Resume.Offset (the caller positions the stream:
	// a ranged GET for .csv, a skip of Offset decompressed bytes for .csv.gz) with this header.
	Resume *Checkpoint
}

// Record is one converted row. JSON and Key are only valid until the next call to Next.
type Record struct {
	JSON []byte // one JSON object followed by '\n'
	ID   string // record_id
	Line int64  // line number of the row (Parquet: row index + 1)
	Row  int64  // 1-based data row number
}

// Stats counts what a Reader has seen so far. RowsRead == Records + Rejected always holds.
type Stats struct {
	RowsRead int64            `json:"rows_read"`
	Records  int64            `json:"records"`
	Rejected int64            `json:"rejected"`
	Reasons  map[string]int64 `json:"reasons,omitempty"` // rejected rows by reason code
	Bytes    int64            `json:"bytes"`             // input bytes consumed
}

// RowError is a rejected row: Next returns it (use errors.As) and the reader stays usable.
type RowError struct {
	Line   int64  `json:"line"`
	Row    int64  `json:"row"`
	Column int    `json:"column"` // 1-based field index, 0 when the row as a whole is bad
	Field  string `json:"field,omitempty"`
	Offset int64  `json:"offset"`
	Code   string `json:"reason"` // stable reason code, e.g. "bad_number", "extra_fields", "truncated_row"
	Detail string `json:"detail"` // human-readable reason
	Raw    string `json:"raw"`    // the row's raw text (capped)
	Err    error  `json:"-"`
}

func (e *RowError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s: %s", e.Line, e.Column, e.Code, e.Detail)
}
func (e *RowError) Unwrap() error { return e.Err }

// RowReader is what every input format provides.
type RowReader interface {
	// Next returns the next record; a rejected row as a *RowError (call Next again); io.EOF at the end.
	// A fatal error (not a *RowError) ends the file.
	Next() (Record, error)
	// Value returns the JSON text of a canonical field of the last record ("" when absent or null),
	// e.g. Value("pu_location_id") == "132"; used for partition keys.
	Value(field string) string
	Checkpoint() Checkpoint
	Stats() Stats
}

// Format is the input format of an object, from its key.
type Format int

const (
	FormatUnknown Format = iota
	FormatCSV
	FormatGzipCSV
	FormatParquet
)

func (f Format) String() string {
	switch f {
	case FormatCSV:
		return "csv"
	case FormatGzipCSV:
		return "csv.gz"
	case FormatParquet:
		return "parquet"
	}
	return "unknown"
}

// FormatOf tells the format from a key or file name (case-insensitive suffix): .csv, .csv.gz or .gz,
// .parquet.
func FormatOf(name string) Format {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".csv"):
		return FormatCSV
	case strings.HasSuffix(n, ".gz"):
		return FormatGzipCSV
	case strings.HasSuffix(n, ".parquet"):
		return FormatParquet
	}
	return FormatUnknown
}

// Sentinel errors behind RowError.Err, one per reason code (errors.Is(err, convert.ErrBadNumber)).
var (
	ErrTruncatedRow = errors.New("cut-off row")
	ErrFieldCount   = errors.New("wrong field count")
	ErrBadQuote     = errors.New("bad quote")
	ErrBadValue     = errors.New("bad value")
	ErrInvalidUTF8  = errors.New("invalid UTF-8")
)

func errorForCode(code string) error {
	switch code {
	case CodeTruncatedRow:
		return ErrTruncatedRow
	case CodeTooFewFields, CodeExtraFields:
		return ErrFieldCount
	case CodeBadQuote:
		return ErrBadQuote
	case CodeInvalidUTF8:
		return ErrInvalidUTF8
	}
	return ErrBadValue
}

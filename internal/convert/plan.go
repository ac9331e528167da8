package convert

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/taxistream/taxistream/internal/tlc"
)

// plan is what a header compiles to: for every output field, its key (pre-encoded), kind and source
// columns, so that converting a row is one pass of appends with no look-ups.
type plan struct {
	taxi     string // yellow|green|fhv|fhvhv|"" (not a trip file)
	ncols    int    // header names
	header   []string
	outs     []outField
	taxiJS   []byte    // `,"taxi_type":"yellow"`
	seed     [32]byte  // SHA-256 of the source identity
	idPrefix [16]byte  // hex of seed[:8], the first half of every record_id
	fast     *fastPlan // nil when rows must take the general path (see fastrow.go)
	nulls    bool      // a trip file: placeholders (NA, null, \N, ...) are null in every column (values.go)
}

type outField struct {
	col    int    // cols[0]
	multi  bool   // len(cols) > 1
	name   string // output key (canonical, sanitised or, outside TLC, the trimmed header name)
	key    []byte // `,"name":`
	kind   tlc.Kind
	cols   []int    // source columns (0-based); the first non-empty one is the value
	alts   [][]byte // keys for cols[1:], written only when that column is non-empty and differs
	header string   // raw header name of cols[0], for RowError.Field
}

// reserved keys of every record.
const (
	keyRecordID = "record_id"
	keyTaxiType = "taxi_type"
)

func sourceSeed(src Source) [32]byte {
	h := sha256.New()
	for _, s := range []string{src.Bucket, src.Key, src.Version} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var seed [32]byte
	h.Sum(seed[:0])
	return seed
}

func jsonKey(name string) []byte {
	name = strings.ToValidUTF8(name, "\ufffd") // a header in another encoding still gives valid JSON
	k := make([]byte, 1, len(name)+40)         // slack for appendShort's word copies
	k[0] = ','
	k, _ = appendString(k, []byte(name)) // valid UTF-8 (ToValidUTF8 above): appendString cannot report a problem
	return append(k, ':')
}

// compile builds the plan of a header. taxi is the forced taxi type ("" detects it).
func compile(header []string, taxi, fileName string, src Source) *plan {
	p := &plan{ncols: len(header), header: header, seed: sourceSeed(src)}
	for i, b := range p.seed[:8] {
		p.idPrefix[2*i], p.idPrefix[2*i+1] = hexDigits[b>>4], hexDigits[b&0xf]
	}
	isTrip := tlc.IsTrip(header)
	switch {
	case taxi != "":
		p.taxi = taxi
		isTrip = true
	case isTrip:
		p.taxi = tlc.DetectTaxiType(header, fileName)
	}
	p.nulls = isTrip
	if p.taxi == "" {
		p.taxiJS = []byte(`,"taxi_type":null`)
	} else {
		p.taxiJS = []byte(`,"taxi_type":"` + p.taxi + `"`)
	}
	used := map[string]bool{keyRecordID: true, keyTaxiType: true}
	// unique gives name, or name_2, name_3, ... (the first not taken). nextSuffix remembers where to
	// resume per name (every suffix below it is taken), so a header of many equal names is linear.
	nextSuffix := map[string]int{}
	unique := func(name string) string {
		if !used[name] {
			used[name] = true
			return name
		}
		i := max(nextSuffix[name], 2)
		n := name + "_" + strconv.Itoa(i)
		for used[n] {
			i++
			n = name + "_" + strconv.Itoa(i)
		}
		nextSuffix[name] = i + 1
		used[n] = true
		return n
	}
	canon := map[string]int{} // canonical name → index in outs
	if isTrip {
		// Reserve the canonical names first so an unknown column never takes one.
		for _, h := range header {
			if f, ok := tlc.Lookup(h); ok {
				used[f.Name] = true
				switch f.Kind {
				case tlc.KindVendor:
					used[tlc.VendorCode] = true
				case tlc.KindPayment:
					used[tlc.PaymentCode] = true
				}
			}
		}
	}
	for i, h := range header {
		if isTrip {
			if f, ok := tlc.Lookup(h); ok {
				if j, dup := canon[f.Name]; dup {
					o := &p.outs[j]
					o.cols = append(o.cols, i)
					o.alts = append(o.alts, jsonKey(unique(tlc.Sanitize(h, i+1))))
					continue
				}
				canon[f.Name] = len(p.outs)
				p.outs = append(p.outs, outField{name: f.Name, key: jsonKey(f.Name), kind: f.Kind, cols: []int{i}, header: h})
				continue
			}
			name := unique(tlc.Sanitize(h, i+1))
			p.outs = append(p.outs, outField{name: name, key: jsonKey(name), kind: tlc.KindText, cols: []int{i}, header: h})
			continue
		}
		name := strings.ToValidUTF8(tlc.Trim(h), "\ufffd")
		if name == "" {
			name = "column_" + strconv.Itoa(i+1)
		}
		name = unique(name)
		p.outs = append(p.outs, outField{name: name, key: jsonKey(name), kind: tlc.KindText, cols: []int{i}, header: h})
	}
	for i := range p.outs {
		p.outs[i].col, p.outs[i].multi = p.outs[i].cols[0], len(p.outs[i].cols) > 1
	}
	p.fast = newFastPlan(p)
	return p
}

// rowConv converts rows under a plan into a reused buffer.
type rowConv struct {
	p     *plan
	out   []byte
	spans [][2]int32 // value position of each output field in out (for Value)
	tc    timeCache
	ft    [cacheSlots]fastTime // the fast path's timestamp cache (fastrow.go)
	memo  [memoSlots]memoEntry // the fast path's outputs of short values (fastrow.go)
}

func newRowConv(p *plan) *rowConv {
	return &rowConv{p: p, out: make([]byte, 0, 4096), spans: make([][2]int32, len(p.outs))}
}

// convErr says why a row was rejected; col is 0-based.
type convErr struct {
	col    int
	code   string
	detail string
}

// recordID appends the record_id of a row: 16 hex digits of SHA-256(bucket, key, version) followed by
// the row number as 16 hex digits. Deterministic, unique per object version and row, cheap (no hash per
// row), and it tells which row of which object a record came from.
func (c *rowConv) recordID(dst []byte, row int64) []byte {
	dst = append(dst, c.p.idPrefix[:]...)
	var b [16]byte
	putHex16(b[:], uint64(row))
	return append(dst, b[:]...)
}

// convert writes the record of one row (fields as split from the source) into c.out.
// It returns ok=false and the reason when a value cannot be converted.
func (c *rowConv) convert(fields [][]byte, row int64) (convErr, bool) {
	out := append(c.out[:0], `{"record_id":"`...)
	out = c.recordID(out, row)
	out = append(out, '"')
	out = append(out, c.p.taxiJS...)
	outs := c.p.outs
	spans := c.spans[:len(outs)]
	for oi := range outs {
		o := &outs[oi]
		col := o.col
		v := fields[col]
		if o.multi && c.missing(v) {
			for _, cj := range o.cols[1:] {
				if !c.missing(fields[cj]) {
					col, v = cj, fields[cj]
					break
				}
			}
		}
		if cap(out)-len(out) < 256 {
			out = append(out, make([]byte, 4096)...)[:len(out)]
		}
		out = appendShort(out, o.key)
		start := len(out)
		// Inline fast paths for the common cases; value() handles everything else.
		switch {
		case len(v) == 0:
			out = append(out, jsNull...)
		case o.kind == tlc.KindNumber && isPlainDecimal(v):
			out = appendShort(out, v)
		case o.kind == tlc.KindInt && len(v) <= 3 && v[0]-'1' <= 8 && (len(v) < 2 || v[1]-'0' <= 9) && (len(v) < 3 || v[2]-'0' <= 9):
			out = appendShort(out, v)
		default:
			var ok bool
			var code string
			if o.kind == tlc.KindTime {
				out, ok = c.tc.appendTime(out, v)
				if !ok {
					if out, code, ok = c.value(out[:start], o.kind, v); !ok {
						c.out = out
						return convErr{col: col, code: code, detail: detailFor(code, o, v)}, false
					}
				}
				break
			}
			if out, code, ok = c.value(out, o.kind, v); !ok {
				c.out = out
				return convErr{col: col, code: code, detail: detailFor(code, o, v)}, false
			}
		}
		spans[oi] = [2]int32{int32(start), int32(len(out))}
		if o.multi {
			// Keep a differing duplicate under its own name, so nothing is lost.
			for k, cj := range o.cols[1:] {
				if cj == col {
					continue
				}
				w := trimSpace(fields[cj])
				if c.missing(w) || string(w) == string(trimSpace(v)) {
					continue
				}
				out = append(out, o.alts[k]...)
				var ok bool
				var code string
				if out, code, ok = c.value(out, o.kind, w); !ok {
					c.out = out
					return convErr{col: cj, code: code, detail: detailFor(code, o, w)}, false
				}
			}
		}
	}
	out = append(out, '}', '\n')
	c.out = out
	return convErr{}, true
}

func detailFor(code string, o *outField, v []byte) string {
	q := strconv.Quote(string(capBytes(v, 64)))
	switch code {
	case CodeInvalidUTF8:
		return o.name + ": invalid UTF-8"
	case CodeBadDatetime:
		return o.name + ": cannot read " + q + " as a date-time: " + timeReason(v)
	case CodeBadInteger:
		return o.name + ": " + q + " is not an integer"
	case CodeBadFlag:
		return o.name + ": " + q + " is not Y or N"
	}
	return o.name + ": " + q + " is not a number"
}

func capBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

var (
	jsNull = []byte("null")
	jsY    = []byte(`"Y"`)
	jsN    = []byte(`"N"`)
)

// value appends one converted value. Empty (after trimming spaces) is null for every kind.
func (c *rowConv) value(out []byte, kind tlc.Kind, raw []byte) ([]byte, string, bool) {
	if kind == tlc.KindText {
		if len(raw) == 0 || c.p.nulls && isPlaceholder(trimSpace(raw)) {
			return append(out, jsNull...), "", true
		}
		if isJSONNumber(raw) {
			return append(out, raw...), "", true
		}
		out, ok := appendString(out, raw)
		if !ok {
			return out, CodeInvalidUTF8, false
		}
		return out, "", true
	}
	v := trimSpace(raw)
	if len(v) == 0 || c.p.nulls && isPlaceholder(v) {
		return append(out, jsNull...), "", true
	}
	var ok bool
	switch kind {
	case tlc.KindNumber:
		if out, ok = appendNumber(out, v); !ok {
			return out, CodeBadNumber, false
		}
	case tlc.KindInt:
		if out, ok = appendInteger(out, v); !ok {
			return out, CodeBadInteger, false
		}
	case tlc.KindTime:
		if out, ok = c.tc.appendTime(out, v); !ok {
			return out, CodeBadDatetime, false
		}
	case tlc.KindString:
		if out, ok = appendString(out, v); !ok {
			return out, CodeInvalidUTF8, false
		}
	case tlc.KindFlag:
		switch {
		case len(v) == 1 && (v[0] == 'Y' || v[0] == 'y' || v[0] == '1'):
			out = append(out, jsY...)
		case len(v) == 1 && (v[0] == 'N' || v[0] == 'n' || v[0] == '0'):
			out = append(out, jsN...)
		default:
			return out, CodeBadFlag, false
		}
	case tlc.KindVendor, tlc.KindPayment:
		if out, ok = appendInteger(out, v); ok {
			return out, "", true
		}
		var id int
		var known bool
		codeKey := `,"` + tlc.VendorCode + `":`
		if kind == tlc.KindVendor {
			id, known = tlc.VendorCodes(string(v))
		} else {
			id, known = tlc.PaymentCodes(string(v))
			codeKey = `,"` + tlc.PaymentCode + `":`
		}
		if known && id > 0 {
			out = strconv.AppendInt(out, int64(id), 10)
		} else {
			out = append(out, jsNull...)
		}
		out = append(out, codeKey...)
		if out, ok = appendString(out, v); !ok {
			return out, CodeInvalidUTF8, false
		}
	}
	return out, "", true
}

// lookupValue returns the JSON text of a field of the last record ("" when absent or null).
func (c *rowConv) lookupValue(field string) string {
	for i := range c.p.outs {
		if c.p.outs[i].name == field {
			s := c.spans[i]
			if int(s[1]) > len(c.out) || s[0] >= s[1] {
				return ""
			}
			v := c.out[s[0]:s[1]]
			if string(v) == "null" {
				return ""
			}
			if k := c.p.outs[i].kind; k == tlc.KindVendor || k == tlc.KindPayment {
				// The span may include the companion code (`null,"vendor_code":"DDS"`); cut at the comma.
				for j, b := range v {
					if b == ',' {
						v = v[:j]
						break
					}
				}
			}
			if string(v) == "null" {
				return ""
			}
			return string(v)
		}
	}
	return ""
}

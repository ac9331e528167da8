package convert

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/taxistream/taxistream/internal/tlc"
)

// The fast path: one pass over an unquoted row that splits the fields and converts them at once, for
// the plans where every output field is one column in column order (every TLC layout but fhv 2018's
// duplicated base number). It handles the common value shapes inline and hands any other field to the
// general converters (value, appendTime); whatever it is not sure of — a quote, a CR, a wrong field
// count, a value that is rejected — makes it give up on the row without changing the reader's state,
// and the general scanner and converter (csvReader.readRow, rowConv.convert) do the row instead.
// So the fast path only decides how fast a row is converted, never what it is converted to:
// TestFastPathMatchesGeneral and FuzzFastPath compare the two on every input.

// fastKeyLen bounds the keys copied as one fixed-size array.
const fastKeyLen = 48

// fastField is one output field of a fast plan.
type fastField struct {
	key  [fastKeyLen]byte // `,"name":` padded with zeros, copied whole (klen bytes are kept)
	klen int
	kind tlc.Kind
}

// fastPlan is the fast path's view of a plan; nil when the plan has fields with several columns or a
// key longer than fastKeyLen.
type fastPlan struct {
	fields []fastField
	// head is `{"record_id":"` + the 16 hex digits of the source, 16 bytes for the row number (written
	// in place), then `"` + `,"taxi_type":...`; headLen bytes are kept.
	head    [headSize]byte
	headLen int
}

const (
	headSize  = 80
	headRowAt = len(`{"record_id":"`) + 16 // where the row number's hex digits go
)

func newFastPlan(p *plan) *fastPlan {
	if len(p.outs) != p.ncols || headRowAt+17+len(p.taxiJS) > headSize {
		return nil
	}
	fp := &fastPlan{fields: make([]fastField, len(p.outs))}
	n := copy(fp.head[:], `{"record_id":"`)
	n += copy(fp.head[n:], p.idPrefix[:])
	n += copy(fp.head[n:], "0000000000000000\"")
	fp.headLen = n + copy(fp.head[n:], p.taxiJS)
	for i := range p.outs {
		o := &p.outs[i]
		if o.multi || o.col != i || len(o.key) > fastKeyLen {
			return nil
		}
		f := &fp.fields[i]
		f.klen = copy(f.key[:], o.key)
		f.kind = o.kind
	}
	return fp
}

// hex8 returns the 8 lower-case hex digits of h as a little-endian word (most significant digit first
// in memory): the nibbles are spread one per byte, then turned into digits without a table.
func hex8(h uint32) uint64 {
	x := uint64(h)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f // byte i = nibble i (least significant first)
	x = (x&0x00000000ffffffff)<<32 | x>>32
	x = (x&0x0000ffff0000ffff)<<16 | (x>>16)&0x0000ffff0000ffff
	x = (x&0x00ff00ff00ff00ff)<<8 | (x>>8)&0x00ff00ff00ff00ff // byte order reversed
	over9 := ((x + 0x0606060606060606) >> 4) & 0x0101010101010101
	return x + 0x3030303030303030 + over9*('a'-'0'-10)
}

// leadingDigits counts the ASCII digits at the start of the 8 bytes of w (little-endian).
func leadingDigits(w uint64) int {
	const lo7, over9, high = 0x7f7f7f7f7f7f7f7f, 0x7676767676767676, 0x8080808080808080
	x := w ^ 0x3030303030303030 // a digit is now a byte < 10
	nd := ((x&lo7 + over9) | x) & high
	return bits.TrailingZeros64(nd) >> 3
}

// putHex16 writes the 16 hex digits of u into b[:16].
func putHex16(b []byte, u uint64) {
	binary.LittleEndian.PutUint64(b[:8], hex8(uint32(u>>32)))
	binary.LittleEndian.PutUint64(b[8:16], hex8(uint32(u)))
}

// fastTime caches, per wall-clock hour as written ("2019-01-01 00"), the offset that appendTime gave
// it, so a timestamp of the common shape is converted with two compares and a few stores. Only text of
// the exact shape YYYY-MM-DD HH:MM:SS that appendTime accepted is entered, so a hit is a valid date.
type fastTime struct {
	w0  uint64 // bytes 0–7, "2019-01-"; 0 = empty slot
	w1  uint64 // bytes 8–12, "01 00"
	off uint64 // "-05:00\"" as written after the seconds (7 bytes)
}

// fastTimeSlot is hourKey's slot from the raw digits (any 6 consecutive weeks never collide); the
// bytes are not checked here, the key compare does that.
func fastTimeSlot(w0, w1 uint64) uint64 {
	m := (w0>>40&0xff-'0')*10 + (w0>>48&0xff - '0')
	d := (w1&0xff-'0')*10 + (w1>>8&0xff - '0')
	h := (w1>>24&0xff-'0')*10 + (w1>>32&0xff - '0')
	return ((m*31+d)*24 + h) & (cacheSlots - 1)
}

// memoEntry is the output of a short value (up to 7 bytes) of a field kind: value() is a function of
// the kind and the bytes, so the same bytes give the same output.
type memoEntry struct {
	key  uint64 // the bytes, their count in byte 7 and the kind in its top nibble; 0 = empty
	out  [memoOut]byte
	olen uint8
}

const (
	memoOut   = 40
	memoSlots = 64
)

func memoSlot(key uint64) uint64 { return (key * 0x9e3779b97f4a7c15) >> (64 - 6) }

// isPlainTime reports whether s is exactly YYYY-MM-DD HH:MM:SS (digits not range-checked).
func isPlainTime(s []byte) bool {
	if len(s) != 19 {
		return false
	}
	for i, c := range s {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != ' ' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if c-'0' > 9 {
				return false
			}
		}
	}
	return true
}

// fastRow converts line (one row without its line end, no row of its own yet) into c.out. It returns
// the row's field count, or ok=false when the general path must do the row (see the top of the file).
func (c *rowConv) fastRow(line []byte, row int64) (nfields int, ok bool) {
	fp := c.p.fast
	fields := fp.fields
	spans := c.spans
	if len(spans) < len(fields) {
		return 0, false
	}
	out := c.out[:0]
	if cap(out) < headSize {
		out = make([]byte, 0, 4096)
	}
	*(*[headSize]byte)(out[:headSize]) = fp.head
	putHex16(out[headRowAt:headRowAt+16], uint64(row))
	out = out[:fp.headLen]
	L := len(line)
	p, e := 0, 0 // the current field is line[p:e]
	for i := range fields {
		f := &fields[i]
		if p > L {
			return 0, false // fewer fields than names
		}
		n := len(out)
		if cap(out)-n < 2*fastKeyLen+32 {
			out = append(out, make([]byte, 4096)...)[:n]
		}
		*(*[fastKeyLen]byte)(out[n : n+fastKeyLen]) = f.key
		n += f.klen
		out = out[:n]
		done := false
		if p == L || line[p] == ',' {
			binary.LittleEndian.PutUint32(out[n:n+4], 0x6c6c756e) // null
			out = out[:n+4]
			e, done = p, true
		} else {
			switch f.kind {
			case tlc.KindNumber: // -?(0|[1-9][0-9]*)(\.[0-9]+)? is copied (isPlainDecimal)
				// Digits are counted eight at a time; the byte after the line (its line end) is not a
				// digit, so a count never runs past the line.
				j := p
				if line[j] == '-' {
					j++
				}
				if j+8 > cap(line) {
					break
				}
				k := leadingDigits(binary.LittleEndian.Uint64(line[j : j+8]))
				if k == 0 || (line[j] == '0' && k > 1) {
					break
				}
				for j += k; k == 8 && j < L && line[j]-'0' <= 9; j++ {
				}
				if j < L && line[j] == '.' {
					j++
					if j+8 > cap(line) {
						break
					}
					k = leadingDigits(binary.LittleEndian.Uint64(line[j : j+8]))
					if k == 0 {
						break
					}
					for j += k; k == 8 && j < L && line[j]-'0' <= 9; j++ {
					}
				}
				if j < L && line[j] != ',' {
					break
				}
				if j-p <= 16 && p+16 <= cap(line) {
					*(*[16]byte)(out[n : n+16]) = *(*[16]byte)(line[p : p+16])
					out = out[:n+j-p]
				} else {
					out = append(out, line[p:j]...)
				}
				e, done = j, true
			case tlc.KindInt, tlc.KindVendor, tlc.KindPayment: // 1–999 are copied (appendInteger)
				if line[p]-'1' > 8 {
					break
				}
				j := p + 1
				for j < L && j < p+3 && line[j]-'0' <= 9 {
					j++
				}
				if j < L && line[j] != ',' {
					break
				}
				if p+4 <= cap(line) {
					*(*[4]byte)(out[n : n+4]) = *(*[4]byte)(line[p : p+4])
					out = out[:n+j-p]
				} else {
					out = append(out, line[p:j]...)
				}
				e, done = j, true
			case tlc.KindTime: // YYYY-MM-DD HH:MM:SS of a cached hour
				j := p + 19
				if j > L || (j < L && line[j] != ',') {
					break
				}
				w0 := binary.LittleEndian.Uint64(line[p : p+8])
				w1 := binary.LittleEndian.Uint64(line[p+8 : p+16])
				ss := binary.LittleEndian.Uint32(line[p+16 : p+20]) // ":SS" and the byte after
				ft := &c.ft[fastTimeSlot(w0, w1)]
				if ft.w0 != w0 || ft.w1 != w1&0xffffffffff || w1>>40&0xff != ':' || w1>>48&0xff-'0' > 5 ||
					w1>>56-'0' > 9 || ss&0xff != ':' || ss>>8&0xff-'0' > 5 || ss>>16&0xff-'0' > 9 {
					break
				}
				o := out[n : n+28]
				o[0] = '"'
				binary.LittleEndian.PutUint64(o[1:9], w0)
				binary.LittleEndian.PutUint64(o[9:17], w1&^(0xff<<16)|'T'<<16)
				binary.LittleEndian.PutUint32(o[17:21], ss)
				binary.LittleEndian.PutUint64(o[20:28], ft.off)
				out = out[:n+27]
				e, done = j, true
			case tlc.KindFlag:
				if b := line[p]; (b == 'N' || b == 'Y') && (p+1 == L || line[p+1] == ',') {
					o := out[n : n+3]
					o[0], o[1], o[2] = '"', b, '"'
					out = out[:n+3]
					e, done = p+1, true
				}
			case tlc.KindString: // printable ASCII that needs no escape and is not a placeholder
				j := p
				for j < L {
					if b := line[j]; b-0x21 > 0x7e-0x21 || b == '"' || b == '\\' || b == ',' {
						break
					}
					j++
				}
				if j < L && line[j] != ',' || j-p <= 4 && isPlaceholder(line[p:j]) {
					break
				}
				out = append(out, '"')
				if j-p <= 16 && p+16 <= cap(line) {
					*(*[16]byte)(out[n+1 : n+17]) = *(*[16]byte)(line[p : p+16])
					out = out[:n+1+j-p]
				} else {
					out = append(out, line[p:j]...)
				}
				out = append(out, '"')
				e, done = j, true
			}
		}
		var mkey uint64 // memo key of a short field (0: none)
		if !done && f.kind != tlc.KindTime && p+8 <= cap(line) {
			// A short value seen before (a text code like CRD or VTS): its output from the memo.
			w := binary.LittleEndian.Uint64(line[p : p+8])
			x := w ^ 0x2c2c2c2c2c2c2c2c // a comma is now a zero byte
			k := min(bits.TrailingZeros64((x-0x0101010101010101)&^x&0x8080808080808080)>>3, L-p)
			if k < 8 { // the field is line[p:p+k]
				mkey = w&(1<<(8*k)-1) | uint64(k)<<56 | uint64(f.kind)<<60
				if m := &c.memo[memoSlot(mkey)]; m.key == mkey {
					*(*[memoOut]byte)(out[n : n+memoOut]) = m.out
					out = out[:n+int(m.olen)]
					e, done = p+k, true
				}
			}
		}
		if !done {
			// The general converters, on the field as split by the general scanner.
			e = L
			if k := bytes.IndexByte(line[p:], ','); k >= 0 {
				e = p + k
			}
			v := line[p:e]
			if bytes.IndexByte(v, '"') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
				return 0, false
			}
			if f.kind == tlc.KindTime {
				var ok bool
				if out, ok = c.tc.appendTime(out, v); ok {
					if isPlainTime(v) {
						var off [8]byte
						copy(off[:7], out[len(out)-7:])
						w0 := binary.LittleEndian.Uint64(v[0:8])
						w1 := binary.LittleEndian.Uint64(v[8:16])
						c.ft[fastTimeSlot(w0, w1)] = fastTime{w0: w0, w1: w1 & 0xffffffffff, off: binary.LittleEndian.Uint64(off[:])}
					}
				} else if out, _, ok = c.value(out[:n], f.kind, v); !ok {
					return 0, false
				}
			} else {
				var ok bool
				if out, _, ok = c.value(out, f.kind, v); !ok {
					return 0, false
				}
				if mkey != 0 && len(out)-n <= memoOut {
					m := &c.memo[memoSlot(mkey)]
					m.key, m.olen = mkey, uint8(len(out)-n)
					copy(m.out[:], out[n:])
				}
			}
		}
		spans[i] = [2]int32{int32(n), int32(len(out))}
		p = e + 1
	}
	nfields = len(fields)
	// Extra fields: empty ones (spaces and tabs only) are ignored, anything else is the general path's.
	for j := e; j < L; j++ {
		switch line[j] {
		case ',':
			nfields++
		case ' ', '\t':
		default:
			return 0, false
		}
	}
	c.out = append(out, '}', '\n')
	return nfields, true
}

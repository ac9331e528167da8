package convert

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Reason codes of rejected rows (RowError.Code). They are stable: dashboards and tests key on them.
const (
	CodeTruncatedRow  = "truncated_row"  // the last line is cut off (no newline and a wrong field count, or an open quote)
	CodeTooFewFields  = "too_few_fields" // fewer fields than header names
	CodeExtraFields   = "extra_fields"   // a non-empty field beyond the header names
	CodeBadQuote      = "bad_quote"      // text after a closing quote
	CodeBadNumber     = "bad_number"     // not a number
	CodeBadInteger    = "bad_integer"    // not an integer (e.g. 1.5 in passenger_count)
	CodeBadDatetime   = "bad_datetime"   // not a date-time spelling we read, or not a real date
	CodeBadFlag       = "bad_flag"       // not Y/N
	CodeInvalidUTF8   = "invalid_utf8"   // bytes that are not UTF-8
	CodeBadParquetVal = "bad_value"      // a Parquet value of a type the field cannot hold
)

// MaxRawBytes caps RowError.Raw.
const MaxRawBytes = 4096

// trimSpace trims ASCII spaces and tabs (no allocation).
func trimSpace(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isPlaceholder reports whether v (trimmed) is a written placeholder for a missing value, null in every
// column of a trip file: "-", "NA", "N/A", "null", "\N" (MySQL, PostgreSQL COPY), "NaN" — letters in any
// case. Trip fields never hold these as values: codes are numbers or Y/N, base numbers start with B or
// HV.
func isPlaceholder(v []byte) bool {
	switch len(v) {
	case 1:
		return v[0] == '-'
	case 2:
		return v[0]|0x20 == 'n' && v[1]|0x20 == 'a' || v[0] == '\\' && v[1] == 'N'
	case 3:
		return v[0]|0x20 == 'n' && (v[1] == '/' && v[2]|0x20 == 'a' || v[1]|0x20 == 'a' && v[2]|0x20 == 'n')
	case 4:
		return v[0]|0x20 == 'n' && v[1]|0x20 == 'u' && v[2]|0x20 == 'l' && v[3]|0x20 == 'l'
	}
	return false
}

// missing reports whether a field is empty or, in a trip file, a placeholder (isPlaceholder).
func (c *rowConv) missing(v []byte) bool {
	v = trimSpace(v)
	return len(v) == 0 || c.p.nulls && isPlaceholder(v)
}

// appendNumber appends s as a JSON number, normalised without changing its value: a '+' sign and
// leading zeros dropped, a missing integer part written as 0 (".50" → 0.50), a bare trailing '.'
// dropped ("5." → 5). Digits are never re-rounded.
func appendNumber(dst, s []byte) ([]byte, bool) {
	if isPlainDecimal(s) {
		return append(dst, s...), true
	}
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	var frac []byte
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fs:i]
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return dst, false
	}
	var exp []byte
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		es := i
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			return dst, false
		}
		exp = s[es:i]
	}
	if i != len(s) {
		return dst, false
	}
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if neg {
		dst = append(dst, '-')
	}
	if len(intPart) == 0 {
		dst = append(dst, '0')
	} else {
		dst = append(dst, intPart...)
	}
	if len(frac) > 0 {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	if len(exp) > 0 {
		dst = append(dst, 'e')
		dst = append(dst, exp[1:]...)
	}
	return dst, true
}

// isPlainDecimal is the fast path of appendNumber: -?(0|[1-9][0-9]*)(\.[0-9]+)? is already JSON.
func isPlainDecimal(s []byte) bool {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else {
		for i < len(s) && s[i]-'0' <= 9 {
			i++
		}
	}
	if i == 0 || (s[0] == '-' && i == 1) {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' || i+1 == len(s) {
		return false
	}
	for i++; i < len(s); i++ {
		if s[i]-'0' > 9 {
			return false
		}
	}
	return true
}

// appendInteger appends s as a JSON integer: like appendNumber, but the value must be whole
// ("1.0" → 1, "1.5" and exponents are rejected).
func appendInteger(dst, s []byte) ([]byte, bool) {
	if len(s) > 0 && len(s) <= 3 && s[0] >= '1' && s[0] <= '9' && (len(s) < 2 || s[1]-'0' <= 9) && (len(s) < 3 || s[2]-'0' <= 9) {
		return append(dst, s...), true // the common case: a small positive integer
	}
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	nfrac := 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] == '0' {
			i++
			nfrac++
		}
	}
	if i != len(s) || len(intPart)+nfrac == 0 {
		return dst, false
	}
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) == 0 || (len(intPart) == 1 && intPart[0] == '0') {
		return append(dst, '0'), true
	}
	if neg {
		dst = append(dst, '-')
	}
	return append(dst, intPart...), true
}

// isJSONNumber reports whether s is a JSON number literal exactly as written.
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			return false
		}
	}
	return i == len(s)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; ok is false when s is not valid UTF-8.
func appendString(dst, s []byte) ([]byte, bool) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, false
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

// appendFloat appends a float64 as the shortest JSON number that reads back as the same float64.
func appendFloat(dst []byte, f float64) []byte {
	abs := f
	if abs < 0 {
		abs = -abs
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, 64)
}

// appendShort appends s like append(dst, s...), but copies up to 32 bytes with word loads and stores
// instead of a memmove call when both slices have the slack (bytes past len are only read, never
// exposed: dst is cut back to its real length). This is the hot path of writing keys and values.
func appendShort(dst, s []byte) []byte {
	n := len(dst)
	if len(s) <= 16 && cap(s) >= 16 && cap(dst)-n >= 16 {
		d := dst[n : n+16]
		binary.LittleEndian.PutUint64(d, binary.LittleEndian.Uint64(s[:8]))
		binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(s[8:16]))
		return dst[:n+len(s)]
	}
	if len(s) <= 32 && cap(s) >= 32 && cap(dst)-n >= 32 {
		d := dst[n : n+32]
		binary.LittleEndian.PutUint64(d, binary.LittleEndian.Uint64(s[:8]))
		binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(s[8:16]))
		binary.LittleEndian.PutUint64(d[16:], binary.LittleEndian.Uint64(s[16:24]))
		binary.LittleEndian.PutUint64(d[24:], binary.LittleEndian.Uint64(s[24:32]))
		return dst[:n+len(s)]
	}
	return append(dst, s...)
}

package process

// The JSON scanner of the trip parser (see trip.go for why it is hand-written): parseTrip walks one
// flat JSON object and hands each key and scanned value to trip.set.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// errMalformed reports a record that is not one JSON object of scalars.
var errMalformed = errors.New("malformed json")

// parseTrip fills t from one JSON object (trailing whitespace, e.g. the record's '\n', allowed).
// It returns errMalformed (wrapped with the position) when the text is not a JSON object; a known key
// with the wrong type is not an error but is listed in t.badFields.
func parseTrip(data []byte, t *trip) error {
	s := scanner{b: data}
	s.ws()
	if !s.eat('{') {
		return s.fail("want '{'")
	}
	s.ws()
	if s.eat('}') {
		return s.end()
	}
	for {
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return s.fail("want a key")
		}
		if esc {
			// Canonical keys never need escapes: an escaped key is an unknown key.
			key = nil
		}
		s.ws()
		if !s.eat(':') {
			return s.fail("want ':'")
		}
		s.ws()
		v, err := s.value()
		if err != nil {
			return err
		}
		if key != nil {
			t.set(key, v)
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return s.end()
		}
		return s.fail("want ',' or '}'")
	}
}

// kind is the JSON type of a value.
type kind uint8

const (
	kNull kind = iota
	kString
	kNumber
	kBool
	kComposite
)

// value is one scanned JSON value: raw is the text (without quotes for strings).
type value struct {
	k   kind
	raw []byte
	esc bool // string with escapes
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errMalformed, what, s.i)
}

func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("trailing data")
	}
	return nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\n', '\r', '\t':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a JSON string; it returns its raw content and whether it holds escapes.
func (s *scanner) str() ([]byte, bool, bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start, esc := s.i, false
	for {
		// Eight bytes at a time up to the next quote, backslash or control character (strings are
		// mostly keys and timestamps: whole words without any).
		for s.i+8 <= len(s.b) {
			m := strSpecial(binary.LittleEndian.Uint64(s.b[s.i:]))
			if m == 0 {
				s.i += 8
				continue
			}
			s.i += bits.TrailingZeros64(m) >> 3
			break
		}
		if s.i >= len(s.b) {
			return nil, false, false
		}
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			return raw, esc, true
		case c == '\\':
			esc = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
}

// strSpecial returns a mask whose lowest set bit is the high bit of the first byte of w (little
// endian) that is '"', '\\' or below 0x20; 0 when there is none. Each term's lowest flagged byte is
// exact (a borrow only flags bytes above a true match), so the lowest bit of their union is too.
func strSpecial(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ (ones * '"')
	b := w ^ (ones * '\\')
	return ((q-ones)&^q | (b-ones)&^b | (w-ones*0x20)&^w) & highs
}

func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

func (s *scanner) value() (value, error) {
	if s.i >= len(s.b) {
		return value{}, s.fail("want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		raw, esc, ok := s.str()
		if !ok {
			return value{}, s.fail("bad string")
		}
		return value{k: kString, raw: raw, esc: esc}, nil
	case c == 'n':
		if s.lit("null") {
			return value{k: kNull}, nil
		}
	case c == 't':
		if s.lit("true") {
			return value{k: kBool, raw: s.b[s.i-4 : s.i]}, nil
		}
	case c == 'f':
		if s.lit("false") {
			return value{k: kBool, raw: s.b[s.i-5 : s.i]}, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		for s.i < len(s.b) {
			c := s.b[s.i]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				s.i++
				continue
			}
			break
		}
		return value{k: kNumber, raw: s.b[start:s.i]}, nil
	case c == '{' || c == '[':
		// Not in the contract; skip it balanced so an odd extra column does not spoil the record.
		start := s.i
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '{', '[':
				depth++
				s.i++
			case '}', ']':
				depth--
				s.i++
				if depth == 0 {
					return value{k: kComposite, raw: s.b[start:s.i]}, nil
				}
			case '"':
				if _, _, ok := s.str(); !ok {
					return value{}, s.fail("bad string")
				}
			default:
				s.i++
			}
		}
		return value{}, s.fail("unterminated value")
	}
	return value{}, s.fail("bad value")
}

// bstr views b as a string without copying; only for calls that do not keep it.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// unquote returns the string value, decoding escapes when there are any.
func unquote(v value) (string, bool) {
	if !v.esc {
		if !utf8.Valid(v.raw) {
			return "", false
		}
		return string(v.raw), true
	}
	q := make([]byte, 0, len(v.raw)+2)
	q = append(q, '"')
	q = append(q, v.raw...)
	q = append(q, '"')
	s, err := strconv.Unquote(string(q))
	if err != nil {
		return "", false
	}
	return s, true
}

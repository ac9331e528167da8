package convert

import (
	"time"
	_ "time/tzdata" // provided.al2023 may not ship a zone database
)

// newYork is America/New_York from the embedded tzdata (the system's when present).
var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("convert: loading America/New_York: " + err.Error()) // cannot happen with time/tzdata
	}
	return loc
}()

// Year range accepted in timestamps; TLC files carry stray years (2001, 2003, 2088), all kept.
const (
	minYear = 1900
	maxYear = 2999
)

// wallTime is a parsed NYC wall-clock time; frac holds the fractional-second digits as written.
type wallTime struct {
	year, month, day, hour, min, sec int
	frac                             []byte
}

// timeCache caches the New York UTC offset per wall-clock hour. NYC's DST transitions happen on the
// hour (02:00), so every wall-clock minute of an hour has the same offset under our rule. The slot of an
// hour is its index in a 31-day-month calendar mod cacheSlots, so any 6 consecutive weeks never collide.
type timeCache struct {
	keys [cacheSlots]int32 // hour key + 1 (0 = empty)
	offs [cacheSlots][6]byte
}

const cacheSlots = 1024

// hourKey is injective for month 1–12, day 1–31, hour 0–23.
func hourKey(y, m, d, h int) int32 { return int32(((y*12+m-1)*31+d-1)*24 + h + 1) }

// offset returns the "±hh:mm" offset for a NYC wall-clock hour. The rule for the two DST edge cases:
// a wall-clock time that does not exist (the spring-forward gap, 02:00–02:59) or exists twice (the
// fall-back repeat, 01:00–01:59) takes the offset in effect BEFORE the transition: -05:00 (EST) in the
// gap, which denotes the same instant as shifting the time forward by the gap (02:30-05:00 = 03:30-04:00,
// what Go's time.Date does), and -04:00 (EDT, the earlier instant) in the repeat.
func (c *timeCache) offset(y, m, d, h int) *[6]byte {
	k := hourKey(y, m, d, h)
	slot := k & (cacheSlots - 1)
	if c.keys[slot] == k {
		return &c.offs[slot]
	}
	off := nyOffset(y, m, d, h)
	o := &c.offs[slot]
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	mins := off / 60
	o[0], o[1], o[2], o[3], o[4], o[5] = sign, byte('0'+mins/600), byte('0'+mins/60%10), ':', byte('0'+mins%60/10), byte('0'+mins%10)
	c.keys[slot] = k
	return o
}

// nyOffset applies the documented rule (see offset) and returns seconds east of UTC.
func nyOffset(y, m, d, h int) int {
	wall := time.Date(y, time.Month(m), d, h, 0, 0, 0, time.UTC).Unix()
	at := func(sec int64) int {
		_, off := time.Unix(sec, 0).In(newYork).Zone()
		return off
	}
	valid := func(off int) bool { return at(wall-int64(off)) == off }
	before, after := at(wall-86400), at(wall+86400)
	switch {
	case valid(before):
		return before // also the repeat: the offset before the transition is the earlier instant
	case valid(after):
		return after
	default:
		return before // the gap
	}
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func (w *wallTime) valid() bool {
	return w.year >= minYear && w.year <= maxYear && w.month >= 1 && w.month <= 12 &&
		w.day >= 1 && w.day <= daysIn(w.year, w.month) && w.hour >= 0 && w.hour < 24 &&
		w.min >= 0 && w.min < 60 && w.sec >= 0 && w.sec < 60 && len(w.frac) <= 9
}

func digits(s []byte) (int, bool) {
	if len(s) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func d2(s []byte, i int) (int, bool) {
	a, b := s[i]-'0', s[i+1]-'0'
	if a > 9 || b > 9 {
		return 0, false
	}
	return int(a)*10 + int(b), true
}

// parseWall reads the wall-clock spellings seen in TLC files and their re-exports:
//
//	2019-01-01 00:46:40   2019-01-01T00:46:40   2019-01-01 00:46:40.123   2019-01-01 00:46
//	1/1/2018 2:21:05 AM   01/01/2018 14:21:05   1/1/2018 2:21 PM
//
// A trailing offset ("Z", "+01:00") is not wall-clock time: hasZone reports it and the caller converts
// the instant. Anything else is rejected; nothing is guessed.
func parseWall(s []byte) (w wallTime, hasZone bool, ok bool) {
	if len(s) >= 16 && s[4] == '-' && s[7] == '-' && (s[10] == ' ' || s[10] == 'T') && s[13] == ':' {
		var o1, o2, o3, o4, o5 bool
		w.year, o1 = digits(s[0:4])
		w.month, o2 = d2(s, 5)
		w.day, o3 = d2(s, 8)
		w.hour, o4 = d2(s, 11)
		w.min, o5 = d2(s, 14)
		if !(o1 && o2 && o3 && o4 && o5) {
			return w, false, false
		}
		rest := s[16:]
		if len(rest) >= 3 && rest[0] == ':' {
			var o bool
			if w.sec, o = d2(rest, 1); !o {
				return w, false, false
			}
			rest = rest[3:]
			if len(rest) > 0 && rest[0] == '.' {
				i := 1
				for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
					i++
				}
				if i == 1 {
					return w, false, false
				}
				w.frac = rest[1:i]
				rest = rest[i:]
			}
		}
		if len(rest) > 0 {
			if isZone(rest) {
				return w, true, w.valid()
			}
			return w, false, false
		}
		return w, false, w.valid()
	}
	return parseSlashed(s)
}

func isZone(s []byte) bool {
	if len(s) == 1 && (s[0] == 'Z' || s[0] == 'z') {
		return true
	}
	if len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':' {
		_, a := d2(s, 1)
		_, b := d2(s, 4)
		return a && b
	}
	return false
}

// parseSlashed reads M/D/YYYY H:MM[:SS][ AM|PM].
func parseSlashed(s []byte) (w wallTime, _ bool, ok bool) {
	num := func(max int) (int, bool) {
		i := 0
		for i < len(s) && i < max && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, false
		}
		n, _ := digits(s[:i])
		s = s[i:]
		return n, true
	}
	sep := func(c byte) bool {
		if len(s) > 0 && s[0] == c {
			s = s[1:]
			return true
		}
		return false
	}
	var o bool
	if w.month, o = num(2); !o || !sep('/') {
		return w, false, false
	}
	if w.day, o = num(2); !o || !sep('/') {
		return w, false, false
	}
	if len(s) < 4 {
		return w, false, false
	}
	if w.year, o = digits(s[:4]); !o {
		return w, false, false
	}
	s = s[4:]
	if !sep(' ') {
		return w, false, false
	}
	if w.hour, o = num(2); !o || !sep(':') {
		return w, false, false
	}
	if len(s) < 2 {
		return w, false, false
	}
	if w.min, o = d2(s, 0); !o {
		return w, false, false
	}
	s = s[2:]
	if sep(':') {
		if len(s) < 2 {
			return w, false, false
		}
		if w.sec, o = d2(s, 0); !o {
			return w, false, false
		}
		s = s[2:]
	}
	if len(s) > 0 {
		if !sep(' ') || len(s) != 2 || (s[1] != 'M' && s[1] != 'm') {
			return w, false, false
		}
		if w.hour < 1 || w.hour > 12 {
			return w, false, false
		}
		switch s[0] {
		case 'A', 'a':
			if w.hour == 12 {
				w.hour = 0
			}
		case 'P', 'p':
			if w.hour != 12 {
				w.hour += 12
			}
		default:
			return w, false, false
		}
	}
	return w, false, w.valid()
}

func append2(dst []byte, n int) []byte { return append(dst, byte('0'+n/10), byte('0'+n%10)) }

// appendTime appends a time field as a quoted RFC 3339 string with the New York offset.
func (c *timeCache) appendTime(dst, s []byte) ([]byte, bool) {
	if len(s) == 19 && s[4] == '-' && s[7] == '-' && (s[10] == ' ' || s[10] == 'T') && s[13] == ':' && s[16] == ':' {
		// Fast path, "2019-01-01 00:46:40": a cached hour is a valid date, so only the digits and the
		// minutes and seconds are checked; the text is copied with the 'T'.
		y0, y1, y2, y3 := s[0]-'0', s[1]-'0', s[2]-'0', s[3]-'0'
		m, ok1 := d2(s, 5)
		d, ok2 := d2(s, 8)
		h, ok3 := d2(s, 11)
		mi, ok4 := d2(s, 14)
		sec, ok5 := d2(s, 17)
		if y0 <= 9 && y1 <= 9 && y2 <= 9 && y3 <= 9 && ok1 && ok2 && ok3 && ok4 && ok5 &&
			m >= 1 && m <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 60 {
			y := int(y0)*1000 + int(y1)*100 + int(y2)*10 + int(y3)
			k := hourKey(y, m, d, h)
			off := &c.offs[k&(cacheSlots-1)]
			if c.keys[k&(cacheSlots-1)] != k {
				w := wallTime{year: y, month: m, day: d, hour: h}
				if !w.valid() {
					return dst, false
				}
				off = c.offset(y, m, d, h)
			}
			dst = append(dst, '"')
			dst = appendShort(dst, s)
			dst[len(dst)-9] = 'T'
			dst = append(dst, off[0], off[1], off[2], off[3], off[4], off[5], '"')
			return dst, true
		}
	}
	w, zoned, ok := parseWall(s)
	if !ok {
		return dst, false
	}
	if zoned {
		t, err := time.Parse(time.RFC3339Nano, string(s[:10])+"T"+string(s[11:]))
		if err != nil {
			return dst, false
		}
		t = t.In(newYork)
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.999999999-07:00")
		return append(dst, '"'), true
	}
	return c.appendWall(dst, &w), true
}

func (c *timeCache) appendWall(dst []byte, w *wallTime) []byte {
	y := w.year
	dst = append(dst, '"', byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	dst = append2(dst, w.month)
	dst = append(dst, '-')
	dst = append2(dst, w.day)
	dst = append(dst, 'T')
	dst = append2(dst, w.hour)
	dst = append(dst, ':')
	dst = append2(dst, w.min)
	dst = append(dst, ':')
	dst = append2(dst, w.sec)
	if len(w.frac) > 0 {
		dst = append(dst, '.')
		dst = append(dst, w.frac...)
	}
	off := c.offset(w.year, w.month, w.day, w.hour)
	dst = append(dst, off[:]...)
	return append(dst, '"')
}

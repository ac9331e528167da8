package convert

import (
	"fmt"
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

func d2(s []byte, i int) (int, bool) {
	a, b := s[i]-'0', s[i+1]-'0'
	if a > 9 || b > 9 {
		return 0, false
	}
	return int(a)*10 + int(b), true
}

// Why a date-time was not read (timeReason turns these into RowError details).
const (
	badSpelling  uint8 = iota + 1 // not a spelling we read
	badDayFirst                   // N/M/YYYY with 13 ≤ N ≤ 31: a day in the month's place
	badShortYear                  // M/D/YY: the century would be a guess
	badDate                       // a spelling we read, but no such date or time (2019-02-30, 24:00)
	badMeridiem                   // hour 0 or above 12 with AM/PM
	badNoTime                     // a date without a time of day
)

// parsed is the result of parseWall.
type parsed struct {
	w      wallTime
	zoned  bool // an explicit zone: the text is an instant, off seconds east of UTC
	off    int
	why    uint8 // 0: ok
	whyArg int   // the number a reason is about (what stands in the month's place for badDayFirst, the hour for badMeridiem)
}

// parseWall reads every unambiguous spelling of a date and time in US order (DESIGN.md: TLC writes New
// York wall-clock time; re-exports from spreadsheets, notebooks and JavaScript write it many ways):
//
//	date   YYYY-MM-DD | YYYY/MM/DD (year first)   or   M/D/YYYY | M-D-YYYY (month first, US order)
//	       one- or two-digit months and days; the year always has four digits
//	then   "T" (after a year-first date), spaces, or a comma with or without spaces
//	time   H:MM | H:MM:SS | H:MM:SS.fraction (1–9 digits), one- or two-digit hours, 24-hour or with
//	       AM/PM (am, pm, a.m., p.m.; spaced or not)
//	zone   optional, 24-hour times only: Z, UTC, GMT, ±HH, ±HHMM, ±HH:MM — the text is then an instant
//
// Spaces include the no-break and narrow no-break spaces that JavaScript's toLocaleString writes before
// AM/PM. Nothing is guessed: a first number above 12 in M/D/YYYY is a day-first date and is an error
// (badDayFirst), as is a two-digit year (badShortYear); so is anything else not listed.
func parseWall(s []byte) (r parsed) {
	s = trimTimeSpace(s)
	i := 0
	num := func(maxDigits int) (n, nd int) {
		for i < len(s) && nd < maxDigits && s[i]-'0' <= 9 {
			n = n*10 + int(s[i]-'0')
			i++
			nd++
		}
		return n, nd
	}
	eat := func(c byte) bool {
		if i < len(s) && s[i] == c {
			i++
			return true
		}
		return false
	}
	bad := func(why uint8, arg int) parsed { return parsed{why: why, whyArg: arg} }
	w := &r.w
	n1, d1 := num(4)
	switch {
	case d1 == 4 && i < len(s) && (s[i] == '-' || s[i] == '/'): // YYYY-MM-DD, YYYY/MM/DD
		sep := s[i]
		i++
		var dm, dd int
		w.year = n1
		if w.month, dm = num(2); dm == 0 || !eat(sep) {
			return bad(badSpelling, 0)
		}
		if w.day, dd = num(2); dd == 0 {
			return bad(badSpelling, 0)
		}
		if i < len(s) && (s[i] == 'T' || s[i] == 't') {
			i++
			break
		}
		if !dateTimeSep(s, &i) {
			return noTime(s, i)
		}
	case (d1 == 1 || d1 == 2) && i < len(s) && (s[i] == '/' || s[i] == '-'): // M/D/YYYY, M-D-YYYY
		sep := s[i]
		i++
		n2, d2 := num(2)
		if d2 == 0 || !eat(sep) {
			return bad(badSpelling, 0)
		}
		n3, d3 := num(4)
		switch {
		case d3 == 2 && (i == len(s) || s[i]-'0' > 9):
			return bad(badShortYear, 0)
		case d3 != 4:
			return bad(badSpelling, 0)
		case n1 > 12 && n1 <= 31 && n2 >= 1 && n2 <= 12:
			return bad(badDayFirst, n1)
		}
		w.month, w.day, w.year = n1, n2, n3
		if !dateTimeSep(s, &i) {
			return noTime(s, i)
		}
	default:
		return bad(badSpelling, 0)
	}
	// The time of day.
	var dh, dmin int
	if w.hour, dh = num(2); dh == 0 || !eat(':') {
		return bad(badSpelling, 0)
	}
	if w.min, dmin = num(2); dmin != 2 {
		return bad(badSpelling, 0)
	}
	if eat(':') {
		var ds int
		if w.sec, ds = num(2); ds != 2 {
			return bad(badSpelling, 0)
		}
		if eat('.') {
			fs := i
			for i < len(s) && s[i]-'0' <= 9 {
				i++
			}
			if i == fs {
				return bad(badSpelling, 0)
			}
			w.frac = s[fs:i]
		}
	}
	if i < len(s) && s[i]-'0' <= 9 {
		return bad(badSpelling, 0) // a third digit of minutes or seconds
	}
	skipTimeSpace(s, &i)
	// AM/PM.
	if i < len(s) && (s[i]|0x20 == 'a' || s[i]|0x20 == 'p') {
		pm := s[i]|0x20 == 'p'
		i++
		eat('.')
		if i >= len(s) || s[i]|0x20 != 'm' {
			return bad(badSpelling, 0)
		}
		i++
		eat('.')
		skipTimeSpace(s, &i)
		if i != len(s) {
			return bad(badSpelling, 0)
		}
		if w.hour < 1 || w.hour > 12 {
			return bad(badMeridiem, w.hour)
		}
		switch {
		case pm && w.hour != 12:
			w.hour += 12
		case !pm && w.hour == 12:
			w.hour = 0
		}
		if !w.valid() {
			return bad(badDate, 0)
		}
		return r
	}
	// A zone.
	if i < len(s) {
		off, ok := parseZone(s[i:])
		if !ok {
			return bad(badSpelling, 0)
		}
		r.zoned, r.off = true, off
	}
	if !w.valid() {
		return bad(badDate, 0)
	}
	return r
}

// noTime is the reason for a date not followed by a separator and a time: nothing after it, or
// something we do not read.
func noTime(s []byte, i int) parsed {
	if i >= len(s) {
		return parsed{why: badNoTime}
	}
	return parsed{why: badSpelling}
}

// parseZone reads Z, UTC, GMT, ±HH, ±HHMM or ±HH:MM; it returns seconds east of UTC.
func parseZone(z []byte) (int, bool) {
	switch string(z) {
	case "Z", "z", "UTC", "GMT":
		return 0, true
	}
	if len(z) < 3 || (z[0] != '+' && z[0] != '-') {
		return 0, false
	}
	h, ok := d2(z, 1)
	if !ok || h > 23 {
		return 0, false
	}
	m := 0
	switch rest := z[3:]; {
	case len(rest) == 0:
	case len(rest) == 2:
		m, ok = d2(rest, 0)
	case len(rest) == 3 && rest[0] == ':':
		m, ok = d2(rest, 1)
	default:
		ok = false
	}
	if !ok || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if z[0] == '-' {
		off = -off
	}
	return off, true
}

// isTimeSpace reports the length of a space at s[i:]: ' ', a tab, U+00A0 (no-break space) or U+202F
// (narrow no-break space, which JavaScript's toLocaleString writes before AM/PM); 0 for none.
func isTimeSpace(s []byte, i int) int {
	switch {
	case s[i] == ' ' || s[i] == '\t':
		return 1
	case s[i] == 0xc2 && i+1 < len(s) && s[i+1] == 0xa0:
		return 2
	case s[i] == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2] == 0xaf:
		return 3
	}
	return 0
}

// skipTimeSpace skips spaces at s[*i:] and reports whether there were any.
func skipTimeSpace(s []byte, i *int) bool {
	start := *i
	for *i < len(s) {
		n := isTimeSpace(s, *i)
		if n == 0 {
			break
		}
		*i += n
	}
	return *i > start
}

// dateTimeSep skips what separates a date from its time: spaces, or a comma with or without spaces.
func dateTimeSep(s []byte, i *int) bool {
	spaced := skipTimeSpace(s, i)
	if *i < len(s) && s[*i] == ',' {
		*i++
		skipTimeSpace(s, i)
		return *i < len(s)
	}
	return spaced && *i < len(s)
}

// trimTimeSpace trims spaces (isTimeSpace) at both ends.
func trimTimeSpace(s []byte) []byte {
	i := 0
	skipTimeSpace(s, &i)
	s = s[i:]
	for len(s) > 0 {
		switch {
		case s[len(s)-1] == ' ' || s[len(s)-1] == '\t':
			s = s[:len(s)-1]
		case len(s) >= 2 && s[len(s)-2] == 0xc2 && s[len(s)-1] == 0xa0:
			s = s[:len(s)-2]
		case len(s) >= 3 && s[len(s)-3] == 0xe2 && s[len(s)-2] == 0x80 && s[len(s)-1] == 0xaf:
			s = s[:len(s)-3]
		default:
			return s
		}
	}
	return s
}

// timeReason says why s is not a date-time we read (for RowError.Detail; the error path only).
func timeReason(s []byte) string {
	r := parseWall(s)
	switch r.why {
	case badDayFirst:
		return fmt.Sprintf("%d is not a month: a day-first date? Dates are read in US order only (month/day/year)", r.whyArg)
	case badShortYear:
		return "a two-digit year: write the year with four digits"
	case badDate:
		return "no such date or time of day"
	case badMeridiem:
		return fmt.Sprintf("hour %d with AM/PM (12-hour times run from 12:00 AM to 11:59 PM)", r.whyArg)
	case badNoTime:
		return "a date without a time of day"
	}
	return "not a date-time spelling we read (e.g. 2019-01-01 00:46:40, 2019-01-01T00:46:40.5, 1/1/2019 12:46:40 AM, 1/1/2019, 0:46)"
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
	r := parseWall(s)
	if r.why != 0 {
		return dst, false
	}
	if r.zoned {
		w := &r.w
		nsec := 0
		for i, scale := 0, 100000000; i < len(w.frac) && scale > 0; i, scale = i+1, scale/10 {
			nsec += int(w.frac[i]-'0') * scale
		}
		t := time.Date(w.year, time.Month(w.month), w.day, w.hour, w.min, w.sec, nsec, time.UTC).
			Add(-time.Duration(r.off) * time.Second).In(newYork)
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.999999999-07:00")
		return append(dst, '"'), true
	}
	return c.appendWall(dst, &r.w), true
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

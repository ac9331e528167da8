package convert

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// convertTime converts one pickup time the way a record gets it ("" and the reason when rejected).
func convertTime(t testing.TB, s string) (string, string) {
	t.Helper()
	var c rowConv
	out, ok := c.tc.appendTime(nil, []byte(s))
	if !ok {
		return "", timeReason([]byte(s))
	}
	var v string
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("appendTime(%q) wrote %q: %v", s, out, err)
	}
	return v, ""
}

// TestDateTimeSpellings: every spelling reads as the New York wall-clock time it says, with the offset of
// the documented DST rule (a gap or repeated time takes the offset before the transition).
func TestDateTimeSpellings(t *testing.T) {
	const nnbsp, nbsp = "\u202f", "\u00a0"
	for _, c := range []struct{ in, want string }{
		// ISO, year first.
		{"2018-01-01 14:21:05", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01T14:21:05", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01t14:21:05", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01 14:21", "2018-01-01T14:21:00-05:00"},
		{"2018-01-01T14:21:05.123", "2018-01-01T14:21:05.123-05:00"},
		{"2018-01-01 14:21:05.123456789", "2018-01-01T14:21:05.123456789-05:00"},
		{"2018-1-1 2:21:05", "2018-01-01T02:21:05-05:00"},
		{"2018/01/01 14:21:05", "2018-01-01T14:21:05-05:00"},
		{"2018/1/1 2:21 PM", "2018-01-01T14:21:00-05:00"},
		{"2018-01-01, 14:21:05", "2018-01-01T14:21:05-05:00"},
		{"  2018-01-01 14:21:05  ", "2018-01-01T14:21:05-05:00"},
		// US order, month first.
		{"1/1/2018 2:21 AM", "2018-01-01T02:21:00-05:00"},
		{"1/1/2018 2:21:05 AM", "2018-01-01T02:21:05-05:00"},
		{"01/01/2018 02:21:05 AM", "2018-01-01T02:21:05-05:00"},
		{"1/1/2018, 2:21:05 PM", "2018-01-01T14:21:05-05:00"},
		{"1/1/2018,2:21 PM", "2018-01-01T14:21:00-05:00"},
		{"1/1/2018, 14:21", "2018-01-01T14:21:00-05:00"},
		{"1/1/2018 14:21:05", "2018-01-01T14:21:05-05:00"},
		{"1/1/2018 14:21:05.5", "2018-01-01T14:21:05.5-05:00"},
		{"1/1/2018 2:21:05.250 PM", "2018-01-01T14:21:05.250-05:00"},
		{"1-1-2018 14:21", "2018-01-01T14:21:00-05:00"},
		{"12-31-2018 23:59:59", "2018-12-31T23:59:59-05:00"},
		{"1/1/2018 2:21 pm", "2018-01-01T14:21:00-05:00"},
		{"1/1/2018 2:21PM", "2018-01-01T14:21:00-05:00"},
		{"1/1/2018 2:21 p.m.", "2018-01-01T14:21:00-05:00"},
		{"1/1/2018 2:21 A.M.", "2018-01-01T02:21:00-05:00"},
		{"1/1/2018, 2:21:05" + nnbsp + "PM", "2018-01-01T14:21:05-05:00"}, // JavaScript toLocaleString("en-US")
		{"1/1/2018" + nbsp + "2:21:05" + nbsp + "PM", "2018-01-01T14:21:05-05:00"},
		{"12/31/2018 12:00 AM", "2018-12-31T00:00:00-05:00"},
		{"12/31/2018 12:00 PM", "2018-12-31T12:00:00-05:00"},
		{"12/31/2018 12:59:59 AM", "2018-12-31T00:59:59-05:00"},
		{"7/4/2018 11:59 PM", "2018-07-04T23:59:00-04:00"},
		// DST: 2019-03-10 02:00–02:59 does not exist, 2019-11-03 01:00–01:59 happens twice.
		{"3/10/2019 1:59:59 AM", "2019-03-10T01:59:59-05:00"},
		{"3/10/2019 2:30 AM", "2019-03-10T02:30:00-05:00"},
		{"2019-03-10T02:30:00.5", "2019-03-10T02:30:00.5-05:00"},
		{"3/10/2019, 3:00:00 AM", "2019-03-10T03:00:00-04:00"},
		{"11/3/2019 12:59:59 AM", "2019-11-03T00:59:59-04:00"},
		{"11/3/2019 1:30 AM", "2019-11-03T01:30:00-04:00"},
		{"2019-11-03 01:59:59.999", "2019-11-03T01:59:59.999-04:00"},
		{"11/03/2019 2:00 AM", "2019-11-03T02:00:00-05:00"},
		// Instants (an explicit zone): converted to New York time.
		{"2018-01-01T19:21:05.000Z", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01 19:21:05 UTC", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01 14:21:05-0500", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01 14:21:05 -05", "2018-01-01T14:21:05-05:00"},
		{"2018-01-01T20:21:05+01:00", "2018-01-01T14:21:05-05:00"},
		{"2019-11-03T05:30:00Z", "2019-11-03T01:30:00-04:00"},
		{"2019-11-03T06:30:00Z", "2019-11-03T01:30:00-05:00"},
		{"2019-03-10T07:30:00.25Z", "2019-03-10T03:30:00.25-04:00"},
	} {
		got, why := convertTime(t, c.in)
		if got != c.want {
			t.Errorf("%q → %q (%s), want %q", c.in, got, why, c.want)
		}
	}
}

// TestDateTimeRejected: what is not read, and the reason a rejected row carries.
func TestDateTimeRejected(t *testing.T) {
	for _, c := range []struct{ in, why string }{
		{"13/1/2018 2:21", "13 is not a month: a day-first date?"},
		{"31/12/2018 23:59:59", "31 is not a month: a day-first date?"},
		{"25-12-2018 10:00", "25 is not a month"},
		{"1/1/18 2:21", "a two-digit year"},
		{"01/02/19 10:00", "a two-digit year"},
		{"2/30/2019 1:00", "no such date"},
		{"2019-02-29 00:00:00", "no such date"},
		{"2019-01-01 24:00:00", "no such date"},
		{"13/13/2018 10:00", "no such date"},
		{"2018-13-01 10:00", "no such date"},
		{"1/1/2018 0:30 AM", "hour 0 with AM/PM"},
		{"1/1/2018 13:30 PM", "hour 13 with AM/PM"},
		{"1/1/2018", "a date without a time"},
		{"2018-01-01", "a date without a time"},
		{"2018-01-01 ", "a date without a time"},
		{"1/1/2018 2:21 XM", "not a date-time spelling"},
		{"1/1/2018 2:21 AM Z", "not a date-time spelling"},
		{"2018-01-01 2:21:5", "not a date-time spelling"},
		{"2018-01-01 2:2", "not a date-time spelling"},
		{"2018-01-01 14:21:055", "not a date-time spelling"},
		{"2018-01-01T14:21:05+25:00", "not a date-time spelling"},
		{"2018-01-01T14:21:05.", "not a date-time spelling"},
		{"1/1/2018T14:21", "not a date-time spelling"},
		{"Jan 1, 2018 2:21 PM", "not a date-time spelling"},
		{"20180101 142105", "not a date-time spelling"},
		{"1850-01-01 00:00:00", "no such date"},
		{"", "not a date-time spelling"},
	} {
		got, why := convertTime(t, c.in)
		if got != "" || !strings.Contains(why, c.why) {
			t.Errorf("%q → %q, reason %q; want rejected with %q", c.in, got, why, c.why)
		}
	}
	// The reason reaches the rejected row.
	_, rej := convertString(t, yellowHeader+"1,15/1/2018 2:21,,1,1,1,1,1\n", Options{})
	if len(rej) != 1 || rej[0].Code != CodeBadDatetime ||
		rej[0].Detail != `pickup_datetime: cannot read "15/1/2018 2:21" as a date-time: 15 is not a month: a day-first date? Dates are read in US order only (month/day/year)` {
		t.Errorf("rejects %v", rej)
	}
}

// TestPlaceholdersAreNull: every placeholder, in any case and with spaces, is null in every kind of
// column of a trip file; in a CSV that is not a trip file text stays text.
func TestPlaceholdersAreNull(t *testing.T) {
	header := "hvfhs_license_num,dispatching_base_num,Dispatching_base_number,pickup_datetime,dropoff_datetime," +
		"PULocationID,trip_miles,shared_request_flag,payment_type,VendorID,notes\n"
	keys := []string{"hvfhs_license_num", "dispatching_base_num", "pickup_datetime", "dropoff_datetime", "pu_location_id",
		"trip_miles", "shared_request_flag", "payment_type", "vendor_id", "notes"}
	for _, ph := range []string{"-", "NA", "N/A", "null", "NULL", "\\N", "NaN", "na", "n/a", "Null", "nan", " NA ", "\tnull"} {
		t.Run(ph, func(t *testing.T) {
			row := strings.Repeat(ph+",", 10) + ph + "\n"
			out, rej := convertString(t, header+row, Options{})
			if len(rej) != 0 {
				t.Fatalf("rejects %v", rej)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			for _, k := range keys {
				if v, ok := rec[k]; !ok || v != nil {
					t.Errorf("%s = %v (present %v), want null in %s", k, v, ok, out)
				}
			}
			if _, ok := rec["vendor_code"]; ok {
				t.Errorf("vendor_code present in %s", out)
			}
		})
	}
	// fhv 2018's two base-number columns: a placeholder in the first takes the second's value.
	out, _ := convertString(t, header+"HV0003,NA,B02512,2019-02-01 00:05:18,2019-02-01 00:14:57,245,2.45,N,1,1,x\n", Options{})
	if !strings.Contains(out, `"dispatching_base_num":"B02512"`) || strings.Contains(out, "dispatching_base_number") {
		t.Errorf("placeholder in the first base-number column: %s", out)
	}
	// Not a trip file: lossless text.
	out, _ = convertString(t, "LocationID,Borough,Zone\n264,Unknown,NA\n265,N/A,-\n", Options{})
	for _, want := range []string{`"Zone":"NA"`, `"Borough":"N/A"`, `"Zone":"-"`} {
		if !strings.Contains(out, want) {
			t.Errorf("zone lookup converted to %s; want %s kept", out, want)
		}
	}
}

// reexportStyle is one way a spreadsheet, notebook or script writes a trip file back out.
type reexportStyle struct {
	name    string
	when    func(wall time.Time, instant time.Time) string // a date-time field
	missing string                                         // what an empty field becomes
	minutes bool                                           // the style drops the seconds
}

var reexportStyles = []reexportStyle{
	{"excel 12-hour", func(w, _ time.Time) string { return w.Format("1/2/2006 3:04:05 PM") }, "", false},
	{"javascript toLocaleString", func(w, _ time.Time) string { return w.Format("1/2/2006, 3:04:05\u202fPM") }, "null", false},
	{"javascript toISOString", func(_, i time.Time) string { return i.UTC().Format("2006-01-02T15:04:05.000Z") }, "N/A", false},
	{"pandas ISO with T and fractions", func(w, _ time.Time) string { return w.Format("2006-01-02T15:04:05.000000") }, "NaN", false},
	{"R", func(w, _ time.Time) string { return w.Format("2006-01-02 15:04:05") }, "NA", false},
	{"MySQL dump", func(w, _ time.Time) string { return w.Format("2006-01-02 15:04:05") }, `\N`, false},
	{"year-first slashes", func(w, _ time.Time) string { return w.Format("2006/01/02 15:04:05") }, "NULL", false},
	{"US 24-hour without seconds", func(w, _ time.Time) string { return w.Format("01/02/2006 15:04") }, "-", true},
	{"US dashes, no leading zeros, comma", func(w, _ time.Time) string { return w.Format("1-2-2006, 15:04:05") }, "-", false},
	{"ISO with offset", func(_, i time.Time) string { return i.Format("2006-01-02 15:04:05-0700") }, "", false},
}

const reexportRows = 3000

// TestReexportedSamples rewrites real TLC samples in every style above — date-times respelt, empty
// fields replaced by the style's placeholder, quoted where a comma needs it — and converts them: zero
// rejects, and every record says what the original's record says (same instants, same values).
func TestReexportedSamples(t *testing.T) {
	dir := testenv.TLCDir(t)
	for _, name := range []string{"yellow_tripdata_sample_2019-01_renamed.csv", "yellow_tripdata_2015-01_head.csv"} {
		raw, err := os.ReadFile(filepath.Join(dir, "samples", name))
		if err != nil {
			t.Fatal(err)
		}
		orig := convertAll(t, raw, name)
		cr := csv.NewReader(bytes.NewReader(raw))
		cr.FieldsPerRecord = -1
		rows, err := cr.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		// The first reexportRows rows of each file: enough of every shape, quick enough for every style.
		rows = rows[:min(len(rows), reexportRows+1)]
		orig = orig[:len(rows)-1]
		for _, st := range reexportStyles {
			t.Run(name+"/"+st.name, func(t *testing.T) {
				var buf bytes.Buffer
				w := csv.NewWriter(&buf)
				timeCols := map[int]bool{}
				for i, h := range rows[0] {
					if strings.Contains(strings.ToLower(h), "datetime") {
						timeCols[i] = true
					}
				}
				if len(timeCols) != 2 {
					t.Fatalf("header %v: want two date-time columns", rows[0])
				}
				if err := w.Write(rows[0]); err != nil {
					t.Fatal(err)
				}
				for r, row := range rows[1:] {
					out := make([]string, len(row))
					for i, v := range row {
						switch {
						case strings.TrimSpace(v) == "":
							out[i] = st.missing
						case timeCols[i]:
							wall, err := time.Parse(time.DateTime, v)
							if err != nil {
								t.Fatalf("row %d: %v", r+1, err)
							}
							out[i] = st.when(wall, orig[r].instant(t, i, rows[0][i]))
						default:
							out[i] = v
						}
					}
					if err := w.Write(out); err != nil {
						t.Fatal(err)
					}
				}
				w.Flush()
				got := convertAll(t, buf.Bytes(), name)
				if len(got) != len(orig) {
					t.Fatalf("%d records, the original has %d", len(got), len(orig))
				}
				for r := range got {
					if msg := sameRecord(orig[r], got[r], st.minutes); msg != "" {
						t.Fatalf("row %d: %s\noriginal:  %s\nre-export: %s", r+1, msg, orig[r].json, got[r].json)
					}
				}
			})
		}
	}
}

// converted is one record of convertAll, decoded.
type converted struct {
	json   []byte
	fields map[string]any
}

// instant returns the instant of a record's date-time field (by column index of the header name).
func (c converted) instant(t testing.TB, _ int, header string) time.Time {
	t.Helper()
	key := "pickup_datetime"
	if strings.Contains(strings.ToLower(header), "dropoff") {
		key = "dropoff_datetime"
	}
	s, _ := c.fields[key].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s %q: %v", key, s, err)
	}
	return ts
}

// convertAll converts a whole CSV and fails on any reject.
func convertAll(t testing.TB, data []byte, key string) []converted {
	t.Helper()
	rr, err := NewCSVReader(bytes.NewReader(data), Options{Source: Source{Bucket: "b", Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	var out []converted
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(out)+1, err)
		}
		c := converted{json: bytes.Clone(rec.JSON)}
		dec := json.NewDecoder(bytes.NewReader(c.json))
		dec.UseNumber()
		if err := dec.Decode(&c.fields); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// sameRecord compares two records field by field: date-times as instants (to the minute when the
// style dropped seconds), everything else as written. record_id differs by construction: not compared.
func sameRecord(a, b converted, minutes bool) string {
	if len(a.fields) != len(b.fields) {
		return fmt.Sprintf("%d fields vs %d", len(a.fields), len(b.fields))
	}
	for k, va := range a.fields {
		vb, ok := b.fields[k]
		switch {
		case !ok:
			return "no " + k
		case k == "record_id":
		case strings.HasSuffix(k, "_datetime") && va != nil:
			ta, _ := time.Parse(time.RFC3339Nano, va.(string))
			sb, _ := vb.(string)
			tb, err := time.Parse(time.RFC3339Nano, sb)
			if err != nil {
				return fmt.Sprintf("%s: %q", k, sb)
			}
			if minutes {
				ta = ta.Truncate(time.Minute)
			}
			if !ta.Equal(tb) {
				return fmt.Sprintf("%s: %s vs %s", k, ta, tb)
			}
		case fmt.Sprint(va) != fmt.Sprint(vb):
			return fmt.Sprintf("%s: %v vs %v", k, va, vb)
		}
	}
	return ""
}

// TestParseWallRoundTrip: random valid wall-clock times written in every style of wall-clock text read
// back as the same fields.
func TestParseWallRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 3))
	layouts := []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05.000", "2006/1/2 15:04:05", "1/2/2006 3:04:05 PM",
		"01/02/2006 03:04:05 pm", "1/2/2006, 15:04:05", "1-2-2006 15:04:05", "1/2/2006, 3:04:05\u202fPM", "2006-1-2, 3:04:05 P.M."}
	for range 20000 {
		w := time.Date(1990+rng.IntN(60), time.Month(1+rng.IntN(12)), 1+rng.IntN(31), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
		for _, l := range layouts {
			s := strings.Replace(w.Format(l), "P.M.", map[bool]string{true: "P.M.", false: "A.M."}[w.Hour() >= 12], 1)
			r := parseWall([]byte(s))
			got := time.Date(r.w.year, time.Month(r.w.month), r.w.day, r.w.hour, r.w.min, r.w.sec, 0, time.UTC)
			if r.why != 0 || r.zoned || !got.Equal(w) {
				t.Fatalf("%q → %+v (why %d), want %s", s, r.w, r.why, w)
			}
		}
	}
}

// FuzzParseWall: no panic; what is read is a real date and time whose output is RFC 3339 that reads back.
func FuzzParseWall(f *testing.F) {
	for _, s := range []string{"2019-01-01 00:46:40", "1/1/2018, 2:21:05\u202fPM", "13/1/2018 2:21", "2019-03-10T02:30:00.5",
		"2018-01-01 19:21:05 UTC", "1/1/18 2:21", "2018/1/1 2:21 p.m.", "2018-01-01T14:21:05-0500", "\u00a0\u202f"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c timeCache
		out, ok := c.appendTime(nil, b)
		r := parseWall(b)
		if ok != (r.why == 0) {
			t.Fatalf("appendTime ok %v, parseWall why %d", ok, r.why)
		}
		if !ok {
			if timeReason(b) == "" {
				t.Fatal("no reason")
			}
			return
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			t.Fatalf("%q → %q: %v", b, s, err)
		}
		if !r.zoned {
			want := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", r.w.year, r.w.month, r.w.day, r.w.hour, r.w.min, r.w.sec)
			if !strings.HasPrefix(s, want) {
				t.Fatalf("%q → %q, want the wall clock %s", b, s, want)
			}
		}
	})
}

// BenchmarkCSVYellow2019Reexport: the generated yellow 2019 file re-exported in the 12-hour US style
// (every date-time takes the general parser) with NA for empty fields.
func BenchmarkCSVYellow2019Reexport(b *testing.B) {
	data := genCSV(b, "yellow", 2019, 50000)
	cr := csv.NewReader(bytes.NewReader(data))
	rows, err := cr.ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for r, row := range rows {
		for i, v := range row {
			switch {
			case r == 0:
			case v == "":
				row[i] = "NA"
			case i == 1 || i == 2:
				t, err := time.Parse(time.DateTime, v)
				if err != nil {
					b.Fatal(err)
				}
				row[i] = t.Format("1/2/2006 3:04:05 PM")
			}
		}
		if err := w.Write(row); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	data = buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		rr, err := NewCSVReader(bytes.NewReader(data), Options{Source: Source{Bucket: "b", Key: "k"}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
}

package convert

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

const yellowHeader = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,PULocationID,payment_type,total_amount\n"

// field returns the JSON text of key in a one-record output, via Value-like scanning of the JSON.
func TestEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		opts   Options
		want   []string // substrings of the output, in order
		reject []string // reason codes of the rejects, in order
	}{
		{name: "bom, quoted and spaced names, CRLF",
			in:   "\ufeff\"VendorID\", tpep_pickup_datetime ,Trip_type \r\n1,2019-01-01 00:46:40,1.0\r\n",
			want: []string{`"taxi_type":"yellow","vendor_id":1,"pickup_datetime":"2019-01-01T00:46:40-05:00","trip_type":1}` + "\n"}},
		{name: "CR-only line ends and blank lines",
			in:   yellowHeader[:len(yellowHeader)-1] + "\r\r1,2019-07-01 10:00:00,,1,.50,132,1,9.5\r\r\n2,2019-07-01 11:00:00,,2,5.,7,2,+10\r",
			want: []string{`"pickup_datetime":"2019-07-01T10:00:00-04:00","dropoff_datetime":null,"passenger_count":1,"trip_distance":0.50,"pu_location_id":132`, `"trip_distance":5,"pu_location_id":7,"payment_type":2,"total_amount":10}`}},
		{name: "exact digits kept, leading zeros dropped",
			in:   yellowHeader + "1,2009-01-04 02:52:00,,1,2.6299999999999999,007,1,-0.50\n",
			want: []string{`"trip_distance":2.6299999999999999,"pu_location_id":7,"payment_type":1,"total_amount":-0.50}`}},
		{name: "old text codes",
			in: "vendor_name,Trip_Pickup_DateTime,Payment_Type,store_and_forward\nVTS,2009-01-04 02:52:00,CASH,\nDDS,2009-01-04 02:52:00,Credit,0\nCMT,2009-01-04 02:52:00,No Charge,1\nXYZ,2009-01-04 02:52:00,WHAT,Y\n",
			want: []string{`"vendor_id":2,"vendor_code":"VTS"`, `"payment_type":2,"payment_code":"CASH","store_and_fwd_flag":null`,
				`"vendor_id":null,"vendor_code":"DDS"`, `"payment_type":1,"payment_code":"Credit","store_and_fwd_flag":"N"`,
				`"vendor_id":1,"vendor_code":"CMT"`, `"payment_type":3,"payment_code":"No Charge","store_and_fwd_flag":"Y"`,
				`"vendor_id":null,"vendor_code":"XYZ"`, `"payment_type":null,"payment_code":"WHAT"`}},
		{name: "DST gap and repeat, AM/PM, fractions, explicit zones",
			in: "pickup_datetime,dropoff_datetime,request_datetime,on_scene_datetime\n" +
				"2019-03-10 02:30:00,2019-11-03 01:30:00,1/1/2018 2:21:05 AM,12/31/2018 12:05 PM\n" +
				"2019-03-10 01:59:59.25,2019-03-10 03:00:00,2019-11-03T06:30:00Z,2019-11-03 01:30:00-05:00\n",
			opts: Options{TaxiType: "fhvhv"},
			want: []string{`"pickup_datetime":"2019-03-10T02:30:00-05:00","dropoff_datetime":"2019-11-03T01:30:00-04:00","request_datetime":"2018-01-01T02:21:05-05:00","on_scene_datetime":"2018-12-31T12:05:00-05:00"`,
				`"pickup_datetime":"2019-03-10T01:59:59.25-05:00","dropoff_datetime":"2019-03-10T03:00:00-04:00","request_datetime":"2019-11-03T01:30:00-05:00","on_scene_datetime":"2019-11-03T01:30:00-05:00"`}},
		{name: "bad values are rejected, never guessed",
			in: yellowHeader + "1,2019-02-30 00:00:00,,1,1,1,1,1\n1,01/02/19 10:00,,1,1,1,1,1\n1,2019-01-01 00:00:00,,1.5,1,1,1,1\n" +
				"1,2019-01-01 00:00:00,,1,1e,1,1,1\n1,2019-01-01 00:00:00,,1,Infinity,1,1,1\n1,2019-01-01 24:00:00,,1,1,1,1,1\n",
			reject: []string{CodeBadDatetime, CodeBadDatetime, CodeBadInteger, CodeBadNumber, CodeBadNumber, CodeBadDatetime}},
		{name: "extra fields: empty ignored, non-empty rejected; too few rejected",
			in:     yellowHeader + "1,2019-01-01 00:00:00,,1,1,1,1,1,,\n1,2019-01-01 00:00:00,,1,1,1,1,1,,x\n1,2019-01-01 00:00:00\n",
			want:   []string{`"total_amount":1}` + "\n"},
			reject: []string{CodeExtraFields, CodeTooFewFields}},
		{name: "cut-off last line and open quote",
			in:     yellowHeader + "1,2019-01-01 00:00:00,,1,1,1,1,1\n1,2019-01-01 00:00:00,,1",
			reject: []string{CodeTruncatedRow}},
		{name: "open quote at the end",
			in:     yellowHeader + "1,\"2019-01-01 00:00:00",
			reject: []string{CodeTruncatedRow}},
		{name: "last line without newline but complete is a record",
			in:   yellowHeader + "1,2019-01-01 00:00:00,,1,1,1,1,1",
			want: []string{`"total_amount":1}` + "\n"}},
		{name: "invalid UTF-8 and bad quote",
			in:     "pickup_datetime,dispatching_base_num,note\n2019-01-01 00:00:00,B\xff01,x\n2019-01-01 00:00:00,\"B01\"x,y\n2019-01-01 00:00:00,\"B,\"\"1\"\"\nz\",\"ü\"\n",
			want:   []string{`"dispatching_base_num":"B,\"1\"\nz","note":"ü"}`},
			reject: []string{CodeInvalidUTF8, CodeBadQuote}},
		{name: "unknown columns kept under sanitised names, duplicates merged",
			in: ",VendorID,Pickup_DateTime,Unnamed: 3,Test Bool,Dispatching_base_number,Dispatching_base_num,VendorID\n" +
				"0,1,2019-01-01 00:00:00,x,true,B1,,\n1,1,2019-01-01 00:00:00,007,,B1,B2,3\n",
			want: []string{`"column_1":0,"vendor_id":1,"pickup_datetime":"2019-01-01T00:00:00-05:00","column_4":"x","test_bool":"true","dispatching_base_num":"B1"}`,
				`"column_1":1,"vendor_id":1,"vendorid":3,"pickup_datetime":"2019-01-01T00:00:00-05:00","column_4":"007","test_bool":null,"dispatching_base_num":"B1","dispatching_base_num_2":"B2"}`}},
		{name: "non-TLC CSV keeps trimmed names and lossless values",
			in:   "\"LocationID\", Borough ,Zone,Zone,rate\n1,EWR,\"Newark, NJ\",,007\n2,Queens,Jamaica Bay,x,.5\n",
			want: []string{`"taxi_type":null,"LocationID":1,"Borough":"EWR","Zone":"Newark, NJ","Zone_2":null,"rate":"007"}`, `"rate":".5"}`}},
		{name: "taxi type from the file name when the header is generic",
			in:   "vendor_id,pickup_datetime,fare_amount\nCMT,2013-01-01 15:11:48,6.5\n",
			opts: Options{FileName: "raw/green_2013.csv"},
			want: []string{`"taxi_type":"green"`}},
		{name: "empty input", in: ""},
		{name: "header only", in: yellowHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := convertString(t, tc.in, tc.opts)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks (in order) %s\noutput:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			var codes []string
			for _, r := range rej {
				codes = append(codes, r.Code)
				if r.Line < 2 || r.Raw == "" || r.Detail == "" {
					t.Errorf("reject without position or text: %+v", r)
				}
			}
			if strings.Join(codes, ",") != strings.Join(tc.reject, ",") {
				t.Errorf("rejects %v, want %v (%v)", codes, tc.reject, rej)
			}
		})
	}
}

func TestRejectPositions(t *testing.T) {
	_, rej := convertString(t, yellowHeader+"\n1,2019-01-01 00:00:00,,1,abc,1,1,1\n", Options{})
	if len(rej) != 1 {
		t.Fatalf("rejects %v", rej)
	}
	got := *rej[0]
	got.Err = nil
	want := RowError{Line: 3, Row: 1, Column: 5, Field: "trip_distance", Offset: int64(len(yellowHeader) + 1), Code: CodeBadNumber,
		Detail: `trip_distance: "abc" is not a number`, Raw: "1,2019-01-01 00:00:00,,1,abc,1,1,1"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !errors.Is(rej[0], ErrBadValue) {
		t.Errorf("errors.Is(ErrBadValue) false")
	}
}

func TestValue(t *testing.T) {
	rr, err := NewCSVReader(strings.NewReader("vendor_id,pickup_datetime,PULocationID,payment_type,dispatching_base_num\nDDS,2010-01-01 00:00:00,132,CRD,\"B0,1\"\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rr.Next(); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"pu_location_id": "132", "vendor_id": "", "payment_type": "1", "dispatching_base_num": `"B0,1"`, "nope": ""} {
		if got := rr.Value(field); got != want {
			t.Errorf("Value(%s) = %q, want %q", field, got, want)
		}
	}
}

// TestReaders feeds the same input through testing/iotest readers: same output, or a fatal I/O error.
func TestReaders(t *testing.T) {
	input := genCSV(t, "yellow", 2015, 3000)
	want, _ := convertString(t, string(input), Options{})
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"OneByteReader": iotest.OneByteReader,
		"HalfReader":    iotest.HalfReader,
		"DataErrReader": iotest.DataErrReader,
	} {
		t.Run(name, func(t *testing.T) {
			rr, err := NewCSVReader(wrap(bytes.NewReader(input)), Options{Source: testSource})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := drain(t, rr)
			if string(got) != want {
				t.Errorf("output differs from the plain reader")
			}
		})
	}
	t.Run("TimeoutReader", func(t *testing.T) {
		// The first read gives data (the header and some rows), the second fails: a fatal error whose
		// checkpoint points at a row start, and no half row emitted.
		rr, err := NewCSVReader(iotest.TimeoutReader(bytes.NewReader(input)), Options{Source: testSource})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := rr.Next()
			if err == nil {
				n++
				continue
			}
			if !errors.Is(err, iotest.ErrTimeout) {
				t.Fatalf("got %v, want ErrTimeout", err)
			}
			break
		}
		cp := rr.Checkpoint()
		if n == 0 || cp.Row != int64(n) || input[cp.Offset-1] != '\n' {
			t.Errorf("after %d records checkpoint %+v is not at a row start", n, cp)
		}
		if _, err := rr.Next(); !errors.Is(err, iotest.ErrTimeout) {
			t.Errorf("the error does not stick: %v", err)
		}
	})
	t.Run("ErrReader", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := NewCSVReader(iotest.ErrReader(boom), Options{})
		if !errors.Is(err, boom) {
			t.Errorf("got %v, want boom", err)
		}
	})
}

// resumeAll checks that resuming from every checkpoint gives exactly the rest of the output.
func resumeAll(t testing.TB, input []byte, every int) {
	rr, err := NewCSVReader(bytes.NewReader(input), Options{Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	var outs []string // output of each Next, and the checkpoint before it
	var cps []Checkpoint
	var last int64 = -1
	for {
		cp := rr.Checkpoint()
		if cp.Offset < last {
			t.Fatalf("offset went back: %d < %d", cp.Offset, last)
		}
		last = cp.Offset
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		cps = append(cps, cp)
		var re *RowError
		switch {
		case errors.As(err, &re):
			outs = append(outs, "REJECT "+re.Code+" "+itoa64(re.Line)+" "+re.Raw+"\n")
		case err != nil:
			t.Fatal(err)
		default:
			outs = append(outs, itoa64(rec.Line)+" "+string(rec.JSON))
		}
	}
	for i := 0; i < len(cps); i += every {
		cp := cps[i]
		rr2, err := NewCSVReader(bytes.NewReader(input[cp.Offset:]), Options{Source: testSource, Resume: &cp})
		if err != nil {
			t.Fatal(err)
		}
		for j := i; ; j++ {
			rec, err := rr2.Next()
			if err == io.EOF {
				if j != len(outs) {
					t.Fatalf("resume at %d: ended after %d of %d", i, j, len(outs))
				}
				break
			}
			var got string
			var re *RowError
			switch {
			case errors.As(err, &re):
				got = "REJECT " + re.Code + " " + itoa64(re.Line) + " " + re.Raw + "\n"
			case err != nil:
				t.Fatal(err)
			default:
				got = itoa64(rec.Line) + " " + string(rec.JSON)
			}
			if j >= len(outs) || got != outs[j] {
				t.Fatalf("resume at row %d (%+v), row %d:\n got %q\nwant %q", i, cp, j, got, outs[min(j, len(outs)-1)])
			}
		}
	}
}

func itoa64(n int64) string { return strings.TrimSpace(string(appendInt(nil, n))) }

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestResume(t *testing.T) {
	resumeAll(t, genCSV(t, "green", 2013, 400), 7)
	resumeAll(t, []byte(yellowHeader+"\r\n1,2019-01-01 00:00:00,,1,1,1,1,1\r\r\n\"1\",\"2019-01-01 00:00:00\",,1,\"1\n\",1,1,1\r1,2019-01-01 00:00:00,,1,1,1,1,1,,\n1,2019"), 1)
}

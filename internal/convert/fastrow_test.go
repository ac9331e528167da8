package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/testenv"
)

// trace reads input to the end and writes down everything a caller can see after each Next: the
// record (JSON, ID, line, row) or the error, the checkpoint, Value of every field, and the stats.
func trace(t testing.TB, input []byte, wrap func(io.Reader) io.Reader, noFast bool) string {
	t.Helper()
	var b strings.Builder
	rr, err := NewCSVReader(wrap(bytes.NewReader(input)), Options{Source: testSource})
	if err != nil {
		return "NewCSVReader: " + err.Error()
	}
	cr := rr.(*csvReader)
	cr.noFast = noFast
	var names []string
	if cr.p != nil {
		for _, o := range cr.p.outs {
			names = append(names, o.name)
		}
	}
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader does not end")
		}
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		var re *RowError
		switch {
		case errors.As(err, &re):
			j, _ := json.Marshal(re)
			fmt.Fprintf(&b, "REJECT %s %v\n", j, re.Err)
		case err != nil:
			fmt.Fprintf(&b, "ERROR %v\n", err)
		default:
			fmt.Fprintf(&b, "%d %d %s %s", rec.Line, rec.Row, rec.ID, rec.JSON)
			for _, n := range names {
				fmt.Fprintf(&b, " %s=%s", n, rr.Value(n))
			}
			b.WriteByte('\n')
		}
		cp, _ := json.Marshal(rr.Checkpoint())
		fmt.Fprintf(&b, "  %s\n", cp)
		if err != nil && re == nil {
			break
		}
	}
	st, _ := json.Marshal(rr.Stats())
	fmt.Fprintf(&b, "STATS %s\n", st)
	return b.String()
}

func sameOnBothPaths(t *testing.T, input []byte, wrap func(io.Reader) io.Reader) {
	t.Helper()
	want := trace(t, input, wrap, true)
	got := trace(t, input, wrap, false)
	if got != want {
		t.Fatalf("fast path differs from the general path (-general +fast):\n%s", cmp.Diff(want, got))
	}
}

// fastEdgeRows are rows on the edges of the fast path's value shapes (under yellowHeader's 8 columns:
// vendor, pickup, dropoff, passenger_count, trip_distance, PULocationID, payment_type, total_amount).
var fastEdgeRows = []string{
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1,9.5,,",
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1,9.5, ,\t,",
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1,9.5,x",
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1",
	"1,2019-01-01 00:00:00,2019-01-01 00:10:59,1,1.5,132,1,",
	",,,,,,,",
	",,,,,,",
	"1,2019-01-01T00:00:00,2019-01-01 00:60:00,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:60,2019-02-29 00:10:00,1,1.5,132,1,9.5",
	"1,2019-02-30 00:00:00,2019-01-01 24:00:00,1,1.5,132,1,9.5",
	"1,2019-03-10 02:30:00,2019-11-03 01:30:00,1,1.5,132,1,9.5",
	"1,2019-03-10 02:59:59,2019-11-03 01:59:59,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:00.5,2019-01-01 00:10,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:00Z,2019-01-01 00:00:00+01:00,1,1.5,132,1,9.5",
	"1,1/1/2019 2:21:05 AM,1/1/2019 2:21:05 PM,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:0a,2019-01-01 0a:00:00,1,1.5,132,1,9.5",
	"1,2019-01-01 00:00:00 ,2019-01-01 00:00:00x,1,1.5,132,1,9.5",
	"1, 2019-01-01 00:00:00,2019-01-01 00:00:00,1,1.5,132,1,9.5",
	"1,2019-13-01 00:00:00,1899-01-01 00:00:00,1,1.5,132,1,9.5",
	"NA,2019-01-01 00:00:00,N/A,null,NaN,\\N,-,NULL",
	"1,\"1/1/2019, 2:21:05 AM\",1/1/2019 14:21,n/a,-,nan, na ,9.5",
	"1,2019-1-1 2:21:05.25,2019/01/01 02:21 pm,1,1.5,132,1,9.5",
	"1,13/1/2019 2:21,1/1/19 2:21,1,1.5,132,1,9.5",
	"1,2019-01-01T00:00:00.000Z,2019-01-01 00:00:00 UTC,1,1.5,132,1,9.5",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00,0,05,0,01,-0",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00,1000,-,999,1.0,.5",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00,1.5,5.,-1,1e2,1e5",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00, 1,1.5 ,+1,CSH,-0.50",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00,1,0.0,12,No Charge,NaN",
	"2,2019-01-01 00:00:00,2019-01-01 00:00:00,1,2.6299999999999999,12,1,12345678901234567890.123456789",
	"VTS,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,1",
	"DDS,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,1",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,\"1\"",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,1\"",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,1\r2,2019-01-01 00:00:00,,1,1,1,1,1",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1\r,1",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,1\r",
	"1,2019-01-01 00:00:00,2019-01-01 00:00:00,1,1,1,1,\xff",
	"",
	"\r",
	" ",
}

// stringEdgeRows go under a header with string, flag and unknown columns.
const stringHeader = "hvfhs_license_num,dispatching_base_num,store_and_fwd_flag,Some Thing,pickup_datetime\n"

var stringEdgeRows = []string{
	"HV0003,B02835,N,abc,2019-01-01 00:00:00",
	"HV0003,B02835,Y,12,2019-01-01 00:00:00",
	"HV0003, B02835 ,y,007,2019-01-01 00:00:00",
	"HV 0003,B\\02835,n,a b,2019-01-01 00:00:00",
	"HV0003,B02835,1,\t,2019-01-01 00:00:00",
	"HV0003,B02835,0,\xc3\xa9,2019-01-01 00:00:00",
	"HV0003,B0283\xff,X,1e5,2019-01-01 00:00:00",
	"HV0003,\x01,NN,-,2019-01-01 00:00:00",
	"NA,N/A,null,NaN,2019-01-01 00:00:00",
	"HV0003,-,\\N,NULL,1/1/2019 2:21 PM",
	"na,n/A,-,nan,2019-01-01 00:00:00",
	"NAN,NUL,N/AA,--,2019-01-01 00:00:00",
	"héllo,B02835,N,\"x\",2019-01-01 00:00:00",
	"~!#$%&'()*+-./0123456789:;<=>?@AZ[]^_`az{|},B02835,N,x,2019-01-01 00:00:00",
}

func TestFastPathMatchesGeneral(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"plain":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
	}
	var inputs []struct {
		name string
		data []byte
	}
	add := func(name string, data []byte) {
		inputs = append(inputs, struct {
			name string
			data []byte
		}{name, data})
	}
	for _, sep := range []string{"\n", "\r\n"} {
		for i, rows := range [][]string{fastEdgeRows, stringEdgeRows} {
			h := yellowHeader
			if i == 1 {
				h = stringHeader
			}
			h = strings.TrimSuffix(h, "\n") + sep
			all := h + strings.Join(rows, sep) + sep
			add(fmt.Sprintf("edges%d%q", i, sep), []byte(all))
			add(fmt.Sprintf("edges%d%q-noend", i, sep), []byte(strings.TrimSuffix(all, sep)))
			for j, r := range rows {
				add(fmt.Sprintf("edge%d-%d%q", i, j, sep), []byte(h+r+sep+r+sep+r))
			}
		}
	}
	for _, taxi := range gen.Taxis {
		for layout := 2009; layout <= 2025; layout++ {
			for _, crlf := range []bool{false, true} {
				var buf bytes.Buffer
				if _, err := gen.Write(&buf, gen.Options{Taxi: taxi, Layout: layout, Rows: 300, Seed: 11, BadRowRate: 0.2, CRLF: crlf}); err != nil {
					continue // no such layout
				}
				add(fmt.Sprintf("gen-%s-%d-crlf=%v", taxi, layout, crlf), buf.Bytes())
			}
		}
	}
	root := testenv.TLCDir(t)
	for _, sub := range []string{"heads", "samples", "zones"} {
		files, _ := filepath.Glob(filepath.Join(root, sub, "*.csv"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			add(sub+"/"+filepath.Base(f), data)
		}
	}
	for _, in := range inputs {
		for rn, wrap := range readers {
			t.Run(in.name+"/"+rn, func(t *testing.T) { sameOnBothPaths(t, in.data, wrap) })
		}
	}
	// Big enough to cross many buffer refills, with rows ending at the very end of the buffer.
	t.Run("big", func(t *testing.T) {
		var buf bytes.Buffer
		if _, err := gen.Write(&buf, gen.Options{Taxi: "yellow", Layout: 2019, Rows: 30000, Seed: 5, BadRowRate: 0.01}); err != nil {
			t.Fatal(err)
		}
		sameOnBothPaths(t, buf.Bytes(), readers["plain"])
	})
}

// FuzzFastPath: any rows under a real header convert the same on the fast and the general path.
func FuzzFastPath(f *testing.F) {
	headers := []string{yellowHeader, stringHeader}
	for _, l := range []struct {
		taxi   string
		layout int
	}{{"yellow", 2009}, {"yellow", 2016}, {"yellow", 2019}, {"green", 2015}, {"fhv", 2018}, {"fhvhv", 2019}} {
		h, err := gen.Header(l.taxi, l.layout)
		if err != nil {
			f.Fatal(err)
		}
		headers = append(headers, strings.Join(h, ",")+"\n")
	}
	for i := range headers {
		for _, r := range append(fastEdgeRows, stringEdgeRows...) {
			f.Add(uint8(i), []byte(r+"\n"+r+"\r\n"))
		}
	}
	f.Fuzz(func(t *testing.T, h uint8, body []byte) {
		if len(body) > 1<<12 {
			return
		}
		sameOnBothPaths(t, append([]byte(headers[int(h)%len(headers)]), body...), func(r io.Reader) io.Reader { return r })
	})
}

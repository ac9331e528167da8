package gen_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/gen"
)

func TestDeterministic(t *testing.T) {
	for _, gz := range []bool{false, true} {
		var a, b, c bytes.Buffer
		o := gen.Options{Taxi: "yellow", Layout: 2019, Rows: 500, Seed: 9, Gzip: gz, BadRowRate: 0.1}
		if _, err := gen.Write(&a, o); err != nil {
			t.Fatal(err)
		}
		gen.Write(&b, o)
		o.Seed = 10
		gen.Write(&c, o)
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("gzip=%v: same seed, different bytes", gz)
		}
		if bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Errorf("gzip=%v: different seeds, same bytes", gz)
		}
	}
}

// TestConvertsClean: every layout converts with zero rejects, and totals are the sum of their parts;
// with a bad-row rate exactly the bad rows are rejected.
func TestConvertsClean(t *testing.T) {
	for _, taxi := range gen.Taxis {
		for _, year := range []int{2009, 2013, 2015, 2017, 2019, 2020, 2022, 2025} {
			for _, bad := range []float64{0, 0.05} {
				name := taxi + "_" + strconv.Itoa(year) + "_bad" + strconv.FormatFloat(bad, 'f', -1, 64)
				t.Run(name, func(t *testing.T) {
					var buf bytes.Buffer
					st, err := gen.Write(&buf, gen.Options{Taxi: taxi, Layout: year, Month: 3, Rows: 2000, Seed: 1, BadRowRate: bad, Gzip: true})
					if err != nil {
						t.Fatal(err)
					}
					zr, err := gzip.NewReader(&buf)
					if err != nil {
						t.Fatal(err)
					}
					rr, err := convert.NewCSVReader(zr, convert.Options{FileName: name + ".csv"})
					if err != nil {
						t.Fatal(err)
					}
					for {
						rec, err := rr.Next()
						if err == io.EOF {
							break
						}
						var re *convert.RowError
						if errors.As(err, &re) {
							if bad == 0 {
								t.Fatalf("reject %v", re)
							}
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						if !strings.Contains(string(rec.JSON), `"taxi_type":"`+taxi+`"`) {
							t.Fatalf("taxi type: %s", rec.JSON)
						}
					}
					cs := rr.Stats()
					if cs.RowsRead != st.Rows || cs.Rejected != st.BadRows || (bad > 0 && st.BadRows == 0) {
						t.Errorf("gen %+v, convert %+v", st, cs)
					}
				})
			}
		}
	}
}

func TestTotalsAddUp(t *testing.T) {
	var buf bytes.Buffer
	gen.Write(&buf, gen.Options{Taxi: "yellow", Layout: 2025, Rows: 300, Seed: 5})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	head := strings.Split(lines[0], ",")
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	cents := func(s string) int64 { f, _ := strconv.ParseFloat(s, 64); return int64(f*100 + 0.5) }
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		var sum int64
		for _, h := range []string{"fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge", "congestion_surcharge", "Airport_fee", "cbd_congestion_fee"} {
			sum += cents(f[col[h]])
		}
		if total := cents(f[col["total_amount"]]); total != sum {
			t.Fatalf("total %d != sum of parts %d: %s", total, sum, l)
		}
		if pu, _ := strconv.Atoi(f[col["PULocationID"]]); pu < 1 || pu > 265 {
			t.Fatalf("zone %d", pu)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []gen.Options{{Taxi: "blue"}, {Layout: 1999}, {Rows: -1}, {BadRowRate: 2}, {Month: 13}} {
		if _, err := gen.Write(io.Discard, o); !errors.Is(err, gen.ErrOptions) {
			t.Errorf("%+v: got %v, want ErrOptions", o, err)
		}
	}
}

// Package gen writes realistic, deterministic NYC TLC trip files (CSV, optionally gzip'd) for any taxi
// type and column layout 2009–2025, so demos, benchmarks and tests never need third-party data.
// The same Options (seed included) always give the same bytes.
package gen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Options say what to generate.
type Options struct {
	Taxi       string  // yellow|green|fhv|fhvhv (default yellow)
	Layout     int     // layout year, 2009–2025 (default 2019); the month is Month
	Month      int     // 1–12 (default 1); pickups fall in this month of the Layout year
	Rows       int64   // data rows
	Seed       uint64  // same seed, same file
	Gzip       bool    // gzip the output
	BadRowRate float64 // share of rows with one unparseable value (0 = none), for demos of rejects
	CRLF       bool    // CRLF line ends (TLC's files up to 2017 use CRLF)
}

// Stats says what was written.
type Stats struct {
	Rows    int64 `json:"rows"`
	BadRows int64 `json:"bad_rows"`
	Bytes   int64 `json:"bytes"` // CSV bytes before compression
}

// ErrOptions is returned (wrapped) for options that cannot be generated.
var ErrOptions = errors.New("bad generator options")

// Taxis lists the taxi types.
var Taxis = []string{"yellow", "green", "fhv", "fhvhv"}

// Header returns the column names TLC used for a taxi type and layout year.
func Header(taxi string, year int) ([]string, error) {
	switch taxi {
	case "yellow":
		switch {
		case year <= 2009:
			return split("vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,Start_Lat,Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,Tip_Amt,Tolls_Amt,Total_Amt"), nil
		case year <= 2014:
			return split("vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,surcharge,mta_tax,tip_amount,tolls_amount,total_amount"), nil
		case year <= 2016:
			return split("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"), nil
		case year <= 2018:
			return split("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"), nil
		case year <= 2021:
			return split("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge"), nil
		case year <= 2024:
			return split("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge,Airport_fee"), nil
		default:
			return split("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge,Airport_fee,cbd_congestion_fee"), nil
		}
	case "green":
		switch {
		case year <= 2014:
			return split("VendorID,lpep_pickup_datetime,Lpep_dropoff_datetime,Store_and_fwd_flag,RateCodeID,Pickup_longitude,Pickup_latitude,Dropoff_longitude,Dropoff_latitude,Passenger_count,Trip_distance,Fare_amount,Extra,MTA_tax,Tip_amount,Tolls_amount,Ehail_fee,Total_amount,Payment_type,Trip_type "), nil
		case year <= 2016:
			return split("VendorID,lpep_pickup_datetime,Lpep_dropoff_datetime,Store_and_fwd_flag,RateCodeID,Pickup_longitude,Pickup_latitude,Dropoff_longitude,Dropoff_latitude,Passenger_count,Trip_distance,Fare_amount,Extra,MTA_tax,Tip_amount,Tolls_amount,Ehail_fee,improvement_surcharge,Total_amount,Payment_type,Trip_type "), nil
		case year <= 2018:
			return split("VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type"), nil
		case year <= 2024:
			return split("VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge"), nil
		default:
			return split("VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge,cbd_congestion_fee"), nil
		}
	case "fhv":
		switch {
		case year <= 2016:
			return split("Dispatching_base_num,Pickup_date,locationID"), nil
		case year <= 2018:
			return split("Dispatching_base_num,Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID,SR_Flag"), nil
		case year <= 2019:
			return split("dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"), nil
		default:
			return split("dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag,Affiliated_base_number"), nil
		}
	case "fhvhv":
		if year <= 2020 {
			return split("hvfhs_license_num,dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"), nil
		}
		return split("hvfhs_license_num,dispatching_base_num,originating_base_num,request_datetime,on_scene_datetime,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,trip_miles,trip_time,base_passenger_fare,tolls,bcf,sales_tax,congestion_surcharge,airport_fee,tips,driver_pay,shared_request_flag,shared_match_flag,access_a_ride_flag,wav_request_flag,wav_match_flag"), nil
	}
	return nil, fmt.Errorf("%w: taxi type %q (want yellow, green, fhv or fhvhv)", ErrOptions, taxi)
}

func split(s string) []string { return strings.Split(s, ",") }

// Write streams a generated file to w.
func Write(w io.Writer, opts Options) (Stats, error) {
	if opts.Taxi == "" {
		opts.Taxi = "yellow"
	}
	if opts.Layout == 0 {
		opts.Layout = 2019
	}
	if opts.Month == 0 {
		opts.Month = 1
	}
	var st Stats
	switch {
	case opts.Layout < 2009 || opts.Layout > 2025:
		return st, fmt.Errorf("%w: layout year %d (want 2009–2025)", ErrOptions, opts.Layout)
	case opts.Month < 1 || opts.Month > 12:
		return st, fmt.Errorf("%w: month %d", ErrOptions, opts.Month)
	case opts.Rows < 0:
		return st, fmt.Errorf("%w: rows %d", ErrOptions, opts.Rows)
	case opts.BadRowRate < 0 || opts.BadRowRate > 1 || math.IsNaN(opts.BadRowRate):
		return st, fmt.Errorf("%w: bad-row rate %v (want 0–1)", ErrOptions, opts.BadRowRate)
	}
	header, err := Header(opts.Taxi, opts.Layout)
	if err != nil {
		return st, err
	}
	var zw *gzip.Writer
	out := w
	if opts.Gzip {
		if zw, err = gzip.NewWriterLevel(w, gzip.BestSpeed); err != nil {
			return st, fmt.Errorf("starting gzip: %w", err)
		}
		zw.ModTime = time.Time{} // deterministic bytes
		out = zw
	}
	cw := &countWriter{w: out}
	bw := bufio.NewWriterSize(cw, 1<<20)
	eol := "\n"
	if opts.CRLF {
		eol = "\r\n"
	}
	g := &generator{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)), header: header}
	for i, h := range header {
		n := strings.ToLower(strings.TrimSpace(h))
		g.names = append(g.names, n)
		if !untyped[n] {
			g.typed = append(g.typed, i)
		}
	}
	g.start = time.Date(opts.Layout, time.Month(opts.Month), 1, 0, 0, 0, 0, time.UTC).Unix()
	g.span = int64(time.Date(opts.Layout, time.Month(opts.Month)+1, 1, 0, 0, 0, 0, time.UTC).Unix() - g.start)
	bw.WriteString(strings.Join(header, ","))
	bw.WriteString(eol)
	line := make([]byte, 0, 512)
	for i := int64(0); i < opts.Rows; i++ {
		bad := opts.BadRowRate > 0 && g.rng.Float64() < opts.BadRowRate
		line = g.row(line[:0], bad)
		line = append(line, eol...)
		if _, err := bw.Write(line); err != nil {
			return st, fmt.Errorf("writing generated rows: %w", err)
		}
		st.Rows++
		if bad {
			st.BadRows++
		}
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("writing generated rows: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return st, fmt.Errorf("closing gzip: %w", err)
		}
	}
	st.Bytes = cw.n
	return st, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type generator struct {
	opts   Options
	rng    *rand.Rand
	header []string
	names  []string // lower-case header names
	typed  []int    // columns where an unparseable value is rejected (bad rows go there)
	start  int64
	span   int64
}

// trip is one generated trip; money in cents so that total = sum of the parts exactly.
type trip struct {
	pickup, dropoff                      int64 // unix seconds of NYC wall clock (as if UTC)
	passengers, ratecode, payment        int
	vendor                               int
	distanceCents                        int64 // miles × 100
	pu, do                               int
	fare, extra, mta, tip, tolls, improv int64
	congestion, airport, cbd, total      int64
	plon, plat, dlon, dlat               float64
}

func (g *generator) trip() trip {
	r := g.rng
	var t trip
	t.pickup = g.start + r.Int64N(g.span)
	// Distance: mostly short trips, a long tail to the airports.
	miles := 0.3 + r.ExpFloat64()*2.4
	if r.IntN(20) == 0 {
		miles = 10 + r.Float64()*12
	}
	t.distanceCents = int64(miles * 100)
	speed := 8 + r.Float64()*14 // mph
	dur := int64(miles/speed*3600) + 60 + r.Int64N(120)
	t.dropoff = t.pickup + dur
	t.passengers = 1 + int(r.ExpFloat64()*0.6)
	if t.passengers > 6 {
		t.passengers = 6
	}
	t.ratecode = 1
	if miles > 15 && r.IntN(3) == 0 {
		t.ratecode = 2
	}
	t.vendor = 1 + r.IntN(2)
	t.payment = 1
	if r.IntN(10) < 3 {
		t.payment = 2
	}
	t.pu, t.do = 1+r.IntN(263), 1+r.IntN(263)
	if r.IntN(100) == 0 {
		t.do = 264 + r.IntN(2)
	}
	// Fares in cents, following the 2019 yellow tariff loosely.
	t.fare = 250 + int64(miles*250) + dur/60*10
	t.fare -= t.fare % 50
	if t.ratecode == 2 {
		t.fare = 5200
	}
	year := g.opts.Layout
	h := time.Unix(t.pickup, 0).UTC().Hour()
	if h >= 20 || h < 6 {
		t.extra = 50
	} else if h >= 16 && h < 20 {
		t.extra = 100
	}
	t.mta = 50
	if year >= 2015 {
		t.improv = 30
		if year >= 2022 {
			t.improv = 100
		}
	}
	if year >= 2019 && t.do <= 263 {
		t.congestion = 250
	}
	if year >= 2022 && (t.pu == 132 || t.pu == 138) {
		t.airport = 175
	}
	if year >= 2025 && r.IntN(3) == 0 {
		t.cbd = 75
	}
	if r.IntN(30) == 0 {
		t.tolls = 655
	}
	if t.payment == 1 {
		t.tip = (t.fare + t.extra) * int64(15+r.IntN(11)) / 100
	}
	t.total = t.fare + t.extra + t.mta + t.tip + t.tolls + t.improv + t.congestion + t.airport + t.cbd
	// Coordinates around Manhattan for the pre-2016 layouts.
	t.plon, t.plat = -73.99+r.NormFloat64()*0.03, 40.75+r.NormFloat64()*0.03
	t.dlon, t.dlat = -73.98+r.NormFloat64()*0.04, 40.75+r.NormFloat64()*0.04
	return t
}

func appendTime(b []byte, unix int64) []byte {
	return time.Unix(unix, 0).UTC().AppendFormat(b, "2006-01-02 15:04:05")
}

// appendMoney writes cents like TLC does: 7, 0.5, 9.95.
func appendMoney(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	c := cents % 100
	switch {
	case c == 0:
	case c%10 == 0:
		b = append(b, '.', byte('0'+c/10))
	default:
		b = append(b, '.', byte('0'+c/10), byte('0'+c%10))
	}
	return b
}

func appendMiles(b []byte, hundredths int64) []byte {
	b = strconv.AppendInt(b, hundredths/100, 10)
	c := hundredths % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}

var bases = []string{"B02510", "B02512", "B02617", "B02682", "B02764", "B02765", "B02835", "B02864", "B02869", "B02872", "B02875", "B02877", "B02879", "B02882", "B02884", "B00013", "B00037", "B00111"}
var hvLicenses = []string{"HV0003", "HV0003", "HV0003", "HV0005", "HV0005", "HV0004"}

// row appends one CSV row (without the line end). A bad row carries one unparseable value.
func (g *generator) row(b []byte, bad bool) []byte {
	t := g.trip()
	r := g.rng
	badCol := -1
	if bad && len(g.typed) > 0 {
		badCol = g.typed[r.IntN(len(g.typed))]
	}
	for i, name := range g.names {
		if i > 0 {
			b = append(b, ',')
		}
		if i == badCol {
			b = append(b, badValues[r.IntN(len(badValues))]...)
			continue
		}
		b = g.field(b, name, &t)
	}
	return b
}

// untyped columns take any text (text codes, base numbers), so bad values never go there.
var untyped = map[string]bool{"vendor_name": true, "vendor_id": true, "vendorid": true, "payment_type": true,
	"dispatching_base_num": true, "originating_base_num": true, "affiliated_base_number": true, "hvfhs_license_num": true}

// badValues are unparseable in any typed column (the generator picks a column that has a type).
var badValues = []string{"abc", "12..5", "2019-13-45 25:61:00", "#N/A", "#VALUE!"} // not "N/A": a placeholder, null (issue 18)

func (g *generator) field(b []byte, name string, t *trip) []byte {
	year := g.opts.Layout
	floatInts := year >= 2025 // the 2025 files write integers as floats (1.0)
	intv := func(b []byte, v int) []byte {
		b = strconv.AppendInt(b, int64(v), 10)
		if floatInts {
			b = append(b, '.', '0')
		}
		return b
	}
	switch name {
	case "vendor_name", "vendor_id":
		if year <= 2014 {
			return append(b, []string{"CMT", "VTS"}[t.vendor-1]...)
		}
		return strconv.AppendInt(b, int64(t.vendor), 10)
	case "vendorid":
		v := t.vendor
		if g.opts.Taxi == "yellow" && year <= 2014 {
			return append(b, []string{"CMT", "VTS"}[v-1]...)
		}
		return strconv.AppendInt(b, int64(v), 10)
	case "trip_pickup_datetime", "pickup_datetime", "tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_date":
		return appendTime(b, t.pickup)
	case "trip_dropoff_datetime", "dropoff_datetime", "tpep_dropoff_datetime", "lpep_dropoff_datetime":
		return appendTime(b, t.dropoff)
	case "request_datetime":
		return appendTime(b, t.pickup-300)
	case "on_scene_datetime":
		return appendTime(b, t.pickup-60)
	case "passenger_count":
		return intv(b, t.passengers)
	case "trip_distance", "trip_miles":
		return appendMiles(b, t.distanceCents)
	case "trip_time":
		return strconv.AppendInt(b, t.dropoff-t.pickup, 10)
	case "start_lon", "pickup_longitude":
		return strconv.AppendFloat(b, t.plon, 'f', 6, 64)
	case "start_lat", "pickup_latitude":
		return strconv.AppendFloat(b, t.plat, 'f', 6, 64)
	case "end_lon", "dropoff_longitude":
		return strconv.AppendFloat(b, t.dlon, 'f', 6, 64)
	case "end_lat", "dropoff_latitude":
		return strconv.AppendFloat(b, t.dlat, 'f', 6, 64)
	case "rate_code", "ratecodeid":
		return intv(b, t.ratecode)
	case "store_and_forward", "store_and_fwd_flag":
		return append(b, 'N')
	case "pulocationid", "locationid":
		return strconv.AppendInt(b, int64(t.pu), 10)
	case "dolocationid":
		return strconv.AppendInt(b, int64(t.do), 10)
	case "payment_type":
		if year <= 2014 {
			return append(b, []string{"CRD", "CSH"}[t.payment-1]...)
		}
		return strconv.AppendInt(b, int64(t.payment), 10)
	case "fare_amt", "fare_amount", "base_passenger_fare":
		return appendMoney(b, t.fare)
	case "surcharge", "extra":
		return appendMoney(b, t.extra)
	case "mta_tax":
		return appendMoney(b, t.mta)
	case "tip_amt", "tip_amount", "tips":
		return appendMoney(b, t.tip)
	case "tolls_amt", "tolls_amount", "tolls":
		return appendMoney(b, t.tolls)
	case "improvement_surcharge":
		return appendMoney(b, t.improv)
	case "total_amt", "total_amount":
		return appendMoney(b, t.total)
	case "congestion_surcharge":
		return appendMoney(b, t.congestion)
	case "airport_fee":
		return appendMoney(b, t.airport)
	case "cbd_congestion_fee":
		return appendMoney(b, t.cbd)
	case "bcf":
		return appendMoney(b, t.fare/40)
	case "sales_tax":
		return appendMoney(b, t.fare*875/10000)
	case "driver_pay":
		return appendMoney(b, t.fare*7/10)
	case "ehail_fee":
		return b
	case "trip_type":
		return strconv.AppendInt(b, 1, 10)
	case "dispatching_base_num", "originating_base_num", "affiliated_base_number":
		return append(b, bases[(t.pu+t.vendor)%len(bases)]...)
	case "hvfhs_license_num":
		return append(b, hvLicenses[t.pu%len(hvLicenses)]...)
	case "sr_flag":
		return b
	case "shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag", "wav_match_flag":
		return append(b, 'N')
	}
	return b
}

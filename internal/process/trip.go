package process

import (
	"strconv"
	"time"
)

// The trip parser (this file and jsonscan.go) reads the canonical JSON trip record (DESIGN.md, record
// contract) with a hand-written scanner over the known keys instead of encoding/json: a batch is up to
// 10,000 records and the
// benchmark target is 100,000 trips/s per core, which reflection-based decoding into a struct with
// ~50 optional fields does not reach. The record is a flat object of scalars; keys the schema does not
// know (columns the converter kept under sanitised names) are skipped here — the Parquet schema is
// fixed — but they stay in the quarantine lines, which carry the original record verbatim.

// optF is an optional JSON number.
type optF struct {
	v  float64
	ok bool
}

// optI is an optional JSON integer (32 bits: ids and codes).
type optI struct {
	v  int32
	ok bool
}

// optS is an optional JSON string.
type optS struct {
	v  string
	ok bool
}

// optT is an optional RFC 3339 timestamp; local keeps the wall-clock fields of the text
// (New York time in canonical records) for pickup_date and pickup_hour.
type optT struct {
	t     time.Time // UTC instant
	date  string    // "YYYY-MM-DD" as written (local date)
	year  int
	hour  int32 // local hour as written
	ok    bool
	isSet bool // the key was present and not null (ok is false when it did not parse)
}

func (o *optF) ptr() *float64 {
	if o.ok {
		return &o.v
	}
	return nil
}

func (o *optI) ptr() *int32 {
	if o.ok {
		return &o.v
	}
	return nil
}

func (o *optS) ptr() *string {
	if o.ok {
		return &o.v
	}
	return nil
}

func (o *optT) ptr() *time.Time {
	if o.ok {
		return &o.t
	}
	return nil
}

// trip is one parsed canonical record.
type trip struct {
	recordID optS
	taxiType optS

	vendorID       optI
	vendorCode     optS
	pickup         optT
	dropoff        optT
	passengerCount optI
	tripDistance   optF
	ratecodeID     optI
	storeAndFwd    optS
	puLocation     optI
	doLocation     optI
	paymentType    optI
	paymentCode    optS

	fareAmount           optF
	extra                optF
	mtaTax               optF
	tipAmount            optF
	tollsAmount          optF
	improvementSurcharge optF
	totalAmount          optF
	congestionSurcharge  optF
	airportFee           optF
	cbdCongestionFee     optF
	ehailFee             optF
	tripType             optI

	pickupLongitude  optF
	pickupLatitude   optF
	dropoffLongitude optF
	dropoffLatitude  optF

	dispatchingBaseNum   optS
	affiliatedBaseNumber optS
	hvfhsLicenseNum      optS
	originatingBaseNum   optS
	srFlag               optI
	request              optT
	onScene              optT
	tripMiles            optF
	tripTime             optF // seconds; integer in the contract, kept as a number here and checked
	basePassengerFare    optF
	tolls                optF
	bcf                  optF
	salesTax             optF
	tips                 optF
	driverPay            optF
	sharedRequestFlag    optS
	sharedMatchFlag      optS
	accessARideFlag      optS
	wavRequestFlag       optS
	wavMatchFlag         optS

	// badFields lists the known keys whose JSON type is not the contract's (rule field_types).
	badFields []string
}

func (t *trip) bad(field string) { t.badFields = append(t.badFields, field) }

func (t *trip) num(field string, v value, o *optF) {
	switch v.k {
	case kNull:
		*o = optF{} // the last of repeated keys wins, as in encoding/json
		return
	case kNumber:
		f, err := strconv.ParseFloat(bstr(v.raw), 64)
		if err == nil {
			o.v, o.ok = f, true
			return
		}
	}
	t.bad(field)
}

func (t *trip) integer(field string, v value, o *optI) {
	switch v.k {
	case kNull:
		*o = optI{} // the last of repeated keys wins, as in encoding/json
		return
	case kNumber:
		if n, ok := atoi32(v.raw); ok {
			o.v, o.ok = n, true
			return
		}
		// "1.0" is 1 (integers written as floats in some files).
		f, err := strconv.ParseFloat(bstr(v.raw), 64)
		if err == nil && f == float64(int32(f)) {
			o.v, o.ok = int32(f), true
			return
		}
	}
	t.bad(field)
}

// atoi32 parses a plain decimal integer quickly.
func atoi32(b []byte) (int32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if n != int64(int32(n)) {
		return 0, false
	}
	return int32(n), true
}

func (t *trip) text(field string, v value, o *optS) {
	switch v.k {
	case kNull:
		*o = optS{} // the last of repeated keys wins, as in encoding/json
		return
	case kString:
		if s, ok := unquote(v); ok {
			o.v, o.ok = s, true
			return
		}
	}
	t.bad(field)
}

// flag reads a "Y"/"N" style code without allocating for the common values.
func (t *trip) flag(field string, v value, o *optS) {
	if v.k == kString && !v.esc {
		switch string(v.raw) {
		case "Y":
			o.v, o.ok = "Y", true
			return
		case "N":
			o.v, o.ok = "N", true
			return
		}
	}
	t.text(field, v, o)
}

func (t *trip) timestamp(field string, v value, o *optT) {
	switch v.k {
	case kNull:
		*o = optT{} // the last of repeated keys wins, as in encoding/json
		return
	case kString:
		o.isSet = true
		if !v.esc && parseTime(v.raw, o) {
			return
		}
	}
	t.bad(field)
}

// parseTime parses RFC 3339 text ("2019-01-01T00:46:40-05:00", fractions and Z allowed) into o.
func parseTime(b []byte, o *optT) bool {
	// Fast path: YYYY-MM-DDTHH:MM:SS then optional fraction then Z or ±HH:MM.
	if len(b) >= 20 && b[4] == '-' && b[7] == '-' && (b[10] == 'T' || b[10] == ' ') && b[13] == ':' && b[16] == ':' {
		y, ok1 := digits(b[0:4])
		mo, ok2 := digits(b[5:7])
		d, ok3 := digits(b[8:10])
		h, ok4 := digits(b[11:13])
		mi, ok5 := digits(b[14:16])
		sec, ok6 := digits(b[17:19])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && mo >= 1 && mo <= 12 && d >= 1 && h <= 23 && mi <= 59 && sec <= 59 {
			rest := b[19:]
			nsec := 0
			if len(rest) > 0 && rest[0] == '.' {
				j, scale := 1, 100000000
				for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
					if scale > 0 {
						nsec += int(rest[j]-'0') * scale
						scale /= 10
					}
					j++
				}
				if j == 1 {
					return false
				}
				rest = rest[j:]
			}
			off := 0
			switch {
			case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
			case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
				oh, okh := digits(rest[1:3])
				om, okm := digits(rest[4:6])
				if !okh || !okm || oh > 23 || om > 59 {
					return false
				}
				off = oh*3600 + om*60
				if rest[0] == '-' {
					off = -off
				}
			default:
				return false
			}
			local := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC)
			if local.Day() != d { // e.g. February 30
				return false
			}
			o.t = local.Add(-time.Duration(off) * time.Second)
			o.date = string(b[0:10])
			o.year = y
			o.hour = int32(h)
			o.ok = true
			return true
		}
	}
	return false
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// set assigns one known key; unknown keys are ignored.
func (t *trip) set(key []byte, v value) {
	switch string(key) {
	case "record_id":
		t.text("record_id", v, &t.recordID)
	case "taxi_type":
		if v.k == kString && !v.esc {
			switch string(v.raw) {
			case "yellow":
				t.taxiType = optS{"yellow", true}
				return
			case "green":
				t.taxiType = optS{"green", true}
				return
			case "fhv":
				t.taxiType = optS{"fhv", true}
				return
			case "fhvhv":
				t.taxiType = optS{"fhvhv", true}
				return
			}
		}
		t.text("taxi_type", v, &t.taxiType)
	case "vendor_id":
		t.integer("vendor_id", v, &t.vendorID)
	case "vendor_code":
		t.text("vendor_code", v, &t.vendorCode)
	case "pickup_datetime":
		t.timestamp("pickup_datetime", v, &t.pickup)
	case "dropoff_datetime":
		t.timestamp("dropoff_datetime", v, &t.dropoff)
	case "passenger_count":
		t.integer("passenger_count", v, &t.passengerCount)
	case "trip_distance":
		t.num("trip_distance", v, &t.tripDistance)
	case "ratecode_id":
		t.integer("ratecode_id", v, &t.ratecodeID)
	case "store_and_fwd_flag":
		t.flag("store_and_fwd_flag", v, &t.storeAndFwd)
	case "pu_location_id":
		t.integer("pu_location_id", v, &t.puLocation)
	case "do_location_id":
		t.integer("do_location_id", v, &t.doLocation)
	case "payment_type":
		t.integer("payment_type", v, &t.paymentType)
	case "payment_code":
		t.text("payment_code", v, &t.paymentCode)
	case "fare_amount":
		t.num("fare_amount", v, &t.fareAmount)
	case "extra":
		t.num("extra", v, &t.extra)
	case "mta_tax":
		t.num("mta_tax", v, &t.mtaTax)
	case "tip_amount":
		t.num("tip_amount", v, &t.tipAmount)
	case "tolls_amount":
		t.num("tolls_amount", v, &t.tollsAmount)
	case "improvement_surcharge":
		t.num("improvement_surcharge", v, &t.improvementSurcharge)
	case "total_amount":
		t.num("total_amount", v, &t.totalAmount)
	case "congestion_surcharge":
		t.num("congestion_surcharge", v, &t.congestionSurcharge)
	case "airport_fee":
		t.num("airport_fee", v, &t.airportFee)
	case "cbd_congestion_fee":
		t.num("cbd_congestion_fee", v, &t.cbdCongestionFee)
	case "ehail_fee":
		t.num("ehail_fee", v, &t.ehailFee)
	case "trip_type":
		t.integer("trip_type", v, &t.tripType)
	case "pickup_longitude":
		t.num("pickup_longitude", v, &t.pickupLongitude)
	case "pickup_latitude":
		t.num("pickup_latitude", v, &t.pickupLatitude)
	case "dropoff_longitude":
		t.num("dropoff_longitude", v, &t.dropoffLongitude)
	case "dropoff_latitude":
		t.num("dropoff_latitude", v, &t.dropoffLatitude)
	case "dispatching_base_num":
		t.text("dispatching_base_num", v, &t.dispatchingBaseNum)
	case "affiliated_base_number":
		t.text("affiliated_base_number", v, &t.affiliatedBaseNumber)
	case "hvfhs_license_num":
		t.text("hvfhs_license_num", v, &t.hvfhsLicenseNum)
	case "originating_base_num":
		t.text("originating_base_num", v, &t.originatingBaseNum)
	case "sr_flag":
		t.integer("sr_flag", v, &t.srFlag)
	case "request_datetime":
		t.timestamp("request_datetime", v, &t.request)
	case "on_scene_datetime":
		t.timestamp("on_scene_datetime", v, &t.onScene)
	case "trip_miles":
		t.num("trip_miles", v, &t.tripMiles)
	case "trip_time":
		t.num("trip_time", v, &t.tripTime)
	case "base_passenger_fare":
		t.num("base_passenger_fare", v, &t.basePassengerFare)
	case "tolls":
		t.num("tolls", v, &t.tolls)
	case "bcf":
		t.num("bcf", v, &t.bcf)
	case "sales_tax":
		t.num("sales_tax", v, &t.salesTax)
	case "tips":
		t.num("tips", v, &t.tips)
	case "driver_pay":
		t.num("driver_pay", v, &t.driverPay)
	case "shared_request_flag":
		t.flag("shared_request_flag", v, &t.sharedRequestFlag)
	case "shared_match_flag":
		t.flag("shared_match_flag", v, &t.sharedMatchFlag)
	case "access_a_ride_flag":
		t.flag("access_a_ride_flag", v, &t.accessARideFlag)
	case "wav_request_flag":
		t.flag("wav_request_flag", v, &t.wavRequestFlag)
	case "wav_match_flag":
		t.flag("wav_match_flag", v, &t.wavMatchFlag)
	}
}

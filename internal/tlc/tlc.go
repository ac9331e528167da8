// Package tlc is the schema of the NYC TLC trip records: the canonical field names of the record contract,
// the header aliases seen in real files 2009–2025 (yellow, green, fhv, fhvhv), the JSON type of every field,
// the old text codes and the taxi type detection. See docs/record-contract.md and ../shared/TLC-FIELDS.md.
package tlc

import (
	"path"
	"strconv"
	"strings"
)

// Kind is the JSON type (and conversion) of a field.
type Kind uint8

const (
	// KindText is a column the schema does not know: a number where the text is already a valid JSON
	// number, null when empty, else a string.
	KindText    Kind = iota
	KindInt          // integer or null; "1.0" is 1, "1.5" is rejected
	KindNumber       // number or null, the source digits kept exactly
	KindTime         // RFC 3339 with the America/New_York offset, or null
	KindString       // string or null (spaces trimmed)
	KindFlag         // "Y", "N" or null ("1"/"0" map to "Y"/"N")
	KindVendor       // vendor_id integer; text codes VTS/CMT/DDS → vendor_id (+ vendor_code)
	KindPayment      // payment_type integer; text codes CRD/CSH/... → payment_type (+ payment_code)
)

func (k Kind) String() string {
	switch k {
	case KindInt:
		return "integer"
	case KindNumber:
		return "number"
	case KindTime:
		return "datetime"
	case KindString:
		return "string"
	case KindFlag:
		return "flag"
	case KindVendor:
		return "vendor"
	case KindPayment:
		return "payment"
	}
	return "text"
}

// Taxi types.
const (
	Yellow = "yellow"
	Green  = "green"
	FHV    = "fhv"
	FHVHV  = "fhvhv"
)

// Field is a canonical field of the record contract.
type Field struct {
	Name    string
	Kind    Kind
	Aliases []string // lower-case header names that map to this field
}

// Fields lists every canonical field with its aliases (compared after Normalize).
var Fields = []Field{
	{"vendor_id", KindVendor, []string{"vendorid", "vendor_id", "vendor_name"}},
	{"pickup_datetime", KindTime, []string{"tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime", "pickup_date"}},
	{"dropoff_datetime", KindTime, []string{"tpep_dropoff_datetime", "lpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime"}},
	{"passenger_count", KindInt, []string{"passenger_count"}},
	{"trip_distance", KindNumber, []string{"trip_distance"}},
	{"pickup_longitude", KindNumber, []string{"pickup_longitude", "start_lon"}},
	{"pickup_latitude", KindNumber, []string{"pickup_latitude", "start_lat"}},
	{"dropoff_longitude", KindNumber, []string{"dropoff_longitude", "end_lon"}},
	{"dropoff_latitude", KindNumber, []string{"dropoff_latitude", "end_lat"}},
	{"ratecode_id", KindInt, []string{"ratecodeid", "rate_code", "rate_code_id", "ratecode_id"}},
	{"store_and_fwd_flag", KindFlag, []string{"store_and_fwd_flag", "store_and_forward"}},
	{"pu_location_id", KindInt, []string{"pulocationid", "pickup_location_id", "locationid", "pu_location_id"}},
	{"do_location_id", KindInt, []string{"dolocationid", "dropoff_location_id", "do_location_id"}},
	{"payment_type", KindPayment, []string{"payment_type"}},
	{"fare_amount", KindNumber, []string{"fare_amount", "fare_amt"}},
	{"extra", KindNumber, []string{"extra", "surcharge"}},
	{"mta_tax", KindNumber, []string{"mta_tax"}},
	{"tip_amount", KindNumber, []string{"tip_amount", "tip_amt"}},
	{"tolls_amount", KindNumber, []string{"tolls_amount", "tolls_amt"}},
	{"improvement_surcharge", KindNumber, []string{"improvement_surcharge"}},
	{"total_amount", KindNumber, []string{"total_amount", "total_amt"}},
	{"congestion_surcharge", KindNumber, []string{"congestion_surcharge"}},
	{"airport_fee", KindNumber, []string{"airport_fee"}},
	{"cbd_congestion_fee", KindNumber, []string{"cbd_congestion_fee"}},
	{"ehail_fee", KindNumber, []string{"ehail_fee"}},
	{"trip_type", KindInt, []string{"trip_type"}},
	// FHV and high-volume FHV.
	{"dispatching_base_num", KindString, []string{"dispatching_base_num", "dispatching_base_number"}},
	{"sr_flag", KindInt, []string{"sr_flag"}},
	{"affiliated_base_number", KindString, []string{"affiliated_base_number"}},
	{"hvfhs_license_num", KindString, []string{"hvfhs_license_num"}},
	{"originating_base_num", KindString, []string{"originating_base_num"}},
	{"request_datetime", KindTime, []string{"request_datetime"}},
	{"on_scene_datetime", KindTime, []string{"on_scene_datetime"}},
	{"trip_miles", KindNumber, []string{"trip_miles"}},
	{"trip_time", KindInt, []string{"trip_time"}},
	{"base_passenger_fare", KindNumber, []string{"base_passenger_fare"}},
	{"tolls", KindNumber, []string{"tolls"}},
	{"bcf", KindNumber, []string{"bcf"}},
	{"sales_tax", KindNumber, []string{"sales_tax"}},
	{"tips", KindNumber, []string{"tips"}},
	{"driver_pay", KindNumber, []string{"driver_pay"}},
	{"shared_request_flag", KindFlag, []string{"shared_request_flag"}},
	{"shared_match_flag", KindFlag, []string{"shared_match_flag"}},
	{"access_a_ride_flag", KindFlag, []string{"access_a_ride_flag"}},
	{"wav_request_flag", KindFlag, []string{"wav_request_flag"}},
	{"wav_match_flag", KindFlag, []string{"wav_match_flag"}},
}

// Companion fields written next to vendor_id and payment_type when the file had a text code.
const (
	VendorCode  = "vendor_code"
	PaymentCode = "payment_code"
)

var byAlias = func() map[string]*Field {
	m := make(map[string]*Field)
	for i := range Fields {
		for _, a := range Fields[i].Aliases {
			if _, dup := m[a]; dup {
				panic("tlc: duplicate alias " + a)
			}
			m[a] = &Fields[i]
		}
	}
	return m
}()

// Normalize trims spaces, a UTF-8 BOM and surrounding quotes from a header name and lower-cases it.
func Normalize(name string) string {
	return strings.ToLower(Trim(name))
}

// Trim removes surrounding spaces, a UTF-8 BOM and one pair of surrounding double quotes.
func Trim(name string) string {
	name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), "\ufeff"))
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		name = strings.TrimSpace(name[1 : len(name)-1])
	}
	return name
}

// Lookup returns the canonical field a header name stands for.
func Lookup(header string) (*Field, bool) {
	f, ok := byAlias[Normalize(header)]
	return f, ok
}

// Sanitize turns a header name the schema does not know into a snake_case key: lower case, runs of
// anything but [a-z0-9] become '_'. An empty name or a pandas index ("Unnamed: 0") becomes
// column_<pos> (1-based position).
func Sanitize(header string, pos int) string {
	n := Normalize(header)
	if n == "" || strings.HasPrefix(n, "unnamed:") {
		return "column_" + strconv.Itoa(pos)
	}
	var b strings.Builder
	us := false
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if us && b.Len() > 0 {
				b.WriteByte('_')
			}
			us = false
			b.WriteByte(c)
		} else {
			us = true
		}
	}
	if b.Len() == 0 {
		return "column_" + strconv.Itoa(pos)
	}
	return b.String()
}

// IsTrip reports whether a header is a TLC trip layout: it names a pickup time.
func IsTrip(headers []string) bool {
	for _, h := range headers {
		if f, ok := Lookup(h); ok && f.Name == "pickup_datetime" {
			return true
		}
	}
	return false
}

// DetectTaxiType tells the taxi type from the header names, falling back to the file name
// (yellow_/green_/fhv_/fhvhv_ prefixes as TLC names its files) and then to yellow for layouts with
// fares (the 2010–2014 yellow names are generic). It returns "" for a header that is not a trip layout.
func DetectTaxiType(headers []string, fileName string) string {
	if !IsTrip(headers) {
		return ""
	}
	has := map[string]bool{}
	for _, h := range headers {
		n := Normalize(h)
		has[n] = true
		if f, ok := byAlias[n]; ok {
			has[f.Name] = true
		}
	}
	switch {
	case has["hvfhs_license_num"]:
		return FHVHV
	case has["dispatching_base_num"]:
		return FHV
	case has["tpep_pickup_datetime"], has["trip_pickup_datetime"], has["vendor_name"]:
		return Yellow
	case has["lpep_pickup_datetime"], has["ehail_fee"], has["trip_type"]:
		return Green
	}
	if t := TaxiTypeFromName(fileName); t != "" {
		return t
	}
	if has["fare_amount"] || has["total_amount"] {
		return Yellow
	}
	return FHV
}

// TaxiTypeFromName tells the taxi type from a TLC-style file name (e.g. green_tripdata_2019-01.csv).
func TaxiTypeFromName(name string) string {
	b := strings.ToLower(path.Base(strings.ReplaceAll(name, "\\", "/")))
	switch {
	case strings.Contains(b, "fhvhv"):
		return FHVHV
	case strings.Contains(b, "yellow"):
		return Yellow
	case strings.Contains(b, "green"):
		return Green
	case strings.Contains(b, "fhv"):
		return FHV
	}
	return ""
}

// VendorCodes maps the text vendor codes of 2009–2014 to vendor_id; ok with id 0 means "no numeric code"
// (DDS: vendor_id null, vendor_code kept).
func VendorCodes(code string) (id int, ok bool) {
	switch strings.ToUpper(code) {
	case "CMT":
		return 1, true
	case "VTS":
		return 2, true
	case "DDS":
		return 0, true
	}
	return 0, false
}

// PaymentCodes maps the text payment codes of 2009–2014 to payment_type.
func PaymentCodes(code string) (int, bool) {
	switch strings.ToUpper(strings.TrimSpace(code)) {
	case "CRD", "CRE", "CREDIT":
		return 1, true
	case "CAS", "CSH", "CASH":
		return 2, true
	case "NOC", "NO CHARGE":
		return 3, true
	case "DIS", "DISPUTE":
		return 4, true
	case "UNK":
		return 5, true
	}
	return 0, false
}

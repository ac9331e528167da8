package tlc

import "testing"

func TestLookup(t *testing.T) {
	for in, want := range map[string]string{
		"\ufeffVendorID": "vendor_id", " pickup_datetime": "pickup_datetime", "Trip_type ": "trip_type", `"PUlocationID"`: "pu_location_id",
		"Trip_Pickup_DateTime": "pickup_datetime", "Start_Lon": "pickup_longitude", "surcharge": "extra", "Airport_fee": "airport_fee",
		"Dispatching_base_number": "dispatching_base_num", "rate_code_id": "ratecode_id", "pickup_location_id": "pu_location_id",
	} {
		f, ok := Lookup(in)
		if !ok || f.Name != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", in, f, ok, want)
		}
	}
	if _, ok := Lookup("Borough"); ok {
		t.Error("Borough is not a trip field")
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		pos  int
		want string
	}{{"", 1, "column_1"}, {"Unnamed: 0", 4, "column_4"}, {"Test Bool", 2, "test_bool"}, {" --x--Y-- ", 3, "x_y"}, {"ü", 5, "column_5"}} {
		if got := Sanitize(tc.in, tc.pos); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDetectTaxiType(t *testing.T) {
	for _, tc := range []struct {
		header []string
		file   string
		want   string
	}{
		{[]string{"VendorID", "tpep_pickup_datetime"}, "", Yellow},
		{[]string{"VendorID", "lpep_pickup_datetime"}, "", Green},
		{[]string{"vendor_name", "Trip_Pickup_DateTime"}, "", Yellow},
		{[]string{"Dispatching_base_num", "Pickup_date", "locationID"}, "", FHV},
		{[]string{"hvfhs_license_num", "dispatching_base_num", "pickup_datetime"}, "", FHVHV},
		{[]string{"vendor_id", "pickup_datetime", "fare_amount"}, "x/green_tripdata_2014.csv", Green},
		{[]string{"vendor_id", "pickup_datetime", "fare_amount"}, "", Yellow},
		{[]string{"LocationID", "Borough"}, "yellow.csv", ""},
	} {
		if got := DetectTaxiType(tc.header, tc.file); got != tc.want {
			t.Errorf("DetectTaxiType(%v, %q) = %q, want %q", tc.header, tc.file, got, tc.want)
		}
	}
}

func TestCodes(t *testing.T) {
	for code, want := range map[string]int{"CRD": 1, "Cre": 1, "CREDIT": 1, "CAS": 2, "Cash": 2, "CSH": 2, "NOC": 3, "No Charge": 3, "DIS": 4, "Dispute": 4, "UNK": 5} {
		if got, ok := PaymentCodes(code); !ok || got != want {
			t.Errorf("PaymentCodes(%q) = %d, %v; want %d", code, got, ok, want)
		}
	}
	if id, ok := VendorCodes("DDS"); !ok || id != 0 {
		t.Errorf("DDS: %d %v", id, ok)
	}
	if id, _ := VendorCodes("VTS"); id != 2 {
		t.Errorf("VTS: %d", id)
	}
}

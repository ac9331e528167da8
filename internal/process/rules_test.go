package process

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/testenv"
)

const baseYellow = `"record_id":"r","taxi_type":"yellow","pickup_datetime":"2019-01-15T03:36:12-05:00",` +
	`"dropoff_datetime":"2019-01-15T03:42:19-05:00","passenger_count":1,"trip_distance":1.0,"pu_location_id":230,` +
	`"do_location_id":48,"fare_amount":6.5,"extra":0.5,"mta_tax":0.5,"tip_amount":1.95,"tolls_amount":0,` +
	`"improvement_surcharge":0.3,"total_amount":9.75`

// yellowWith is the base yellow record with fields replaced or added (later keys win in parseTrip).
func yellowWith(extra string) []byte {
	if extra == "" {
		return []byte("{" + baseYellow + "}\n")
	}
	return []byte("{" + baseYellow + "," + extra + "}\n")
}

func TestRules(t *testing.T) {
	tests := []struct {
		name      string
		rec       string
		wantRules []string
		wantFlags []string
	}{
		{"valid", string(yellowWith("")), nil, nil},
		{"field_types", string(yellowWith(`"fare_amount":"6.5"`)), []string{RuleFieldTypes}, nil},
		{"bad timestamp", string(yellowWith(`"dropoff_datetime":"2019-02-30T00:00:00-05:00"`)), []string{RuleFieldTypes}, nil},
		{"record_id_present", string(yellowWith(`"record_id":""`)), []string{RuleRecordID}, nil},
		{"taxi_type_known", string(yellowWith(`"taxi_type":"limo"`)), []string{RuleTaxiType}, nil},
		{"pickup_present", string(yellowWith(`"pickup_datetime":null`)), []string{RulePickupPresent}, nil},
		{"dropoff_present", string(yellowWith(`"dropoff_datetime":null`)), []string{RuleDropoffPresent}, nil},
		{"fhv without dropoff", `{"record_id":"f","taxi_type":"fhv","dispatching_base_num":"B00013","pickup_datetime":"2015-01-01T00:30:00-05:00","pu_location_id":null}`, nil, nil},
		{"pickup_year_plausible old", string(yellowWith(`"pickup_datetime":"2002-12-31T23:00:00-05:00","dropoff_datetime":"2002-12-31T23:10:00-05:00"`)), []string{RulePickupYear}, nil},
		{"pickup_year_plausible future", string(yellowWith(`"pickup_datetime":"2088-01-01T00:00:00-05:00","dropoff_datetime":"2088-01-01T00:10:00-05:00"`)), []string{RulePickupYear}, nil},
		{"pickup_before_dropoff", string(yellowWith(`"dropoff_datetime":"2019-01-15T03:30:00-05:00"`)), []string{RulePickupBeforeDropoff}, nil},
		{"duration zero", string(yellowWith(`"dropoff_datetime":"2019-01-15T03:36:12-05:00"`)), []string{RuleDuration}, nil},
		{"duration over 24h", string(yellowWith(`"dropoff_datetime":"2019-01-16T03:36:13-05:00"`)), []string{RuleDuration}, nil},
		{"duration exactly 24h", string(yellowWith(`"dropoff_datetime":"2019-01-16T03:36:12-05:00","trip_distance":20`)), nil, nil},
		{"speed_plausible", string(yellowWith(`"trip_distance":20`)), []string{RuleSpeed}, nil},
		{"distance_non_negative", string(yellowWith(`"trip_distance":-1`)), []string{RuleDistance}, nil},
		{"amounts_non_negative", string(yellowWith(`"fare_amount":-6.5,"total_amount":-6.5,"tip_amount":0,"extra":0,"mta_tax":0,"improvement_surcharge":0`)), []string{RuleAmounts}, nil},
		{"passenger_count_range", string(yellowWith(`"passenger_count":10`)), []string{RulePassengers}, nil},
		{"passenger zero ok", string(yellowWith(`"passenger_count":0`)), nil, nil},
		{"location_id_range", string(yellowWith(`"pu_location_id":0,"do_location_id":266`)), []string{RuleLocation, RuleLocation}, nil},
		{"location 265 ok", string(yellowWith(`"do_location_id":265`)), nil, nil},
		{"total_consistent flag", string(yellowWith(`"total_amount":12.25`)), nil, []string{RuleTotal}},
		{"total within tolerance", string(yellowWith(`"total_amount":9.80`)), nil, nil},
		{"DST offset", string(yellowWith(`"pickup_datetime":"2019-07-01T10:00:00-04:00","dropoff_datetime":"2019-07-01T10:10:00-04:00"`)), nil, nil},
		{"fhvhv", `{"record_id":"h","taxi_type":"fhvhv","hvfhs_license_num":"HV0003","pickup_datetime":"2019-02-01T00:05:18-05:00","dropoff_datetime":"2019-02-01T00:14:57-05:00","pu_location_id":245,"do_location_id":251,"trip_miles":2.45,"trip_time":579,"base_passenger_fare":9.35,"tips":0,"driver_pay":7.48}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr trip
			if err := parseTrip([]byte(tt.rec), &tr); err != nil {
				t.Fatal(err)
			}
			var d derived
			var got []string
			for _, r := range validate(&tr, testNow, &d) {
				got = append(got, r.Rule)
				if r.Detail == "" {
					t.Errorf("rule %s without a detail", r.Rule)
				}
			}
			if diff := cmp.Diff(tt.wantRules, got); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFlags, d.flags); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRulesDocumented keeps RULES.md and the doc comment of Rules in step with the rule table.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile("RULES.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("rules.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules {
		if !strings.Contains(string(doc), "`"+r.Name+"`") {
			t.Errorf("RULES.md does not document rule %s", r.Name)
		}
		if !strings.Contains(string(src), "//\t"+r.Name+" ") {
			t.Errorf("the doc comment of Rules does not list %s", r.Name)
		}
	}
}

func TestParseTrip(t *testing.T) {
	var tr trip
	rec := `{"record_id":"a\"b","taxi_type":"yellow","vendor_id":1.0,"pickup_datetime":"2019-01-01T00:46:40.5Z",` +
		`"passenger_count":null,"fare_amount":1e1,"column_1":{"x":[1,"}"]},"test_bool":true,"store_and_fwd_flag":"Y"}` + "\n"
	if err := parseTrip([]byte(rec), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.recordID.v != `a"b` || tr.vendorID != (optI{1, true}) || tr.passengerCount.ok || tr.fareAmount != (optF{10, true}) || tr.storeAndFwd.v != "Y" {
		t.Errorf("parsed %+v", tr)
	}
	if tr.pickup.t.Format("2006-01-02T15:04:05.000Z07:00") != "2019-01-01T00:46:40.500Z" || tr.pickup.hour != 0 || tr.pickup.date != "2019-01-01" {
		t.Errorf("pickup %+v", tr.pickup)
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a":}`, `{"a":1,}`, `{"a":1} x`, `{"a" 1}`, `{"a":nul}`, `{"a":"x`} {
		var tr trip
		if err := parseTrip([]byte(bad), &tr); err == nil {
			t.Errorf("parseTrip(%q) = nil, want an error", bad)
		}
	}
}

func FuzzParseTrip(f *testing.F) {
	f.Add(yellowWith(""))
	f.Add([]byte(`{"record_id":"x","pickup_datetime":"2019-01-01T00:00:00+14:00","column_1":[{"a":"]"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tr trip
		if err := parseTrip(data, &tr); err != nil {
			return
		}
		var d derived
		_ = validate(&tr, testNow, &d)
	})
}

// TestLoadZonesShared loads the three real zone lookup variants (quoted + CRLF, current, lower-case header).
func TestLoadZonesShared(t *testing.T) {
	dir := testenv.TLCDir(t)
	tests := []struct {
		file       string
		id264      Zone
		id265      Zone
		wantZones  int
		id1Borough string
	}{
		{"taxi_zone_lookup_2017.csv", Zone{264, "Unknown", "NV", "N/A"}, Zone{265, "Unknown", "NA", "N/A"}, 265, "EWR"},
		{"taxi_zone_lookup_2024.csv", Zone{264, "Unknown", "N/A", "N/A"}, Zone{265, "N/A", "Outside of NYC", "N/A"}, 265, "EWR"},
		{"taxi_zone_lookup_lowercase.csv", Zone{}, Zone{}, 265, "EWR"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			z := zonesFile(t, dir, tt.file)
			if z.Len() != tt.wantZones {
				t.Errorf("%d zones, want %d", z.Len(), tt.wantZones)
			}
			got, ok := z.Lookup(132)
			if want := (Zone{132, "Queens", "JFK Airport", "Airports"}); !ok || got != want {
				t.Errorf("zone 132 = %+v, want %+v", got, want)
			}
			if got, _ := z.Lookup(1); got.Borough != tt.id1Borough {
				t.Errorf("zone 1 = %+v", got)
			}
			if tt.id264.ID != 0 {
				if got, _ := z.Lookup(264); got != tt.id264 {
					t.Errorf("zone 264 = %+v, want %+v", got, tt.id264)
				}
				if got, _ := z.Lookup(265); got != tt.id265 {
					t.Errorf("zone 265 = %+v, want %+v", got, tt.id265)
				}
			}
		})
	}
}

func TestLoadZonesErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no service_zone": "LocationID,Borough,Zone\n1,EWR,Newark Airport\n",
		"bad id":          "LocationID,Borough,Zone,service_zone\nx,EWR,Newark Airport,EWR\n",
		"repeated id":     "LocationID,Borough,Zone,service_zone\n1,EWR,a,EWR\n1,EWR,b,EWR\n",
		"empty":           "",
		"header only":     "LocationID,Borough,Zone,service_zone\n",
	} {
		if _, err := LoadZones(strings.NewReader(in)); err == nil {
			t.Errorf("%s: LoadZones succeeded, want an error", name)
		}
	}
	z, err := LoadZones(strings.NewReader("\ufeff Zone , service_zone,LOCATIONID,borough\r\nA,B,7,C\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := z.Lookup(7); got != (Zone{7, "C", "A", "B"}) {
		t.Errorf("zone 7 = %+v", got)
	}
}

// TestScannerStringWords checks the eight-bytes-at-a-time string scan against a byte by byte one, on
// strings with quotes, backslashes, control characters and UTF-8 at every offset of a word.
func TestScannerStringWords(t *testing.T) {
	ref := func(b []byte) (raw []byte, esc, ok bool) {
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				return b[1:i], esc, true
			case c == '\\':
				esc = true
				i++
			case c < 0x20:
				return nil, false, false
			}
		}
		return nil, false, false
	}
	alphabet := []byte("ab\"\\\x00\x1f\x7f é\xff0")
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 20000; n++ {
		b := []byte{'"'}
		for l := rng.IntN(30); l > 0; l-- {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(4) > 0 {
			b = append(b, '"', ',')
		}
		s := scanner{b: b}
		raw, esc, ok := s.str()
		wraw, wesc, wok := ref(b)
		if ok != wok || esc != wesc || string(raw) != string(wraw) {
			t.Fatalf("str(%q) = %q %v %v, want %q %v %v", b, raw, esc, ok, wraw, wesc, wok)
		}
	}
}

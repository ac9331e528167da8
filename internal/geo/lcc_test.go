package geo

import (
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"testing"
)

// TestLCCGuidanceNoteExample is the worked example of EPSG Guidance Note 7-2 for method 9802 (Lambert
// conic conformal, 2SP): NAD27 / Texas South Central, Clarke 1866, US survey feet.
func TestLCCGuidanceNoteExample(t *testing.T) {
	clarke1866 := ellipsoid{a: 6378206.400, invF: 294.97869821}
	dms := func(d, m float64) float64 { return d + m/60 }
	p, err := newLCC(clarke1866, dms(27, 50), -99, dms(28, 23), dms(30, 17), 2000000, 0, usFoot, "US survey foot")
	if err != nil {
		t.Fatal(err)
	}
	x, y := p.forward(-96, 28.5)
	const wantX, wantY = 2963503.91, 254759.80 // published to the hundredth of a foot
	if math.Abs(x-wantX) > 0.005 || math.Abs(y-wantY) > 0.005 {
		t.Errorf("forward(96°W, 28°30'N) = %.3f, %.3f; want %.2f, %.2f", x, y, wantX, wantY)
	}
	lon, lat := p.inverse(wantX, wantY)
	if math.Abs(lon+96) > 1e-7 || math.Abs(lat-28.5) > 1e-7 {
		t.Errorf("inverse(%.2f, %.2f) = %.9f, %.9f; want -96, 28.5", wantX, wantY, lon, lat)
	}
}

// TestPRJIsEPSG2263 reads TLC's .prj and checks it is EPSG:2263's definition.
func TestPRJIsEPSG2263(t *testing.T) {
	p, err := projectionFromPRJ(tlcPRJ)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := p.(*lcc)
	if !ok {
		t.Fatalf("projection %T, want *lcc", p)
	}
	// EPSG:2263: lat_0 40°10'N, lon_0 74°W, lat_1 41°02'N, lat_2 40°40'N, x_0 300,000 m, y_0 0, US survey feet.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"latitude of origin", l.lat0Deg, 40 + 10.0/60},
		{"central meridian", l.lon0Deg, -74},
		{"standard parallel 1", l.lat1Deg, 40 + 40.0/60},
		{"standard parallel 2", l.lat2Deg, 41 + 2.0/60},
		{"false easting (m)", l.fe * l.unit, 300000},
		{"false northing", l.fn, 0},
		{"unit (m)", l.unit, 1200.0 / 3937},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %.12g, want %.12g", c.name, c.got, c.want)
		}
	}
}

// TestLCCMatchesPROJ compares the projection of TLC's .prj with PROJ 9.1.1 (through GDAL's ogr2ogr,
// testdata/make_reference.sh) on 3,000 points in and around New York.
func TestLCCMatchesPROJ(t *testing.T) {
	p, err := projectionFromPRJ(tlcPRJ)
	if err != nil {
		t.Fatal(err)
	}
	ref := readReference(t)
	var worstF, worstI float64
	for _, r := range ref {
		x, y := p.forward(r.lon, r.lat)
		worstF = max(worstF, math.Hypot(x-r.x, y-r.y))
		lon, lat := p.inverse(r.x, r.y)
		worstI = max(worstI, math.Hypot(lon-r.lon, lat-r.lat))
	}
	// PROJ's output is written to 1/10,000 ft; the input to 1e-7°.
	if worstF > 0.0002 {
		t.Errorf("forward differs from PROJ by up to %.5f ft", worstF)
	}
	if worstI > 1e-9 {
		t.Errorf("inverse differs from the input by up to %.2g°", worstI)
	}
	t.Logf("%d points: forward within %.5f ft of PROJ, inverse within %.2g°", len(ref), worstF, worstI)
}

func TestLCCRoundTrip(t *testing.T) {
	p, err := projectionFromPRJ(tlcPRJ)
	if err != nil {
		t.Fatal(err)
	}
	for lat := 38.0; lat <= 44; lat += 0.25 {
		for lon := -80.0; lon <= -68; lon += 0.5 {
			x, y := p.forward(lon, lat)
			l2, p2 := p.inverse(x, y)
			if math.Abs(l2-lon) > 1e-10 || math.Abs(p2-lat) > 1e-10 {
				t.Fatalf("round trip of %g, %g gives %.12f, %.12f", lon, lat, l2, p2)
			}
		}
	}
}

// tlcPRJ is the .prj of TLC's taxi_zones.zip (2015), byte for byte.
const tlcPRJ = `PROJCS["NAD_1983_StatePlane_New_York_Long_Island_FIPS_3104_Feet",GEOGCS["GCS_North_American_1983",DATUM["D_North_American_1983",SPHEROID["GRS_1980",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Lambert_Conformal_Conic"],PARAMETER["False_Easting",984250.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",-74.0],PARAMETER["Standard_Parallel_1",40.66666666666666],PARAMETER["Standard_Parallel_2",41.03333333333333],PARAMETER["Latitude_Of_Origin",40.16666666666666],UNIT["Foot_US",0.3048006096012192]]`

// refPoint is one line of testdata/gdal_reference.csv.
type refPoint struct {
	lon, lat, x, y float64
	ids            []int32 // zones GDAL found the point in, ascending
}

func readReference(t testing.TB) []refPoint {
	t.Helper()
	f, err := os.Open("testdata/gdal_reference.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []refPoint
	for _, r := range rows[1:] {
		var p refPoint
		vals := []*float64{&p.lon, &p.lat, &p.x, &p.y}
		for i, v := range vals {
			if *v, err = strconv.ParseFloat(r[i], 64); err != nil {
				t.Fatalf("reference line %v: %v", r, err)
			}
		}
		if r[4] != "" {
			for _, s := range splitSemi(r[4]) {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("reference line %v: %v", r, err)
				}
				p.ids = append(p.ids, int32(n))
			}
		}
		out = append(out, p)
	}
	if len(out) < 1000 {
		t.Fatalf("reference has %d points", len(out))
	}
	return out
}

func splitSemi(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ';' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

package geo

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/taxistream/taxistream/internal/testenv"
)

var (
	tlcOnce sync.Once
	tlcMap  *Map
	tlcErr  error
)

// tlcShapes loads ../shared/data/tlc/zones/taxi_zones.zip (skips when ../shared is absent, fails under CI).
func tlcShapes(t testing.TB) *Map {
	t.Helper()
	dir := testenv.TLCDir(t)
	tlcOnce.Do(func() {
		var b []byte
		if b, tlcErr = os.ReadFile(filepath.Join(dir, "zones", "taxi_zones.zip")); tlcErr == nil {
			tlcMap, tlcErr = Load(b)
		}
	})
	if tlcErr != nil {
		t.Fatal(tlcErr)
	}
	return tlcMap
}

// bruteForce is even–odd point-in-polygon over every ring of every zone, lowest zone first.
func (m *Map) bruteForce(x, y float64) (int32, bool) {
	for z, rings := range m.rings {
		in := false
		for _, r := range rings {
			for k := 2; k < len(r); k += 2 {
				x1, y1, x2, y2 := r[k-2], r[k-1], r[k], r[k+1]
				if (y1 > y) != (y2 > y) && x < x1+(y-y1)*(x2-x1)/(y2-y1) {
					in = !in
				}
			}
		}
		if in {
			return m.zones[z].ID, true
		}
	}
	return 0, false
}

// borderDistance is the distance in metres from lon/lat to the nearest edge of the map's zones.
func (m *Map) borderDistance(lon, lat float64) float64 {
	x, y := lon, lat
	if m.proj != nil {
		x, y = m.proj.forward(lon, lat)
	}
	best := math.Inf(1)
	for _, rings := range m.rings {
		for _, r := range rings {
			for k := 2; k < len(r); k += 2 {
				x1, y1, x2, y2 := r[k-2], r[k-1], r[k], r[k+1]
				dx, dy := x2-x1, y2-y1
				u := 0.0
				if l := dx*dx + dy*dy; l > 0 {
					u = max(0, min(1, ((x-x1)*dx+(y-y1)*dy)/l))
				}
				best = min(best, math.Hypot(x1+u*dx-x, y1+u*dy-y))
			}
		}
	}
	if m.proj != nil {
		return best * m.proj.(*lcc).unit
	}
	return best * 111_000 // degrees: an upper bound is enough here
}

func TestShapefileZones(t *testing.T) {
	m := tlcShapes(t)
	if m.Len() != 263 {
		t.Errorf("%d zones, want 263", m.Len())
	}
	if diff := cmp.Diff([]string{"56→57", "103→104", "103→105"}, m.Renumbered); diff != "" {
		t.Errorf("Renumbered (-want +got):\n%s", diff)
	}
	var ids []int32
	for _, z := range m.Zones() {
		ids = append(ids, z.ID)
	}
	for i, id := range ids {
		if id != int32(i+1) {
			t.Fatalf("zone ids %v…, want 1..263 (57, 104 and 105 from OBJECTID)", ids[:i+1])
		}
	}
	t.Log(m)
}

// TestKnownPoints: places well inside their zones (more than 150 m from any border).
func TestKnownPoints(t *testing.T) {
	m := tlcShapes(t)
	for _, c := range []struct {
		place    string
		lon, lat float64
		want     int32
		zone     string
	}{
		{"JFK Terminal 4", -73.7822, 40.6441, 132, "JFK Airport"},
		{"LaGuardia Terminal B", -73.8740, 40.7769, 138, "LaGuardia Airport"},
		{"Central Park, the Great Lawn", -73.9665, 40.7812, 43, "Central Park"},
		{"Newark Airport Terminal B", -74.1745, 40.6895, 1, "Newark Airport"},
		{"Staten Island, Todt Hill", -74.1502, 40.5795, 118, "Heartland Village/Todt Hill"},
		{"Staten Island, St. George", -74.0790, 40.6420, 206, "Saint George/New Brighton"},
		{"Times Square", -73.9855, 40.7580, 230, "Times Sq/Theatre District"},
	} {
		t.Run(c.place, func(t *testing.T) {
			id, ok := m.Locate(c.lon, c.lat)
			if !ok || id != c.want {
				t.Fatalf("Locate(%g, %g) = %d, %v; want %d", c.lon, c.lat, id, ok, c.want)
			}
			if z := m.Zones()[id-1]; z.Name != c.zone {
				t.Errorf("zone %d is %q in the shapefile, want %q", id, z.Name, c.zone)
			}
			if d := m.borderDistance(c.lon, c.lat); d < 150 {
				t.Errorf("the point is %.0f m from a border, not well inside", d)
			}
		})
	}
}

// TestShapefileMatchesGDAL compares Locate with GDAL/SpatiaLite's ST_Within on PROJ-projected points
// (testdata/gdal_reference.csv, 3,000 points): the same zone, or none, for every point.
func TestShapefileMatchesGDAL(t *testing.T) {
	m := tlcShapes(t)
	ref := readReference(t)
	in, multi := 0, 0
	for _, r := range ref {
		id, ok := m.Locate(r.lon, r.lat)
		switch {
		case len(r.ids) == 0 && ok:
			t.Errorf("(%g, %g): Locate says %d, GDAL finds no zone", r.lon, r.lat, id)
		case len(r.ids) > 0 && (!ok || id != r.ids[0]):
			t.Errorf("(%g, %g): Locate says %d, %v; GDAL says %v", r.lon, r.lat, id, ok, r.ids)
		}
		if len(r.ids) > 0 {
			in++
		}
		if len(r.ids) > 1 {
			multi++
		}
	}
	t.Logf("%d points, %d in a zone (%d in more than one), all agree", len(ref), in, multi)
}

// TestIndexMatchesBruteForce: the grid gives what even–odd point-in-polygon over every ring gives, on
// random points and on points a hair away from vertices (where the grid's paths pass close to edges).
func TestIndexMatchesBruteForce(t *testing.T) {
	m := tlcShapes(t)
	rng := rand.New(rand.NewPCG(18, 1))
	g := m.grid
	check := func(x, y float64) {
		t.Helper()
		got, ok1 := m.locateXY(x, y)
		want, ok2 := m.bruteForce(x, y)
		if got != want || ok1 != ok2 {
			t.Fatalf("(%.6f, %.6f): grid %d, %v; brute force %d, %v", x, y, got, ok1, want, ok2)
		}
	}
	for range 6000 {
		check(g.x0+rng.Float64()*g.w*float64(g.nx), g.y0+rng.Float64()*g.h*float64(g.ny))
	}
	for range 2000 {
		z := m.rings[rng.IntN(len(m.rings))]
		r := z[rng.IntN(len(z))]
		k := 2 * rng.IntN(len(r)/2)
		check(r[k]+(rng.Float64()-0.5)*0.01, r[k+1]+(rng.Float64()-0.5)*0.01) // within 1/100 ft
	}
}

// TestLonLatGridMatchesProjection: a lookup answered by the longitude/latitude grid (no projection) is
// the one the projection and the grid give, on random points, on points a hair from vertices and on
// points exactly on the longitude/latitude cells' corners.
func TestLonLatGridMatchesProjection(t *testing.T) {
	m := tlcShapes(t)
	if m.ll == nil {
		t.Fatal("no longitude/latitude grid for a projected map")
	}
	rng := rand.New(rand.NewPCG(18, 4))
	direct := 0
	check := func(lon, lat float64) {
		t.Helper()
		got, ok1 := m.Locate(lon, lat)
		want, ok2 := m.locateXY(m.proj.forward(lon, lat))
		if got != want || ok1 != ok2 {
			t.Fatalf("(%.9f, %.9f): Locate %d, %v; projected %d, %v", lon, lat, got, ok1, want, ok2)
		}
		if _, ok := m.ll.find(lon, lat); ok {
			direct++
		}
	}
	l := m.ll
	for range 50000 {
		check(l.lon0+rng.Float64()*float64(l.nbx)/l.invBW, l.lat0+rng.Float64()*float64(l.nby)/l.invBH)
	}
	for range 20000 {
		z := m.rings[rng.IntN(len(m.rings))]
		r := z[rng.IntN(len(z))]
		k := 2 * rng.IntN(len(r)/2)
		lon, lat := m.proj.inverse(r[k], r[k+1])
		check(lon+(rng.Float64()-0.5)*1e-5, lat+(rng.Float64()-0.5)*1e-5) // within a metre
	}
	for range 50000 { // within 0.7 ft of an edge: around the margin of the leaves' boxes
		z := m.rings[rng.IntN(len(m.rings))]
		r := z[rng.IntN(len(z))]
		k := 2 * rng.IntN(len(r)/2-1)
		f := rng.Float64()
		x, y := r[k]+f*(r[k+2]-r[k])+(rng.Float64()-0.5)*1.4, r[k+1]+f*(r[k+3]-r[k+1])+(rng.Float64()-0.5)*1.4
		check(m.proj.inverse(x, y))
	}
	for range 20000 { // leaf corners
		i, j := rng.IntN(l.nbx*llLeaf), rng.IntN(l.nby*llLeaf)
		check(l.lon0+float64(i)/llLeaf/l.invBW, l.lat0+float64(j)/llLeaf/l.invBH)
	}
	t.Logf("%d of 140,000 lookups answered without projecting", direct)
}

// TestLonLatGridAnswersMostSamplePoints: the longitude/latitude grid answers at least 80 % of the 2015
// sample's usable coordinates without projecting them (85 % today, 48 % with the former single level:
// docs/zones.md, "Cost"). A count, not a timing: it fails when a change to the grid's layout or margin
// quietly sends most real lookups back through the projection, which the answers alone would not show.
func TestLonLatGridAnswersMostSamplePoints(t *testing.T) {
	m := tlcShapes(t)
	usable, direct := 0, 0
	for _, p := range samplePoints(t) {
		if !Usable(p[0], p[1]) {
			continue
		}
		usable++
		if _, ok := m.ll.find(p[0], p[1]); ok {
			direct++
		}
	}
	if usable < 3000 {
		t.Fatalf("%d usable sample coordinates: want the whole sample", usable)
	}
	if direct*5 < usable*4 {
		t.Errorf("%d of %d sample coordinates answered without projecting (%.1f %%), want at least 80 %%", direct, usable, 100*float64(direct)/float64(usable))
	}
	t.Logf("%d of %d sample coordinates answered without projecting (%.1f %%)", direct, usable, 100*float64(direct)/float64(usable))
}

// TestGeoJSONOfShapefileAgrees writes the official shapes as a WGS 84 GeoJSON FeatureCollection
// (vertices through the inverse projection, encoded by go-geom), loads it with LoadGeoJSON and
// compares the two maps on 5,000 random points: they agree except within a metre of a border (an
// edge that is straight in feet is a little curved in degrees).
func TestGeoJSONOfShapefileAgrees(t *testing.T) {
	m := tlcShapes(t)
	fc := geojson.FeatureCollection{}
	for z, rings := range m.rings {
		mp := geom.NewMultiPolygon(geom.XY)
		for _, r := range rings {
			flat := make([]float64, len(r))
			for k := 0; k < len(r); k += 2 {
				flat[k], flat[k+1] = m.proj.inverse(r[k], r[k+1])
			}
			if err := mp.Push(geom.NewPolygonFlat(geom.XY, flat, []int{len(flat)})); err != nil {
				t.Fatal(err)
			}
		}
		fc.Features = append(fc.Features, &geojson.Feature{Geometry: mp, Properties: map[string]any{"LocationID": m.zones[z].ID}})
	}
	b, err := json.Marshal(&fc)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	compareMaps(t, m, g, 5000, 1)
}

// TestGDALGeoJSONAgrees converts the shapefile with GDAL's ogr2ogr (PROJ inside) to a WGS 84 GeoJSON
// and compares LoadGeoJSON's map of it with the shapefile's on 5,000 random points.
func TestGDALGeoJSONAgrees(t *testing.T) {
	m := tlcShapes(t)
	ogr, err := exec.LookPath("ogr2ogr")
	if err != nil {
		t.Skip("skipped: ogr2ogr is not installed (Debian gdal-bin); TestShapefileMatchesGDAL covers the same ground from testdata/gdal_reference.csv")
	}
	out := filepath.Join(t.TempDir(), "zones.geojson")
	src := "/vsizip/" + filepath.Join(testenv.TLCDir(t), "zones", "taxi_zones.zip") + "/taxi_zones.shp"
	cmd := exec.Command(ogr, "-f", "GeoJSON", "-t_srs", "EPSG:4326", "-lco", "COORDINATE_PRECISION=9", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ogr2ogr: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	// GDAL's export keeps the repeated LocationIDs (56, 103): compare modulo the renumbering.
	same := map[int32]int32{57: 56, 104: 103, 105: 103}
	compareMapsMod(t, m, g, 5000, 1, same)
}

func compareMaps(t *testing.T, a, b *Map, n int, metres float64) {
	compareMapsMod(t, a, b, n, metres, nil)
}

// compareMapsMod locates n random points of the zones' bounding box in a and b; an answer of a is
// mapped through same before comparing. Disagreements farther than metres from a border fail.
func compareMapsMod(t *testing.T, a, b *Map, n int, metres float64, same map[int32]int32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(18, 2))
	agree, near, inside := 0, 0, 0
	for range n {
		lon, lat := -74.26+rng.Float64()*0.56, 40.49+rng.Float64()*0.43
		ia, oka := a.Locate(lon, lat)
		ib, okb := b.Locate(lon, lat)
		if v, ok := same[ia]; ok {
			ia = v
		}
		if oka {
			inside++
		}
		if ia == ib && oka == okb {
			agree++
			continue
		}
		d := a.borderDistance(lon, lat)
		if d > metres {
			t.Errorf("(%.7f, %.7f): %d, %v vs %d, %v, %.2f m from a border", lon, lat, ia, oka, ib, okb, d)
			continue
		}
		near++
	}
	t.Logf("%d random points (%d in a zone): %d agree, %d differ within %g m of a border", n, inside, agree, near, metres)
}

// TestThirdPartyGeoJSON reads the WGS 84 export in ../shared: 262 polygonal zones, 1/264/265 are
// Points (skipped: they contain nothing), so a point at Newark Airport is in no zone there. The export
// is a different drawing of the zones (some neighbourhoods merged into one polygon shared by several
// LocationIDs, others redrawn), so it is a reader test, not a reference: see docs/zones.md.
func TestThirdPartyGeoJSON(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.TLCDir(t), "zones", "taxi_zones_wgs84.geojson"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 262 || g.Skipped != 3 {
		t.Errorf("%d zones, %d skipped; want 262 and 3 (the Points 1, 264, 265)", g.Len(), g.Skipped)
	}
	if !slices.ContainsFunc(g.SharedGeometry, func(ids []int32) bool { return slices.Equal(ids, []int32{163, 230}) }) {
		t.Errorf("SharedGeometry %v does not list 163 and 230", g.SharedGeometry)
	}
	if id, ok := g.Locate(-74.1745, 40.6895); ok {
		t.Errorf("Newark Airport is a Point in the export, but Locate found zone %d", id)
	}
	for _, c := range []struct {
		lon, lat float64
		want     int32
	}{{-73.9665, 40.7812, 43}, {-73.8740, 40.7769, 138}, {-73.9855, 40.7580, 163}} {
		if id, ok := g.Locate(c.lon, c.lat); !ok || id != c.want {
			t.Errorf("Locate(%g, %g) = %d, %v; want %d", c.lon, c.lat, id, ok, c.want)
		}
	}
}

func TestLocateUnusable(t *testing.T) {
	m, err := Load(writeShapefileZip(t, []testShape{{objectID: 1, locationID: 1, rings: [][]float64{square(-1, -1, 2)}}}, wgs84PRJ, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]float64{{0, 0}, {0, 0.5}, {0.5, 0}, {math.NaN(), 0.5}, {0.5, math.Inf(1)}, {181, 0.5}, {0.5, -91}} {
		if id, ok := m.Locate(p[0], p[1]); ok {
			t.Errorf("Locate(%v, %v) = %d; want not usable", p[0], p[1], id)
		}
	}
	if id, ok := m.Locate(0.5, 0.5); !ok || id != 1 {
		t.Errorf("Locate(0.5, 0.5) = %d, %v; want 1", id, ok)
	}
}

// BenchmarkLocate: lookups of WGS 84 points (projection included) in TLC's shapes, on the pickup and
// dropoff coordinates of the real 2015 sample (Manhattan-heavy, like the trips), one core.
func BenchmarkLocate(b *testing.B) {
	m := tlcShapes(b)
	pts := samplePoints(b)
	b.ReportAllocs()
	b.ResetTimer()
	found := 0
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		p := pts[i]
		if _, ok := m.Locate(p[0], p[1]); ok {
			found++
		}
		if i++; i == len(pts) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "lookups/cpu-s")
	if found == 0 {
		b.Fatal("no point located")
	}
}

// BenchmarkLocateUniform: lookups of points spread evenly over the zones' bounding box.
func BenchmarkLocateUniform(b *testing.B) {
	m := tlcShapes(b)
	rng := rand.New(rand.NewPCG(1, 1))
	pts := make([][2]float64, 4096)
	for i := range pts {
		pts[i] = [2]float64{-74.26 + rng.Float64()*0.56, 40.49 + rng.Float64()*0.43}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		p := pts[i&4095]
		m.Locate(p[0], p[1])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "lookups/cpu-s")
}

// samplePoints reads the coordinates of ../shared/data/tlc/samples/yellow_tripdata_2015-01_head.csv.
func samplePoints(b testing.TB) [][2]float64 {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.TLCDir(b), "samples", "yellow_tripdata_2015-01_head.csv"))
	if err != nil {
		b.Fatal(err)
	}
	var pts [][2]float64
	lines := slices.Collect(splitLines(string(raw)))
	for _, l := range lines[1:] {
		f := splitComma(l)
		if len(f) < 11 {
			continue
		}
		// VendorID,pickup,dropoff,passenger_count,trip_distance,pickup_longitude,pickup_latitude,
		// RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,...
		for _, c := range [][2]int{{5, 6}, {9, 10}} {
			var lon, lat float64
			if err := json.Unmarshal([]byte(f[c[0]]), &lon); err != nil {
				continue
			}
			if err := json.Unmarshal([]byte(f[c[1]]), &lat); err != nil {
				continue
			}
			pts = append(pts, [2]float64{lon, lat})
		}
	}
	if len(pts) < 1000 {
		b.Fatalf("%d sample points", len(pts))
	}
	return pts
}

func splitLines(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		start := 0
		for i := 0; i <= len(s); i++ {
			if i == len(s) || s[i] == '\n' {
				l := s[start:i]
				if len(l) > 0 && l[len(l)-1] == '\r' {
					l = l[:len(l)-1]
				}
				if l != "" && !yield(l) {
					return
				}
				start = i + 1
			}
		}
	}
}

// cpuTime is the user+system CPU time of the process (the machine is shared: per-core speed is
// better told by CPU time than by wall time).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// BenchmarkLoadShapefile: reading TLC's zip and building the index, as a cold start does.
func BenchmarkLoadShapefile(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testenv.TLCDir(b), "zones", "taxi_zones.zip"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(data); err != nil {
			b.Fatal(err)
		}
	}
}

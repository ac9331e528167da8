package geo

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testShape is one record of a shapefile written by writeShapefileZip.
type testShape struct {
	objectID, locationID int
	zone, borough        string
	rings                [][]float64 // nil: a null shape
}

// shpBytes writes the .shp and .shx of shapes (polygons, or null shapes).
func shpBytes(shapes []testShape) (shp, shx []byte) {
	var recs [][]byte
	for _, s := range shapes {
		var b []byte
		if s.rings == nil {
			b = binary.LittleEndian.AppendUint32(b, shpNull)
		} else {
			np := 0
			for _, r := range s.rings {
				np += len(r) / 2
			}
			b = binary.LittleEndian.AppendUint32(b, shpPolygon)
			for range 4 { // bounding box (not read)
				b = binary.LittleEndian.AppendUint64(b, 0)
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(len(s.rings)))
			b = binary.LittleEndian.AppendUint32(b, uint32(np))
			at := 0
			for _, r := range s.rings {
				b = binary.LittleEndian.AppendUint32(b, uint32(at))
				at += len(r) / 2
			}
			for _, r := range s.rings {
				for _, v := range r {
					b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
				}
			}
		}
		recs = append(recs, b)
	}
	header := func(total int) []byte {
		h := make([]byte, shpHeader)
		binary.BigEndian.PutUint32(h[0:], shpFileCode)
		binary.BigEndian.PutUint32(h[24:], uint32(total/2))
		binary.LittleEndian.PutUint32(h[28:], 1000)
		binary.LittleEndian.PutUint32(h[32:], shpPolygon)
		return h
	}
	var body, idx []byte
	off := shpHeader
	for i, r := range recs {
		idx = binary.BigEndian.AppendUint32(idx, uint32(off/2))
		idx = binary.BigEndian.AppendUint32(idx, uint32(len(r)/2))
		body = binary.BigEndian.AppendUint32(body, uint32(i+1))
		body = binary.BigEndian.AppendUint32(body, uint32(len(r)/2))
		body = append(body, r...)
		off += 8 + len(r)
	}
	return append(header(shpHeader+len(body)), body...), append(header(shpHeader+len(idx)), idx...)
}

// dbfBytes writes a dBase III table with the given columns (N for numbers, C for text).
func dbfBytes(cols []string, types string, rows [][]string) []byte {
	widths := make([]int, len(cols))
	for i := range cols {
		widths[i] = 10
		if types[i] == 'C' {
			widths[i] = 60
		}
	}
	rlen := 1
	for _, w := range widths {
		rlen += w
	}
	hlen := 32 + 32*len(cols) + 1
	b := make([]byte, 32)
	b[0] = 3
	binary.LittleEndian.PutUint32(b[4:], uint32(len(rows)))
	binary.LittleEndian.PutUint16(b[8:], uint16(hlen))
	binary.LittleEndian.PutUint16(b[10:], uint16(rlen))
	for i, c := range cols {
		d := make([]byte, 32)
		copy(d, c)
		d[11] = types[i]
		d[16] = byte(widths[i])
		b = append(b, d...)
	}
	b = append(b, 0x0d)
	for _, r := range rows {
		b = append(b, ' ')
		for i, v := range r {
			f := fmt.Sprintf("%*s", widths[i], v)
			if types[i] == 'C' {
				f = fmt.Sprintf("%-*s", widths[i], v)
			}
			b = append(b, f[:widths[i]]...)
		}
	}
	return append(b, 0x1a)
}

type zipMember struct {
	name string
	data []byte
}

func zipBytes(t testing.TB, members ...zipMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		w, err := zw.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeShapefileZip writes shapes as a zipped shapefile in folder/ (like TLC's newer zips), with the
// given .prj; objectID false leaves the OBJECTID column out.
func writeShapefileZip(t testing.TB, shapes []testShape, prj string, objectID bool) []byte {
	t.Helper()
	shp, shx := shpBytes(shapes)
	cols, types := []string{"OBJECTID", "zone", "LocationID", "borough"}, "NCNC"
	if !objectID {
		cols, types = cols[1:], types[1:]
	}
	var rows [][]string
	for _, s := range shapes {
		r := []string{fmt.Sprint(s.objectID), s.zone, fmt.Sprint(s.locationID), s.borough}
		if !objectID {
			r = r[1:]
		}
		rows = append(rows, r)
	}
	return zipBytes(t,
		zipMember{"taxi_zones/taxi_zones.shp", shp},
		zipMember{"taxi_zones/taxi_zones.shx", shx},
		zipMember{"taxi_zones/taxi_zones.dbf", dbfBytes(cols, types, rows)},
		zipMember{"taxi_zones/taxi_zones.prj", []byte(prj)},
	)
}

const wgs84PRJ = `GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]`

// square returns a closed counter-clockwise square ring.
func square(x0, y0, side float64) []float64 {
	return []float64{x0, y0, x0 + side, y0, x0 + side, y0 + side, x0, y0 + side, x0, y0}
}

// testShapes: three zones in lon/lat; 56 is repeated on two shapes (OBJECTID 56 and 57), 7 has a hole,
// 9 is two squares (a multipolygon), and a null shape.
func testShapes() []testShape {
	return []testShape{
		{objectID: 56, locationID: 56, zone: "Corona", borough: "Queens", rings: [][]float64{square(-74, 40.7, 0.01)}},
		{objectID: 57, locationID: 56, zone: "Corona", borough: "Queens", rings: [][]float64{square(-73.98, 40.7, 0.01)}},
		{objectID: 7, locationID: 7, zone: "Astoria", borough: "Queens", rings: [][]float64{square(-74, 40.72, 0.03), square(-73.99, 40.73, 0.01)}},
		{objectID: 9, locationID: 9, zone: "Two", borough: "Bronx", rings: [][]float64{square(-74, 40.76, 0.01), square(-73.96, 40.76, 0.01)}},
		{objectID: 10, locationID: 10, zone: "Nothing", borough: "Bronx"},
	}
}

func TestLoadShapefileZip(t *testing.T) {
	m, err := Load(writeShapefileZip(t, testShapes(), wgs84PRJ, true))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"56→57"}, m.Renumbered); diff != "" {
		t.Errorf("Renumbered (-want +got):\n%s", diff)
	}
	var ids []int32
	for _, z := range m.Zones() {
		ids = append(ids, z.ID)
	}
	if diff := cmp.Diff([]int32{7, 9, 56, 57}, ids); diff != "" {
		t.Errorf("zones (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		name     string
		lon, lat float64
		want     int32 // 0: none
	}{
		{"first of the repeated 56", -73.995, 40.705, 56},
		{"second of the repeated 56 is OBJECTID 57", -73.975, 40.705, 57},
		{"between them", -73.985, 40.705, 0},
		{"ring of 7", -73.995, 40.725, 7},
		{"hole of 7", -73.985, 40.735, 0},
		{"first part of 9", -73.995, 40.765, 9},
		{"second part of 9", -73.955, 40.765, 9},
		{"between the parts of 9", -73.975, 40.765, 0},
		{"far away", -70, 40, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, ok := m.Locate(c.lon, c.lat)
			if !ok {
				id = 0
			}
			if id != c.want {
				t.Errorf("Locate(%g, %g) = %d, %v; want %d", c.lon, c.lat, id, ok, c.want)
			}
		})
	}
}

func TestLoadShapefileRepeatedIDWithoutObjectIDMerges(t *testing.T) {
	m, err := Load(writeShapefileZip(t, testShapes(), wgs84PRJ, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, lon := range []float64{-73.995, -73.975} {
		if id, ok := m.Locate(lon, 40.705); !ok || id != 56 {
			t.Errorf("Locate(%g, 40.705) = %d, %v; want 56 (the repeated shapes merged)", lon, id, ok)
		}
	}
}

func TestLoadShapefileErrors(t *testing.T) {
	good := testShapes()
	shp, shx := shpBytes(good)
	dbf := dbfBytes([]string{"OBJECTID", "LocationID"}, "NN", [][]string{{"56", "56"}, {"57", "56"}, {"7", "7"}, {"9", "9"}, {"10", "10"}})
	nad27 := strings.Replace(tlcPRJ, "D_North_American_1983", "D_North_American_1927", 1)
	tm := strings.Replace(tlcPRJ, "Lambert_Conformal_Conic", "Transverse_Mercator", 1)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"not a zip or geojson", []byte("hello"), "neither a zipped shapefile nor GeoJSON"},
		{"broken zip", []byte("PK\x03\x04garbage"), "opening shapefile zip"},
		{"no prj", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbf}), "no .prj file"},
		{"two shapefiles", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbf}, zipMember{"b.prj", []byte(wgs84PRJ)}), "files of 2 shapefiles"},
		{"NAD27", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte(nad27)}), `datum "D_North_American_1927"`},
		{"transverse mercator", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte(tm)}), `projection "Transverse_Mercator"`},
		{"prj not wkt", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte("EPSG:2263")}), "reading .prj"},
		{"not a shp", zipBytes(t, zipMember{"a.shp", dbf}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte(wgs84PRJ)}), "not a shapefile"},
		{"shx count", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.shx", shx[:len(shx)-8]}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte(wgs84PRJ)}), "the .shx indexes 4 shapes, the .shp holds 5"},
		{"dbf count", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbfBytes([]string{"LocationID"}, "N", [][]string{{"1"}})}, zipMember{"a.prj", []byte(wgs84PRJ)}), "the .dbf has 1 records, the .shp 5 shapes"},
		{"no LocationID", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbfBytes([]string{"id"}, "N", [][]string{{"1"}, {"2"}, {"3"}, {"4"}, {"5"}})}, zipMember{"a.prj", []byte(wgs84PRJ)}), "no LocationID column (columns: id)"},
		{"LocationID not a number", zipBytes(t, zipMember{"a.shp", shp}, zipMember{"a.dbf", dbfBytes([]string{"LocationID"}, "C", [][]string{{"x"}, {"2"}, {"3"}, {"4"}, {"5"}})}, zipMember{"a.prj", []byte(wgs84PRJ)}), `.dbf record 1: LocationID "x": not an integer`},
		{"cut shp", zipBytes(t, zipMember{"a.shp", shp[:len(shp)-20]}, zipMember{"a.dbf", dbf}, zipMember{"a.prj", []byte(wgs84PRJ)}), "does not fit the file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: %v; want an error containing %q", err, c.want)
			}
		})
	}
}

// FuzzReadSHP: any bytes give shapes or an error, never a panic or a runaway allocation.
func FuzzReadSHP(f *testing.F) {
	shp, _ := shpBytes(testShapes())
	f.Add(shp)
	f.Add(shp[:120])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		shapes, err := readSHP(b)
		if err == nil {
			for _, s := range shapes {
				for _, r := range s {
					if len(r)%2 != 0 {
						t.Fatalf("ring of %d values", len(r))
					}
				}
			}
		}
	})
}

// FuzzReadDBF: any bytes give a table whose rows all have one value per column, or an error.
func FuzzReadDBF(f *testing.F) {
	f.Add(dbfBytes([]string{"OBJECTID", "zone"}, "NC", [][]string{{"1", "a"}, {"2", "b"}}))
	f.Add([]byte{3, 0, 0, 0, 1, 0, 0, 0, 65, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := readDBF(b)
		if err != nil {
			return
		}
		for _, r := range tab.rows {
			if len(r) != len(tab.names) {
				t.Fatalf("row of %d values for %d columns", len(r), len(tab.names))
			}
		}
	})
}

// FuzzParseWKT: any text parses or errors; what parses also reads as a projection or errors.
func FuzzParseWKT(f *testing.F) {
	f.Add(tlcPRJ)
	f.Add(wgs84PRJ)
	f.Add(`PROJCS["x",GEOGCS["y",DATUM["WGS_1984",SPHEROID["a",6378137,298.257223563]]],PROJECTION["Lambert_Conformal_Conic_1SP"],PARAMETER["latitude_of_origin",40],PARAMETER["central_meridian",-74],UNIT["metre",1]]`)
	f.Add(`A[B[C[D[`)
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseWKT(s); err != nil {
			return
		}
		p, err := projectionFromPRJ(s)
		if err == nil && p != nil {
			p.forward(-74, 40.7)
			p.inverse(1e6, 2e5)
		}
	})
}

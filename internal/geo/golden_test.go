package geo

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/locate_golden.bin.gz from the current code")

// goldenFile pins the answers of the index (and of the longitude/latitude grid in front of it) on TLC's
// shapes: written by the code of issue 18 before the index was made faster (issue 18's cost target), and
// checked against every later version, so a faster index is proven to answer exactly as the old one did —
// on the edges and vertices too, where brute-force even–odd is not a reference (TestIndexMatchesBruteForce
// skips nothing, but random points never land on an edge).
const goldenFile = "testdata/locate_golden.bin.gz"

// goldenCase is one lookup: in longitude/latitude (Locate) or in the shapes' feet (locateXY).
type goldenCase struct {
	feet bool
	a, b float64
}

// unit returns a float in [0, 1) from the generator's raw bits (independent of rand's Float64).
func unit(rng *rand.PCG) float64 { return float64(rng.Uint64()>>11) / (1 << 53) }

// goldenCases are the lookups the golden file answers, from TLC's shapes and the 2015 sample only (not
// from the index's own layout, which may change): uniform points over and around New York, points a
// hair from vertices and exactly on vertices and edge midpoints (in feet and, inverse-projected, in
// degrees), the sample's pickups and dropoffs, and points within a foot of an edge in degrees.
func goldenCases(m *Map, sample [][2]float64) []goldenCase {
	rng := rand.NewPCG(18, 2024)
	var cs []goldenCase
	for range 40000 {
		cs = append(cs, goldenCase{false, -74.30 + 0.65*unit(rng), 40.45 + 0.50*unit(rng)})
	}
	vertex := func() (x1, y1, x2, y2 float64) {
		z := m.rings[rng.Uint64()%uint64(len(m.rings))]
		r := z[rng.Uint64()%uint64(len(z))]
		k := 2 * int(rng.Uint64()%uint64(len(r)/2-1))
		return r[k], r[k+1], r[k+2], r[k+3]
	}
	p := m.proj.(*lcc)
	for range 20000 {
		x1, y1, x2, y2 := vertex()
		switch rng.Uint64() % 6 {
		case 0: // a vertex, in feet
			cs = append(cs, goldenCase{true, x1, y1})
		case 1: // an edge's midpoint, in feet
			cs = append(cs, goldenCase{true, (x1 + x2) / 2, (y1 + y2) / 2})
		case 2: // within 1/100 ft of a vertex
			cs = append(cs, goldenCase{true, x1 + (unit(rng)-0.5)*0.01, y1 + (unit(rng)-0.5)*0.01})
		case 3: // within a foot of an edge
			f := unit(rng)
			cs = append(cs, goldenCase{true, x1 + f*(x2-x1) + unit(rng) - 0.5, y1 + f*(y2-y1) + unit(rng) - 0.5})
		case 4: // a vertex, in degrees
			lon, lat := p.inverse(x1, y1)
			cs = append(cs, goldenCase{false, lon, lat})
		default: // within about a metre of a vertex, in degrees
			lon, lat := p.inverse(x1, y1)
			cs = append(cs, goldenCase{false, lon + (unit(rng)-0.5)*2e-5, lat + (unit(rng)-0.5)*2e-5})
		}
	}
	for _, s := range sample {
		cs = append(cs, goldenCase{false, s[0], s[1]})
	}
	// Within a foot of an edge, inverse-projected to degrees: where the longitude/latitude grid must
	// send the point to be projected (added after the cases above so their answers kept their places).
	for range 10000 {
		x1, y1, x2, y2 := vertex()
		f := unit(rng)
		lon, lat := p.inverse(x1+f*(x2-x1)+unit(rng)-0.5, y1+f*(y2-y1)+unit(rng)-0.5)
		cs = append(cs, goldenCase{false, lon, lat})
	}
	return cs
}

// goldenAnswers answers the cases: one little-endian int16 each, the LocationID or -1 for none.
func goldenAnswers(m *Map, cs []goldenCase) []byte {
	out := make([]byte, 0, 2*len(cs))
	for _, c := range cs {
		var id int32
		var ok bool
		if c.feet {
			id, ok = m.locateXY(c.a, c.b)
		} else {
			id, ok = m.Locate(c.a, c.b)
		}
		if !ok {
			id = -1
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(int16(id)))
	}
	return out
}

// TestLocateGolden: the index answers every golden lookup exactly as the index it replaced did.
func TestLocateGolden(t *testing.T) {
	m := tlcShapes(t)
	cs := goldenCases(m, samplePoints(t))
	got := goldenAnswers(m, cs)
	if *updateGolden {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(got)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.FromSlash(goldenFile), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d lookups", goldenFile, len(cs))
		return
	}
	f, err := os.Open(filepath.FromSlash(goldenFile))
	if err != nil {
		t.Fatal(err) // in-repo fixture: missing is a failure
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("golden file has %d lookups, the cases are %d", len(want)/2, len(got)/2)
	}
	bad := 0
	located := 0
	for i, c := range cs {
		w := int16(binary.LittleEndian.Uint16(want[2*i:]))
		g := int16(binary.LittleEndian.Uint16(got[2*i:]))
		if w >= 0 {
			located++
		}
		if w != g {
			if bad++; bad <= 10 {
				t.Errorf("case %d (feet %v) %.9f, %.9f: got %d, golden %d", i, c.feet, c.a, c.b, g, w)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d lookups differ from the golden file", bad, len(cs))
	}
	if located < len(cs)/4 {
		t.Fatalf("only %d of %d golden lookups are in a zone", located, len(cs))
	}
	t.Logf("%d lookups (%d in a zone) as in %s", len(cs), located, goldenFile)
}

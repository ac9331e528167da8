package geo

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
)

// The shapefile is read by hand: the two Go readers (github.com/jonas-p/go-shp,
// github.com/twpayne/go-shapefile) are not served by the module proxy these machines use, and the part
// we need is small and fully specified (ESRI Shapefile Technical Description, 1998): the .shp's 100-byte
// header and polygon records, and the .dbf's dBase III table.

// Shape types of the .shp (polygons in 2D, with Z and with M).
const (
	shpNull     = 0
	shpPolygon  = 5
	shpPolygonZ = 15
	shpPolygonM = 25
	shpFileCode = 9994
	shpHeader   = 100

	maxZipEntry = 256 << 20 // a member of the zip larger than this is refused (TLC's .shp is 1.6 MB)
)

// LoadShapefileZip reads a zipped shapefile as TLC publishes it (taxi_zones.zip: .shp, .shx, .dbf,
// .prj, any folder inside the zip). The .dbf must have a LocationID column; zone and borough are kept
// when present. A LocationID that several shapes share (TLC's file repeats 56 and 103) is replaced on
// those shapes by their OBJECTID, which equals the zone lookup's LocationID there (56/57,
// 103/104/105); without an OBJECTID column the shapes are merged into one zone.
func LoadShapefileZip(r io.ReaderAt, size int64) (*Map, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("opening shapefile zip: %w", err)
	}
	members := map[string]*zip.File{} // extension → file
	bases := map[string]bool{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || strings.HasPrefix(path.Base(f.Name), "._") || strings.HasPrefix(f.Name, "__MACOSX/") {
			continue
		}
		ext := strings.ToLower(path.Ext(f.Name))
		switch ext {
		case ".shp", ".shx", ".dbf", ".prj":
			if _, dup := members[ext]; dup {
				return nil, fmt.Errorf("shapefile zip holds more than one %s file (%s)", ext, f.Name)
			}
			members[ext] = f
			bases[strings.TrimSuffix(f.Name, path.Ext(f.Name))] = true
		}
	}
	var missing []string
	for _, ext := range []string{".shp", ".dbf", ".prj"} {
		if members[ext] == nil {
			missing = append(missing, ext)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("shapefile zip has no %s file", strings.Join(missing, ", "))
	}
	if len(bases) > 1 {
		return nil, fmt.Errorf("shapefile zip holds files of %d shapefiles; want one", len(bases))
	}
	read := func(ext string) ([]byte, error) {
		f := members[ext]
		if f == nil {
			return nil, nil
		}
		if f.UncompressedSize64 > maxZipEntry {
			return nil, fmt.Errorf("%s is %d bytes, more than %d", f.Name, f.UncompressedSize64, maxZipEntry)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", f.Name, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, maxZipEntry+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Name, err)
		}
		return b, nil
	}
	files := map[string][]byte{}
	for ext := range members {
		b, err := read(ext)
		if err != nil {
			return nil, err
		}
		files[ext] = b
	}
	return loadShapefile(files[".shp"], files[".shx"], files[".dbf"], string(files[".prj"]))
}

func loadShapefile(shp, shx, dbf []byte, prj string) (*Map, error) {
	proj, err := projectionFromPRJ(prj)
	if err != nil {
		return nil, fmt.Errorf("reading .prj: %w", err)
	}
	shapes, err := readSHP(shp)
	if err != nil {
		return nil, fmt.Errorf("reading .shp: %w", err)
	}
	if shx != nil {
		if len(shx) < shpHeader || (len(shx)-shpHeader)%8 != 0 {
			return nil, fmt.Errorf("reading .shx: %d bytes is not a header and 8-byte entries", len(shx))
		}
		if n := (len(shx) - shpHeader) / 8; n != len(shapes) {
			return nil, fmt.Errorf("the .shx indexes %d shapes, the .shp holds %d", n, len(shapes))
		}
	}
	tab, err := readDBF(dbf)
	if err != nil {
		return nil, fmt.Errorf("reading .dbf: %w", err)
	}
	if len(tab.rows) != len(shapes) {
		return nil, fmt.Errorf("the .dbf has %d records, the .shp %d shapes", len(tab.rows), len(shapes))
	}
	iLoc := tab.col("LocationID", "location_id", "locationid")
	if iLoc < 0 {
		return nil, fmt.Errorf("the .dbf has no LocationID column (columns: %s)", strings.Join(tab.names, ", "))
	}
	iObj, iZone, iBoro := tab.col("OBJECTID"), tab.col("zone"), tab.col("borough")
	ids := make([]int32, len(shapes))
	count := map[int32]int{}
	for i, row := range tab.rows {
		id, err := parseID(row[iLoc])
		if err != nil {
			return nil, fmt.Errorf(".dbf record %d: LocationID %q: %w", i+1, row[iLoc], err)
		}
		ids[i] = id
		count[id]++
	}
	raw := make([]rawZone, 0, len(shapes))
	var notes []string
	for i, row := range tab.rows {
		if shapes[i] == nil {
			continue // a null shape contains nothing
		}
		id := ids[i]
		if count[id] > 1 && iObj >= 0 {
			obj, err := parseID(row[iObj])
			if err != nil {
				return nil, fmt.Errorf(".dbf record %d: OBJECTID %q: %w", i+1, row[iObj], err)
			}
			if obj != id {
				notes = append(notes, fmt.Sprintf("%d→%d", id, obj))
			}
			id = obj
		}
		z := rawZone{Zone: Zone{ID: id}, rings: shapes[i]}
		if iZone >= 0 {
			z.Name = row[iZone]
		}
		if iBoro >= 0 {
			z.Borough = row[iBoro]
		}
		raw = append(raw, z)
	}
	m, err := newMap(raw, proj)
	if err != nil {
		return nil, err
	}
	m.Source = "shapefile, " + projName(proj)
	m.Renumbered = notes
	return m, nil
}

func projName(p projection) string {
	if p == nil {
		return "longitude/latitude"
	}
	return p.String()
}

func parseID(s string) (int32, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 10, 32); err == nil {
		return int32(v), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, errors.New("not an integer")
	}
	return int32(f), nil
}

// readSHP returns each record's rings as flat x,y pairs (nil for a null shape).
func readSHP(b []byte) ([][][]float64, error) {
	if len(b) < shpHeader {
		return nil, fmt.Errorf("%d bytes is shorter than the 100-byte header", len(b))
	}
	if code := binary.BigEndian.Uint32(b[0:4]); code != shpFileCode {
		return nil, fmt.Errorf("file code %d, want %d: not a shapefile", code, shpFileCode)
	}
	switch t := binary.LittleEndian.Uint32(b[32:36]); t {
	case shpNull, shpPolygon, shpPolygonZ, shpPolygonM:
	default:
		return nil, fmt.Errorf("shape type %d: want polygons (5, 15 or 25)", t)
	}
	var shapes [][][]float64
	off := shpHeader
	for off < len(b) {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("record header cut off at byte %d", off)
		}
		n := int(binary.BigEndian.Uint32(b[off+4:off+8])) * 2 // content length in 16-bit words
		off += 8
		if n < 4 || n > len(b)-off {
			return nil, fmt.Errorf("record %d at byte %d: content length %d does not fit the file", len(shapes)+1, off-8, n)
		}
		rec := b[off : off+n]
		off += n
		rings, err := readPolygon(rec)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(shapes)+1, err)
		}
		shapes = append(shapes, rings)
	}
	return shapes, nil
}

func readPolygon(rec []byte) ([][]float64, error) {
	t := binary.LittleEndian.Uint32(rec[0:4])
	switch t {
	case shpNull:
		return nil, nil
	case shpPolygon, shpPolygonZ, shpPolygonM:
	default:
		return nil, fmt.Errorf("shape type %d: want polygons", t)
	}
	if len(rec) < 44 {
		return nil, errors.New("polygon record shorter than its header")
	}
	nParts := int(binary.LittleEndian.Uint32(rec[36:40]))
	nPoints := int(binary.LittleEndian.Uint32(rec[40:44]))
	if nParts < 1 || nPoints < 0 || nParts > len(rec)/4 || nPoints > len(rec)/16 || 44+4*nParts+16*nPoints > len(rec) {
		return nil, fmt.Errorf("%d parts and %d points do not fit a %d-byte record", nParts, nPoints, len(rec))
	}
	parts := make([]int, nParts+1)
	for i := range nParts {
		parts[i] = int(binary.LittleEndian.Uint32(rec[44+4*i:]))
	}
	parts[nParts] = nPoints
	pts := rec[44+4*nParts:]
	rings := make([][]float64, 0, nParts)
	for i := range nParts {
		s, e := parts[i], parts[i+1]
		if s < 0 || e > nPoints || s > e {
			return nil, fmt.Errorf("part %d spans points %d..%d of %d", i, s, e, nPoints)
		}
		ring := make([]float64, 0, 2*(e-s))
		for j := s; j < e; j++ {
			x := math.Float64frombits(binary.LittleEndian.Uint64(pts[16*j:]))
			y := math.Float64frombits(binary.LittleEndian.Uint64(pts[16*j+8:]))
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				return nil, fmt.Errorf("part %d point %d is not finite", i, j-s)
			}
			ring = append(ring, x, y)
		}
		rings = append(rings, ring)
	}
	return rings, nil
}

// dbfTable is a dBase III table: column names and every record's values, trimmed.
type dbfTable struct {
	names []string
	rows  [][]string
}

func (t *dbfTable) col(names ...string) int {
	for _, n := range names {
		for i, c := range t.names {
			if strings.EqualFold(c, n) {
				return i
			}
		}
	}
	return -1
}

// readDBF reads a dBase III table (the .dbf of a shapefile). Text is decoded as Latin-1 (no .cpg is
// read; TLC's names are ASCII). Deleted records are kept: the .shp still has their shapes, and
// records pair with shapes by position.
func readDBF(b []byte) (*dbfTable, error) {
	if len(b) < 33 {
		return nil, fmt.Errorf("%d bytes is shorter than a header", len(b))
	}
	nrec := int(binary.LittleEndian.Uint32(b[4:8]))
	hlen := int(binary.LittleEndian.Uint16(b[8:10]))
	rlen := int(binary.LittleEndian.Uint16(b[10:12]))
	if hlen < 33 || hlen > len(b) || rlen < 1 {
		return nil, fmt.Errorf("header length %d, record length %d do not fit %d bytes", hlen, rlen, len(b))
	}
	type field struct {
		name     string
		off, len int
	}
	var fields []field
	off := 1 // the deletion flag
	for p := 32; p+32 <= hlen && b[p] != 0x0d; p += 32 {
		d := b[p : p+32]
		name := string(bytes.TrimRight(d[0:11], "\x00 "))
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		l := int(d[16])
		if d[11] == 'C' {
			l |= int(d[17]) << 8 // character fields use the decimal count as the length's high byte
		}
		fields = append(fields, field{name: name, off: off, len: l})
		off += l
	}
	if len(fields) == 0 {
		return nil, errors.New("no field descriptors")
	}
	if off > rlen {
		return nil, fmt.Errorf("fields take %d bytes, records have %d", off, rlen)
	}
	if hlen+nrec*rlen > len(b) {
		return nil, fmt.Errorf("%d records of %d bytes do not fit the file", nrec, rlen)
	}
	t := &dbfTable{}
	for _, f := range fields {
		t.names = append(t.names, f.name)
	}
	for i := range nrec {
		rec := b[hlen+i*rlen : hlen+(i+1)*rlen]
		row := make([]string, len(fields))
		for j, f := range fields {
			row[j] = strings.TrimSpace(latin1(rec[f.off : f.off+f.len]))
		}
		t.rows = append(t.rows, row)
	}
	return t, nil
}

func latin1(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= 0x80 || c == 0 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	r := make([]rune, 0, len(b))
	for _, c := range b {
		if c == 0 {
			continue
		}
		r = append(r, rune(c))
	}
	return string(r)
}

// Package geo locates WGS 84 longitude/latitude points in the TLC taxi zones, from TLC's official zone
// shapefile (taxi_zones.zip, EPSG:2263) or a GeoJSON FeatureCollection in WGS 84.
//
// A Map holds the zones' rings in the shapes' own coordinate system and a grid index over them. A
// lookup of a projected map first tries a longitude/latitude index (llgrid.go) that answers the point
// where no zone edge comes within half a foot of its cell (85 % of the 2015 sample's coordinates), without
// projecting it. Otherwise it projects the point into the shapes' system (Lambert conformal conic for
// the shapefile, nothing for GeoJSON), finds its grid cell and, unless the cell lies wholly inside one
// zone or outside all, counts the crossings of a short path from the cell's centre (whose zones are
// known) to the point with the few zone edges stored in that cell. The answer is exactly even–odd
// point-in-polygon on the zone's rings (holes and multipolygons included), at a cost that does not
// depend on the zones' size.
//
// Where zones overlap (slivers of a few feet in real files) the zone with the lowest LocationID wins.
// A point on a border belongs to one of the zones that share it.
package geo

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Zone is one zone of a Map, with the names its source carries (the zone lookup CSV is the reference
// for names; these are for messages and tests).
type Zone struct {
	ID       int32
	Name     string
	Borough  string
	Rings    int
	Vertices int
}

type rawZone struct {
	Zone
	rings [][]float64 // flat x,y pairs
}

// Map is a set of zone shapes with a spatial index. It is safe for concurrent use.
type Map struct {
	// Source says what was loaded: "shapefile, Lambert conformal conic (...)" or "geojson, ...".
	Source string
	// Renumbered lists the repeated LocationIDs replaced by OBJECTID ("56→57", ...).
	Renumbered []string
	// Skipped counts GeoJSON features that contain nothing (points, lines, empty geometries).
	Skipped int
	// SharedGeometry lists the groups of GeoJSON LocationIDs whose features have the very same polygon.
	SharedGeometry [][]int32

	zones []Zone        // by ascending ID
	rings [][][]float64 // zone index → closed rings, flat x,y pairs in the shapes' coordinates
	proj  projection
	grid  *grid
	ll    *llGrid // lookups without projecting, where the answer is the same all over a cell (nil: none)
}

// Load reads zone shapes from data: a zipped shapefile (starts with "PK") or GeoJSON (starts with '{').
func Load(data []byte) (*Map, error) {
	d := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	switch {
	case bytes.HasPrefix(data, []byte("PK")):
		return LoadShapefileZip(bytes.NewReader(data), int64(len(data)))
	case bytes.HasPrefix(d, []byte("{")):
		return LoadGeoJSON(d)
	}
	return nil, errors.New("zone shapes: neither a zipped shapefile nor GeoJSON")
}

func newMap(raw []rawZone, proj projection) (*Map, error) {
	slices.SortStableFunc(raw, func(a, b rawZone) int { return int(a.ID) - int(b.ID) })
	// Merge repeated ids (GeoJSON features or shapes without OBJECTID): one zone, all rings.
	var zs []rawZone
	for _, z := range raw {
		if n := len(zs); n > 0 && zs[n-1].ID == z.ID {
			zs[n-1].rings = append(zs[n-1].rings, z.rings...)
			continue
		}
		zs = append(zs, z)
	}
	m := &Map{proj: proj}
	rings := make([][][]float64, 0, len(zs))
	for _, z := range zs {
		var kept [][]float64
		for _, r := range z.rings {
			if r = closeRing(r); r != nil {
				kept = append(kept, r)
				z.Vertices += len(r)/2 - 1
			}
		}
		if len(kept) == 0 {
			continue
		}
		z.Rings = len(kept)
		m.zones = append(m.zones, z.Zone)
		rings = append(rings, kept)
	}
	if len(m.zones) == 0 {
		return nil, errors.New("zone shapes: no zone has an area")
	}
	m.rings = rings
	g, err := buildGrid(rings)
	if err != nil {
		return nil, err
	}
	m.grid = g
	if p, ok := proj.(*lcc); ok {
		m.ll = buildLLGrid(g, p)
	}
	return m, nil
}

// closeRing returns r with its first point repeated at the end, or nil when it has fewer than three
// distinct points (it bounds no area).
func closeRing(r []float64) []float64 {
	if len(r) < 6 {
		return nil
	}
	n := len(r)
	if r[0] != r[n-2] || r[1] != r[n-1] {
		r = append(r[:n:n], r[0], r[1])
	}
	distinct := 0
	for i := 2; i < len(r); i += 2 {
		if r[i] != r[i-2] || r[i+1] != r[i-1] {
			distinct++
		}
	}
	if distinct < 3 {
		return nil
	}
	return r
}

// Zones returns the zones of the map in ascending LocationID order.
func (m *Map) Zones() []Zone { return slices.Clone(m.zones) }

// Len is the number of zones.
func (m *Map) Len() int { return len(m.zones) }

// Usable reports whether lon/lat can be located at all: both finite, within ±180/±90 and neither
// exactly 0 (TLC files write 0 for a missing coordinate; New York is nowhere near the equator or the
// prime meridian).
func Usable(lon, lat float64) bool {
	return lon != 0 && lat != 0 && lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90
}

// Locate returns the LocationID of the zone holding the WGS 84 point lon/lat (degrees); ok is false
// when no zone holds it or the point is not Usable.
func (m *Map) Locate(lon, lat float64) (id int32, ok bool) {
	if !Usable(lon, lat) {
		return 0, false
	}
	x, y := lon, lat
	if m.ll != nil {
		if i, ok := m.ll.find(lon, lat); ok {
			if i >= 0 {
				return m.zones[i].ID, true
			}
			return 0, false
		}
	}
	if m.proj != nil {
		x, y = m.proj.forward(lon, lat)
	}
	if i := m.grid.find(x, y); i >= 0 {
		return m.zones[i].ID, true
	}
	return 0, false
}

// locateXY is Locate in the shapes' own coordinates.
func (m *Map) locateXY(x, y float64) (int32, bool) {
	if i := m.grid.find(x, y); i >= 0 {
		return m.zones[i].ID, true
	}
	return 0, false
}

// String describes the map for logs.
func (m *Map) String() string {
	s := fmt.Sprintf("%d zones from %s, %d×%d grid, %d cell edges", len(m.zones), m.Source, m.grid.nx, m.grid.ny, len(m.grid.segs))
	if l := m.ll; l != nil {
		s += fmt.Sprintf(", %d×%d longitude/latitude blocks, %d with leaves", l.nbx, l.nby, len(l.leaves)/(llLeaf*llLeaf))
	}
	return s
}

package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// LoadGeoJSON reads a GeoJSON FeatureCollection of zones in WGS 84 longitude/latitude (RFC 7946),
// each feature with a LocationID property (any case; a number or a numeric string) and optionally
// Zone and Borough. Polygons and MultiPolygons (with holes) make the zones; Points, lines and null
// geometries contain nothing and are skipped (the export in ../shared has Points for 1, 264 and 265,
// so Newark Airport is not a zone there). Features repeating a LocationID are merged into one zone.
// Features that share one polygon (the export in ../shared gives 163 and 230 the same one) are listed in
// Map.SharedGeometry; a point there gets the lowest of their ids.
func LoadGeoJSON(data []byte) (*Map, error) {
	var fc geojson.FeatureCollection
	if err := json.Unmarshal(data, &fc); err != nil {
		return nil, fmt.Errorf("decoding geojson: %w", err)
	}
	byID := map[int32]int{}
	var raw []rawZone
	skipped := 0
	sameShape := map[string][]int32{} // geometry text → ids, to report features that share one polygon
	var shapeOrder []string
	for i, f := range fc.Features {
		if f == nil {
			continue
		}
		id, err := propID(f.Properties)
		if err != nil {
			return nil, fmt.Errorf("geojson feature %d: %w", i+1, err)
		}
		rings, err := geomRings(f.Geometry, 0)
		if err != nil {
			return nil, fmt.Errorf("geojson feature %d (LocationID %d): %w", i+1, id, err)
		}
		if len(rings) == 0 {
			skipped++
			continue
		}
		key := ringsKey(rings)
		if len(sameShape[key]) == 0 {
			shapeOrder = append(shapeOrder, key)
		}
		sameShape[key] = append(sameShape[key], id)
		j, seen := byID[id]
		if !seen {
			j = len(raw)
			byID[id] = j
			raw = append(raw, rawZone{Zone: Zone{ID: id, Name: propString(f.Properties, "zone"), Borough: propString(f.Properties, "borough")}})
		}
		raw[j].rings = append(raw[j].rings, rings...)
	}
	m, err := newMap(raw, nil)
	if err != nil {
		return nil, err
	}
	m.Source = "geojson, longitude/latitude"
	m.Skipped = skipped
	for _, k := range shapeOrder {
		if ids := sameShape[k]; len(ids) > 1 {
			slices.Sort(ids)
			m.SharedGeometry = append(m.SharedGeometry, ids)
		}
	}
	return m, nil
}

// ringsKey is the exact text of a geometry's rings.
func ringsKey(rings [][]float64) string {
	var b []byte
	for _, r := range rings {
		for _, v := range r {
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
			b = append(b, ',')
		}
		b = append(b, ';')
	}
	return string(b)
}

func prop(p map[string]any, name string) (any, bool) {
	if v, ok := p[name]; ok {
		return v, true
	}
	for k, v := range p {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func propID(p map[string]any) (int32, error) {
	v, ok := prop(p, "LocationID")
	if !ok {
		v, ok = prop(p, "location_id")
	}
	if !ok {
		return 0, errors.New("no LocationID property")
	}
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
			return 0, fmt.Errorf("LocationID %v is not an integer", x)
		}
		return int32(x), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("LocationID %q is not an integer", x)
		}
		return int32(n), nil
	}
	return 0, fmt.Errorf("LocationID %v is not a number", v)
}

func propString(p map[string]any, name string) string {
	v, _ := prop(p, name)
	s, _ := v.(string)
	return s
}

// geomRings returns the rings (flat x,y pairs) of the areal parts of g.
func geomRings(g geom.T, depth int) ([][]float64, error) {
	if depth > 8 {
		return nil, errors.New("geometry collections nested too deep")
	}
	switch g := g.(type) {
	case nil:
		return nil, nil
	case *geom.Polygon:
		return flatRings(g.FlatCoords(), g.Ends(), g.Stride())
	case *geom.MultiPolygon:
		var out [][]float64
		start := 0
		for _, ends := range g.Endss() {
			r, err := flatRings(g.FlatCoords()[start:], shift(ends, start), g.Stride())
			if err != nil {
				return nil, err
			}
			out = append(out, r...)
			if len(ends) > 0 {
				start = ends[len(ends)-1]
			}
		}
		return out, nil
	case *geom.GeometryCollection:
		var out [][]float64
		for _, sub := range g.Geoms() {
			r, err := geomRings(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, r...)
		}
		return out, nil
	}
	return nil, nil // points and lines contain nothing
}

func shift(ends []int, by int) []int {
	out := make([]int, len(ends))
	for i, e := range ends {
		out[i] = e - by
	}
	return out
}

func flatRings(flat []float64, ends []int, stride int) ([][]float64, error) {
	if stride < 2 {
		return nil, nil
	}
	var out [][]float64
	start := 0
	for _, end := range ends {
		if end < start || end > len(flat) {
			return nil, errors.New("ring ends out of range")
		}
		ring := make([]float64, 0, 2*(end-start)/stride)
		for i := start; i < end; i += stride {
			x, y := flat[i], flat[i+1]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				return nil, errors.New("a coordinate is not finite")
			}
			ring = append(ring, x, y)
		}
		out = append(out, ring)
		start = end
	}
	return out, nil
}

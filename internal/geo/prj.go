package geo

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A .prj file holds the coordinate system of a shapefile as WKT (ESRI's dialect of OGC WKT 1):
//
//	PROJCS["NAD_1983_StatePlane_New_York_Long_Island_FIPS_3104_Feet",GEOGCS[...,DATUM["D_North_American_1983",
//	SPHEROID["GRS_1980",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],
//	PROJECTION["Lambert_Conformal_Conic"],PARAMETER["False_Easting",984250.0],...,UNIT["Foot_US",0.3048006096012192]]
//
// We read what locating points needs: a GEOGCS alone (coordinates are longitude/latitude) or a PROJCS
// with a Lambert conformal conic projection (ESRI's Lambert_Conformal_Conic, OGC's
// Lambert_Conformal_Conic_2SP or _1SP with scale 1). The datum must be NAD83 or WGS 84: like PROJ's
// default NAD83 → WGS 84 transformation (EPSG:1188, a null transformation, accurate to ~4 m; in New
// York the two differ by 1–2 m), trip coordinates are taken as NAD83 as they are. Anything else is an
// error, never a guess.

// wkt is one node of a WKT tree: KEYWORD[args], an arg being a quoted string, a number or a node.
type wkt struct {
	key  string
	strs []string // quoted arguments, in order
	nums []float64
	kids []*wkt
}

func (n *wkt) child(key string) *wkt {
	for _, k := range n.kids {
		if strings.EqualFold(k.key, key) {
			return k
		}
	}
	return nil
}

func (n *wkt) name() string {
	if n == nil || len(n.strs) == 0 {
		return ""
	}
	return n.strs[0]
}

func parseWKT(s string) (*wkt, error) {
	p := wktParser{s: s}
	p.ws()
	n, err := p.node()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("wkt: trailing text at byte %d", p.i)
	}
	return n, nil
}

type wktParser struct {
	s     string
	i     int
	depth int
}

func (p *wktParser) ws() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *wktParser) node() (*wkt, error) {
	if p.depth++; p.depth > 32 {
		return nil, errors.New("wkt: nested too deep")
	}
	defer func() { p.depth-- }()
	start := p.i
	for p.i < len(p.s) && (isWKTKeyByte(p.s[p.i])) {
		p.i++
	}
	if p.i == start {
		return nil, fmt.Errorf("wkt: want a keyword at byte %d", p.i)
	}
	n := &wkt{key: p.s[start:p.i]}
	p.ws()
	if p.i >= len(p.s) || (p.s[p.i] != '[' && p.s[p.i] != '(') {
		return nil, fmt.Errorf("wkt: want '[' after %s at byte %d", n.key, p.i)
	}
	closer := byte(']')
	if p.s[p.i] == '(' {
		closer = ')'
	}
	p.i++
	for {
		p.ws()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("wkt: %s is not closed", n.key)
		}
		switch c := p.s[p.i]; {
		case c == '"':
			end := strings.IndexByte(p.s[p.i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("wkt: open quote at byte %d", p.i)
			}
			n.strs = append(n.strs, p.s[p.i+1:p.i+1+end])
			p.i += end + 2
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			start := p.i
			for p.i < len(p.s) && strings.IndexByte("+-.0123456789eE", p.s[p.i]) >= 0 {
				p.i++
			}
			v, err := strconv.ParseFloat(p.s[start:p.i], 64)
			if err != nil {
				return nil, fmt.Errorf("wkt: number %q in %s: %w", p.s[start:p.i], n.key, err)
			}
			n.nums = append(n.nums, v)
		case isWKTKeyByte(c):
			k, err := p.node()
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		default:
			return nil, fmt.Errorf("wkt: unexpected %q at byte %d", c, p.i)
		}
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == closer {
			p.i++
			return n, nil
		}
		return nil, fmt.Errorf("wkt: want ',' or '%c' in %s at byte %d", closer, n.key, p.i)
	}
}

func isWKTKeyByte(c byte) bool {
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

// projection turns longitude/latitude (degrees) into the shapes' coordinates; nil means the shapes
// are in longitude/latitude themselves.
type projection interface {
	forward(lon, lat float64) (x, y float64)
	inverse(x, y float64) (lon, lat float64)
	String() string
}

// normName lower-cases a WKT name and drops spaces and underscores ("Standard_Parallel_1" → "standardparallel1").
func normName(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "", " ", "", "-", "").Replace(s)
}

// projectionFromPRJ reads a .prj; it returns nil for longitude/latitude shapes.
func projectionFromPRJ(text string) (projection, error) {
	root, err := parseWKT(strings.TrimPrefix(strings.TrimSpace(text), "\ufeff"))
	if err != nil {
		return nil, err
	}
	geog := root
	switch strings.ToUpper(root.key) {
	case "GEOGCS":
	case "PROJCS":
		geog = root.child("GEOGCS")
		if geog == nil {
			return nil, errors.New("PROJCS without a GEOGCS")
		}
	default:
		return nil, fmt.Errorf("coordinate system %s: want PROJCS or GEOGCS", root.key)
	}
	el, err := checkGeog(geog)
	if err != nil {
		return nil, err
	}
	if strings.ToUpper(root.key) == "GEOGCS" {
		return nil, nil
	}
	method := normName(root.child("PROJECTION").name())
	switch method {
	case "lambertconformalconic", "lambertconformalconic2sp", "lambertconformalconic1sp":
	default:
		return nil, fmt.Errorf("projection %q: only Lambert conformal conic is supported (TLC's zones are in EPSG:2263)", root.child("PROJECTION").name())
	}
	params := map[string]float64{}
	for _, k := range root.kids {
		if strings.EqualFold(k.key, "PARAMETER") && len(k.nums) == 1 {
			params[normName(k.name())] = k.nums[0]
		}
	}
	get := func(def float64, names ...string) (float64, bool) {
		for _, n := range names {
			if v, ok := params[n]; ok {
				return v, true
			}
		}
		return def, false
	}
	var errs []error
	need := func(names ...string) float64 {
		v, ok := get(0, names...)
		if !ok {
			errs = append(errs, fmt.Errorf("projection parameter %s is missing", names[0]))
		}
		return v
	}
	lon0 := need("centralmeridian", "longitudeoforigin", "longitudeoffalseorigin")
	lat0 := need("latitudeoforigin", "latitudeoffalseorigin")
	lat1, ok1 := get(0, "standardparallel1")
	lat2, ok2 := get(0, "standardparallel2")
	fe, _ := get(0, "falseeasting", "eastingatfalseorigin")
	fn, _ := get(0, "falsenorthing", "northingatfalseorigin")
	if k, ok := get(1, "scalefactor"); ok && k != 1 {
		errs = append(errs, fmt.Errorf("scale factor %g: only 1 is supported", k))
	}
	switch {
	case ok1 && !ok2:
		lat2 = lat1
	case !ok1 && !ok2:
		lat1, lat2 = lat0, lat0 // one parallel, the latitude of origin
	case !ok1:
		errs = append(errs, errors.New("projection parameter standard_parallel_1 is missing"))
	}
	unit := root.child("UNIT")
	if unit == nil || len(unit.nums) != 1 {
		errs = append(errs, errors.New("PROJCS has no linear UNIT"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	metres := unit.nums[0]
	// ESRI writes the US survey foot as 0.3048006096012192; use the exact 1200/3937.
	if math.Abs(metres-usFoot) < 1e-12 {
		metres = usFoot
	}
	return newLCC(el, lat0, lon0, lat1, lat2, fe, fn, metres, unit.name())
}

// checkGeog accepts NAD83 and WGS 84 (GRS 80 or WGS 84 ellipsoid, Greenwich, degrees).
func checkGeog(g *wkt) (ellipsoid, error) {
	datum := g.child("DATUM")
	if datum == nil {
		return ellipsoid{}, errors.New("GEOGCS without a DATUM")
	}
	switch d := normName(datum.name()); d {
	case "dnorthamerican1983", "northamerican1983", "nad83", "dwgs1984", "wgs1984", "wgs84":
	default:
		return ellipsoid{}, fmt.Errorf("datum %q: only NAD83 and WGS 84 are supported", datum.name())
	}
	sph := datum.child("SPHEROID")
	if sph == nil {
		sph = datum.child("ELLIPSOID")
	}
	if sph == nil || len(sph.nums) < 2 {
		return ellipsoid{}, errors.New("DATUM without a SPHEROID[name, a, 1/f]")
	}
	el := ellipsoid{a: sph.nums[0], invF: sph.nums[1]}
	if math.Abs(el.a-6378137) > 1e-3 || math.Abs(el.invF-298.257) > 0.001 {
		return ellipsoid{}, fmt.Errorf("spheroid %q (a=%g, 1/f=%g) is not GRS 80 or WGS 84", sph.name(), el.a, el.invF)
	}
	if pm := g.child("PRIMEM"); pm != nil && len(pm.nums) > 0 && pm.nums[0] != 0 {
		return ellipsoid{}, fmt.Errorf("prime meridian %q at %g: only Greenwich is supported", pm.name(), pm.nums[0])
	}
	if u := g.child("UNIT"); u != nil && len(u.nums) > 0 && math.Abs(u.nums[0]-math.Pi/180) > 1e-12 {
		return ellipsoid{}, fmt.Errorf("angular unit %q: only degrees are supported", u.name())
	}
	return el, nil
}

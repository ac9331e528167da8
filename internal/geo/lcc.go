package geo

import (
	"errors"
	"fmt"
	"math"
)

// Why our own Lambert conformal conic: the shapes need one projection, EPSG:2263 (NAD83 / New York Long
// Island, US survey feet, Lambert conformal conic with two standard parallels). The pure-Go candidates
// on the module proxy do not fit: github.com/wroge/wgs84 v1 (its last v1 release is from 2023; the v2
// that replaced it is not served here) recomputes the cone constants n and F — a dozen logarithms and
// powers — on every call, works in metres only, and routes lon/lat through a datum transformation we
// must not apply; github.com/twpayne/go-proj is cgo bindings to PROJ, which a static provided.al2023
// bootstrap does not link. The projection itself is a dozen lines of the EPSG Guidance Note 7-2
// formulas (method 9802) with the constants computed once; lcc_test.go checks it against the guidance
// note's worked example and against PROJ (cs2cs 9.1.1) on points all over New York.

// ellipsoid is an ellipsoid of revolution: semi-major axis a (metres) and inverse flattening.
type ellipsoid struct {
	a, invF float64
}

func (el ellipsoid) e() float64 {
	f := 1 / el.invF
	return math.Sqrt(2*f - f*f)
}

// lcc is a Lambert conformal conic projection with two standard parallels (EPSG method 9802; with
// equal parallels it is the one-parallel case with scale 1). Coordinates are in the projection's
// unit (unit metres each), angles in degrees at the API.
type lcc struct {
	e        float64 // eccentricity
	n        float64 // cone constant
	aF       float64 // a·F, metres
	rho0     float64 // radius at the latitude of origin, metres
	lon0     float64 // central meridian, radians
	fe, fn   float64 // false easting and northing, in unit
	unit     float64 // metres per unit (0.3048006096012192 for the US survey foot)
	halfE    float64 // e/2
	invUnit  float64
	invN     float64
	lat0Deg  float64 // as given, for String
	lat1Deg  float64
	lat2Deg  float64
	lon0Deg  float64
	unitName string
}

// usFoot is the US survey foot in metres (1200/3937), the unit of EPSG:2263.
const usFoot = 1200.0 / 3937.0

// newLCC returns the projection; parallels, origin and central meridian in degrees, false easting and
// northing in unit, unit in metres.
func newLCC(el ellipsoid, lat0, lon0, lat1, lat2, fe, fn, unit float64, unitName string) (*lcc, error) {
	for _, v := range []float64{el.a, el.invF, lat0, lon0, lat1, lat2, fe, fn, unit} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("lambert conformal conic: a parameter is not a finite number")
		}
	}
	switch {
	case el.a <= 0 || el.invF <= 1:
		return nil, fmt.Errorf("lambert conformal conic: ellipsoid a=%g 1/f=%g is not an oblate ellipsoid", el.a, el.invF)
	case unit <= 0:
		return nil, fmt.Errorf("lambert conformal conic: unit %g m is not positive", unit)
	case math.Abs(lat1) >= 90 || math.Abs(lat2) >= 90 || math.Abs(lat0) >= 90:
		return nil, errors.New("lambert conformal conic: a parallel at a pole")
	case lat1 == -lat2:
		return nil, errors.New("lambert conformal conic: standard parallels symmetric about the equator (that is a Mercator)")
	}
	p := &lcc{e: el.e(), lon0: rad(lon0), fe: fe, fn: fn, unit: unit, invUnit: 1 / unit,
		lat0Deg: lat0, lat1Deg: lat1, lat2Deg: lat2, lon0Deg: lon0, unitName: unitName}
	p.halfE = p.e / 2
	φ1, φ2 := rad(lat1), rad(lat2)
	m1, m2 := p.m(φ1), p.m(φ2)
	t1, t2 := p.t(φ1), p.t(φ2)
	if lat1 == lat2 {
		p.n = math.Sin(φ1)
	} else {
		p.n = (math.Log(m1) - math.Log(m2)) / (math.Log(t1) - math.Log(t2))
	}
	p.invN = 1 / p.n
	F := m1 / (p.n * math.Pow(t1, p.n))
	p.aF = el.a * F
	p.rho0 = p.aF * math.Pow(p.t(rad(lat0)), p.n)
	return p, nil
}

func rad(d float64) float64 { return d * (math.Pi / 180) }
func deg(r float64) float64 { return r * (180 / math.Pi) }

// m is cos φ / sqrt(1 − e² sin² φ).
func (p *lcc) m(φ float64) float64 {
	s := math.Sin(φ)
	return math.Cos(φ) / math.Sqrt(1-p.e*p.e*s*s)
}

// t is tan(π/4 − φ/2) / ((1 − e sin φ)/(1 + e sin φ))^(e/2).
func (p *lcc) t(φ float64) float64 {
	es := p.e * math.Sin(φ)
	return math.Tan(math.Pi/4-φ/2) / math.Pow((1-es)/(1+es), p.halfE)
}

// forward projects longitude and latitude (degrees) to easting and northing (units).
func (p *lcc) forward(lon, lat float64) (x, y float64) {
	φ := rad(lat)
	es := p.e * math.Sin(φ)
	// ρ = aF·tⁿ with ln t = ln tan(π/4 − φ/2) − (e/2)·ln((1 − e sin φ)/(1 + e sin φ)).
	lnT := math.Log(math.Tan(math.Pi/4-φ/2)) - p.halfE*math.Log((1-es)/(1+es))
	ρ := p.aF * math.Exp(p.n*lnT)
	λ := rad(lon) - p.lon0
	// Longitudes are taken as written (a lon of 286° is not −74°): trips carry −180..180.
	s, c := math.Sincos(p.n * λ)
	return p.fe + ρ*s*p.invUnit, p.fn + (p.rho0-ρ*c)*p.invUnit
}

// inverse is forward's inverse: easting and northing (units) to longitude and latitude (degrees).
func (p *lcc) inverse(x, y float64) (lon, lat float64) {
	dx := (x - p.fe) * p.unit
	dy := p.rho0 - (y-p.fn)*p.unit
	ρ := math.Hypot(dx, dy)
	θ := math.Atan2(dx, dy)
	if p.n < 0 {
		ρ, θ = -ρ, math.Atan2(-dx, -dy)
	}
	t := math.Pow(ρ/p.aF, p.invN)
	φ := math.Pi/2 - 2*math.Atan(t)
	for range 15 {
		es := p.e * math.Sin(φ)
		next := math.Pi/2 - 2*math.Atan(t*math.Pow((1-es)/(1+es), p.halfE))
		if math.Abs(next-φ) < 1e-14 {
			φ = next
			break
		}
		φ = next
	}
	return deg(θ/p.n + p.lon0), deg(φ)
}

func (p *lcc) String() string {
	return fmt.Sprintf("Lambert conformal conic (lat_0=%g lon_0=%g lat_1=%g lat_2=%g x_0=%g y_0=%g %s)",
		p.lat0Deg, p.lon0Deg, p.lat1Deg, p.lat2Deg, p.fe, p.fn, p.unitName)
}

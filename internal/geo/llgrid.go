package geo

import "math"

// llGrid answers a lookup in longitude/latitude, without projecting the point, where a cell's image in
// the shapes' coordinates lies wholly inside one zone or outside all (the grid's pure cells). Cells
// near a border say "project": the point is projected and looked up in the grid. Built only for
// projected shapes (a GeoJSON map is in longitude/latitude already).
//
// Cell (i, j)'s corners are projected (on a Lambert conic a longitude/latitude rectangle maps to a
// region bounded by two straight meridians and two circular arcs; its bounding box grown by llMargin —
// far more than an arc's bulge over a 50 m cell, about a thousandth of a foot — holds it), and the
// cell is pure when every grid cell that box meets is pure with the same answer. So a point of a pure
// cell gets exactly the answer the projection and the grid would give.
type llGrid struct {
	lon0, lat0, invW, invH float64
	nx, ny                 int
	cells                  []uint16 // 0: project; otherwise grid.cell.pure + 1 (1: no zone, k+2: zone k)
}

const (
	llRefine = 2   // longitude/latitude cells per grid cell side (about 50 m for TLC's zones)
	llMargin = 0.5 // in the shapes' unit (feet for EPSG:2263)
)

// find returns the zone index (-1 for none) and true, or false when the point must be projected.
func (l *llGrid) find(lon, lat float64) (int, bool) {
	fi, fj := (lon-l.lon0)*l.invW, (lat-l.lat0)*l.invH
	if !(fi >= 0 && fj >= 0 && fi < float64(l.nx) && fj < float64(l.ny)) {
		return 0, false
	}
	c := l.cells[int(fj)*l.nx+int(fi)]
	if c == 0 {
		return 0, false
	}
	return int(c) - 2, true
}

// buildLLGrid covers the grid's extent in longitude/latitude with cells about 1/llRefine of a grid
// cell and marks the pure ones.
func buildLLGrid(g *grid, p *lcc) *llGrid {
	// The extent: the grid's box, inverse-projected along its sides (parallels are arcs).
	minLon, minLat, maxLon, maxLat := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	x1, y1 := g.x0+float64(g.nx)*g.w, g.y0+float64(g.ny)*g.h
	const steps = 64
	for k := 0; k <= steps; k++ {
		f := float64(k) / steps
		for _, pt := range [4][2]float64{{g.x0 + f*(x1-g.x0), g.y0}, {g.x0 + f*(x1-g.x0), y1}, {g.x0, g.y0 + f*(y1-g.y0)}, {x1, g.y0 + f*(y1-g.y0)}} {
			lon, lat := p.inverse(pt[0], pt[1])
			minLon, maxLon = min(minLon, lon), max(maxLon, lon)
			minLat, maxLat = min(minLat, lat), max(maxLat, lat)
		}
	}
	l := &llGrid{lon0: minLon, lat0: minLat, nx: g.nx * llRefine, ny: g.ny * llRefine}
	w, h := (maxLon-minLon)/float64(l.nx), (maxLat-minLat)/float64(l.ny)
	l.invW, l.invH = 1/w, 1/h
	// Project the cell corners: ρ depends on the latitude only, θ on the longitude only.
	rho := make([]float64, l.ny+1)
	for j := range rho {
		φ := rad(minLat + float64(j)*h)
		es := p.e * math.Sin(φ)
		rho[j] = p.aF * math.Exp(p.n*(math.Log(math.Tan(math.Pi/4-φ/2))-p.halfE*math.Log((1-es)/(1+es))))
	}
	sin, cos := make([]float64, l.nx+1), make([]float64, l.nx+1)
	for i := range sin {
		sin[i], cos[i] = math.Sincos(p.n * (rad(minLon+float64(i)*w) - p.lon0))
	}
	node := func(i, j int) (float64, float64) {
		return p.fe + rho[j]*sin[i]*p.invUnit, p.fn + (p.rho0-rho[j]*cos[i])*p.invUnit
	}
	l.cells = make([]uint16, l.nx*l.ny)
	for j := range l.ny {
		for i := range l.nx {
			bx0, by0, bx1, by1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
			for _, c := range [4][2]int{{i, j}, {i + 1, j}, {i, j + 1}, {i + 1, j + 1}} {
				x, y := node(c[0], c[1])
				bx0, bx1, by0, by1 = min(bx0, x), max(bx1, x), min(by0, y), max(by1, y)
			}
			l.cells[j*l.nx+i] = g.pureOver(bx0-llMargin, by0-llMargin, bx1+llMargin, by1+llMargin)
		}
	}
	return l
}

// pureOver returns pure+1 when every grid cell meeting the box is pure with the same answer (the
// outside of the grid counts as "no zone"), else 0.
func (g *grid) pureOver(x0, y0, x1, y1 float64) uint16 {
	fi0, fj0 := math.Floor((x0-g.x0)*g.invW), math.Floor((y0-g.y0)*g.invH)
	fi1, fj1 := math.Floor((x1-g.x0)*g.invW), math.Floor((y1-g.y0)*g.invH)
	outside := fi0 < 0 || fj0 < 0 || fi1 >= float64(g.nx) || fj1 >= float64(g.ny)
	i0, j0 := int(max(fi0, 0)), int(max(fj0, 0))
	i1, j1 := int(min(fi1, float64(g.nx-1))), int(min(fj1, float64(g.ny-1)))
	want := -1
	if outside {
		want = 0
	}
	for j := j0; j <= j1; j++ {
		for i := i0; i <= i1; i++ {
			c := g.cells[j*g.nx+i]
			if c.n != 0 || (want >= 0 && int(c.pure) != want) {
				return 0
			}
			want = int(c.pure)
		}
	}
	if want < 0 {
		return 0
	}
	return uint16(want) + 1
}

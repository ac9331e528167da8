package geo

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// The grid index. The bounding box of all zones is cut into nx × ny equal cells. For each cell we keep
//
//   - for a cell that no zone edge touches: the zone holding its centre (or none) — the answer for
//     every point of the cell;
//   - otherwise one entry per zone that has edges in the cell or holds its centre: whether the zone
//     holds the centre, and copies of the zone's edges that touch the cell.
//
// A point p in a cell with entries is inside a zone when the zone holds the centre c XOR the path
// c → (p.x, c.y) → p crosses the zone's boundary an odd number of times. Both legs lie in the cell, so
// only the cell's edges can cross them. The first leg uses exactly the even–odd rule of the
// centre's status (a crossing at height c.y is counted at the same x, computed the same way), so the
// answer is the even–odd rule for p itself except for points exactly on an edge, or on a vertex's
// vertical through (p.x, c.y) — a set of measure zero.
//
// Centre statuses come from one sweep per grid row along the row's centre line: the crossings of
// every zone edge with that line, sorted, toggle the zones' parities from left to right.

// targetCellsPerEdge sizes the grid: about this many cells per zone edge. Fewer cells means more
// edges per boundary cell (slower lookups); more means more memory. 2 gives ~200 k cells (1.6 MB)
// and ~2 edges per boundary cell entry on TLC's zones.
const (
	targetCellsPerEdge = 2
	maxGridSide        = 4096
	minGridSide        = 16
)

type seg struct{ x1, y1, x2, y2 float64 }

type cell struct {
	first uint32 // first entry (when n > 0)
	n     uint16 // entries; 0: the whole cell is in zone pure-1 (pure 0: in none)
	pure  uint16
}

type entry struct {
	zone   uint16 // index into Map.zones
	inside bool   // the zone holds the cell's centre
	first  uint32 // first edge in grid.segs
	n      uint32
}

type grid struct {
	x0, y0, w, h float64 // origin (lower left) and cell size
	invW, invH   float64
	nx, ny       int
	cells        []cell
	entries      []entry
	segs         []seg
}

// centre returns the centre of cell (i, j); the sweep and the lookups both use it.
func (g *grid) centre(i, j int) (float64, float64) {
	return g.x0 + (float64(i)+0.5)*g.w, g.y0 + (float64(j)+0.5)*g.h
}

// find returns the index of the zone holding (x, y), or -1.
func (g *grid) find(x, y float64) int {
	fi := (x - g.x0) * g.invW
	fj := (y - g.y0) * g.invH
	if !(fi >= 0 && fj >= 0 && fi < float64(g.nx) && fj < float64(g.ny)) { // also false for NaN
		return -1
	}
	i, j := int(fi), int(fj)
	c := g.cells[j*g.nx+i]
	if c.n == 0 {
		return int(c.pure) - 1
	}
	cx, cy := g.centre(i, j)
	for _, e := range g.entries[c.first : c.first+uint32(c.n)] {
		in := e.inside
		for _, s := range g.segs[e.first : e.first+e.n] {
			// Leg 1: y = cy from cx to x (the even–odd rule's own crossing test).
			if (s.y1 > cy) != (s.y2 > cy) {
				xc := s.x1 + (cy-s.y1)*(s.x2-s.x1)/(s.y2-s.y1)
				if (x < xc) != (cx < xc) {
					in = !in
				}
			}
			// Leg 2: x = x from cy to y.
			if (s.x1 > x) != (s.x2 > x) {
				yc := s.y1 + (x-s.x1)*(s.y2-s.y1)/(s.x2-s.x1)
				if (y < yc) != (cy < yc) {
					in = !in
				}
			}
		}
		if in {
			return int(e.zone)
		}
	}
	return -1
}

// buildGrid indexes the zones' rings (zone index → rings of flat x,y pairs, closed).
func buildGrid(zones [][][]float64) (*grid, error) {
	if len(zones) > math.MaxUint16-1 {
		return nil, fmt.Errorf("zone shapes: %d zones, at most %d", len(zones), math.MaxUint16-1)
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	edges := 0
	for _, rings := range zones {
		for _, r := range rings {
			for k := 0; k < len(r); k += 2 {
				minX, maxX = min(minX, r[k]), max(maxX, r[k])
				minY, maxY = min(minY, r[k+1]), max(maxY, r[k+1])
			}
			edges += len(r)/2 - 1
		}
	}
	if !(maxX > minX && maxY > minY) {
		return nil, errors.New("zone shapes: the zones have no extent")
	}
	// Pad by a little so no vertex sits on the outer border.
	padX, padY := (maxX-minX)*1e-6, (maxY-minY)*1e-6
	minX, maxX, minY, maxY = minX-padX, maxX+padX, minY-padY, maxY+padY
	spanX, spanY := maxX-minX, maxY-minY
	// Square-ish cells, about targetCellsPerEdge per edge.
	side := math.Sqrt(spanX * spanY / float64(max(edges*targetCellsPerEdge, 1)))
	nx := min(max(int(math.Ceil(spanX/side)), minGridSide), maxGridSide)
	ny := min(max(int(math.Ceil(spanY/side)), minGridSide), maxGridSide)
	g := &grid{x0: minX, y0: minY, nx: nx, ny: ny, w: spanX / float64(nx), h: spanY / float64(ny)}
	g.invW, g.invH = 1/g.w, 1/g.h

	// Every edge, once, and the (cell, zone, edge) triples of the cells it touches.
	type ref struct {
		cell uint32
		zone uint16
		edge uint32
	}
	all := make([]seg, 0, edges)
	allZone := make([]uint16, 0, edges)
	var refs []ref
	for z, rings := range zones {
		for _, r := range rings {
			for k := 2; k < len(r); k += 2 {
				s := seg{r[k-2], r[k-1], r[k], r[k+1]}
				if s.x1 == s.x2 && s.y1 == s.y2 {
					continue
				}
				e := uint32(len(all))
				all = append(all, s)
				allZone = append(allZone, uint16(z))
				i0, i1 := g.col(min(s.x1, s.x2)), g.col(max(s.x1, s.x2))
				j0, j1 := g.row(min(s.y1, s.y2)), g.row(max(s.y1, s.y2))
				for j := j0; j <= j1; j++ {
					for i := i0; i <= i1; i++ {
						if g.touches(s, i, j) {
							refs = append(refs, ref{uint32(j*nx + i), uint16(z), e})
						}
					}
				}
			}
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		switch {
		case a.cell != b.cell:
			return int(a.cell) - int(b.cell)
		case a.zone != b.zone:
			return int(a.zone) - int(b.zone)
		}
		return int(a.edge) - int(b.edge)
	})

	// Centre statuses, row by row: crossings of each row's centre line.
	type crossing struct {
		x    float64
		zone uint16
	}
	rows := make([][]crossing, ny)
	for e, s := range all {
		lo, hi := min(s.y1, s.y2), max(s.y1, s.y2)
		j0 := max(0, int(math.Floor((lo-g.y0)*g.invH-0.5))-1)
		j1 := min(ny-1, int(math.Ceil((hi-g.y0)*g.invH-0.5))+1)
		for j := j0; j <= j1; j++ {
			_, cy := g.centre(0, j)
			if (s.y1 > cy) != (s.y2 > cy) {
				rows[j] = append(rows[j], crossing{s.x1 + (cy-s.y1)*(s.x2-s.x1)/(s.y2-s.y1), allZone[e]})
			}
		}
	}
	g.cells = make([]cell, nx*ny)
	parity := make([]bool, len(zones))
	var active []uint16 // zones holding the current point, ascending
	r := 0              // next ref
	for j := range ny {
		row := rows[j]
		slices.SortFunc(row, func(a, b crossing) int {
			switch {
			case a.x < b.x:
				return -1
			case a.x > b.x:
				return 1
			}
			return 0
		})
		clear(parity)
		active = active[:0]
		k := 0
		for i := range nx {
			cx, _ := g.centre(i, j)
			for ; k < len(row) && row[k].x <= cx; k++ {
				z := row[k].zone
				parity[z] = !parity[z]
				if parity[z] {
					at, _ := slices.BinarySearch(active, z)
					active = slices.Insert(active, at, z)
				} else {
					at, _ := slices.BinarySearch(active, z)
					active = slices.Delete(active, at, at+1)
				}
			}
			idx := uint32(j*nx + i)
			c := &g.cells[idx]
			if r >= len(refs) || refs[r].cell != idx {
				if len(active) > 0 {
					c.pure = active[0] + 1
				}
				continue
			}
			// Entries: the zones with edges here and the zones holding the centre, ascending.
			c.first = uint32(len(g.entries))
			a := 0
			for r < len(refs) && refs[r].cell == idx || a < len(active) {
				var z uint16
				switch {
				case r < len(refs) && refs[r].cell == idx && (a >= len(active) || refs[r].zone <= active[a]):
					z = refs[r].zone
				default:
					z = active[a]
				}
				e := entry{zone: z, inside: parity[z], first: uint32(len(g.segs))}
				for r < len(refs) && refs[r].cell == idx && refs[r].zone == z {
					g.segs = append(g.segs, all[refs[r].edge])
					r++
				}
				if a < len(active) && active[a] == z {
					a++
				}
				e.n = uint32(len(g.segs)) - e.first
				g.entries = append(g.entries, e)
			}
			n := len(g.entries) - int(c.first)
			if n > math.MaxUint16 {
				return nil, fmt.Errorf("zone shapes: %d zones meet in one grid cell", n)
			}
			c.n = uint16(n)
		}
	}
	return g, nil
}

func (g *grid) col(x float64) int {
	return min(max(int(math.Floor((x-g.x0)*g.invW)), 0), g.nx-1)
}

func (g *grid) row(y float64) int {
	return min(max(int(math.Floor((y-g.y0)*g.invH)), 0), g.ny-1)
}

// touches reports whether segment s meets cell (i, j), grown by a hair so that rounding can only
// add an edge to a cell, never lose one (an extra edge that does not cross a lookup's path is harmless).
func (g *grid) touches(s seg, i, j int) bool {
	ex, ey := g.w*1e-6, g.h*1e-6
	xmin, ymin := g.x0+float64(i)*g.w-ex, g.y0+float64(j)*g.h-ey
	xmax, ymax := g.x0+float64(i+1)*g.w+ex, g.y0+float64(j+1)*g.h+ey
	// Liang–Barsky: clip the parameter range [0, 1] of s against the four sides.
	t0, t1 := 0.0, 1.0
	dx, dy := s.x2-s.x1, s.y2-s.y1
	for _, c := range [4][2]float64{{-dx, s.x1 - xmin}, {dx, xmax - s.x1}, {-dy, s.y1 - ymin}, {dy, ymax - s.y1}} {
		p, q := c[0], c[1]
		if p == 0 {
			if q < 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			if t > t1 {
				return false
			}
			t0 = max(t0, t)
		} else {
			if t < t0 {
				return false
			}
			t1 = min(t1, t)
		}
	}
	return t0 <= t1
}

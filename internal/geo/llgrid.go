package geo

import "math"

// llGrid answers most lookups in longitude/latitude, without projecting the point: wherever no zone edge
// passes within llMargin of a longitude/latitude cell's image in the shapes' coordinates, every point of
// the cell has the answer of the cell's centre. Cells that an edge comes near say "project": the point
// is projected and looked up in the grid. Built only for projected shapes (a GeoJSON map is in
// longitude/latitude already).
//
// Two levels: the extent is cut into blocks of about llBlock × llBlock grid cells (~210 m for TLC's
// zones). A block that no edge comes near has one answer (most of them: water, parks, the inside of
// large zones); a block that one does has llLeaf × llLeaf leaf cells (~13 m) of its own, answered
// each the same way. Trips are picked up and dropped off in the street, and Manhattan's zones are
// bounded by streets, so fine leaves matter: on the 2015 sample's coordinates they answer 85 % of the
// lookups, against 48 % for the former single level of ~53 m cells that were answered only when every
// grid cell under them held no edge.
//
// Exactness. On a Lambert conic a longitude/latitude rectangle maps to a region bounded by two straight
// meridians and two circular arcs; the bounding box of its four projected corners, grown by llMargin
// (0.5 ft, far more than an arc's bulge over a block — about 0.003 ft — and than rounding), holds it, and
// every point that maps to the cell (rounding at its sides included) projects into that box. When no
// edge meets the box, even–odd point-in-polygon gives every point of the box the same zone, the one
// the grid gives for the box's centre.
type llGrid struct {
	lon0, lat0   float64
	invBW, invBH float64 // blocks per degree of longitude, latitude
	nbx, nby     int
	top          []uint32 // per block: llUniform|code, or the offset of its leaf codes in leaves
	leaves       []uint16 // llLeaf × llLeaf codes per block that has leaves, row by row
}

// Codes: llProject (project the point), llNone + 0 (no zone), llNone + 1 + k (zone index k).
const (
	llProject = 0
	llNone    = 1

	llBlock   = 2  // block side in grid cells
	llLeaf    = 16 // leaf cells per block side (a power of two: leaf indexes are exact)
	llMargin  = 0.5
	llUniform = 1 << 31
)

// find returns the zone index (-1 for none) and true, or false when the point must be projected.
func (l *llGrid) find(lon, lat float64) (int, bool) {
	fi, fj := (lon-l.lon0)*l.invBW, (lat-l.lat0)*l.invBH
	if !(fi >= 0 && fj >= 0 && fi < float64(l.nbx) && fj < float64(l.nby)) { // also false for NaN
		return 0, false
	}
	bi, bj := int(fi), int(fj)
	t := l.top[bj*l.nbx+bi]
	c := uint16(t)
	if t&llUniform == 0 {
		// fi − bi is exact and below 1, and llLeaf a power of two: 0 ≤ li, lj < llLeaf.
		li, lj := int((fi-float64(bi))*llLeaf), int((fj-float64(bj))*llLeaf)
		c = l.leaves[int(t)+lj*llLeaf+li]
	}
	if c == llProject {
		return 0, false
	}
	return int(c) - llNone - 1, true
}

// buildLLGrid covers the grid's extent in longitude/latitude with blocks and leaves and marks what
// can be answered without projecting.
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
	l := &llGrid{lon0: minLon, lat0: minLat, nbx: (g.nx + llBlock - 1) / llBlock, nby: (g.ny + llBlock - 1) / llBlock}
	bw, bh := (maxLon-minLon)/float64(l.nbx), (maxLat-minLat)/float64(l.nby)
	l.invBW, l.invBH = 1/bw, 1/bh
	// Project the leaf nodes: ρ depends on the latitude only, θ on the longitude only.
	w, h := bw/llLeaf, bh/llLeaf
	rho := make([]float64, l.nby*llLeaf+1)
	for j := range rho {
		φ := rad(minLat + float64(j)*h)
		es := p.e * math.Sin(φ)
		rho[j] = p.aF * math.Exp(p.n*(math.Log(math.Tan(math.Pi/4-φ/2))-p.halfE*math.Log((1-es)/(1+es))))
	}
	sin, cos := make([]float64, l.nbx*llLeaf+1), make([]float64, l.nbx*llLeaf+1)
	for i := range sin {
		sin[i], cos[i] = math.Sincos(p.n * (rad(minLon+float64(i)*w) - p.lon0))
	}
	b := llBuilder{g: g, p: p, rho: rho, sin: sin, cos: cos}
	l.top = make([]uint32, l.nbx*l.nby)
	var chunks [][]uint16 // the leaves, in chunks of 64 blocks (no copying while they grow)
	n := 0
	for bj := range l.nby {
		for bi := range l.nbx {
			t, leaves := b.block(bi*llLeaf, bj*llLeaf)
			if leaves == nil {
				l.top[bj*l.nbx+bi] = llUniform | uint32(t)
				continue
			}
			if len(chunks) == 0 || len(chunks[len(chunks)-1]) == cap(chunks[len(chunks)-1]) {
				chunks = append(chunks, make([]uint16, 0, 64*len(leaves)))
			}
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], leaves...)
			l.top[bj*l.nbx+bi] = uint32(n)
			n += len(leaves)
		}
	}
	l.leaves = make([]uint16, 0, n)
	for _, c := range chunks {
		l.leaves = append(l.leaves, c...)
	}
	return l
}

// llBuilder holds the projected leaf nodes and a block's working state.
type llBuilder struct {
	g             *grid
	p             *lcc
	rho, sin, cos []float64 // of the leaf nodes: latitude rows, longitude columns

	nodes [llLeaf + 1][llLeaf + 1][2]float64 // the block's nodes, [j][i]
	boxes [llLeaf * llLeaf][4]float64        // leafBox, when boxed
	boxed [llLeaf * llLeaf]bool
	cands []seg
	codes [llLeaf * llLeaf]uint16
}

// block classifies the block whose first leaf node is (i0, j0): its code and nil when one answer holds
// for all of it, else its leaf codes (valid until the next call).
func (b *llBuilder) block(i0, j0 int) (uint16, []uint16) {
	p := b.p
	// The box of every node of the block (not only the corners: a parallel bulges), which holds every
	// leaf's box: x = fe + ρ·sin θ, y = fn + ρ0 − ρ·cos θ with ρ > 0, so the extremes are products of
	// the extremes of ρ (at the block's first and last rows: ρ is monotonic in the latitude) and of
	// sin θ and cos θ over the block's columns.
	sMin, sMax, cMin, cMax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i := i0; i <= i0+llLeaf; i++ {
		sMin, sMax, cMin, cMax = min(sMin, b.sin[i]), max(sMax, b.sin[i]), min(cMin, b.cos[i]), max(cMax, b.cos[i])
	}
	box := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, r := range [2]float64{b.rho[j0], b.rho[j0+llLeaf]} {
		for _, sc := range [2][2]float64{{sMin, cMin}, {sMax, cMax}} {
			x := p.fe + r*sc[0]*p.invUnit
			y1, y2 := p.fn+(p.rho0-r*cMin)*p.invUnit, p.fn+(p.rho0-r*cMax)*p.invUnit
			box = [4]float64{min(box[0], x), min(box[1], y1, y2), max(box[2], x), max(box[3], y1, y2)}
		}
	}
	box = [4]float64{box[0] - llMargin, box[1] - llMargin, box[2] + llMargin, box[3] + llMargin}
	b.cands = b.g.segsNear(b.cands[:0], box)
	if len(b.cands) == 0 {
		return b.code(box), nil
	}
	for j := range llLeaf + 1 {
		for i := range llLeaf + 1 {
			b.nodes[j][i] = [2]float64{p.fe + b.rho[j0+j]*b.sin[i0+i]*p.invUnit, p.fn + (p.rho0-b.rho[j0+j]*b.cos[i0+i])*p.invUnit}
		}
	}
	b.boxed = [llLeaf * llLeaf]bool{}
	// Mark the leaves an edge meets. Over a block the projection is affine to far better than a
	// leaf, so the leaves an edge may meet are found through the inverse of the block's affine map
	// (leaf coordinates), row by row along the edge, and then tested exactly.
	o := b.nodes[0][0]
	ux, uy := (b.nodes[0][llLeaf][0]-o[0])/llLeaf, (b.nodes[0][llLeaf][1]-o[1])/llLeaf // one leaf east
	vx, vy := (b.nodes[llLeaf][0][0]-o[0])/llLeaf, (b.nodes[llLeaf][0][1]-o[1])/llLeaf // one leaf north
	det := ux*vy - uy*vx
	leafOf := func(x, y float64) (float64, float64) {
		dx, dy := x-o[0], y-o[1]
		return (dx*vy - dy*vx) / det, (ux*dy - uy*dx) / det
	}
	// The slack, in leaves, by which a leaf's box reaches beyond the leaf in leaf coordinates: the
	// box's own excess (the margin; the corners of a box around a slightly turned leaf) measured at
	// the block's corner leaves, half as much again, twice the affine map's largest error at the
	// nodes where it is largest (it is exact at three corners), and 0.01.
	affine, excess := 0.0, 0.0
	for _, n := range [6][2]int{{llLeaf, llLeaf}, {llLeaf / 2, 0}, {0, llLeaf / 2}, {llLeaf, llLeaf / 2}, {llLeaf / 2, llLeaf}, {llLeaf / 2, llLeaf / 2}} {
		a, c := leafOf(b.nodes[n[1]][n[0]][0], b.nodes[n[1]][n[0]][1])
		affine = max(affine, math.Abs(a-float64(n[0])), math.Abs(c-float64(n[1])))
	}
	for _, lf := range [4][2]int{{0, 0}, {llLeaf - 1, 0}, {0, llLeaf - 1}, {llLeaf - 1, llLeaf - 1}} {
		bx := b.leafBox(lf[0], lf[1])
		for _, q := range [4][2]float64{{bx[0], bx[1]}, {bx[2], bx[1]}, {bx[0], bx[3]}, {bx[2], bx[3]}} {
			a, c := leafOf(q[0], q[1])
			i, j := float64(lf[0]), float64(lf[1])
			excess = max(excess, i-a, a-(i+1), j-c, c-(j+1))
		}
	}
	slack := 0.01 + 2*affine + 1.5*excess
	const unknown = math.MaxUint16
	for k := range b.codes {
		b.codes[k] = unknown
	}
	for _, s := range b.cands {
		a1, c1 := leafOf(s.x1, s.y1)
		a2, c2 := leafOf(s.x2, s.y2)
		j1, j2 := clampLeaf(math.Floor(min(c1, c2)-slack)), clampLeaf(math.Floor(max(c1, c2)+slack))
		for j := j1; j <= j2; j++ {
			// The part of the edge within the row's band (grown by the slack), then its leaves.
			t0, t1 := 0.0, 1.0
			if c1 != c2 {
				t0, t1 = (float64(j)-slack-c1)/(c2-c1), (float64(j+1)+slack-c1)/(c2-c1)
				t0, t1 = max(min(t0, t1), 0), min(max(t0, t1), 1)
			}
			u0, u1 := a1+t0*(a2-a1), a1+t1*(a2-a1)
			i1, i2 := clampLeaf(math.Floor(min(u0, u1)-slack)), clampLeaf(math.Floor(max(u0, u1)+slack))
			for i := i1; i <= i2; i++ {
				if b.codes[j*llLeaf+i] == llProject {
					continue
				}
				if segMeetsBox(s, *b.leafBoxCached(i, j)) {
					b.codes[j*llLeaf+i] = llProject
				}
			}
		}
	}
	// The leaves no edge meets. Neighbours' boxes overlap, so two such neighbours form one connected
	// set that no edge meets, with one answer: a leaf takes the answer of its western or southern
	// neighbour when that one has an answer, else its centre's.
	for k := range b.codes {
		if b.codes[k] != unknown {
			continue
		}
		i, j := k%llLeaf, k/llLeaf
		switch {
		case i > 0 && b.codes[k-1] != llProject:
			b.codes[k] = b.codes[k-1]
		case j > 0 && b.codes[k-llLeaf] != llProject:
			b.codes[k] = b.codes[k-llLeaf]
		default:
			b.codes[k] = b.code(b.leafBox(i, j))
		}
	}
	if first := b.codes[0]; allSame(b.codes[:], first) {
		return first, nil
	}
	return 0, b.codes[:]
}

func clampLeaf(f float64) int { return int(min(max(f, 0), llLeaf-1)) }

// leafBoxCached is leafBox, computed once per block.
func (b *llBuilder) leafBoxCached(i, j int) *[4]float64 {
	k := j*llLeaf + i
	if !b.boxed[k] {
		b.boxes[k], b.boxed[k] = b.leafBox(i, j), true
	}
	return &b.boxes[k]
}

// leafBox is the bounding box of leaf (i, j)'s four nodes, grown by llMargin.
func (b *llBuilder) leafBox(i, j int) [4]float64 {
	box := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, n := range [4][2]float64{b.nodes[j][i], b.nodes[j][i+1], b.nodes[j+1][i], b.nodes[j+1][i+1]} {
		box = [4]float64{min(box[0], n[0]), min(box[1], n[1]), max(box[2], n[0]), max(box[3], n[1])}
	}
	return [4]float64{box[0] - llMargin, box[1] - llMargin, box[2] + llMargin, box[3] + llMargin}
}

// code is the answer for a box no edge meets: the grid's answer at its centre.
func (b *llBuilder) code(box [4]float64) uint16 {
	return uint16(b.g.find((box[0]+box[2])/2, (box[1]+box[3])/2) + llNone + 1)
}

func allSame(s []uint16, v uint16) bool {
	for _, c := range s {
		if c != v {
			return false
		}
	}
	return true
}

// segsNear appends to dst the grid's edges (copies; one edge may come several times) that meet box
// (x0, y0, x1, y1).
func (g *grid) segsNear(dst []seg, box [4]float64) []seg {
	fi0, fj0 := math.Floor((box[0]-g.x0)*g.invW), math.Floor((box[1]-g.y0)*g.invH)
	fi1, fj1 := math.Floor((box[2]-g.x0)*g.invW), math.Floor((box[3]-g.y0)*g.invH)
	i0, j0 := int(max(fi0, 0)), int(max(fj0, 0))
	i1, j1 := int(min(fi1, float64(g.nx-1))), int(min(fj1, float64(g.ny-1)))
	for j := j0; j <= j1; j++ {
		for i := i0; i <= i1; i++ {
			c := g.cells[j*g.nx+i]
			if c.n == 0 {
				continue
			}
			for _, e := range g.entries[c.first : c.first+uint32(c.n)] {
				for _, s := range g.segs[e.first : e.first+e.n] {
					if segMeetsBox(s, box) {
						dst = append(dst, s)
					}
				}
			}
		}
	}
	return dst
}

// segMeetsBox reports whether segment s meets the box (x0, y0, x1, y1), borders included (Liang–Barsky).
func segMeetsBox(s seg, box [4]float64) bool {
	if max(s.x1, s.x2) < box[0] || min(s.x1, s.x2) > box[2] || max(s.y1, s.y2) < box[1] || min(s.y1, s.y2) > box[3] {
		return false
	}
	t0, t1 := 0.0, 1.0
	dx, dy := s.x2-s.x1, s.y2-s.y1
	for _, c := range [4][2]float64{{-dx, s.x1 - box[0]}, {dx, box[2] - s.x1}, {-dy, s.y1 - box[1]}, {dy, box[3] - s.y1}} {
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

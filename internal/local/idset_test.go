package local

import (
	"fmt"
	"os"
	"testing"
)

// TestIDSetGroupsAcrossSpills: ids added in any order, across several spilled runs and the buffer,
// come back once each with all their entries, sorted by kind and aux; hex record ids and other ids
// both work.
func TestIDSetGroupsAcrossSpills(t *testing.T) {
	dir := t.TempDir()
	s := newIDSet(dir)
	s.max = 7 // spill every 7 entries
	const n = 100
	id := func(i int) string {
		if i%3 == 0 {
			return fmt.Sprintf("other-id-%d", i)
		}
		return fmt.Sprintf("%016x%016x", i*7919, i)
	}
	// Each id: in the archive once, in trips with stream records i%4 (twice the same when i%5 == 0).
	for pass := 0; pass < 2; pass++ {
		for i := n - 1; i >= 0; i-- {
			if pass == 0 {
				s.add(id(i), inArchive, 0)
				continue
			}
			s.add(id(i), inTrips, uint64(i%4))
			if i%5 == 0 {
				s.add(id(i), inTrips, uint64(i%4))
			}
		}
	}
	if len(s.runs) < 10 {
		t.Fatalf("%d runs spilled, want many", len(s.runs))
	}
	groups, rewritten := 0, 0
	err := s.groups(func(g []idEntry) {
		groups++
		if g[0].kind != inArchive || g[1].kind != inTrips {
			t.Errorf("group %x not sorted by kind: %+v", g[0].key, g)
		}
		for i := 2; i < len(g); i++ {
			if g[i].aux == g[i-1].aux {
				rewritten++
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if groups != n || rewritten != n/5 {
		t.Errorf("%d groups, %d repeated trips; want %d and %d", groups, rewritten, n, n/5)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d files left in the spill folder", len(left))
	}
}

package convert

import (
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	trip := Checkpoint{Header: []string{"VendorID", "tpep_pickup_datetime"}, TaxiType: "yellow"}
	tests := []struct {
		name string
		cp   Checkpoint
		st   Stats
		size int64
		want []string // substrings, one per warning, in order
	}{
		{"a trip file", trip, Stats{RowsRead: 10, Records: 9, Rejected: 1}, 1000, nil},
		{"every row rejected", trip, Stats{RowsRead: 5, Rejected: 5}, 1000, []string{"no row converted: all 5 rows rejected"}},
		{"zero bytes", Checkpoint{}, Stats{}, 0, []string{"empty file (0 bytes)"}},
		{"a header only", trip, Stats{}, 40, []string{"a header and no rows"}},
		{"not a trip file", Checkpoint{Header: []string{"a", "b"}}, Stats{RowsRead: 3, Records: 3}, 20, []string{`no TLC trip column recognised in the header ("a", "b")`}},
		{"random bytes", Checkpoint{Header: []string{"\x89\x01", "x", "y", "z", "w", "v", "u"}}, Stats{RowsRead: 1, Rejected: 1}, 20, []string{"all 1 rows rejected", `, ...): converted as a generic CSV`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Warnings(tt.cp, tt.st, tt.size)
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings = %q, want %d warnings", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

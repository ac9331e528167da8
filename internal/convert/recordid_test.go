package convert

import (
	"strings"
	"testing"
)

// TestRecordIDParts converts a small file and finds each record's source prefix and row number back
// in its record_id.
func TestRecordIDParts(t *testing.T) {
	src := Source{Bucket: "b", Key: "raw/trips.csv", Version: "v1"}
	in := "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,trip_distance\n" +
		"1,2019-01-01 00:10:00,2019-01-01 00:20:00,1.5\n" +
		"1,oops,2019-01-01 00:20:00,1.5\n" +
		"2,2019-01-01 01:10:00,2019-01-01 01:20:00,2.5\n"
	r, err := NewCSVReader(strings.NewReader(in), Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	want := RecordIDPrefix(src)
	if len(want) != 16 || RecordIDPrefix(Source{Bucket: "b", Key: "raw/trips.csv", Version: "v2"}) == want {
		t.Fatalf("prefix %q: want 16 hex digits that depend on the version", want)
	}
	var rows []int64
	for {
		rec, err := r.Next()
		if err != nil {
			if _, ok := err.(*RowError); ok {
				continue
			}
			break
		}
		if !strings.HasPrefix(rec.ID, want) {
			t.Errorf("record_id %s does not start with RecordIDPrefix %s", rec.ID, want)
		}
		row, ok := RecordIDRow(rec.ID)
		if !ok || row != rec.Row {
			t.Errorf("RecordIDRow(%s) = %d, %v; want %d", rec.ID, row, ok, rec.Row)
		}
		rows = append(rows, row)
	}
	if len(rows) != 2 || rows[0] != 1 || rows[1] != 3 {
		t.Errorf("rows %v, want [1 3] (row 2 rejected)", rows)
	}
	if _, ok := RecordIDRow("short"); ok {
		t.Error("RecordIDRow accepted a short id")
	}
}

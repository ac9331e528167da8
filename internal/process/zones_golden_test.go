package process

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/testenv"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/historic_2015_locations.txt.gz from the current code")

// historicGolden pins what the real 2015 sample gets from TLC's shapefile through the handler: per trip
// the located ids, their sources and names, and the window's zone_stats. Written by issue 18's first
// version, before the index and the located path were made faster, so the faster code is proven to
// write the same.
const historicGolden = "testdata/historic_2015_locations.txt.gz"

// TestHistoricLocationsGolden runs the 2015 sample in a tumbling window (one invoke, then the final one)
// and compares every trip's location columns and every zone_stats row with the golden file.
func TestHistoricLocationsGolden(t *testing.T) {
	dir := testenv.TLCDir(t)
	recs, shapes := historicRecords(t, dir)
	store := newFakeS3()
	h := newShapesHandler(t, store, zonesFile(t, dir, "taxi_zone_lookup_2024.csv"), shapes)
	resp, err := h.Handle(context.Background(), windowEvent(recs, map[string]string{}, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Handle(context.Background(), windowEvent(nil, resp.State, true)); err != nil {
		t.Fatal(err)
	}
	str := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	id := func(p *int32) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	var lines []string
	for _, k := range store.keys(TripsPrefix) {
		for _, r := range readTrips(t, store.objects[k]) {
			lines = append(lines, strings.Join([]string{"trip", r.RecordID, id(r.PULocationID), r.PUSource, str(r.PUBorough), str(r.PUZone),
				str(r.PUServiceZone), id(r.DOLocationID), r.DOSource, str(r.DOBorough), str(r.DOZone), str(r.DOServiceZone)}, "|"))
		}
	}
	slices.Sort(lines)
	trips := len(lines)
	for _, k := range store.keys(ZoneStatsPrefix) {
		b := store.objects[k]
		stats, err := parquet.Read[ZoneStat](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stats {
			lines = append(lines, fmt.Sprintf("stat|%d|%s|%s|%s|%s|%d|%.2f|%.2f|%.2f|%.2f|%d", s.PULocationID, s.TaxiType,
				str(s.Borough), str(s.Zone), str(s.ServiceZone), s.Trips, s.TripDistance, s.FareAmount, s.TotalAmount, s.TipAmount, s.DurationS))
		}
	}
	if trips < 1900 || len(lines)-trips < 50 {
		t.Fatalf("%d trips and %d zone_stats rows: want the whole sample", trips, len(lines)-trips)
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.FromSlash(historicGolden)
	if *updateGolden {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write([]byte(got))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d trips, %d zone_stats rows", path, trips, len(lines)-trips)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err) // an in-repo fixture: missing is a failure
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("location columns and zone_stats of the 2015 sample (-golden +got):\n%s", diff)
	}
}

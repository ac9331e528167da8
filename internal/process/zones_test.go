package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/geo"
	"github.com/taxistream/taxistream/internal/testenv"
)

// testShapesGeoJSON: zone 230 is the square 73.99–73.98 W × 40.75–40.76 N, zone 48 the one west of it.
const testShapesGeoJSON = `{"type":"FeatureCollection","features":[
 {"type":"Feature","properties":{"LocationID":230},"geometry":{"type":"Polygon","coordinates":[[[-73.99,40.75],[-73.98,40.75],[-73.98,40.76],[-73.99,40.76],[-73.99,40.75]]]}},
 {"type":"Feature","properties":{"LocationID":48},"geometry":{"type":"Polygon","coordinates":[[[-74.00,40.75],[-73.99,40.75],[-73.99,40.76],[-74.00,40.76],[-74.00,40.75]]]}},
 {"type":"Feature","properties":{"LocationID":1},"geometry":{"type":"Point","coordinates":[-74.18,40.69]}}]}`

func testShapes(t testing.TB) *geo.Map {
	t.Helper()
	m, err := geo.LoadGeoJSON([]byte(testShapesGeoJSON))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newShapesHandler(t testing.TB, store *fakeS3, zones *Zones, shapes *geo.Map) *Handler {
	t.Helper()
	h, err := New(context.Background(), config.Config{Bucket: "bucket", MetricsNamespace: "taxistream"}, Deps{
		S3: store, Log: slog.New(slog.DiscardHandler), Metrics: io.Discard,
		Now: func() time.Time { return testNow }, Zones: zones, Shapes: shapes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// historic is a 2015-style yellow record: coordinates, no location ids.
func historic(id, coords string) []byte {
	return []byte(`{"record_id":"` + id + `","taxi_type":"yellow","pickup_datetime":"2015-01-15T03:36:12-05:00",` +
		`"dropoff_datetime":"2015-01-15T03:42:19-05:00","passenger_count":1,"trip_distance":1.0,` +
		`"fare_amount":6.5,"total_amount":6.5` + coords + "}\n")
}

func TestLocationsFromCoordinates(t *testing.T) {
	type want struct {
		pu, do         *int32
		puSrc, doSrc   string
		puZone, doZone *string
	}
	cases := []struct {
		name   string
		rec    []byte
		shapes bool
		want   want
	}{
		{"reported ids are kept", yellowWith(`"record_id":"a","pickup_longitude":-73.995,"pickup_latitude":40.755`), true,
			want{ptr[int32](230), ptr[int32](48), SourceReported, SourceReported, ptr("Times Sq/Theatre District"), ptr("Clinton East")}},
		{"coordinates in zones", historic("b", `,"pickup_longitude":-73.985,"pickup_latitude":40.755,"dropoff_longitude":-73.995,"dropoff_latitude":40.752`), true,
			want{ptr[int32](230), ptr[int32](48), SourceCoordinates, SourceCoordinates, ptr("Times Sq/Theatre District"), ptr("Clinton East")}},
		{"outside every zone is the lookup's outside id", historic("c", `,"pickup_longitude":-73.5,"pickup_latitude":40.9,"dropoff_longitude":-74.18,"dropoff_latitude":40.69`), true,
			want{ptr[int32](265), ptr[int32](265), SourceCoordinates, SourceCoordinates, ptr("Outside of NYC"), ptr("Outside of NYC")}},
		{"0,0 is no id", historic("d", `,"pickup_longitude":0,"pickup_latitude":0,"dropoff_longitude":-73.985,"dropoff_latitude":0`), true,
			want{nil, nil, SourceNone, SourceNone, nil, nil}},
		{"missing coordinates are no id", historic("e", `,"pickup_longitude":null,"pickup_latitude":40.75`), true,
			want{nil, nil, SourceNone, SourceNone, nil, nil}},
		{"not a longitude", historic("f", `,"pickup_longitude":-273.98,"pickup_latitude":40.75`), true,
			want{nil, nil, SourceNone, SourceNone, nil, nil}},
		{"without shapes nothing is located", historic("g", `,"pickup_longitude":-73.985,"pickup_latitude":40.755`), false,
			want{nil, nil, SourceNone, SourceNone, nil, nil}},
		{"without shapes reported ids are reported", yellowWith(`"record_id":"h"`), false,
			want{ptr[int32](230), ptr[int32](48), SourceReported, SourceReported, ptr("Times Sq/Theatre District"), ptr("Clinton East")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newFakeS3()
			var shapes *geo.Map
			if c.shapes {
				shapes = testShapes(t)
			}
			h := newShapesHandler(t, store, testZones(t), shapes)
			if _, err := h.Handle(context.Background(), eventOf([]events.KinesisEventRecord{kinesisRecord(0, c.rec)})); err != nil {
				t.Fatal(err)
			}
			keys := store.keys(TripsPrefix)
			if len(keys) != 1 {
				t.Fatalf("trips objects %v (quarantine %v)", keys, store.keys(QuarantinePrefix))
			}
			rows := readTrips(t, store.objects[keys[0]])
			r := rows[0]
			got := want{r.PULocationID, r.DOLocationID, r.PUSource, r.DOSource, r.PUZone, r.DOZone}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestZoneStatsCountHistoricTripsByZone: trips located from coordinates are counted under their zone in
// zone_stats, not under 0.
func TestZoneStatsCountHistoricTripsByZone(t *testing.T) {
	store := newFakeS3()
	h := newShapesHandler(t, store, testZones(t), testShapes(t))
	var metrics bytes.Buffer
	h.metrics = &metrics
	in230 := `,"pickup_longitude":-73.985,"pickup_latitude":40.755`
	resp, err := h.Handle(context.Background(), windowEvent([]events.KinesisEventRecord{
		kinesisRecord(0, historic("a", in230)),
		kinesisRecord(1, historic("b", in230)),
		kinesisRecord(2, historic("c", `,"pickup_longitude":-73.995,"pickup_latitude":40.755`)),
		kinesisRecord(3, historic("d", `,"pickup_longitude":0,"pickup_latitude":0`)),
	}, map[string]string{}, false))
	if err != nil {
		t.Fatal(err)
	}
	if m := emf(t, &metrics); m["LocationsFromCoordinates"] != 3.0 {
		t.Errorf("LocationsFromCoordinates = %v, want 3 (three pickups; no dropoff coordinates)", m["LocationsFromCoordinates"])
	}
	if _, err := h.Handle(context.Background(), windowEvent(nil, resp.State, true)); err != nil {
		t.Fatal(err)
	}
	key := ZoneStatsKey(time.Date(2019, 1, 15, 8, 36, 0, 0, time.UTC), fixtureShard, "")
	body, ok := store.objects[key]
	if !ok {
		t.Fatalf("no %s; keys %v", key, store.keys(""))
	}
	stats, err := parquet.Read[ZoneStat](bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	for _, s := range stats {
		got[s.PULocationID] += s.Trips
	}
	if diff := cmp.Diff(map[int32]int64{0: 1, 48: 1, 230: 2}, got); diff != "" {
		t.Errorf("trips per pickup zone (-want +got):\n%s", diff)
	}
}

func TestOutsideID(t *testing.T) {
	for _, c := range []struct {
		name string
		csv  string
		want int32
	}{
		{"current lookup", "LocationID,Borough,Zone,service_zone\n264,Unknown,,N/A\n265,N/A,Outside of NYC,N/A\n", 265},
		{"2017 lookup says NA", "LocationID,Borough,Zone,service_zone\n264,Unknown,NV,N/A\n265,Unknown,NA,N/A\n", 265},
		{"another id named so", "LocationID,Borough,Zone,service_zone\n300,N/A,outside of nyc,N/A\n", 300},
	} {
		t.Run(c.name, func(t *testing.T) {
			z, err := LoadZones(strings.NewReader(c.csv))
			if err != nil {
				t.Fatal(err)
			}
			if got := z.OutsideID(); got != c.want {
				t.Errorf("OutsideID = %d, want %d", got, c.want)
			}
		})
	}
	var none *Zones
	if got := none.OutsideID(); got != DefaultOutsideID {
		t.Errorf("without a lookup OutsideID = %d, want %d", got, DefaultOutsideID)
	}
}

// TestZoneShapesConfig: ZONE_SHAPES as a file, an s3:// URI or a key in the bucket; problems fail New.
func TestZoneShapesConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "zones.geojson")
	if err := os.WriteFile(file, []byte(testShapesGeoJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.geojson")
	if err := os.WriteFile(bad, []byte("not shapes"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := newFakeS3()
	store.objects["reference/zones.geojson"] = []byte(testShapesGeoJSON)
	for _, c := range []struct {
		loc, wantErr string
	}{
		{file, ""},
		{"s3://bucket/reference/zones.geojson", ""},
		{"reference/zones.geojson", ""},
		{"reference/missing.zip", "getting s3://bucket/reference/missing.zip"},
		{"s3://bucket", `ZONE_SHAPES "s3://bucket": want s3://bucket/key`},
		{"./missing.zip", "ZONE_SHAPES file ./missing.zip does not exist"},
		{bad, "loading zone shapes " + bad + ": zone shapes: neither a zipped shapefile nor GeoJSON"},
	} {
		t.Run(c.loc, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := New(context.Background(), config.Config{Bucket: "bucket", ZoneShapes: c.loc}, Deps{S3: store, Log: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: io.Discard})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("New: %v; want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.shapes == nil || h.shapes.Len() != 2 {
				t.Fatalf("shapes %v", h.shapes)
			}
			if !strings.Contains(logs.String(), `"msg":"zone shapes loaded"`) {
				t.Errorf("no load log line in %s", logs.String())
			}
		})
	}
}

// historicRun converts the real 2015 sample and runs it through the handler with TLC's shapefile and the
// 2024 lookup; it returns the fake bucket.
func historicRun(t *testing.T) (*fakeS3, *geo.Map) {
	t.Helper()
	dir := testenv.TLCDir(t)
	recs, shapes := historicRecords(t, dir)
	store := newFakeS3()
	h := newShapesHandler(t, store, zonesFile(t, dir, "taxi_zone_lookup_2024.csv"), shapes)
	if _, err := h.Handle(context.Background(), eventOf(recs)); err != nil {
		t.Fatal(err)
	}
	return store, shapes
}

// historicRecords converts the real 2015 sample into Kinesis records and loads TLC's shapefile.
func historicRecords(t *testing.T, dir string) ([]events.KinesisEventRecord, *geo.Map) {
	t.Helper()
	zip, err := os.ReadFile(filepath.Join(dir, "zones", "taxi_zones.zip"))
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := geo.Load(zip)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "samples", "yellow_tripdata_2015-01_head.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr, err := convert.NewCSVReader(f, convert.Options{Source: convert.Source{Bucket: "b", Key: "raw/yellow_tripdata_2015-01.csv"}})
	if err != nil {
		t.Fatal(err)
	}
	var recs []events.KinesisEventRecord
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kinesisRecord(len(recs), bytes.Clone(rec.JSON)))
	}
	return recs, shapes
}

// TestHistoricTripsReadByDuckDB reads the Parquet of the 2015 sample with DuckDB (@duckdb/node-api, a
// reader we did not write): the source columns and the located ids and names are there, and agree with
// what parquet-go reads.
func TestHistoricTripsReadByDuckDB(t *testing.T) {
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	store, _ := historicRun(t)
	dir := t.TempDir()
	want := map[string]int{}
	for i, k := range store.keys(TripsPrefix) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.parquet", i)), store.objects[k], 0o644); err != nil {
			t.Fatal(err)
		}
		for _, r := range readTrips(t, store.objects[k]) {
			z := "-"
			if r.PUZone != nil {
				z = *r.PUZone
			}
			want[fmt.Sprintf("%s|%v|%s", r.PUSource, r.PULocationID != nil, z)]++
		}
	}
	script := filepath.Join(dir, "q.js")
	if err := os.WriteFile(script, []byte(`const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const r = await c.runAndReadAll(process.argv[2]);
  console.log(JSON.stringify(r.getRowObjectsJson()));
})().catch(e => { console.error(e); process.exit(1); });
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sql := "SELECT pu_location_source AS src, pu_location_id IS NOT NULL AS has_id, coalesce(pu_zone, '-') AS zone, count(*) AS n " +
		"FROM read_parquet('" + filepath.Join(dir, "*.parquet") + "') GROUP BY ALL"
	cmd := exec.Command(node, script, sql)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var rows []struct {
		Src   string `json:"src"`
		HasID bool   `json:"has_id"`
		Zone  string `json:"zone"`
		N     string `json:"n"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	got := map[string]int{}
	for _, r := range rows {
		var n int
		fmt.Sscan(r.N, &n)
		got[fmt.Sprintf("%s|%v|%s", r.Src, r.HasID, r.Zone)] += n
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DuckDB's counts by pickup source and zone (-parquet-go +duckdb):\n%s", diff)
	}
	if got[SourceCoordinates+"|true|Upper East Side South"] == 0 {
		t.Errorf("no pickup located in Upper East Side South: %v", got)
	}
}

// TestHistoricTripsGetZones runs the real 2015 sample (coordinates, no ids) through the converter and
// the handler with TLC's shapefile and lookup: every trip with usable coordinates gets a zone from them,
// the others none, and the zones are where the trips are (Manhattan, the airports).
func TestHistoricTripsGetZones(t *testing.T) {
	store, shapes := historicRun(t)
	sources := map[string]int{}
	boroughs := map[string]int{}
	rows := 0
	for _, k := range store.keys(TripsPrefix) {
		for _, r := range readTrips(t, store.objects[k]) {
			rows++
			for _, side := range []struct {
				src      string
				id       *int32
				lon, lat *float64
				borough  *string
			}{{r.PUSource, r.PULocationID, r.PickupLongitude, r.PickupLatitude, r.PUBorough}, {r.DOSource, r.DOLocationID, r.DropoffLongitude, r.DropoffLatitude, r.DOBorough}} {
				sources[side.src]++
				usable := side.lon != nil && side.lat != nil && geo.Usable(*side.lon, *side.lat)
				switch {
				case side.src == SourceCoordinates && usable && side.id != nil && side.borough != nil:
					if want, ok := shapes.Locate(*side.lon, *side.lat); !ok && *side.id != 265 || ok && want != *side.id {
						t.Fatalf("record %s: id %d for %g, %g", r.RecordID, *side.id, *side.lon, *side.lat)
					}
					boroughs[*side.borough]++
				case side.src == SourceNone && !usable && side.id == nil:
				default:
					t.Fatalf("record %s: source %q, id %v, coordinates %v %v", r.RecordID, side.src, side.id, side.lon, side.lat)
				}
			}
		}
	}
	t.Logf("%d trips: sources %v, boroughs %v", rows, sources, boroughs)
	if rows < 1900 || sources[SourceCoordinates] < 2*rows*9/10 {
		t.Errorf("%d trips, %v: want almost all located from coordinates", rows, sources)
	}
	if boroughs["Manhattan"] < sources[SourceCoordinates]*8/10 {
		t.Errorf("boroughs %v: want mostly Manhattan (yellow cabs, January 2015)", boroughs)
	}
	if boroughs["Queens"] == 0 {
		t.Errorf("boroughs %v: want some Queens (the airports)", boroughs)
	}
}

func TestZonesLookupDenseAndSparse(t *testing.T) {
	z, err := LoadZones(strings.NewReader("LocationID,Borough,Zone,service_zone\n1,EWR,Newark Airport,EWR\n265,N/A,Outside of NYC,N/A\n5000,X,Far,Y\n-3,Y,Odd,Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   int32
		want string
	}{{1, "Newark Airport"}, {265, "Outside of NYC"}, {5000, "Far"}, {-3, "Odd"}, {2, ""}, {4095, ""}, {70000, ""}} {
		got := ""
		if p := z.lookup(optI{v: c.id, ok: true}); p != nil {
			got = p.Name
		}
		if got != c.want {
			t.Errorf("lookup(%d) = %q, want %q", c.id, got, c.want)
		}
	}
	if z.lookup(optI{v: 1}) != nil {
		t.Error("lookup of an absent id value found a zone")
	}
}

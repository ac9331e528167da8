package process

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const testZonesCSV = "LocationID,Borough,Zone,service_zone\n" +
	"1,EWR,Newark Airport,EWR\n" +
	"48,Manhattan,Clinton East,Yellow Zone\n" +
	"230,Manhattan,Times Sq/Theatre District,Yellow Zone\n" +
	"265,N/A,Outside of NYC,N/A\n"

func testZones(t testing.TB) *Zones {
	t.Helper()
	z, err := LoadZones(strings.NewReader(testZonesCSV))
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// emf returns the metric values of the last EMF line written.
func emf(t testing.TB, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("EMF line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

const (
	fixtureShard = "shardId-000000000000"
	fixtureSeq1  = "49590338271490256608559692538361571095921575989136588801"
)

func TestHandleFixture(t *testing.T) {
	store := newFakeS3()
	h, logs, metrics := newTestHandler(t, store, testZones(t))
	ev := loadEvent(t, "testdata/kinesis-batch.json")
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("BatchItemFailures = %v, want none", resp.BatchItemFailures)
	}
	if resp.State == nil {
		t.Error("State is nil; Lambda treats a response without state as a failure under tumbling windows")
	}
	wantKeys := []string{
		"processed/trips/pickup_date=2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".parquet",
		"processed/trips/pickup_date=2019-01-16/" + fixtureShard + "-" + fixtureSeq1 + ".parquet",
		"quarantine/2019-01-15/" + fixtureShard + "-" + fixtureSeq1 + ".jsonl.gz",
		"quarantine/unknown/" + fixtureShard + "-" + fixtureSeq1 + ".jsonl.gz",
	}
	if diff := cmp.Diff(wantKeys, store.outputKeys()); diff != "" {
		t.Fatalf("object keys (-want +got):\n%s", diff)
	}
	if rows := readTrips(t, store.objects[wantKeys[0]]); len(rows) != 1 || rows[0].RecordID != "yellow-2019-01-r1" {
		t.Errorf("trips of 2019-01-15 = %+v, want only yellow-2019-01-r1 (its duplicate dropped)", rows)
	}
	q := readQuarantine(t, store.objects[wantKeys[2]])
	if len(q) != 1 || q[0]["record_id"] != "yellow-2019-01-r2" {
		t.Fatalf("quarantine 2019-01-15 = %v", q)
	}
	var rules []string
	for _, r := range q[0]["_rejections"].([]any) {
		rules = append(rules, r.(map[string]any)["rule"].(string))
	}
	if diff := cmp.Diff([]string{RulePickupBeforeDropoff, RuleLocation}, rules); diff != "" {
		t.Errorf("rejections (-want +got):\n%s", diff)
	}
	if k := q[0]["_kinesis"].(map[string]any); k["sequence_number"] != "49590338271490256608559692538361571095921575989136588802" || k["shard_id"] != fixtureShard {
		t.Errorf("_kinesis = %v", k)
	}
	if q[0]["fare_amount"] != 6.5 || q[0]["congestion_surcharge"] != nil {
		t.Errorf("quarantine line does not keep the original record: %v", q[0])
	}
	bad := readQuarantine(t, store.objects[wantKeys[3]])
	if len(bad) != 1 || bad[0]["_raw"] != "not json\n" {
		t.Errorf("malformed record quarantine = %v", bad)
	}

	m := emf(t, metrics)
	for name, want := range map[string]float64{
		"RecordsIn": 5, "UserRecords": 5, "TripsValid": 2, "TripsInvalid": 2, "DuplicatesDropped": 1,
		"TripsInvalid_pickup_before_dropoff": 1, "TripsInvalid_location_id_range": 1, "TripsInvalid_malformed_json": 1,
		"ObjectsWritten": 4, "WriteFailures": 0,
	} {
		if got, _ := m[name].(float64); got != want {
			t.Errorf("metric %s = %v, want %v", name, m[name], want)
		}
	}
	if got, _ := m["BytesWritten"].(float64); got <= 0 {
		t.Errorf("BytesWritten = %v, want > 0", m["BytesWritten"])
	}
	// Oldest arrival 1547541372 (2019-01-15T08:36:12Z).
	wantLag := float64(testNow.Sub(time.Unix(1547541372, 0)).Milliseconds())
	if got, _ := m["BatchLagMs"].(float64); got != wantLag {
		t.Errorf("BatchLagMs = %v, want %v", m["BatchLagMs"], wantLag)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines, want one summary line:\n%s", n, logs)
	}
	for _, want := range []string{`"shard_id":"shardId-000000000000"`, `"records":5`, `"valid":2`, `"invalid":2`, `"first_seq":"` + fixtureSeq1} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("summary line lacks %s: %s", want, logs)
		}
	}

	// A retry of the same batch overwrites the same objects.
	if _, err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantKeys, store.outputKeys()); diff != "" {
		t.Errorf("keys after a retry (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }

// TestParquetGolden reads the Parquet output back and checks it field by field, and its schema
// (types, logical types, timestamps) against testdata/trips_schema.golden.
func TestParquetGolden(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, testZones(t))
	if _, err := h.Handle(context.Background(), loadEvent(t, "testdata/kinesis-batch.json")); err != nil {
		t.Fatal(err)
	}
	key := TripsKey("2019-01-15", fixtureShard, fixtureSeq1)
	body := store.objects[key]
	rows := readTrips(t, body)
	want := []TripRow{{
		RecordID: "yellow-2019-01-r1", TaxiType: "yellow", VendorID: ptr[int32](1),
		PickupDatetime: time.Date(2019, 1, 15, 8, 36, 12, 0, time.UTC),
		DropoffTime:    ptr(time.Date(2019, 1, 15, 8, 42, 19, 0, time.UTC)),
		PassengerCount: ptr[int32](1), TripDistance: ptr(1.0), RatecodeID: ptr[int32](1), StoreAndFwd: ptr("N"),
		PULocationID: ptr[int32](230), DOLocationID: ptr[int32](48), PUSource: SourceReported, DOSource: SourceReported, PaymentType: ptr[int32](1),
		FareAmount: ptr(6.5), Extra: ptr(0.5), MTATax: ptr(0.5), TipAmount: ptr(1.95), TollsAmount: ptr(0.0),
		ImprovementSurcharge: ptr(0.3), TotalAmount: ptr(9.75),
		DurationS: ptr[int64](367), AvgSpeedMph: ptr(1.0 / (367.0 / 3600)), TipShare: ptr(1.95 / 6.5), PickupHour: 3,
		PUBorough: ptr("Manhattan"), PUZone: ptr("Times Sq/Theatre District"), PUServiceZone: ptr("Yellow Zone"),
		DOBorough: ptr("Manhattan"), DOZone: ptr("Clinton East"), DOServiceZone: ptr("Yellow Zone"),
		KinesisSequenceNumber: fixtureSeq1,
	}}
	// Times read back are UTC instants; compare instants.
	opt := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
	if diff := cmp.Diff(want, rows, opt); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}

	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	schema := f.Schema().String()
	for _, col := range []string{"pickup_datetime", "dropoff_datetime", "request_datetime", "on_scene_datetime"} {
		c, ok := f.Schema().Lookup(col)
		if !ok {
			t.Fatalf("no column %s", col)
		}
		lt := c.Node.Type().LogicalType()
		if lt == nil || lt.String() != "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)" {
			t.Errorf("column %s logical type = %v, want TIMESTAMP(MICROS, isAdjustedToUTC=true)", col, lt)
		}
	}
	for _, cc := range f.Metadata().RowGroups[0].Columns {
		if got := cc.MetaData.Codec.String(); got != "SNAPPY" {
			t.Errorf("column %v codec %s, want SNAPPY", cc.MetaData.PathInSchema, got)
		}
	}
	golden := filepath.Join("testdata", "trips_schema.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(schema+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantSchema, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(wantSchema), schema+"\n"); diff != "" {
		t.Errorf("schema (-golden +got):\n%s", diff)
	}
}

func TestEnrichmentWithoutZoneLookup(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, nil)
	if _, err := h.Handle(context.Background(), loadEvent(t, "testdata/kinesis-batch.json")); err != nil {
		t.Fatal(err)
	}
	rows := readTrips(t, store.objects[TripsKey("2019-01-16", fixtureShard, fixtureSeq1)])
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	if r.PUBorough != nil || r.PUZone != nil || r.DOServiceZone != nil {
		t.Errorf("zone names without a lookup: %v %v %v, want nil", r.PUBorough, r.PUZone, r.DOServiceZone)
	}
	if r.PickupHour != 23 || r.DurationS == nil || *r.DurationS != 660 {
		t.Errorf("pickup_hour %d duration %v, want 23 and 660", r.PickupHour, r.DurationS)
	}
	if r.TipShare == nil || *r.TipShare != 0 {
		t.Errorf("tip_share = %v, want 0", r.TipShare)
	}
}

// TestHandleProjectEvents runs the project's sample events (events/*.json, used by sam local invoke
// and the Runtime Interface Emulator tests) through the handler.
func TestHandleProjectEvents(t *testing.T) {
	root := testenv.Root(t)
	for _, name := range []string{"kinesis.json", "kinesis-window.json"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, "events", name)
			store := newFakeS3()
			h, _, metrics := newTestHandler(t, store, testZones(t))
			ev := loadEvent(t, path)
			resp, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v", resp.BatchItemFailures)
			}
			m := emf(t, metrics)
			users := m["UserRecords"].(float64)
			accounted := m["TripsValid"].(float64) + m["TripsInvalid"].(float64) + m["DuplicatesDropped"].(float64)
			if users != accounted || users < float64(len(ev.Records)) {
				t.Errorf("user records %v, valid+invalid+duplicates %v, Kinesis records %d", users, accounted, len(ev.Records))
			}
			if m["TripsValid"].(float64) < 1 {
				t.Errorf("no valid trip in %s: %v", name, m)
			}
			if windowed(&ev) && resp.State[keyVersion] != stateVersion {
				t.Errorf("window state %v lacks %s", resp.State, keyVersion)
			}
		})
	}
}

package main_test

// The built ProcessFunction bootstrap (bin/native/process/bootstrap, `make build-native`) under the AWS
// Lambda Runtime Interface Emulator with gofakes3 over HTTP as its bucket, invoked with the Kinesis
// events of events/: the response shapes of the partial-batch contract, the Parquet written under
// processed/trips/ (read back with parquet-go), the tumbling window's state and its zone_stats object,
// and an S3 write failure reported as batchItemFailures with the first record's sequence number.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York whatever the machine has

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

const (
	bucket        = "taxistream-123456789012-us-east-1"
	missingBucket = "taxistream-no-such-bucket"
	zoneKey       = "reference/taxi_zone_lookup.csv"
	shard         = "shardId-000000000000"
)

// userRecord is what the test knows of one user record of an event, decoded independently of the function.
type userRecord struct {
	RecordID string    `json:"record_id"`
	Pickup   time.Time `json:"pickup_datetime"`
	PU       int32     `json:"pu_location_id"`
	Seq      string    `json:"-"`
	Sub      int32     `json:"-"`
}

func readEvent(t *testing.T, name string) ([]byte, events.KinesisTimeWindowEvent, []userRecord) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisTimeWindowEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decoding events/%s: %v", name, err)
	}
	var recs []userRecord
	for _, r := range ev.Records {
		subs, err := kpl.DeaggregateEventRecord(r)
		if err != nil {
			t.Fatalf("events/%s: %v", name, err)
		}
		for _, s := range subs {
			var u userRecord
			if err := json.Unmarshal(s.Data, &u); err != nil {
				t.Fatalf("events/%s: record %s: %v", name, r.Kinesis.SequenceNumber, err)
			}
			u.Seq, u.Sub = s.SequenceNumber, int32(s.SubSequenceNumber)
			recs = append(recs, u)
		}
	}
	return b, ev, recs
}

// invoke runs payload and decodes the response, failing on a function error.
func invoke(t *testing.T, ctx context.Context, rie *testpeers.RIE, payload []byte) (events.KinesisTimeWindowEventResponse, map[string]json.RawMessage) {
	t.Helper()
	body, err := rie.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke: %v (body %s)", err, body)
	}
	var resp events.KinesisTimeWindowEventResponse
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decoding the response %s: %v", body, err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decoding the response %s: %v", body, err)
	}
	if string(raw["batchItemFailures"]) == "" || string(raw["batchItemFailures"]) == "null" {
		t.Errorf("response %s: batchItemFailures must be a list (Lambda reads a missing or null list as success, but the contract is explicit)", body)
	}
	return resp, raw
}

func listKeys(t *testing.T, ctx context.Context, fake *testpeers.S3, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(fake.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

func readTrips(t *testing.T, fake *testpeers.S3, key string) []process.TripRow {
	t.Helper()
	b := fake.Get(t, bucket, key)
	rows, err := parquet.Read[process.TripRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("reading Parquet %s: %v", key, err)
	}
	return rows
}

// metrics returns the EMF lines of the function's output that carry name.
func metrics(out, name string) []map[string]any {
	var got []map[string]any
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"_aws"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			if _, ok := m[name]; ok {
				got = append(got, m)
			}
		}
	}
	return got
}

func TestBootstrapUnderRIE(t *testing.T) {
	bootstrap := testenv.Bootstrap(t, "process")
	testenv.RIE(t)
	zonesFile := filepath.Join(testenv.TLCDir(t), "zones", "taxi_zone_lookup_2024.csv")
	zones, err := os.ReadFile(zonesFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	fake := testpeers.StartS3(t)
	fake.CreateBucket(t, bucket)
	fake.Put(t, bucket, zoneKey, zones)
	env := fake.Env()
	env["BUCKET_NAME"] = bucket
	env["ZONE_LOOKUP"] = "s3://" + bucket + "/" + zoneKey // loaded at cold start through the S3 client
	rie := testpeers.StartRIE(t, bootstrap, env)

	plain, plainEv, plainRecs := readEvent(t, "kinesis.json")
	firstSeq := plainEv.Records[0].Kinesis.SequenceNumber

	t.Run("kinesis.json", func(t *testing.T) {
		resp, raw := invoke(t, ctx, rie, plain)
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("batchItemFailures %v, want none", resp.BatchItemFailures)
		}
		if d, ok := rie.InitDuration(); ok {
			t.Logf("ProcessFunction INIT duration under the RIE (zone lookup from gofakes3 included): %v", d)
		} else {
			t.Errorf("no INIT REPORT in the emulator's log")
		}
		if s, ok := raw["state"]; ok && string(s) != "{}" && string(s) != "null" {
			t.Errorf("state %s in the response to an event without a window", s)
		}

		trips := listKeys(t, ctx, fake, process.TripsPrefix)
		wantKey := process.TripsKey("2019-01-15", shard, firstSeq)
		if diff := cmp.Diff([]string{wantKey}, trips); diff != "" {
			t.Fatalf("objects under %s (-want +got):\n%s", process.TripsPrefix, diff)
		}
		if q := listKeys(t, ctx, fake, process.QuarantinePrefix); len(q) != 0 {
			t.Errorf("quarantine objects %v for an event of valid trips", q)
		}
		rows := readTrips(t, fake, wantKey)
		if len(rows) != len(plainRecs) {
			t.Fatalf("%d Parquet rows, want %d (2 plain records + 2 in the KPL aggregate)", len(rows), len(plainRecs))
		}
		byID := map[string]process.TripRow{}
		for _, r := range rows {
			byID[r.RecordID] = r
		}
		for _, u := range plainRecs {
			r, ok := byID[u.RecordID]
			if !ok {
				t.Errorf("record %s (seq %s/%d) missing from the Parquet file", u.RecordID, u.Seq, u.Sub)
				continue
			}
			if !r.PickupDatetime.Equal(u.Pickup) || r.PickupDatetime.Location() != time.UTC {
				t.Errorf("record %s: pickup_datetime %v, want %v as a UTC timestamp", u.RecordID, r.PickupDatetime, u.Pickup.UTC())
			}
			if r.KinesisSequenceNumber != u.Seq || r.KinesisSubSequence != u.Sub {
				t.Errorf("record %s: lineage %s/%d, want %s/%d", u.RecordID, r.KinesisSequenceNumber, r.KinesisSubSequence, u.Seq, u.Sub)
			}
			if r.PULocationID == nil || *r.PULocationID != u.PU {
				t.Errorf("record %s: pu_location_id %v, want %d", u.RecordID, r.PULocationID, u.PU)
			}
			if want := int32(u.Pickup.In(newYork(t)).Hour()); r.PickupHour != want {
				t.Errorf("record %s: pickup_hour %d, want %d (New York wall clock)", u.RecordID, r.PickupHour, want)
			}
		}
		// Enrichment from the zone lookup loaded through S3 at cold start.
		jfk := byID[plainRecs[0].RecordID]
		if got := []string{deref(jfk.PUBorough), deref(jfk.PUZone), deref(jfk.PUServiceZone)}; !slices.Equal(got, []string{"Queens", "JFK Airport", "Airports"}) {
			t.Errorf("pickup zone of location 132: %q, want Queens / JFK Airport / Airports", got)
		}
		if jfk.DurationS == nil || *jfk.DurationS != 36*60+12 {
			t.Errorf("duration_s of the first trip %v, want 2172", jfk.DurationS)
		}

		emf := metrics(rie.Stdout(), "RecordsIn")
		if len(emf) != 1 || emf[0]["RecordsIn"] != float64(3) || emf[0]["UserRecords"] != float64(4) || emf[0]["TripsValid"] != float64(4) {
			t.Errorf("EMF lines %v, want one with RecordsIn 3, UserRecords 4, TripsValid 4", emf)
		}
		if !strings.Contains(rie.Stdout(), `"message":"process batch"`) {
			t.Errorf("no JSON \"process batch\" log line in the function's output")
		}
		if bad := rie.LogLinesWithoutRequestID("zone lookup loaded"); len(bad) > 0 {
			t.Errorf("log lines without the invocation's requestId:\n%s", strings.Join(bad, "\n"))
		}

		// A retried batch overwrites its objects instead of adding rows.
		if resp, _ := invoke(t, ctx, rie, plain); len(resp.BatchItemFailures) != 0 {
			t.Errorf("retry: batchItemFailures %v, want none", resp.BatchItemFailures)
		}
		if got := listKeys(t, ctx, fake, process.TripsPrefix); !slices.Equal(got, []string{wantKey}) {
			t.Errorf("after a retry of the batch, objects %v, want only %s", got, wantKey)
		}
		if got := len(readTrips(t, fake, wantKey)); got != len(plainRecs) {
			t.Errorf("after a retry of the batch, %d rows, want %d", got, len(plainRecs))
		}
	})

	window, windowEv, windowRecs := readEvent(t, "kinesis-window.json")
	t.Run("kinesis-window.json", func(t *testing.T) {
		if windowEv.IsFinalInvokeForWindow || windowEv.Window.Start.IsZero() {
			t.Fatalf("events/kinesis-window.json is expected to be a non-final invoke of a window")
		}
		resp, _ := invoke(t, ctx, rie, window)
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("batchItemFailures %v, want none", resp.BatchItemFailures)
		}
		// One entry per pickup zone and taxi type ("<zone>:y" for yellow) plus the meta entries: the
		// zones of the state an earlier invoke of the window returned (the event carries it) and of the
		// new records, summed; the state is the handler's own, so no entry is dropped.
		trips := map[string]int64{}
		for k, v := range windowEv.State {
			if !strings.HasPrefix(k, "_") {
				n, err := strconv.ParseInt(strings.Split(v, ",")[0], 10, 64)
				if err != nil {
					t.Fatalf("events/kinesis-window.json: state %s=%q: %v", k, v, err)
				}
				trips[k] += n
			}
		}
		for _, u := range windowRecs {
			trips[strconv.Itoa(int(u.PU))+":y"]++
		}
		var zoneEntries, want []string
		for k := range resp.State {
			if !strings.HasPrefix(k, "_") {
				zoneEntries = append(zoneEntries, k)
			}
		}
		for k := range trips {
			want = append(want, k)
		}
		slices.Sort(zoneEntries)
		slices.Sort(want)
		if !slices.Equal(zoneEntries, want) || resp.State["_first"] != windowEv.State["_first"] || resp.State["_v"] != windowEv.State["_v"] {
			t.Errorf("state %v: want zones %v, the event's _first %s and _v %s", resp.State, want, windowEv.State["_first"], windowEv.State["_v"])
		}
		if bad := metrics(rie.Stdout(), "WindowStateBadEntries"); len(bad) != 0 {
			t.Errorf("the event's window state was dropped as bad entries: %v", bad)
		}
		if keys := listKeys(t, ctx, fake, process.ZoneStatsPrefix); len(keys) != 0 {
			t.Errorf("zone stats %v written before the final invoke of the window", keys)
		}

		// The final invoke of the window, as Lambda sends it: the carried state and no new records.
		final := finalInvoke(t, window, resp.State)
		resp, raw := invoke(t, ctx, rie, final)
		if len(resp.BatchItemFailures) != 0 || len(resp.State) != 0 {
			t.Errorf("final invoke: batchItemFailures %v, state %v; want neither (response %s)", resp.BatchItemFailures, resp.State, raw["state"])
		}
		statsKey := process.ZoneStatsKey(windowEv.Window.Start.Time, shard, "")
		if keys := listKeys(t, ctx, fake, process.ZoneStatsPrefix); !slices.Equal(keys, []string{statsKey}) {
			t.Fatalf("zone stats objects %v, want [%s]", keys, statsKey)
		}
		body := fake.Get(t, bucket, statsKey)
		stats, err := parquet.Read[process.ZoneStat](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatalf("reading %s: %v", statsKey, err)
		}
		if len(stats) != len(trips) {
			t.Fatalf("%d zone stat rows, want %d", len(stats), len(trips))
		}
		for _, s := range stats {
			want := trips[strconv.Itoa(int(s.PULocationID))+":y"]
			if s.Trips != want || s.TaxiType != "yellow" || s.ShardID != shard ||
				!s.WindowEnd.Equal(windowEv.Window.End.Time) || s.Borough == nil || s.Zone == nil {
				t.Errorf("zone stat %+v: want %d yellow trips of %s in the event's window with zone names", s, want, shard)
			}
		}
	})

	t.Run("S3 write failure", func(t *testing.T) {
		// A second function whose bucket does not exist: every PUT fails with NoSuchBucket. The zone lookup
		// comes from a file path this time (the bucket cannot serve it).
		env := fake.Env()
		env["BUCKET_NAME"] = missingBucket
		env["ZONE_LOOKUP"] = zonesFile
		broken := testpeers.StartRIE(t, bootstrap, env)

		resp, _ := invoke(t, ctx, broken, plain)
		wantFailure := []events.KinesisBatchItemFailure{{ItemIdentifier: firstSeq}}
		if diff := cmp.Diff(wantFailure, resp.BatchItemFailures); diff != "" {
			t.Errorf("batchItemFailures (-want +got), want the first record's sequence number, not its eventID %q:\n%s",
				plainEv.Records[0].EventID, diff)
		}
		var puts int
		for _, r := range fake.Requests("/" + missingBucket + "/") {
			if r.Method == "PUT" {
				puts++
			}
		}
		if puts == 0 {
			t.Errorf("no PUT reached gofakes3 for the missing bucket: the failure was not an S3 write failure")
		}
		if emf := metrics(broken.Stdout(), "WriteFailures"); len(emf) != 1 || emf[0]["WriteFailures"] == float64(0) || emf[0]["RecordsFailed"] != float64(3) {
			t.Errorf("EMF lines %v, want WriteFailures > 0 and RecordsFailed 3", emf)
		}

		// The final invoke of a window whose zone_stats write fails is a function error (Lambda retries
		// it with the same state), never together with batchItemFailures.
		final := finalInvoke(t, window, map[string]string{"_v": "1", "132:y": "1,1780,5200,6599,1169,2172"})
		body, err := broken.Invoke(ctx, final)
		var fe *testpeers.FunctionError
		if !errors.As(err, &fe) {
			t.Fatalf("final invoke with a failing zone_stats write: err %v, body %s; want a function error", err, body)
		}
		if !strings.Contains(fe.Message, missingBucket) || bytes.Contains(body, []byte("batchItemFailures")) {
			t.Errorf("function error %+v (body %s): want the failed PUT named and no batchItemFailures", fe, body)
		}
	})
}

// finalInvoke returns the window event as the final invoke of its window: the given state, no records.
func finalInvoke(t *testing.T, window []byte, state map[string]string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(window, &ev); err != nil {
		t.Fatal(err)
	}
	ev["isFinalInvokeForWindow"] = true
	ev["state"] = state
	ev["Records"] = []any{}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newYork(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

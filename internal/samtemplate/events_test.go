package samtemplate

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/taxistream/taxistream/internal/ingest"
)

// replayRequest is ReplayFunction's input (DESIGN.md, replay contract); internal/replay owns the type.
type replayRequest struct {
	Prefix     string `json:"prefix"`
	StartAfter string `json:"start_after"`
	MaxObjects int    `json:"max_objects"`
	DryRun     bool   `json:"dry_run"`
	ReplayID   string `json:"replay_id"`
}

// decodeFixture decodes events/<name> strictly (no unknown fields at the top level types), then checks
// that encoding and decoding again gives the same value (the fixture is the type's JSON).
func decodeFixture[T any](t *testing.T, name string) T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s as %T: %v", name, v, err)
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var w T
	if err := json.Unmarshal(again, &w); err != nil {
		t.Fatalf("decoding re-encoded %s: %v", name, err)
	}
	if diff := cmp.Diff(v, w); diff != "" {
		t.Errorf("%s does not survive a JSON round trip (-first +second):\n%s", name, diff)
	}
	return v
}

// TestEventFixturesCovered makes sure every fixture in events/ is decoded by a test below (env.json is
// not an event: the `sam local invoke --env-vars` file, checked by TestSAMLocalInvoke).
func TestEventFixturesCovered(t *testing.T) {
	tested := []string{"compact.json", "continuation.json", "env.json", "ingest-replay.json", "kinesis-window.json", "kinesis.json",
		"replay.json", "s3-put-gz.json", "s3-put-parquet.json", "s3-put-versioned.json", "s3-put.json", "schedule.json"}
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	sort.Strings(got)
	if diff := cmp.Diff(tested, got); diff != "" {
		t.Errorf("events/ (-tested +present):\n%s", diff)
	}
}

func TestS3Fixtures(t *testing.T) {
	tpl := loadStack(t)
	s, err := tpl.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, wantKey, wantEvent string
		versioned                bool
	}{
		{"s3-put.json", "raw/2019/yellow tripdata+sample.csv", "RawCsv", false},
		{"s3-put-gz.json", "raw/2019/yellow_tripdata_2019-01.csv.gz", "RawCsvGz", false},
		{"s3-put-parquet.json", "raw/2024/yellow_tripdata_2024-01.parquet", "RawParquet", false},
		// BucketVersioning=Enabled: the notification names the version (ingest reads that one).
		{"s3-put-versioned.json", "raw/2019/yellow tripdata+sample.csv", "RawCsv", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev := decodeFixture[events.S3Event](t, tt.file)
			if len(ev.Records) != 1 {
				t.Fatalf("%d records, want 1", len(ev.Records))
			}
			r := ev.Records[0]
			if r.EventVersion != "2.1" || r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
				t.Errorf("record %s %s %s, want a 2.1 aws:s3 ObjectCreated notification", r.EventVersion, r.EventSource, r.EventName)
			}
			if r.EventTime.IsZero() || r.S3.Object.Sequencer == "" || r.S3.Object.ETag == "" || r.S3.Object.Size <= 0 {
				t.Errorf("record lacks time, sequencer, ETag or size: %+v", r)
			}
			if got := r.S3.Object.VersionID != ""; got != tt.versioned {
				t.Errorf("versionId %q: want one only in the fixture of a versioned bucket (%v)", r.S3.Object.VersionID, tt.versioned)
			}
			if got := r.S3.Object.URLDecodedKey; got != tt.wantKey {
				t.Errorf("URLDecodedKey %q, want %q", got, tt.wantKey)
			}
			if r.S3.Bucket.Arn != "arn:aws:s3:::"+r.S3.Bucket.Name {
				t.Errorf("bucket ARN %q does not match its name %q", r.S3.Bucket.Arn, r.S3.Bucket.Name)
			}
			var matched []string
			for _, e := range s.Functions["IngestFunction"].S3Events {
				if e.Matches(r.EventName, r.S3.Object.URLDecodedKey) {
					matched = append(matched, e.Name)
				}
			}
			if !reflect.DeepEqual(matched, []string{tt.wantEvent}) {
				t.Errorf("the template's S3 events matching the fixture: %v, want [%s]", matched, tt.wantEvent)
			}
		})
	}
	// The key with a space and a plus arrives form-encoded, exactly as S3 sends it.
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "s3-put.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"key": "raw/2019/yellow+tripdata%2Bsample.csv"`)) {
		t.Error(`s3-put.json: key is not the form-encoded "raw/2019/yellow+tripdata%2Bsample.csv"`)
	}
}

// canonicalFields are fields every trip record of the record contract carries.
var canonicalFields = []string{"record_id", "taxi_type", "vendor_id", "pickup_datetime", "dropoff_datetime",
	"passenger_count", "trip_distance", "pu_location_id", "do_location_id", "payment_type", "fare_amount",
	"tip_amount", "total_amount"}

func TestKinesisFixture(t *testing.T) {
	ev := decodeFixture[events.KinesisEvent](t, "kinesis.json")
	checkKinesisRecords(t, ev.Records)
}

func TestKinesisWindowFixture(t *testing.T) {
	ev := decodeFixture[events.KinesisTimeWindowEvent](t, "kinesis-window.json")
	checkKinesisRecords(t, ev.Records)
	if !ev.Window.Start.Before(ev.Window.End.Time) {
		t.Errorf("window %v..%v is empty", ev.Window.Start, ev.Window.End)
	}
	if ev.ShardID == "" || !strings.HasPrefix(ev.EventSourceARN, "arn:aws:kinesis:") || len(ev.State) == 0 {
		t.Errorf("window event lacks shardId, eventSourceARN or state: %+v", ev.TimeWindowProperties)
	}
	// The state an earlier invoke of this window returned, in ProcessFunction's own encoding
	// (internal/process/window.go): "<pu_location_id>:<y|g|f|h>" -> six integer sums, and meta entries
	// "_v" (version 1) and "_first" (the first sequence number counted, before this event's records).
	zone := regexp.MustCompile(`^[0-9]+(:[ygfh])?$`)
	sums := regexp.MustCompile(`^[0-9]+(,-?[0-9]+){5}$`)
	zones := 0
	for k, v := range ev.State {
		switch {
		case k == "_v":
			if v != "1" {
				t.Errorf("state _v=%q, want 1", v)
			}
		case k == "_first":
			first, ok1 := new(big.Int).SetString(v, 10)
			rec, ok2 := new(big.Int).SetString(ev.Records[0].Kinesis.SequenceNumber, 10)
			if !ok1 || !ok2 || first.Cmp(rec) >= 0 {
				t.Errorf("state _first=%q is not a sequence number before the event's first record", v)
			}
		case zone.MatchString(k) && sums.MatchString(v):
			zones++
		default:
			t.Errorf("state entry %s=%q is not ProcessFunction's encoding", k, v)
		}
	}
	if zones == 0 || ev.State["_v"] == "" || ev.State["_first"] == "" {
		t.Errorf("state %v: want zone entries, _v and _first", ev.State)
	}
	for _, r := range ev.Records {
		at := r.Kinesis.ApproximateArrivalTimestamp.Time
		if at.Before(ev.Window.Start.Time) || !at.Before(ev.Window.End.Time) {
			t.Errorf("record %s arrived at %v, outside the window", r.Kinesis.SequenceNumber, at)
		}
	}
}

func checkKinesisRecords(t *testing.T, records []events.KinesisEventRecord) {
	t.Helper()
	if len(records) < 2 {
		t.Fatalf("%d records, want at least 2", len(records))
	}
	aggregates := 0
	for _, r := range records {
		if r.EventSource != "aws:kinesis" || r.EventName != "aws:kinesis:record" || r.EventSourceArn == "" {
			t.Errorf("record %s: source %q name %q arn %q", r.EventID, r.EventSource, r.EventName, r.EventSourceArn)
		}
		if r.EventID != "shardId-000000000000:"+r.Kinesis.SequenceNumber {
			t.Errorf("eventID %q is not <shard>:<sequence number>", r.EventID)
		}
		users := []userRecord{{r.Kinesis.PartitionKey, r.Kinesis.Data}}
		if bytes.HasPrefix(r.Kinesis.Data, kplMagic) {
			aggregates++
			var err error
			if users, err = deaggregate(r.Kinesis.Data); err != nil {
				t.Errorf("record %s: %v", r.Kinesis.SequenceNumber, err)
				continue
			}
			if len(users) < 2 {
				t.Errorf("aggregate %s holds %d user records, want several", r.Kinesis.SequenceNumber, len(users))
			}
		}
		for _, u := range users {
			if !bytes.HasSuffix(u.data, []byte("\n")) || bytes.Count(u.data, []byte("\n")) != 1 {
				t.Errorf("user record %q is not one JSON line ending in \\n", u.data)
			}
			var trip map[string]any
			if err := json.Unmarshal(u.data, &trip); err != nil {
				t.Errorf("user record is not JSON: %v", err)
				continue
			}
			for _, f := range canonicalFields {
				if _, ok := trip[f]; !ok {
					t.Errorf("trip %v lacks %s", trip["record_id"], f)
				}
			}
			// The partition key is the record's own pu_location_id (the default PARTITION_KEY_FIELD).
			if got := fmt.Sprint(trip["pu_location_id"]); got != u.partitionKey {
				t.Errorf("trip %v has partition key %q, want its pu_location_id %s", trip["record_id"], u.partitionKey, got)
			}
		}
	}
	if aggregates == 0 && len(records) > 2 {
		t.Errorf("no KPL aggregate among %d records", len(records))
	}
}

var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

type userRecord struct {
	partitionKey string
	data         []byte
}

// deaggregate decodes a KPL aggregate (magic, protobuf AggregatedRecord, MD5 of the protobuf), enough
// to check the fixture; internal/kpl is the real implementation.
func deaggregate(b []byte) ([]userRecord, error) {
	if len(b) < len(kplMagic)+md5.Size {
		return nil, fmt.Errorf("aggregate of %d bytes is too short", len(b))
	}
	body, sum := b[len(kplMagic):len(b)-md5.Size], b[len(b)-md5.Size:]
	if got := md5.Sum(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("MD5 trailer mismatch")
	}
	var keys []string
	type rec struct {
		key  uint64
		data []byte
	}
	var recs []rec
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		body = body[n:]
		if typ != protowire.BytesType {
			return nil, fmt.Errorf("field %d has wire type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(body)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		body = body[n:]
		switch num {
		case 1:
			keys = append(keys, string(v))
		case 3:
			var r rec
			for len(v) > 0 {
				fnum, ftyp, n := protowire.ConsumeTag(v)
				if n < 0 {
					return nil, protowire.ParseError(n)
				}
				v = v[n:]
				switch {
				case fnum == 1 && ftyp == protowire.VarintType:
					r.key, n = protowire.ConsumeVarint(v)
				case fnum == 3 && ftyp == protowire.BytesType:
					r.data, n = protowire.ConsumeBytes(v)
				default:
					n = protowire.ConsumeFieldValue(fnum, ftyp, v)
				}
				if n < 0 {
					return nil, protowire.ParseError(n)
				}
				v = v[n:]
			}
			recs = append(recs, r)
		}
	}
	out := make([]userRecord, 0, len(recs))
	for _, r := range recs {
		if r.key >= uint64(len(keys)) {
			return nil, fmt.Errorf("partition key index %d out of %d", r.key, len(keys))
		}
		out = append(out, userRecord{keys[r.key], r.data})
	}
	return out, nil
}

func TestIngestEventFixtures(t *testing.T) {
	cont := decodeFixture[ingest.Event](t, "continuation.json")
	if cont.Kind != ingest.KindContinuation || cont.Continuation < 1 || cont.ReplayID != "" {
		t.Errorf("continuation.json: %+v, want a continuation (>= 1) without replay id", cont)
	}
	rep := decodeFixture[ingest.Event](t, "ingest-replay.json")
	if rep.Kind != ingest.KindReplay || rep.ReplayID == "" || rep.Continuation != 0 {
		t.Errorf("ingest-replay.json: %+v, want a replay with a replay id", rep)
	}
	for _, e := range []ingest.Event{cont, rep} {
		if e.Bucket == "" || !strings.HasPrefix(e.Key, "raw/") || strings.Contains(e.Key, "%") || e.ETag == "" || e.Size <= 0 {
			t.Errorf("%s event %+v: want bucket, a decoded raw/ key, ETag and size", e.Kind, e)
		}
	}
}

func TestReplayRequestFixture(t *testing.T) {
	r := decodeFixture[replayRequest](t, "replay.json")
	if !strings.HasPrefix(r.Prefix, "raw/") || r.MaxObjects <= 0 || r.ReplayID == "" {
		t.Errorf("replay.json: %+v, want a raw/ prefix, an object limit and a replay id", r)
	}
	if r.StartAfter != "" && !strings.HasPrefix(r.StartAfter, r.Prefix) {
		t.Errorf("start_after %q is outside the prefix %q", r.StartAfter, r.Prefix)
	}
}

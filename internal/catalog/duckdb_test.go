package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/samtemplate"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// Hand-made rows appended to a generated file: one valid trip to compare field by field, two that fail
// validation.
const (
	knownTrip     = "2,2019-01-15 13:30:00,2019-01-15 13:52:30,2,3.75,1,N,161,236,1,15.5,0,0.5,3.26,0,0.3,19.56,0"
	dropoffBefore = "1,2019-01-16 10:00:00,2019-01-16 09:00:00,1,1.2,1,N,100,101,2,6,0,0.5,0,0,0.3,6.8,0"
	negativeDist  = "1,2019-01-17 11:00:00,2019-01-17 11:10:00,1,-3.5,1,N,100,101,2,9,0,0.5,0,0,0.3,9.8,0"
)

func num(t *testing.T, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			t.Fatal(err)
		}
		return f
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			t.Fatalf("not a number: %q", x)
		}
		return f
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

// TestDuckDBReadsThroughTheGlueTables runs a generated file (plus hand-made rows) through the local
// pipeline — ingest, Firehose, ProcessFunction, compaction — and reads the bucket with DuckDB through
// views built from the Glue tables of template.yaml alone (columns, types, SerDe, location, partition
// projection). The rows must be the expected ones, and every named query must run and agree.
func TestDuckDBReadsThroughTheGlueTables(t *testing.T) {
	root := testenv.Root(t)
	var csv bytes.Buffer
	if _, err := gen.Write(&csv, gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: 3000, Seed: 16}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{knownTrip, dropoffBefore, negativeDist} {
		csv.WriteString(l + "\n")
	}
	file := filepath.Join(t.TempDir(), "yellow_tripdata_2019-01.csv")
	if err := os.WriteFile(file, csv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cloud, err := local.Start(ctx, local.Options{
		// Small batches: several objects per partition, for compaction to merge.
		Dir: t.TempDir(), TemplatePath: filepath.Join(root, "template.yaml"), LimitsOff: true, Overrides: map[string]string{"BatchSize": "3"},
		AsyncRetryDelays: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cloud.Bucket.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cloud.Bucket.Name()), Key: aws.String("raw/yellow_tripdata_2019-01.csv"), Body: f})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := cloud.Compact(ctx, compact.Request{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := cloud.Summarize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Reconciled || sum.Quarantined != 2 || cs.FilesAfter != cs.Partitions || cs.FilesAfter >= cs.FilesBefore {
		t.Fatalf("local run: %+v\ncompaction: %+v", sum, cs)
	}

	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The local cloud resolves the template with the same defaults: the bucket is the same name.
	tables, err := Tables(tpl, samtemplate.Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tables["trips"].Location, "s3://"+cloud.Bucket.Name()+"/") {
		t.Fatalf("trips location %s is not in bucket %s", tables["trips"].Location, cloud.Bucket.Name())
	}
	var stmts []string
	for _, name := range []string{"trips", "zone_stats", "quarantine", "archive"} {
		v, err := tables[name].DuckDBView(cloud.Bucket.Dir())
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, v)
	}
	checks := []string{
		`SELECT count(*) AS n, count(DISTINCT record_id) AS d, count(DISTINCT pickup_date) AS dates,
			count(*) FILTER (WHERE strftime(strptime(pickup_date, '%Y-%m-%d'), '%Y-%m-%d') <> pickup_date
				OR pickup_date < '2009-01-01' OR strptime(pickup_date, '%Y-%m-%d') > now() + INTERVAL 1 YEAR) AS outside
		 FROM trips`,
		`SELECT vendor_id, strftime(pickup_datetime, '%Y-%m-%d %H:%M:%S') AS pickup_utc, strftime(dropoff_datetime, '%Y-%m-%d %H:%M:%S') AS dropoff_utc,
			passenger_count, trip_distance, pu_location_id, do_location_id, payment_type, total_amount,
			tip_amount, duration_s, pickup_hour, pickup_date, taxi_type
		 FROM trips WHERE pickup_datetime = TIMESTAMP '2019-01-15 18:30:00' AND pu_location_id = 161`,
		// The projection's interval is the window length: window starts are aligned to it since the epoch.
		`SELECT sum(trips) AS trips, count(*) FILTER (WHERE NOT regexp_matches(window_start, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$')
			OR epoch(strptime(window_start, '%Y-%m-%dT%H:%M:%SZ'))::BIGINT % 300 <> 0) AS misplaced FROM zone_stats`,
		`SELECT count(*) AS n, count(*) FILTER (WHERE kinesis.sequence_number IS NULL OR record_id IS NULL) AS incomplete FROM quarantine`,
		`SELECT count(*) AS n, count(DISTINCT record_id) AS d, count(*) FILTER (WHERE NOT regexp_matches(dt, '^[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}$')) AS bad_dt FROM archive`,
	}
	// Every named query of the workgroup runs over the same tables.
	var queries []string
	for _, id := range tpl.ResourceIDs("AWS::Athena::NamedQuery") {
		r, _ := tpl.Resource(id)
		q, _ := r.Properties["QueryString"].(string)
		if q == "" {
			t.Fatalf("%s has no QueryString", id)
		}
		queries = append(queries, id)
		checks = append(checks, q)
	}
	res := testpeers.DuckDBRows(t, append(stmts, checks...)...)[len(stmts):]

	trips := res[0][0]
	if n, d := num(t, trips["n"]), num(t, trips["d"]); n != float64(sum.TripsProcessed) || d != n {
		t.Errorf("trips: %v rows, %v distinct; want %d", n, d, sum.TripsProcessed)
	}
	if num(t, trips["dates"]) != float64(cs.Partitions) || num(t, trips["outside"]) != 0 {
		t.Errorf("trips: %v pickup dates (want %d), %v outside the projection", trips["dates"], cs.Partitions, trips["outside"])
	}
	want := []map[string]any{{
		"vendor_id": 2.0, "pickup_utc": "2019-01-15 18:30:00", "dropoff_utc": "2019-01-15 18:52:30",
		"passenger_count": 2.0, "trip_distance": 3.75, "pu_location_id": 161.0,
		"do_location_id": 236.0, "payment_type": 1.0, "total_amount": 19.56,
		"tip_amount": 3.26, "duration_s": "1350", "pickup_hour": 13.0,
		"pickup_date": "2019-01-15", "taxi_type": "yellow",
	}}
	if diff := cmp.Diff(want, res[1]); diff != "" {
		t.Errorf("the known trip through the trips table (-want +got):\n%s", diff)
	}
	if got := num(t, res[2][0]["trips"]); got != float64(sum.TripsProcessed) || num(t, res[2][0]["misplaced"]) != 0 {
		t.Errorf("zone_stats count %v trips (want %d), %v rows outside the projection", got, sum.TripsProcessed, res[2][0]["misplaced"])
	}
	if n := num(t, res[3][0]["n"]); n != 2 || num(t, res[3][0]["incomplete"]) != 0 {
		t.Errorf("quarantine: %v", res[3])
	}
	if n, d := num(t, res[4][0]["n"]), num(t, res[4][0]["d"]); d != float64(sum.RecordsSent) || n < d || num(t, res[4][0]["bad_dt"]) != 0 {
		t.Errorf("archive: %v, want %d distinct records", res[4], sum.RecordsSent)
	}

	named := res[len(res)-len(queries):]
	for i, id := range queries {
		rows := named[i]
		switch id {
		case "TripsPerDayQuery":
			total := 0.0
			for _, r := range rows {
				total += num(t, r["trips"])
			}
			if total != float64(sum.TripsProcessed) || len(rows) == 0 {
				t.Errorf("%s: %v trips over %d rows, want %d (every generated pickup is in January 2019)", id, total, len(rows), sum.TripsProcessed)
			}
		case "QuarantineReasonsQuery":
			got := map[string]float64{}
			for _, r := range rows {
				got[fmt.Sprint(r["rule"])] = num(t, r["records"])
			}
			if got["pickup_before_dropoff"] != 1 || got["distance_non_negative"] != 1 {
				t.Errorf("%s: %v, want pickup_before_dropoff and distance_non_negative once each", id, rows)
			}
		case "DuplicatesQuery":
			if len(rows) != 0 {
				t.Errorf("%s: %v, want no date with duplicates", id, rows)
			}
		case "ExactTripsQuery":
			if len(rows) == 0 {
				t.Errorf("%s: no trip on 2019-01-15", id)
			}
		default:
			t.Errorf("named query %s is not checked here", id)
		}
	}
}

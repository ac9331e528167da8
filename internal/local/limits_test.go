package local

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/process"
)

// TestLimitsOffLiftsPacing: with limits off, IngestFunction's producer is not paced: it fills
// PutRecords requests towards the 5 MiB limit (a paced producer sends a twentieth of a shard's second,
// ~51 KiB, per shard and request), nothing is throttled, balanced routing loads both shards alike, and
// the run reconciles.
func TestLimitsOffLiftsPacing(t *testing.T) {
	t.Parallel()
	c := startCloud(t, Options{LimitsOff: true, Overrides: map[string]string{"ShardCount": "2"}})
	if err := PutGenerated(context.Background(), c, "raw/yellow_tripdata_2019-01.csv",
		gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: 30_000, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	s := drainAndSummarize(t, c, 3*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	st := c.Stream.Stats()
	if st.Throttled != 0 || st.PutRequests == 0 {
		t.Fatalf("stream stats %+v", st)
	}
	if avg := st.BytesStored / st.PutRequests; avg < 512<<10 {
		t.Errorf("%d requests for %d bytes: %d bytes per request, want requests of more than 512 KiB (producer unpaced)", st.PutRequests, st.BytesStored, avg)
	}
	if len(st.Shards) != 2 {
		t.Fatalf("%d shards", len(st.Shards))
	}
	for _, sh := range st.Shards {
		if share := float64(sh.BytesStored) / float64(st.BytesStored); share < 0.4 || share > 0.6 {
			t.Errorf("shard %s got %.0f %% of the bytes, want about half (balanced routing)", sh.ShardID, 100*share)
		}
	}
	// Zone statistics come per shard (every shard carries every zone): their lines add up to the trips.
	var trips int64
	zones := map[int32]map[string]bool{} // zone → shards with a line for it
	err := each(context.Background(), c.Bucket, c.Bucket.Name(), "processed/zone_stats/", func(key string, body []byte) error {
		rows, err := parquet.Read[process.ZoneStat](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return err
		}
		for _, r := range rows {
			trips += r.Trips
			if zones[r.PULocationID] == nil {
				zones[r.PULocationID] = map[string]bool{}
			}
			zones[r.PULocationID][r.ShardID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if trips != s.TripsProcessed {
		t.Errorf("zone statistics count %d trips, %d were processed", trips, s.TripsProcessed)
	}
	if len(zones[132]) != 2 {
		t.Errorf("zone 132 has lines from %d shards, want 2 (balanced routing spreads every zone)", len(zones[132]))
	}
}

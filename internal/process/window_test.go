package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/parquet-go/parquet-go"
)

func windowEvent(recs []events.KinesisEventRecord, state map[string]string, final bool) events.KinesisTimeWindowEvent {
	ev := eventOf(recs)
	ev.Window = events.Window{
		Start: events.RFC3339EpochTime{Time: time.Date(2019, 1, 15, 8, 36, 0, 0, time.UTC)},
		End:   events.RFC3339EpochTime{Time: time.Date(2019, 1, 15, 8, 38, 0, 0, time.UTC)},
	}
	ev.State = state
	ev.IsFinalInvokeForWindow = final
	return ev
}

func TestTumblingWindowRoundTrip(t *testing.T) {
	store := newFakeS3()
	h, _, metrics := newTestHandler(t, store, testZones(t))
	// Invoke 1: two yellow trips from zone 230; invoke 2: one more and a green one; then the final invoke.
	ev := windowEvent([]events.KinesisEventRecord{
		kinesisRecord(0, yellowWith(`"record_id":"a"`)),
		kinesisRecord(1, yellowWith(`"record_id":"b","fare_amount":10,"total_amount":13.25`)),
		kinesisRecord(2, yellowWith(`"record_id":"bad","pu_location_id":999`)),
	}, map[string]string{}, false)
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.State["230:y"], "2,200,1650,2300,390,734"; got != want {
		t.Fatalf("state 230:y = %q, want %q (state %v)", got, want, resp.State)
	}
	// The state survives a JSON round trip, as Lambda passes it.
	b, _ := json.Marshal(resp)
	var back events.KinesisTimeWindowEventResponse
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	green := []byte(`{"record_id":"g","taxi_type":"green","pickup_datetime":"2019-01-15T03:00:00-05:00","dropoff_datetime":"2019-01-15T03:10:00-05:00","trip_distance":2.5,"pu_location_id":1,"fare_amount":10,"total_amount":10}`)
	ev = windowEvent([]events.KinesisEventRecord{kinesisRecord(3, yellowWith(`"record_id":"c"`)), kinesisRecord(4, green)}, back.State, false)
	resp, err = h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.State["230:y"], "3,300,2300,3275,585,1101"; got != want {
		t.Errorf("state 230:y = %q, want %q", got, want)
	}
	if len(store.keys(ZoneStatsPrefix)) != 0 {
		t.Fatal("zone stats written before the final invoke")
	}

	metrics.Reset()
	resp, err = h.Handle(context.Background(), windowEvent(nil, resp.State, true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.State == nil || len(resp.State) != 0 {
		t.Errorf("final state = %v, want empty (not nil)", resp.State)
	}
	key := "processed/zone_stats/window_start=2019-01-15T08:36:00Z/" + fixtureShard + ".parquet"
	body, ok := store.objects[key]
	if !ok {
		t.Fatalf("no %s; keys %v", key, store.keys(""))
	}
	checkFooter(t, key, body)
	stats, err := parquet.Read[ZoneStat](bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 {
		t.Fatalf("stats %+v, want zones 1 and 230", stats)
	}
	s := stats[1]
	if s.PULocationID != 230 || s.TaxiType != "yellow" || s.Trips != 3 || s.TripDistance != 3 || s.FareAmount != 23 ||
		s.TotalAmount != 32.75 || math.Abs(s.TipAmount-5.85) > 1e-9 || s.DurationS != 1101 || s.Zone == nil || *s.Zone != "Times Sq/Theatre District" ||
		!s.WindowEnd.Equal(time.Date(2019, 1, 15, 8, 38, 0, 0, time.UTC)) || s.ShardID != fixtureShard {
		t.Errorf("zone 230 = %+v", s)
	}
	if stats[0].PULocationID != 1 || stats[0].TaxiType != "green" || stats[0].Borough == nil || *stats[0].Borough != "EWR" {
		t.Errorf("zone 1 = %+v", stats[0])
	}
	if m := emf(t, metrics); m["WindowsWritten"] != 1.0 {
		t.Errorf("WindowsWritten = %v", m["WindowsWritten"])
	}
}

func TestTumblingWindowFinalWriteFailure(t *testing.T) {
	store := newFakeS3()
	store.failPut = func(key string) bool { return strings.HasPrefix(key, ZoneStatsPrefix) }
	h, _, _ := newTestHandler(t, store, nil)
	resp, err := h.Handle(context.Background(), windowEvent(nil, map[string]string{"230:y": "1,100,650,975,195,367"}, true))
	if err == nil {
		t.Fatal("want an error so that Lambda retries the final invoke")
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("error returned together with failures %v", resp.BatchItemFailures)
	}
}

func TestTumblingWindowTerminatedEarly(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, nil)
	ev := windowEvent([]events.KinesisEventRecord{kinesisRecord(0, yellowWith(""))}, map[string]string{}, false)
	ev.IsWindowTerminatedEarly = true
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.State) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	want := "processed/zone_stats/window_start=2019-01-15T08:36:00Z/" + fixtureShard + "-" + seqOf(0) + ".parquet"
	if _, ok := store.objects[want]; !ok {
		t.Errorf("no %s; keys %v", want, store.keys(""))
	}
}

func TestWindowStateSize(t *testing.T) {
	// Worst case at full granularity: every location id 0..265 × 4 taxi types with huge sums.
	ws := &windowState{zones: map[zoneKey]*zoneAgg{}, firstSeq: seqOf(0)}
	for loc := int32(0); loc <= MaxLocationID; loc++ {
		for _, typ := range []byte("ygfh") {
			*ws.agg(zoneKey{loc, typ}) = zoneAgg{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
		}
	}
	state, size := ws.encode()
	b, _ := json.Marshal(state)
	if size < len(b) {
		t.Errorf("estimated size %d below the JSON size %d", size, len(b))
	}
	if size > defaultStateBudget {
		t.Errorf("worst-case state %d bytes exceeds the budget %d", size, defaultStateBudget)
	}

	// A small budget forces the fallback: taxi types are dropped, totals are kept.
	store := newFakeS3()
	h, _, metrics := newTestHandler(t, store, nil)
	h.stateBudget = 300
	var recs []events.KinesisEventRecord
	for i := 0; i < 20; i++ {
		recs = append(recs, kinesisRecord(i, yellowWith(fmt.Sprintf(`"record_id":"r%d","pu_location_id":%d`, i, 1+i%10))))
	}
	green := (`{"record_id":"g","taxi_type":"green","pickup_datetime":"2019-01-15T03:00:00-05:00","dropoff_datetime":"2019-01-15T03:10:00-05:00","pu_location_id":1,"fare_amount":10,"total_amount":10}`)
	recs = append(recs, kinesisRecord(20, []byte(green)))
	resp, err := h.Handle(context.Background(), windowEvent(recs, map[string]string{}, false))
	if err != nil {
		t.Fatal(err)
	}
	if resp.State[keyCollapsed] != "1" || resp.State["1"] != "3,200,2300,2950,390,1334" || resp.State["1:y"] != "" {
		t.Errorf("collapsed state %v", resp.State)
	}
	if m := emf(t, metrics); m["WindowStateCollapsed"] != 1.0 {
		t.Errorf("WindowStateCollapsed = %v", m["WindowStateCollapsed"])
	}
	// A collapsed state stays collapsed across invokes.
	resp, err = h.Handle(context.Background(), windowEvent([]events.KinesisEventRecord{kinesisRecord(21, yellowWith(`"record_id":"z","pu_location_id":1`))}, resp.State, false))
	if err != nil || resp.State["1"] != "4,300,2950,3925,585,1701" {
		t.Errorf("state after a collapsed invoke %v (%v)", resp.State, err)
	}
}

func TestDecodeStateBadEntries(t *testing.T) {
	ws, bad := decodeState(map[string]string{"_v": "1", "230:y": "1,2,3,4,5,6", "132": `{"trips":3}`, "x:y": "1,2,3,4,5,6", "5:q": "1,2,3,4,5,6"})
	if bad != 3 || len(ws.zones) != 1 {
		t.Errorf("bad %d zones %v", bad, ws.zones)
	}
}

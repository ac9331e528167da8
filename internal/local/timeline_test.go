package local

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/local/stream"
)

// timelineTotals adds up a timeline.
type timelineTotals struct {
	records, bytes, throttled, failed, retried int64
	userRecords, kinesisRecords                int64
	putEntries, putStored                      int64
	invocations                                map[string]int
	continuations                              int
	batchRecordsOK                             int64
}

func totals(d *TimelineData) timelineTotals {
	t := timelineTotals{invocations: map[string]int{}}
	for _, s := range d.Seconds {
		t.records += s.Records
		t.bytes += s.Bytes
		t.throttled += s.Throttled
		t.failed += s.Failed
		t.retried += s.Retried
	}
	for n, c := range d.Aggregates {
		t.userRecords += int64(n) * c
		t.kinesisRecords += c
	}
	for _, p := range d.Puts {
		t.putEntries += int64(p.Entries)
		t.putStored += int64(p.Stored)
	}
	for _, i := range d.Invocations {
		if i.Sweep {
			continue // the sweeper's schedule runs whatever the objects
		}
		t.invocations[i.Function]++
		if i.Continuation {
			t.continuations++
		}
	}
	for _, b := range d.Batches {
		if b.Outcome == "ok" {
			t.batchRecordsOK += int64(b.Records)
		}
	}
	return t
}

// TestTimelineAgreesWithTheSummary runs the demo with the stream's limits on (entries may be throttled)
// and InternalFailure entries injected, and checks the timeline against the stream's own
// counters and the summary read back from the bucket: records and bytes stored, throttled, failed and
// retried entries (every failed entry is sent again unchanged), user records per Kinesis record,
// invocations and batches. The saved file reads back to the same timeline.
func TestTimelineAgreesWithTheSummary(t *testing.T) {
	t.Parallel()
	c := startCloud(t, Options{Faults: stream.Faults{Seed: 3, InternalFailureRate: 0.25}})
	if _, err := PutDemo(context.Background(), c, 3000); err != nil {
		t.Fatal(err)
	}
	s := drainAndSummarize(t, c, 3*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	path, err := c.SaveTimeline()
	if err != nil {
		t.Fatal(err)
	}
	snap := c.Timeline.Snapshot()
	read, err := ReadTimeline(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap, read); diff != "" {
		t.Errorf("the saved timeline reads back different (-snapshot +file):\n%s", diff)
	}

	got := totals(read)
	st := c.Stream.Stats()
	if got.records != st.RecordsStored || got.bytes != st.BytesStored || got.throttled != st.Throttled || got.failed != st.InternalFailures {
		t.Errorf("timeline: %d records, %d bytes, %d throttled, %d failed; stream stats: %+v", got.records, got.bytes, got.throttled, got.failed, st)
	}
	if got.failed == 0 {
		t.Errorf("want failed entries in this run (InternalFailure injected): %+v", got)
	}
	if got.records != s.KinesisRecords || got.kinesisRecords != s.KinesisRecords || got.userRecords != s.RecordsSent {
		t.Errorf("timeline: %d Kinesis records (%d by aggregate size) holding %d user records; summary: %d Kinesis records, %d records sent",
			got.records, got.kinesisRecords, got.userRecords, s.KinesisRecords, s.RecordsSent)
	}
	if got.retried != got.throttled+got.failed {
		t.Errorf("retried %d entries, want every throttled (%d) and failed (%d) entry sent again", got.retried, got.throttled, got.failed)
	}
	if got.putEntries != got.records+got.throttled+got.failed || got.putStored != got.records {
		t.Errorf("put requests: %d entries, %d stored; want %d entries, %d stored", got.putEntries, got.putStored, got.records+got.throttled+got.failed, got.records)
	}
	if got.invocations[IngestFunction] != len(DemoFiles)+s.Continuations || got.continuations != s.Continuations {
		t.Errorf("IngestFunction invocations %d (%d continuations), want %d objects + %d continuations",
			got.invocations[IngestFunction], got.continuations, len(DemoFiles), s.Continuations)
	}
	if got.invocations[ProcessFunction] < len(read.Batches) || got.batchRecordsOK != s.KinesisRecords {
		t.Errorf("ProcessFunction: %d invocations, %d batches with %d records ok; want at least one invocation per batch and every Kinesis record (%d) in an ok batch",
			got.invocations[ProcessFunction], len(read.Batches), got.batchRecordsOK, s.KinesisRecords)
	}
	m := read.Meta
	if m.Version != TimelineVersion || len(m.Shards) != 1 || !m.LimitsOn || !m.Archive || !m.Consumer || m.Ended.Before(m.Started) ||
		m.ShardBytesPerSecond != kinesislimit.ShardWriteBytesPerSecond || m.ShardRecordsPerSecond != kinesislimit.ShardWriteRecordsPerSecond {
		t.Errorf("meta: %+v", m)
	}
	for _, inv := range read.Invocations {
		if inv.End < inv.Start || inv.Start < m.Started.UnixMilli() || inv.RequestID == "" || inv.Attempt < 1 {
			t.Errorf("invocation %+v", inv)
		}
	}
	// Arrival lookups: the put requests' counters grow with time.
	var last uint64
	for _, p := range read.Puts {
		if p.Stored > 0 {
			if p.Counter <= last {
				t.Fatalf("put counters not increasing: %d after %d", p.Counter, last)
			}
			last = p.Counter
		}
	}
}

// TestTimelineSavedOnClose: a cloud that is closed without SaveTimeline still leaves its timeline.
func TestTimelineSavedOnClose(t *testing.T) {
	t.Parallel()
	c := startCloud(t, Options{LimitsOff: true})
	dir := c.dir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := ReadTimeline(TimelinePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta.Stream != c.Settings.Stream.Name || d.Meta.Ended.IsZero() {
		t.Errorf("meta %+v", d.Meta)
	}
}

func TestReadTimelineErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"no meta":  `{"kind":"put","t":1}` + "\n",
		"not json": "{\n",
		"too new":  `{"kind":"meta","version":99}` + "\n",
	} {
		p := dir + "/" + strings.ReplaceAll(name, " ", "_")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadTimeline(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// BenchmarkTimelineObservePut measures the recording of one PutRecords request as the demo makes them:
// one KPL aggregate of 122 user records (~64 KB) per request, stored (the timeline de-aggregates it to
// count its user records), and one in 20 throttled (hashed until its resend). The demo makes about 900
// such requests: multiply to get the timeline's CPU time per run.
func BenchmarkTimelineObservePut(b *testing.B) {
	recs := make([]kpl.UserRecord, 122)
	for i := range recs {
		recs[i] = kpl.UserRecord{PartitionKey: strconv.Itoa(i % 265), Data: bytes.Repeat([]byte("x"), 520)}
	}
	agg := kpl.Aggregate(recs)
	tl := newTimeline(TimelineMeta{Shards: []string{"shardId-000000000000"}})
	now := time.Now()
	b.SetBytes(int64(len(agg)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := stream.PutEntryOutcome{Shard: "shardId-000000000000", Size: len(agg) + 3, Data: agg, Counter: uint64(i)}
		if i%20 == 0 {
			e.ErrorCode = stream.ErrCodeThroughput
		}
		tl.ObservePut(stream.PutObservation{Time: now.Add(time.Duration(i) * time.Millisecond), Entries: []stream.PutEntryOutcome{e}})
	}
}

func TestUserRecords(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 122, 500} {
		recs := make([]kpl.UserRecord, n)
		for i := range recs {
			recs[i] = kpl.UserRecord{PartitionKey: strconv.Itoa(i % 7), ExplicitHashKey: strconv.Itoa(i % 3), Data: []byte(`{"record_id":"x"}`)}
		}
		if got := userRecords(kpl.Aggregate(recs)); got != n {
			t.Errorf("aggregate of %d: userRecords = %d", n, got)
		}
	}
	if got := userRecords([]byte(`{"record_id":"x"}`)); got != 1 {
		t.Errorf("plain record: %d", got)
	}
	bad := append(append([]byte{}, kpl.Magic...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if got := userRecords(bad); got != 1 {
		t.Errorf("corrupt aggregate: %d, want 1", got)
	}
}

// TestEventKind: the timeline marks IngestFunction's continuation events and the sweeper's events
// (its own and EventBridge's scheduled events), and never looks into a large event such as a Kinesis
// batch, even one whose records hold the same words.
func TestEventKind(t *testing.T) {
	cont, err := json.Marshal(ingest.Event{Kind: ingest.KindContinuation, Bucket: "b", Key: strings.Repeat("k", 1024), Continuation: 2})
	if err != nil {
		t.Fatal(err)
	}
	sweep, err := json.Marshal(ingest.Event{Kind: ingest.KindSweep, Idle: true})
	if err != nil {
		t.Fatal(err)
	}
	scheduled := []byte(`{"version":"0","id":"53dc4d37","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`)
	big := []byte(`{"Records":[{"kinesis":{"data":"` + strings.Repeat("x", smallEventBytes) + `"}},{"note":"\"taxistream\":\"continuation\" \"Scheduled Event\""}]}`)
	for _, tc := range []struct {
		name        string
		payload     []byte
		cont, sweep bool
	}{
		{"continuation", cont, true, false},
		{"sweep", sweep, false, true},
		{"scheduled", scheduled, false, true},
		{"s3 event", []byte(`{"Records":[{"eventSource":"aws:s3"}]}`), false, false},
		{"large kinesis batch", big, false, false},
	} {
		c, s := eventKind(tc.payload)
		if c != tc.cont || s != tc.sweep {
			t.Errorf("%s: continuation %v, sweep %v; want %v, %v", tc.name, c, s, tc.cont, tc.sweep)
		}
	}
}

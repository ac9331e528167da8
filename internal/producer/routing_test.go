package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/testenv"
)

// skewedKey is a pu_location_id-like key as skewed as real trips: half the rows start in one zone,
// a quarter in three more, the rest spread over 261.
func skewedKey(i int) string {
	switch {
	case i%2 == 0:
		return "132"
	case i%4 == 1:
		return []string{"161", "237", "236"}[i/4%3]
	}
	return fmt.Sprint(i%261 + 1)
}

// shardWrites records, per shard, when each stored Kinesis record was sent (fake clock) and its size.
type shardWrites map[string][]struct {
	at    time.Time
	bytes int
}

// runRouting puts n rows with skewed keys through a producer with routing r on shards shards and
// returns the stream, the producer, the stream time taken and the writes per shard.
func runRouting(t *testing.T, shards, n int, r Routing, aggregate bool) (*fakeStream, *Producer, time.Duration, shardWrites) {
	t.Helper()
	s := newFakeStream(t, shards)
	c := s.client()
	p, clock := newTestProducer(t, c, Config{Aggregate: aggregate, Routing: r})
	writes := shardWrites{}
	base := s.putRecords
	c.putRecords = func(ctx context.Context, in *kinesisPutRecordsInput, optFns ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
		before := len(s.records)
		out, err := base(ctx, in, optFns...)
		for _, rec := range s.records[before:] {
			writes[rec.shard] = append(writes[rec.shard], struct {
				at    time.Time
				bytes int
			}{clock.Now(), len(rec.data) + len(rec.pk)})
		}
		return out, err
	}
	p.c = c
	start := clock.Now()
	for i := range n {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 400), PartitionKey: skewedKey(i), Tag: int64(i)}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
		t.Fatalf("Flush: %v %v", f, err)
	}
	return s, p, clock.Now().Sub(start), writes
}

// checkSkewedDelivered asserts every row is stored once with its own partition key.
func checkSkewedDelivered(t *testing.T, s *fakeStream, n int) {
	t.Helper()
	seen := map[int]int{}
	for _, u := range s.userRecords(t) {
		i := rowOf(t, u.Data)
		seen[i]++
		if u.PartitionKey != skewedKey(i) {
			t.Fatalf("row %d stored with key %q, want its own %q", i, u.PartitionKey, skewedKey(i))
		}
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("row %d stored %d times", i, seen[i])
		}
	}
}

// TestBalancedRouting: with keys as skewed as real pickups, RouteBalanced loads every shard alike
// and the whole takes the uniform bound (bytes / (shards × 1 MiB/s)) within 5 % of stream time,
// while RouteByKey puts the hottest key's share on one shard; every row keeps its own partition key
// and no shard ever exceeds its limits in any one-second interval.
func TestBalancedRouting(t *testing.T) {
	const n = 30_000
	for _, shards := range []int{2, 4, 8} {
		for _, aggregate := range []bool{true, false} {
			t.Run(fmt.Sprintf("shards=%d/aggregate=%v", shards, aggregate), func(t *testing.T) {
				rows := n
				if !aggregate {
					rows = n / 3 // 1,000 records/s per shard: keep the simulated run short
				}
				s, p, took, writes := runRouting(t, shards, rows, RouteBalanced, aggregate)
				checkSkewedDelivered(t, s, rows)
				st := p.Stats()
				var total float64
				for _, ws := range writes {
					for _, w := range ws {
						total += float64(w.bytes)
					}
				}
				if len(writes) != shards {
					t.Fatalf("wrote to %d shards, want all %d", len(writes), shards)
				}
				for id, ws := range writes {
					var b float64
					for _, w := range ws {
						b += float64(w.bytes)
					}
					if share := b / total; share < 0.9/float64(shards) || share > 1.1/float64(shards) {
						t.Errorf("shard %s got %.1f %% of the bytes, want %.1f %% ± 10 %%", id, 100*share, 100/float64(shards))
					}
					checkWindowLimits(t, id, ws)
				}
				bound := time.Duration(float64(st.Bytes) / (float64(shards) * kinesislimit.ShardWriteBytesPerSecond) * float64(time.Second))
				if !aggregate {
					bound = max(bound, time.Duration(float64(st.KinesisRecords)/(float64(shards)*kinesislimit.ShardWriteRecordsPerSecond)*float64(time.Second)))
				}
				if took > bound*105/100 {
					t.Errorf("took %v of stream time, uniform bound %v: %.1f %% over (want ≤ 5 %%)", took, bound, 100*(float64(took)/float64(bound)-1))
				}
				// Each stored record carries the ExplicitHashKey that starts its shard's range.
				for _, r := range s.records {
					if want := shardStart(s, r.shard); r.ehk != want {
						t.Fatalf("record on %s has ExplicitHashKey %q, want %q", r.shard, r.ehk, want)
					}
				}
				t.Logf("%d Kinesis records, %.1f MiB: %v of stream time, bound %v", st.KinesisRecords, float64(st.Bytes)/(1<<20), took, bound)
			})
		}
	}
	// The same rows routed by key: the hottest shard carries the hot key (at least half the rows).
	s, _, _, writes := runRouting(t, 4, n/3, RouteByKey, true)
	checkSkewedDelivered(t, s, n/3)
	var hottest, total int
	for _, ws := range writes {
		b := 0
		for _, w := range ws {
			b += w.bytes
		}
		total += b
		hottest = max(hottest, b)
	}
	if share := float64(hottest) / float64(total); share < 0.45 {
		t.Errorf("routed by key, the hottest of 4 shards has %.1f %% of the bytes; the test's keys should make it ≥ 45 %%", 100*share)
	}
	for _, r := range s.records {
		if r.ehk != "" {
			t.Fatalf("routed by key, a record has ExplicitHashKey %q", r.ehk)
		}
	}
}

func shardStart(s *fakeStream, id string) string {
	for _, sh := range s.shards {
		if sh.id == id {
			return sh.start.String()
		}
	}
	return ""
}

// checkWindowLimits asserts that no one-second interval (sliding) holds more than a shard's limits.
func checkWindowLimits(t *testing.T, shard string, ws []struct {
	at    time.Time
	bytes int
}) {
	t.Helper()
	for i := range ws {
		records, b := 0, 0
		for j := i; j < len(ws) && ws[j].at.Sub(ws[i].at) < time.Second; j++ {
			records++
			b += ws[j].bytes
		}
		if records > kinesislimit.ShardWriteRecordsPerSecond || (b > kinesislimit.ShardWriteBytesPerSecond && records > 1) {
			t.Fatalf("shard %s: %d records, %d bytes within one second", shard, records, b)
		}
	}
}

// TestBalancedThrottleGoesAnywhere: records a shard throttles go back to the pool; every row is
// stored exactly once with its own key, and the throttled shard backs off.
func TestBalancedThrottleGoesAnywhere(t *testing.T) {
	s := newFakeStream(t, 3)
	s.entryError = func(call, i int, e types.PutRecordsRequestEntry) string {
		if call <= 6 && s.routeEntry(e) == "shardId-000000000001" {
			return codeThroughputExceeded
		}
		return ""
	}
	p, _ := newTestProducer(t, s.client(), Config{Aggregate: true, Routing: RouteBalanced, AggregateMaxBytes: 4 << 10})
	for i := range 3000 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 100), PartitionKey: skewedKey(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
		t.Fatalf("Flush: %v %v", f, err)
	}
	checkSkewedDelivered(t, s, 3000)
	if st := p.Stats(); st.Throttled == 0 || st.Retries == 0 {
		t.Errorf("stats %+v: want throttles and retries", st)
	}
}

// TestBalancedShardSplit: a shard split mid-run is noticed (a write lands elsewhere than its hash
// key's old shard would say) and the children then take records through their own hash keys.
func TestBalancedShardSplit(t *testing.T) {
	s := newFakeStream(t, 2)
	var splitAt int
	base := s.putRecords
	c := s.client()
	c.putRecords = func(ctx context.Context, in *kinesisPutRecordsInput, optFns ...kinesisOptFn) (*kinesisPutRecordsOutput, error) {
		if len(s.calls) == 3 && splitAt == 0 {
			// Split so that the old start of shard 1 stays in its first child, and shard 0's falls in
			// its own first child: the writes still land, then a refresh sees four ranges.
			s.split("shardId-000000000001")
			splitAt = 4
		}
		return base(ctx, in, optFns...)
	}
	p, _ := newTestProducer(t, c, Config{Aggregate: true, Routing: RouteBalanced, AggregateMaxBytes: 4 << 10, MaxBufferedBytes: 64 << 10})
	for i := range 20000 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 60), PartitionKey: skewedKey(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
		t.Fatalf("Flush: %v %v", f, err)
	}
	checkSkewedDelivered(t, s, 20000)
	if len(s.calls) < splitAt+10 {
		t.Fatalf("%d calls: the split did not happen mid-run", len(s.calls))
	}
	if st := p.Stats(); st.Reshards != 1 {
		t.Errorf("Reshards = %d, want 1 (the write on the child names a shard the map does not know)", st.Reshards)
	}
	shards := map[string]bool{}
	for _, r := range s.records {
		if r.call > splitAt+2 {
			shards[r.shard] = true
		}
	}
	if d := cmp.Diff(map[string]bool{"shardId-000000000000": true, "shardId-000000000002": true, "shardId-000000000003": true}, shards); d != "" {
		t.Errorf("after the split, writes went to (-want +got):\n%s", d)
	}
}

func TestRoutingConfig(t *testing.T) {
	s := newFakeStream(t, 1)
	if _, err := New(t.Context(), s.client(), Config{StreamName: "x", Ordered: true, Routing: RouteBalanced}); err == nil {
		t.Error("Ordered with RouteBalanced: no error")
	}
	if _, err := New(t.Context(), s.client(), Config{StreamName: "x", Routing: Routing(7)}); err == nil {
		t.Error("Routing(7): no error")
	}
	for _, in := range []string{"balanced", "key"} {
		r, err := ParseRouting(in)
		if err != nil || r.String() != in {
			t.Errorf("ParseRouting(%q) = %v, %v", in, r, err)
		}
	}
	if _, err := ParseRouting("random"); err == nil {
		t.Error(`ParseRouting("random"): no error`)
	}
}

// TestNodeDeaggregatesBalanced: the Kinesis records a balanced producer wrote for four shards,
// de-aggregated by the official KPL module for Node (tools/node/deagg.js, checksums verified), give
// back every user record with its own partition key, and each record's ExplicitHashKey lies in the
// range of the shard that stored it.
func TestNodeDeaggregatesBalanced(t *testing.T) {
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	const n = 6000
	s, _, _, _ := runRouting(t, 4, n, RouteBalanced, true)
	type rec struct {
		PartitionKey   string `json:"partitionKey"`
		SequenceNumber string `json:"sequenceNumber"`
		Data           []byte `json:"data"`
	}
	var in struct {
		Records []rec `json:"records"`
	}
	for _, r := range s.records {
		in.Records = append(in.Records, rec{PartitionKey: r.pk, SequenceNumber: fmt.Sprint(r.seq), Data: r.data})
		h, _ := new(big.Int).SetString(r.ehk, 10)
		for _, sh := range s.shards {
			if sh.id == r.shard && (h == nil || h.Cmp(sh.start) < 0 || h.Cmp(sh.end) > 0) {
				t.Fatalf("record on %s: ExplicitHashKey %q outside [%s, %s]", r.shard, r.ehk, sh.start, sh.end)
			}
		}
	}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testenv.Root(t), "tools", "node", "deagg.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("deagg.js: %v\n%s", err, stderr.String())
	}
	var out struct {
		Records []struct {
			Error       string `json:"error"`
			UserRecords []struct {
				PartitionKey string `json:"partitionKey"`
				Data         []byte `json:"data"`
			} `json:"userRecords"`
		} `json:"records"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("decoding deagg.js output: %v", err)
	}
	if len(out.Records) != len(s.records) {
		t.Fatalf("deagg.js returned %d results for %d records", len(out.Records), len(s.records))
	}
	seen := map[int]bool{}
	mixed := 0
	for i, r := range out.Records {
		if r.Error != "" {
			t.Fatalf("record %d: KPL module: %s", i, r.Error)
		}
		keys := map[string]bool{}
		for _, u := range r.UserRecords {
			row := rowOf(t, u.Data)
			if seen[row] {
				t.Fatalf("row %d twice", row)
			}
			seen[row] = true
			if u.PartitionKey != skewedKey(row) {
				t.Fatalf("row %d: KPL module gives key %q, want %q", row, u.PartitionKey, skewedKey(row))
			}
			keys[u.PartitionKey] = true
		}
		if len(keys) > 1 {
			mixed++
		}
	}
	if len(seen) != n {
		t.Fatalf("KPL module recovered %d rows of %d", len(seen), n)
	}
	if mixed == 0 {
		t.Error("no aggregate mixed partition keys: the test does not exercise per-record keys")
	}
}

// TestBalancedUnpaced: without pacing (a stream without limits) each request is split evenly across
// the shards, so they still get equal parts.
func TestBalancedUnpaced(t *testing.T) {
	s := newFakeStream(t, 3)
	p, _ := newTestProducer(t, s.client(), Config{Aggregate: true, Routing: RouteBalanced, ShardBytesPerSecond: 1e15, ShardRecordsPerSecond: 1e15})
	for i := range 30_000 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 400), PartitionKey: skewedKey(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
		t.Fatalf("Flush: %v %v", f, err)
	}
	checkSkewedDelivered(t, s, 30_000)
	bytes := map[string]int{}
	total := 0
	for _, r := range s.records {
		bytes[r.shard] += len(r.data) + len(r.pk)
		total += len(r.data) + len(r.pk)
	}
	for id, b := range bytes {
		if share := float64(b) / float64(total); share < 0.3 || share > 0.37 {
			t.Errorf("shard %s got %.1f %% of the bytes, want a third", id, 100*share)
		}
	}
	if len(s.calls) > 5 {
		t.Logf("%d calls", len(s.calls))
	}
}

// TestPacingLateWakeups: on a loaded machine a producer's sleeps end late. With every wake-up 0–100 ms
// late (simulated clock), a balanced producer still writes four shards' worth within 5 % of the
// uniform bound, and nothing is throttled.
func TestPacingLateWakeups(t *testing.T) {
	s := newFakeStream(t, 4)
	clock := newFakeClock()
	r := rand.New(rand.NewPCG(1, 2))
	start := clock.Now()
	p, err := New(t.Context(), s.client(), Config{StreamName: "x", Aggregate: true, Routing: RouteBalanced, Now: clock.Now,
		Rand: func() float64 { return 0.5 },
		Sleep: func(ctx context.Context, d time.Duration) error {
			return clock.Sleep(ctx, d+time.Duration(r.Float64()*float64(100*time.Millisecond)))
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60_000 {
		if err := p.Put(t.Context(), Entry{Data: rowData(i, 400), PartitionKey: skewedKey(i), Tag: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := p.Flush(t.Context()); err != nil || len(f) != 0 {
		t.Fatalf("Flush: %v %v", f, err)
	}
	checkSkewedDelivered(t, s, 60_000)
	st := p.Stats()
	bound := time.Duration(float64(st.Bytes) / (4 * kinesislimit.ShardWriteBytesPerSecond) * float64(time.Second))
	took := clock.Now().Sub(start)
	if took > bound*105/100 || st.Throttled != 0 {
		t.Errorf("took %v of stream time for a bound of %v (%+.1f %%), %d throttled", took, bound, 100*(float64(took)/float64(bound)-1), st.Throttled)
	}
}

package compact

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// hookBucket calls a hook once, before the first PutObject whose key satisfies match.
type hookBucket struct {
	ObjectStore
	match func(key string) bool
	hook  func()
	once  sync.Once
}

func (h *hookBucket) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if h.match(aws.ToString(in.Key)) {
		h.once.Do(h.hook)
	}
	return h.ObjectStore.PutObject(ctx, in, optFns...)
}

func count(t *testing.T, dir string) (n, distinct int64) {
	t.Helper()
	r := testpeers.DuckDBRows(t, fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM read_parquet(%s)`, tripsGlob(dir)))
	return num(t, r[0][0]["n"]), num(t, r[0][0]["d"])
}

// TestArrivalsDuringCompactionAreLeft: ProcessFunction writes into the partition while it is being
// compacted; the new objects are not part of the plan and stay, and the next run merges them.
func TestArrivalsDuringCompactionAreLeft(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-06-01"
	putSources(t, b, d, "shardId-000000000000", genTrips(d, 1, 400), 50)
	late := genTrips(d, 2, 120)
	var lateKeys []string
	h := &hookBucket{ObjectStore: b,
		match: func(k string) bool { return strings.Contains(k, targetTag) },
		hook:  func() { lateKeys = putSources(t, b, d, "shardId-000000000001", late, 40) },
	}
	res, err := newCompactor(t, h, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.SourcesMerged != 8 || res.RowsOut != 400 {
		t.Errorf("first run merged %d sources, %d rows; want the 8 listed, 400 rows", res.SourcesMerged, res.RowsOut)
	}
	got := keys(t, b, PartitionPrefix(d))
	for _, k := range lateKeys {
		if !contains(got, k) {
			t.Errorf("late object %s was removed by a compaction that did not list it", k)
		}
	}
	if len(got) != 1+len(lateKeys) {
		t.Errorf("after the first run: %v", got)
	}
	if n, dd := count(t, b.Dir()); n != 520 || dd != 520 {
		t.Errorf("after the first run DuckDB finds %d rows, %d distinct; want 520", n, dd)
	}
	res, err = newCompactor(t, b, Options{}).Run(context.Background(), Request{})
	if err != nil || res.Plans != 1 || res.FilesAfter != 1 {
		t.Fatalf("second run: %v %+v", err, res)
	}
	if n, dd := count(t, b.Dir()); n != 520 || dd != 520 {
		t.Errorf("after the second run DuckDB finds %d rows, %d distinct; want 520", n, dd)
	}
}

// TestSourceRewrittenAfterMerge: a source is rewritten (a ProcessFunction clean-up write) after its
// rows were merged: the conditional delete keeps it, no row is lost, and the next run merges it again
// and drops the rows the compacted file already has.
func TestSourceRewrittenAfterMerge(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-06-02"
	rows := genTrips(d, 3, 300)
	srcs := putSources(t, b, d, "shardId-000000000000", rows, 100)
	extra := genTrips(d, 4, 10)
	h := &hookBucket{ObjectStore: b,
		match: func(k string) bool { return k == PlanKey(d) && strings.Contains(k, "") },
		hook:  func() {},
	}
	// Rewrite the first source when the plan is committed (its second write).
	var puts int
	var mu sync.Mutex
	h.match = func(k string) bool {
		if k != PlanKey(d) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		puts++
		return puts == 2
	}
	h.hook = func() {
		put(t, b, srcs[0], encode(t, append(append([]process.TripRow{}, rows[:50]...), extra...)))
	}
	res, err := newCompactor(t, h, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.SourcesChanged != 1 || !contains(keys(t, b, PartitionPrefix(d)), srcs[0]) {
		t.Fatalf("result %+v: want the rewritten source kept and counted", res)
	}
	if _, dd := count(t, b.Dir()); dd != 310 {
		t.Errorf("DuckDB finds %d distinct trips, want 310", dd)
	}
	res, err = newCompactor(t, b, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.Duplicates != 50 || res.RowsOut != 310 {
		t.Errorf("second run dropped %d duplicates, wrote %d rows; want 50 and 310 (%+v)", res.Duplicates, res.RowsOut, res)
	}
	if n, dd := count(t, b.Dir()); n != 310 || dd != 310 {
		t.Errorf("DuckDB finds %d rows, %d distinct, want 310", n, dd)
	}
}

// TestSourceChangedBeforeRead: a source rewritten between the listing and its download makes the plan
// roll back (If-Match); nothing is lost and the next run compacts the partition.
func TestSourceChangedBeforeRead(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-06-03"
	rows := genTrips(d, 5, 200)
	srcs := putSources(t, b, d, "shardId-000000000000", rows, 50)
	h := &hookBucket{ObjectStore: b,
		match: func(k string) bool { return k == PlanKey(d) },
		hook:  func() { put(t, b, srcs[1], encode(t, rows[50:60])) },
	}
	res, err := newCompactor(t, h, Options{}).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.Aborted != 1 || res.Plans != 0 || len(keys(t, b, PlanPrefix)) != 0 || len(keys(t, b, PartitionPrefix(d))) != 4 {
		t.Errorf("result %+v: want the plan rolled back and the partition as it was", res)
	}
	res, err = newCompactor(t, b, Options{}).Run(context.Background(), Request{})
	if err != nil || res.Plans != 1 {
		t.Fatal(err, res)
	}
	if n, dd := count(t, b.Dir()); n != 160 || dd != 160 {
		t.Errorf("DuckDB finds %d rows, %d distinct, want 160", n, dd)
	}
}

// TestLateDuplicateOfCompactedRows: a retried ProcessFunction batch re-creates, after a compaction, an
// object whose rows a large compacted file already holds: the next run drops it entirely.
func TestLateDuplicateOfCompactedRows(t *testing.T) {
	b := newTestBucket(t)
	const d = "2019-06-04"
	rows := genTrips(d, 6, 6000)
	putSources(t, b, d, "shardId-000000000000", rows, 500)
	// Small targets and row groups: the compacted files are "large" (at least half the target).
	opts := Options{TargetFileBytes: 256 << 10}
	res, err := newCompactor(t, b, opts).Run(context.Background(), Request{})
	if err != nil || res.Plans != 1 {
		t.Fatal(err, res)
	}
	compacted := keys(t, b, PartitionPrefix(d))
	if res.TargetsWritten < 2 {
		t.Fatalf("first run wrote %d files; the test wants several large ones: %+v", res.TargetsWritten, res)
	}
	dup := putSources(t, b, d, "shardId-000000000009", rows[1000:1100], 100)
	big := 0
	for _, k := range compacted {
		if size(t, b, k) >= opts.TargetFileBytes/2 {
			big++
		}
	}
	res, err = newCompactor(t, b, opts).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.Duplicates != 100 || res.Details[0].Exclusions != big || big == 0 {
		t.Errorf("second run %+v: want the 100 rows dropped against the %d large compacted files", res, big)
	}
	after := keys(t, b, PartitionPrefix(d))
	if contains(after, dup[0]) {
		t.Errorf("after the second run: %v", after)
	}
	if n, dd := count(t, b.Dir()); n != 6000 || dd != 6000 {
		t.Errorf("DuckDB finds %d rows, %d distinct, want 6000", n, dd)
	}
}

func size(t *testing.T, s ObjectStore, key string) int64 {
	t.Helper()
	out, err := s.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	return aws.ToInt64(out.ContentLength)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

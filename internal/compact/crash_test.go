package compact

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/testpeers"
)

var errCrashed = errors.New("injected crash: the process is gone")

// crashBucket is a bucket whose process "dies" at its at-th write (PutObject or DeleteObject, 1-based):
// when land is true that write happens and only its answer is lost, otherwise it does not happen.
// Every call after the crash fails, so nothing the compactor does afterwards (a rollback, say) can
// reach the bucket: exactly what a killed process leaves behind.
type crashBucket struct {
	ObjectStore
	at   int
	land bool

	mu     sync.Mutex
	writes []string // "put KEY" / "delete KEY", in order
	dead   bool
}

func (c *crashBucket) write(op, key string) (crash, dead bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false, true
	}
	c.writes = append(c.writes, op+" "+key)
	if c.at > 0 && len(c.writes) == c.at {
		c.dead = true
		return true, false
	}
	return false, false
}

func (c *crashBucket) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead
}

func (c *crashBucket) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	crash, dead := c.write("put", aws.ToString(in.Key))
	if dead || (crash && !c.land) {
		return nil, errCrashed
	}
	out, err := c.ObjectStore.PutObject(ctx, in, optFns...)
	if crash {
		return nil, errCrashed
	}
	return out, err
}

func (c *crashBucket) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	crash, dead := c.write("delete", aws.ToString(in.Key))
	if dead || (crash && !c.land) {
		return nil, errCrashed
	}
	out, err := c.ObjectStore.DeleteObject(ctx, in, optFns...)
	if crash {
		return nil, errCrashed
	}
	return out, err
}

func (c *crashBucket) GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if !c.alive() {
		return nil, errCrashed
	}
	return c.ObjectStore.GetObject(ctx, in, optFns...)
}

func (c *crashBucket) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if !c.alive() {
		return nil, errCrashed
	}
	return c.ObjectStore.ListObjectsV2(ctx, in, optFns...)
}

// crashDates are the partitions of crashFixture.
var crashDates = []string{"2019-03-09", "2019-03-10"}

// crashFixture fills a bucket with two partitions of small files (with duplicates, across plans) and
// returns the number of distinct trips.
func crashFixture(t testing.TB, b ObjectStore) int {
	rows := genTrips(crashDates[0], 10, 1000)
	putSources(t, b, crashDates[0], "shardId-000000000000", rows, 50)
	putSources(t, b, crashDates[0], "shardId-000000000001", rows[:200], 50) // duplicates
	more := genTrips(crashDates[1], 11, 200)
	putSources(t, b, crashDates[1], "shardId-000000000000", more, 100)
	return len(rows) + len(more)
}

// cloneBucket copies a bucket's folder (objects and metadata) and opens the copy.
func cloneBucket(t testing.TB, b *bucket.Bucket) *bucket.Bucket {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "bucket")
	err := filepath.WalkDir(b.Dir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.Dir(), p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, body, 0o644); err != nil {
			return err
		}
		return os.Chtimes(out, fi.ModTime(), fi.ModTime()) // the metadata sidecars record the mtime
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := bucket.Open(dst, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// crashOptions make several plans per partition (MaxPlanBytes) and several targets per plan
// (TargetFileBytes), so that a crash can fall between any two writes of the protocol.
func crashOptions(t testing.TB, now func() time.Time) Options {
	return Options{TargetFileBytes: 64 << 10, MaxPlanBytes: 200 << 10, Concurrency: 1, TempDir: t.TempDir(), Now: now, RunBytes: 64 << 10}
}

// TestCrashAtEveryWrite crashes a compaction at each of its writes, before and after the write lands,
// then reruns it (after the crashed run's lease) — itself crashing at a seeded write — and runs it a
// third time. After every crash DuckDB must find every trip (duplicates allowed while a plan is
// unfinished); at the end exactly once, with no plan left and the partitions compacted.
func TestCrashAtEveryWrite(t *testing.T) {
	// How many writes does an uninterrupted compaction make?
	fixture := newTestBucket(t)
	want := crashFixture(t, fixture)
	probe := &crashBucket{ObjectStore: cloneBucket(t, fixture)}
	start := time.Now()
	res, err := newCompactor(t, probe, crashOptions(t, time.Now)).Run(context.Background(), Request{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("probe run: %v %v", err, res.Errors)
	}
	total := len(probe.writes)
	if res.Plans < 3 || res.TargetsWritten < res.Plans+2 || res.Duplicates != 200 {
		t.Fatalf("probe: %d plans, %d targets; the fixture should make several of each: %+v", res.Plans, res.TargetsWritten, res.Details)
	}
	t.Logf("an uninterrupted compaction makes %d writes (%d plans, %d targets): %+v", total, res.Plans, res.TargetsWritten, res.Details)

	type scenario struct {
		name           string
		crashed, final string // bucket folders
	}
	var scenarios []scenario
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 16))
	seed := rng.Uint64()
	t.Logf("seed %d", seed)
	rng = rand.New(rand.NewPCG(seed, 16))
	for _, at := range crashPoints(probe.writes) {
		for _, land := range []bool{false, true} {
			name := fmt.Sprintf("write %d (%s), landed %v", at, probe.writes[at-1], land)
			base := cloneBucket(t, fixture)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			crash := &crashBucket{ObjectStore: base, at: at, land: land}
			_, _ = newCompactor(t, crash, crashOptions(t, time.Now)).Run(ctx, Request{})
			cancel()
			if !crash.dead {
				t.Fatalf("%s: the run did not reach the write", name)
			}
			crashedDir := copyBucket(t, base)

			// The rerun starts after the crashed run's lease (its deadline + slack) and may crash too.
			later := func() time.Time { return time.Now().Add(time.Hour) }
			again := &crashBucket{ObjectStore: base, at: 1 + rng.IntN(total), land: rng.IntN(2) == 0}
			ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
			_, _ = newCompactor(t, again, crashOptions(t, later)).Run(ctx, Request{})
			cancel()

			evenLater := func() time.Time { return time.Now().Add(3 * time.Hour) }
			res, err := newCompactor(t, base, crashOptions(t, evenLater)).Run(context.Background(), Request{})
			if err != nil || len(res.Errors) > 0 || !res.Complete {
				t.Errorf("%s: final run: %v %+v", name, err, res)
				continue
			}
			if left := keys(t, base, PlanPrefix); len(left) > 0 {
				t.Errorf("%s: plans left: %v", name, left)
			}
			for _, d := range crashDates {
				for _, k := range keys(t, base, PartitionPrefix(d)) {
					if !strings.Contains(k, targetTag) {
						t.Errorf("%s: source %s left after the final run", name, k)
					}
				}
			}
			scenarios = append(scenarios, scenario{name: name, crashed: crashedDir, final: base.Dir()})
		}
	}
	// One DuckDB process reads every state.
	var stmts []string
	for _, s := range scenarios {
		stmts = append(stmts,
			fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM read_parquet(%s)`, tripsGlob(s.crashed)),
			fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM read_parquet(%s)`, tripsGlob(s.final)))
	}
	r := testpeers.DuckDBRows(t, stmts...)
	for i, s := range scenarios {
		crashed, final := r[2*i][0], r[2*i+1][0]
		if d := num(t, crashed["d"]); d != int64(want) {
			t.Errorf("%s: after the crash DuckDB finds %d distinct trips, want %d", s.name, d, want)
		}
		if n, d := num(t, final["n"]), num(t, final["d"]); n != int64(want) || d != int64(want) {
			t.Errorf("%s: at the end count(*) %d, count(DISTINCT record_id) %d, want %d", s.name, n, d, want)
		}
	}
	t.Logf("%d crash scenarios checked", len(scenarios))
}

// crashPoints returns the writes to crash at (1-based): every write, except that of a run of source
// deletions only the first, the second and the last (the states in between are alike).
func crashPoints(writes []string) []int {
	var at []int
	for i, w := range writes {
		if strings.HasPrefix(w, "delete ") && !strings.HasPrefix(w, "delete "+PlanPrefix) {
			prev := i > 0 && strings.HasPrefix(writes[i-1], "delete ") && !strings.HasPrefix(writes[i-1], "delete "+PlanPrefix)
			prev2 := i > 1 && strings.HasPrefix(writes[i-2], "delete ") && !strings.HasPrefix(writes[i-2], "delete "+PlanPrefix)
			next := i+1 < len(writes) && strings.HasPrefix(writes[i+1], "delete ") && !strings.HasPrefix(writes[i+1], "delete "+PlanPrefix)
			if prev && prev2 && next {
				continue
			}
		}
		at = append(at, i+1)
	}
	return at
}

// copyBucket copies the Parquet objects of a bucket's processed/trips/ into a new folder.
func copyBucket(t testing.TB, b *bucket.Bucket) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join(b.Dir(), "processed", "trips")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		rel, _ := filepath.Rel(b.Dir(), p)
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, body, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestLiveLeaseIsRespected: a plan whose lease has not expired belongs to a run that may still be
// working; another run leaves its partition alone, unless told to take over.
func TestLiveLeaseIsRespected(t *testing.T) {
	base := newTestBucket(t)
	crashFixture(t, base)
	crash := &crashBucket{ObjectStore: base, at: 2, land: true} // plan written, first target written
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	_, _ = newCompactor(t, crash, crashOptions(t, time.Now)).Run(ctx, Request{})
	cancel()
	if len(keys(t, base, PlanPrefix)) != 1 {
		t.Fatal("no unfinished plan after the crash")
	}
	res, err := newCompactor(t, base, crashOptions(t, time.Now)).Run(context.Background(), Request{From: crashDates[0], To: crashDates[0]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Busy != 1 || res.Plans != 0 || res.RolledBack != 0 {
		t.Errorf("run during the lease: %+v, want the partition left alone", res)
	}
	res, err = newCompactor(t, base, crashOptions(t, time.Now)).Run(context.Background(), Request{Takeover: true})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if res.RolledBack != 1 || res.Busy != 0 || len(keys(t, base, PlanPrefix)) != 0 {
		t.Errorf("takeover: %+v", res)
	}
}

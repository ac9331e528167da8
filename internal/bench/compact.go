package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/process"
)

// The compaction section: one pickup_date partition of small Parquet objects, written the way
// ProcessFunction writes them (process.TripRow, Snappy, a few hundred trips per object), compacted in a
// child process with CompactFunction's settings: target 128 MiB files and the soft memory limit
// functions/compact sets for a 1,024 MB function (80 %). The peak resident memory of the child is the
// figure to hold against the function's 1,024 MB.
const (
	compactBucket      = "bench-compact"
	compactDate        = "2019-01-15"
	compactRowsPerFile = 400 // a real month's batches hold a few hundred trips per pickup date
	compactFunctionMB  = 1024
)

// CompactionResult is the compaction of one generated partition.
type CompactionResult struct {
	Setup         string  `json:"setup"`
	Skipped       string  `json:"skipped,omitempty"`
	SourceBytes   int64   `json:"source_bytes"`
	SourceFiles   int     `json:"source_files"`
	Rows          int64   `json:"rows"`
	Duplicates    int64   `json:"duplicates"` // rows written twice on purpose (a retried batch), dropped
	RowsOut       int64   `json:"rows_out"`
	FilesAfter    int     `json:"files_after"`
	BytesAfter    int64   `json:"bytes_after"`
	Runs          int     `json:"runs"` // sorted runs of the external sort
	Wall          float64 `json:"wall_s"`
	CPU           float64 `json:"cpu_s"`
	PeakRSS       int64   `json:"peak_rss_bytes"`
	MemoryLimitMB int     `json:"memory_limit_mib"` // the child's soft limit (debug.SetMemoryLimit)
	FunctionMB    int     `json:"function_mb"`
	MBPerSecond   float64 `json:"source_mb_per_s"`
}

func runCompaction(ctx context.Context, opts *Options, work string) (*CompactionResult, error) {
	mb := opts.CompactMB
	res := &CompactionResult{FunctionMB: compactFunctionMB, MemoryLimitMB: compactFunctionMB * 8 / 10,
		Setup: fmt.Sprintf("one pickup_date partition of %d MB in objects of %d trips (process.TripRow, Snappy) on a local bucket; "+
			"compact.Compactor in a child process with CompactFunction's settings (128 MiB target files, soft memory limit %d MiB = 80 %% of %d MB); "+
			"1 %% of the trips written twice (a retried batch)", mb, compactRowsPerFile, compactFunctionMB*8/10, compactFunctionMB)}
	if len(opts.Child) == 0 {
		res.Skipped = skipf(opts, "%v", errNoChild)
		return res, nil
	}
	dir := filepath.Join(work, "compact-bucket")
	defer os.RemoveAll(dir)
	fmt.Fprintf(opts.Log, "   generating a %d MB partition\n", mb)
	files, rows, dups, bytesIn, err := generatePartition(ctx, dir, int64(mb)*1e6)
	if err != nil {
		return nil, err
	}
	res.SourceFiles, res.Rows, res.Duplicates, res.SourceBytes = files, rows, dups, bytesIn
	tmp := filepath.Join(work, "compact-tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(opts.Log, "   compacting %d objects (%.0f MB)\n", files, float64(bytesIn)/1e6)
	r, err := runChild(ctx, opts, childCompact, dir, tmp)
	if err != nil {
		return nil, err
	}
	res.RowsOut, res.FilesAfter, res.BytesAfter = r.Records, int(r.Extra["files_after"]), int64(r.Extra["bytes_after"])
	res.Runs = int(r.Extra["runs"])
	res.Wall, res.CPU, res.PeakRSS = r.Wall, r.CPU, r.PeakRSS
	if r.Wall > 0 {
		res.MBPerSecond = float64(bytesIn) / 1e6 / r.Wall
	}
	if r.Rows != rows || res.RowsOut != rows-dups || int64(r.Extra["duplicates"]) != dups {
		return nil, fmt.Errorf("compaction lost or doubled rows: %d in (want %d), %d out (want %d), %v duplicates (want %d)",
			r.Rows, rows, res.RowsOut, rows-dups, r.Extra["duplicates"], dups)
	}
	return res, nil
}

// generatePartition writes objects of compactRowsPerFile synthetic trips into one partition until
// about size bytes, the last object repeating trips of the first ones (1 %).
func generatePartition(ctx context.Context, dir string, size int64) (files int, rows, dups, total int64, err error) {
	b, err := bucket.Open(dir, compactBucket)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(16, 2019))
	day := time.Date(2019, 1, 15, 5, 0, 0, 0, time.UTC) // 00:00 in New York
	var kept []process.TripRow
	var buf bytes.Buffer
	batch := make([]process.TripRow, compactRowsPerFile)
	put := func(rs []process.TripRow) error {
		buf.Reset()
		w := parquet.NewGenericWriter[process.TripRow](&buf, parquet.Compression(&parquet.Snappy))
		if _, err := w.Write(rs); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		key := process.TripsKey(compactDate, "shardId-000000000000", fmt.Sprintf("4960%052d", files))
		if _, err := b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(compactBucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes())}); err != nil {
			return err
		}
		files++
		total += int64(buf.Len())
		rows += int64(len(rs))
		return nil
	}
	for total < size*99/100 {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, 0, err
		}
		for i := range batch {
			batch[i] = synthTrip(rng, day, rows+int64(i))
		}
		if len(kept) < int(size/100/80) { // about 1 % of the trips, for the duplicate object
			kept = append(kept, batch[:4]...)
		}
		if err := put(batch); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	for i := 0; i < len(kept); i += compactRowsPerFile {
		part := kept[i:min(i+compactRowsPerFile, len(kept))]
		if err := put(part); err != nil {
			return 0, 0, 0, 0, err
		}
		dups += int64(len(part))
	}
	return files, rows, dups, total, nil
}

var boroughs = []string{"Manhattan", "Queens", "Brooklyn", "Bronx", "Staten Island", "EWR"}

// synthTrip is a plausible yellow trip of the day (the distributions matter only for compression).
func synthTrip(rng *rand.Rand, day time.Time, n int64) process.TripRow {
	f := func(max int) *float64 { v := float64(rng.IntN(max)) / 100; return &v }
	i32 := func(lo, hi int) *int32 { v := int32(lo + rng.IntN(hi-lo+1)); return &v }
	str := func(s string) *string { return &s }
	pick := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Second)
	drop := pick.Add(time.Duration(120+rng.IntN(2400)) * time.Second)
	dur := int64(drop.Sub(pick).Seconds())
	pu, do := i32(1, 263), i32(1, 263)
	return process.TripRow{
		RecordID:              fmt.Sprintf("%016x%016x", uint64(0x5eed0be0c4000000), uint64(n)),
		TaxiType:              "yellow",
		VendorID:              i32(1, 2),
		PickupDatetime:        pick,
		DropoffTime:           &drop,
		PassengerCount:        i32(1, 6),
		TripDistance:          f(2500),
		RatecodeID:            i32(1, 2),
		StoreAndFwd:           str("N"),
		PULocationID:          pu,
		DOLocationID:          do,
		PaymentType:           i32(1, 2),
		FareAmount:            f(6000),
		Extra:                 f(300),
		MTATax:                str2f(0.5),
		TipAmount:             f(1200),
		TollsAmount:           f(100),
		ImprovementSurcharge:  str2f(0.3),
		TotalAmount:           f(9000),
		CongestionSurcharge:   str2f(2.5),
		DurationS:             &dur,
		AvgSpeedMph:           f(3000),
		TipShare:              f(30),
		PickupHour:            int32(pick.In(nycLoc).Hour()),
		PUBorough:             str(boroughs[int(*pu)%len(boroughs)]),
		PUZone:                str(fmt.Sprintf("Zone %d", *pu)),
		PUServiceZone:         str("Yellow Zone"),
		DOBorough:             str(boroughs[int(*do)%len(boroughs)]),
		DOZone:                str(fmt.Sprintf("Zone %d", *do)),
		DOServiceZone:         str("Boro Zone"),
		KinesisSequenceNumber: fmt.Sprintf("4960%052d", n),
		KinesisSubSequence:    int32(n % 300),
	}
}

func str2f(v float64) *float64 { return &v }

var nycLoc = func() *time.Location {
	l, err := time.LoadLocation("America/New_York")
	if err != nil {
		return time.UTC
	}
	return l
}()

// childCompactPartition compacts the bench bucket in this process, with the memory limit of a
// 1,024 MB function.
func childCompactPartition(ctx context.Context, dir, tmp string) (childResult, error) {
	debug.SetMemoryLimit(int64(compactFunctionMB) << 20 * 8 / 10)
	b, err := bucket.Open(dir, compactBucket)
	if err != nil {
		return childResult{}, err
	}
	defer b.Close()
	c, err := compact.NewCompactor(b, compact.Options{Bucket: compactBucket, TempDir: tmp})
	if err != nil {
		return childResult{}, err
	}
	start, cpu0 := time.Now(), cpuNow()
	r, err := c.Run(ctx, compact.Request{})
	if err != nil {
		return childResult{}, err
	}
	if len(r.Errors) > 0 || !r.Complete {
		return childResult{}, fmt.Errorf("compaction: %v (complete %v)", r.Errors, r.Complete)
	}
	runs := 0
	for _, op := range r.Details {
		runs += op.Runs
	}
	return childResult{
		Rows: r.RowsIn, Records: r.RowsOut, Bytes: r.BytesRead,
		Wall: time.Since(start).Seconds(), CPU: (cpuNow() - cpu0).Seconds(),
		Extra: map[string]float64{"files_after": float64(r.FilesAfter), "bytes_after": float64(r.BytesAfter),
			"duplicates": float64(r.Duplicates), "runs": float64(runs), "plans": float64(r.Plans)},
	}, nil
}

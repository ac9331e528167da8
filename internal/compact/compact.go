package compact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
)

// Defaults of Options.
const (
	DefaultTargetFileBytes = 128 << 20
	DefaultMaxPlanBytes    = 1 << 30
	DefaultConcurrency     = 16
	// DefaultMaxDuration bounds a run whose context has no deadline (the CLI): it is also its lease.
	DefaultMaxDuration = 6 * time.Hour
	// leaseSlack is added to a run's deadline to make its lease: another run recovers a plan only
	// after its lease, when the run that wrote it has certainly stopped writing.
	leaseSlack = 2 * time.Minute
	// assumedBytesPerSecond is the merge throughput (source bytes per second) assumed when deciding
	// whether a plan fits the time left. `taxistream bench` measures about 6 MB of small source objects
	// per CPU second; a 1,024 MB function has about 0.6 vCPU, hence ~3.5 MB/s; 2 MB/s leaves room, so
	// that a plan started is nearly always a plan finished (one cut short is rolled back and the
	// continuation makes smaller plans).
	assumedBytesPerSecond = 2 << 20
	// fetchWindowBytes bounds the source bytes downloaded but not yet sorted.
	fetchWindowBytes = 32 << 20
)

// Options configure a Compactor.
type Options struct {
	Bucket string
	// TargetFileBytes is the size of the files a compaction writes (about; never above). Objects of at
	// least half of it are left alone: they are the result of an earlier compaction.
	TargetFileBytes int64
	// RowGroupRows bounds the rows of a row group of an output file (default 1,000,000).
	RowGroupRows int64
	// MaxPlanBytes bounds the source bytes of one plan: a partition above it is compacted by several
	// plans (and several outputs) in turn.
	MaxPlanBytes int64
	// DeadlineMargin is kept back from the context's deadline: no plan starts unless it fits before
	// deadline − margin (at assumedBytesPerSecond), and a plan still running then is rolled back in it.
	DeadlineMargin time.Duration
	TempDir        string // default os.TempDir()
	Concurrency    int    // parallel GETs and DELETEs, default 16
	Log            *slog.Logger
	Now            func() time.Time
	// RunBytes and RunFanIn tune the merge (tests make them small to force several runs and passes).
	RunBytes int64
	RunFanIn int
}

// Compactor merges the small Parquet objects of processed/trips/ partitions into large ones.
type Compactor struct {
	store ObjectStore
	opts  Options
}

// NewCompactor checks the options and returns a Compactor.
func NewCompactor(store ObjectStore, opts Options) (*Compactor, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("compact: no object store"))
	}
	if opts.Bucket == "" {
		errs = append(errs, errors.New("compact: no bucket"))
	}
	if opts.TargetFileBytes == 0 {
		opts.TargetFileBytes = DefaultTargetFileBytes
	}
	if opts.TargetFileBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("compact: target file size %d bytes: want at least 1 KiB", opts.TargetFileBytes))
	}
	if opts.RowGroupRows <= 0 {
		opts.RowGroupRows = defaultRowGroupRows
	}
	if opts.MaxPlanBytes <= 0 {
		opts.MaxPlanBytes = DefaultMaxPlanBytes
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.RunBytes <= 0 {
		opts.RunBytes = defaultRunBytes
	}
	if opts.RunFanIn < 2 {
		opts.RunFanIn = defaultRunFanIn
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Compactor{store: store, opts: opts}, nil
}

// Request says which partitions to compact. The zero Request compacts every partition.
type Request struct {
	From string `json:"from,omitempty"` // first pickup date (YYYY-MM-DD), inclusive; "" for the first
	To   string `json:"to,omitempty"`   // last pickup date, inclusive; "" for the last
	// DryRun lists what would be merged and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Takeover recovers plans whose lease has not expired. Only for when no other compaction can be
	// running (after a crash of the CLI, say): the owner of a live plan would otherwise race the recovery.
	Takeover bool `json:"takeover,omitempty"`
	// Set by continuations.
	RunID        string `json:"run_id,omitempty"`
	StartAfter   string `json:"start_after,omitempty"` // the last partition finished
	Continuation int    `json:"continuation,omitempty"`
	MaxPlanBytes int64  `json:"max_plan_bytes,omitempty"` // lowered after a plan was cut short by the deadline
}

// Validate checks the dates of the request.
func (r Request) Validate() error {
	var errs []error
	for name, d := range map[string]string{"from": r.From, "to": r.To, "start_after": r.StartAfter} {
		if d != "" && !validDate(d) {
			errs = append(errs, fmt.Errorf("%s %q: want a date YYYY-MM-DD", name, d))
		}
	}
	if r.From != "" && r.To != "" && r.From > r.To {
		errs = append(errs, fmt.Errorf("from %s is after to %s", r.From, r.To))
	}
	if r.MaxPlanBytes < 0 || r.Continuation < 0 {
		errs = append(errs, errors.New("max_plan_bytes and continuation must not be negative"))
	}
	return errors.Join(errs...)
}

// Result is what a run did.
type Result struct {
	RunID      string `json:"run_id"`
	DryRun     bool   `json:"dry_run,omitempty"`
	Partitions int    `json:"partitions"` // partitions listed
	// Compacted is the partitions where at least one plan finished.
	Compacted int `json:"partitions_compacted"`
	Plans     int `json:"plans"` // plans finished
	// FilesBefore and FilesAfter count the Parquet objects of the listed partitions before the run and
	// after it (as far as this run changed them).
	FilesBefore    int   `json:"files_before"`
	FilesAfter     int   `json:"files_after"`
	BytesBefore    int64 `json:"bytes_before"`
	BytesAfter     int64 `json:"bytes_after"`
	SourcesMerged  int   `json:"sources_merged"`
	TargetsWritten int   `json:"targets_written"`
	RowsIn         int64 `json:"rows_in"`
	RowsOut        int64 `json:"rows_out"`
	Duplicates     int64 `json:"duplicates_dropped"`
	BytesRead      int64 `json:"bytes_read"`
	BytesWritten   int64 `json:"bytes_written"`
	// RolledBack and RolledForward count the unfinished plans of earlier runs this run recovered;
	// Aborted counts this run's own plans given up (source changed or gone, deadline).
	RolledBack    int `json:"rolled_back"`
	RolledForward int `json:"rolled_forward"`
	Aborted       int `json:"aborted"`
	// Busy counts partitions skipped because another run holds their plan.
	Busy int `json:"busy"`
	// SourcesChanged counts sources rewritten between their merge and their deletion: they are kept
	// (their rows may now be in a compacted file too, until a later run merges them again).
	SourcesChanged int `json:"sources_changed"`
	// Errors are the problems that left a partition uncompacted (the run goes on with the next one).
	Errors []string `json:"errors,omitempty"`
	// Complete: every partition of the range was visited. Otherwise Next is the StartAfter of a
	// continuation (the deadline came first).
	Complete bool   `json:"complete"`
	Next     string `json:"next,omitempty"`
	// CutShort: a plan was rolled back because the deadline came first; a continuation should use
	// smaller plans.
	CutShort bool          `json:"cut_short,omitempty"`
	Details  []PartitionOp `json:"details,omitempty"`
}

// PartitionOp is one plan carried out (or, in a dry run, proposed).
type PartitionOp struct {
	Partition  string `json:"partition"`
	Sources    int    `json:"sources"`
	Targets    int    `json:"targets"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	RowsIn     int64  `json:"rows_in"`
	RowsOut    int64  `json:"rows_out"`
	Duplicates int64  `json:"duplicates"`
	Runs       int    `json:"runs,omitempty"`
	// Exclusions is how many compacted files were read (their key columns, BytesExcluded bytes) to
	// drop the source rows they already hold.
	Exclusions    int     `json:"exclusions,omitempty"`
	BytesExcluded int64   `json:"bytes_excluded,omitempty"`
	Seconds       float64 `json:"seconds"`
}

// errStop: the deadline leaves no time for the next plan.
var errStop = errors.New("deadline reached")

// run is one Run call.
type run struct {
	c        *Compactor
	req      Request
	res      Result
	m        manifests
	hardStop time.Time // the context's deadline: nothing is written after it
	stopAt   time.Time // no plan starts unless it ends before this (hardStop − margin)
	lease    time.Time
	pending  map[string]bool // partitions with a plan manifest
	progress bool            // this run finished or recovered something
	sort     *sorter         // reused by the plans (run.sorter)
}

// NewRunID returns a run id: the UTC time and 8 random hex digits (sortable, unique).
func NewRunID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + uuid.NewString()[:8]
}

// Run compacts the partitions of req. Problems with one partition are reported in Result.Errors and
// the run goes on; an error is returned when the run could not go on (a listing failed).
func (c *Compactor) Run(ctx context.Context, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	now := c.opts.Now()
	if req.RunID == "" {
		req.RunID = NewRunID(now)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, now.Add(DefaultMaxDuration))
		defer cancel()
		dl, _ = ctx.Deadline()
	}
	r := &run{
		c: c, req: req, m: manifests{store: c.store, bucket: c.opts.Bucket},
		res:      Result{RunID: req.RunID, DryRun: req.DryRun},
		hardStop: dl, stopAt: dl.Add(-c.opts.DeadlineMargin), lease: dl.Add(leaseSlack),
	}
	err := r.do(ctx)
	return r.res, err
}

func (r *run) maxPlanBytes() int64 {
	if r.req.MaxPlanBytes > 0 {
		return min(r.req.MaxPlanBytes, r.c.opts.MaxPlanBytes)
	}
	return r.c.opts.MaxPlanBytes
}

func (r *run) do(ctx context.Context) error {
	if err := r.listPending(ctx); err != nil {
		return err
	}
	start := TripsPrefix + PartitionKey + "=" + r.req.From // sorts before every key of the From partition
	if r.req.StartAfter != "" {
		// "pickup_date=D0" sorts after every key of partition D ("D/…", and '/' < '0') and before
		// those of the next date.
		if s := TripsPrefix + PartitionKey + "=" + r.req.StartAfter + "0"; s > start {
			start = s
		}
	}
	pages := s3.NewListObjectsV2Paginator(r.c.store, &s3.ListObjectsV2Input{
		Bucket: aws.String(r.c.opts.Bucket), Prefix: aws.String(TripsPrefix), StartAfter: aws.String(start),
	})
	var (
		cur  string
		objs []Object
	)
	finish := func() error {
		if cur == "" {
			return nil
		}
		err := r.partition(ctx, cur, objs)
		if errors.Is(err, errStop) {
			return err
		}
		r.res.Next = cur
		return nil
	}
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", r.c.opts.Bucket, TripsPrefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			date, ok := dateOfKey(key)
			if !ok {
				continue // not a partition's object (a folder marker, another layout)
			}
			if r.req.To != "" && date > r.req.To {
				if err := finish(); err != nil {
					return r.stopped(err)
				}
				return r.complete()
			}
			if date != cur {
				if err := finish(); err != nil {
					return r.stopped(err)
				}
				cur, objs = date, objs[:0]
			}
			objs = append(objs, Object{Key: key, ETag: aws.ToString(o.ETag), Size: aws.ToInt64(o.Size)})
		}
	}
	if err := finish(); err != nil {
		return r.stopped(err)
	}
	return r.complete()
}

func (r *run) complete() error {
	r.res.Complete, r.res.Next = true, ""
	return nil
}

// stopped records that the deadline ended the run before the end of the range: Next (the last
// partition finished) is where a continuation starts.
func (r *run) stopped(err error) error {
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// listPending finds the partitions of the range that have a plan manifest.
func (r *run) listPending(ctx context.Context) error {
	r.pending = map[string]bool{}
	pages := s3.NewListObjectsV2Paginator(r.c.store, &s3.ListObjectsV2Input{
		Bucket: aws.String(r.c.opts.Bucket), Prefix: aws.String(PlanPrefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", r.c.opts.Bucket, PlanPrefix, err)
		}
		for _, o := range page.Contents {
			if d, ok := dateOfPlanKey(aws.ToString(o.Key)); ok && r.inRange(d) {
				r.pending[d] = true
			}
		}
	}
	return nil
}

func (r *run) inRange(d string) bool {
	return (r.req.From == "" || d >= r.req.From) && (r.req.To == "" || d <= r.req.To) &&
		(r.req.StartAfter == "" || d > r.req.StartAfter)
}

func (r *run) errorf(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Errors = append(r.res.Errors, msg)
	r.c.opts.Log.WarnContext(ctx, "compaction problem", "run_id", r.req.RunID, "error", msg)
}

// partition compacts one partition whose objects (in key order) were listed.
func (r *run) partition(ctx context.Context, date string, objs []Object) error {
	r.res.Partitions++
	if r.pending[date] {
		if r.req.DryRun {
			r.errorf(ctx, "%s: an unfinished plan exists (%s); a run recovers it", date, PlanKey(date))
			r.countFiles(objs, nil, nil)
			return nil
		}
		recovered, err := r.recover(ctx, date)
		if err != nil {
			r.errorf(ctx, "%s: recovering its plan: %v", date, err)
			r.countFiles(objs, nil, nil)
			return nil
		}
		if !recovered {
			r.res.Busy++
			r.countFiles(objs, nil, nil)
			return nil
		}
		// The recovery deleted targets or sources: list the partition again (once) to plan it.
		if objs, err = r.listPartition(ctx, date); err != nil {
			return err
		}
	}
	// Sources: every Parquet object but the compacted files of at least half the target size, which
	// are final. Those are exclusions: sorted by construction, their keys are merged in to drop the
	// source rows they already hold. Compacted files are therefore disjoint, and a late duplicate of
	// a compacted row (a retried ProcessFunction batch) disappears at the next run.
	var sources, exclusions []Object
	var removed, added []Object
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") {
			continue
		}
		if isCompacted(o.Key) && o.Size >= r.c.opts.TargetFileBytes/2 {
			exclusions = append(exclusions, o)
		} else {
			sources = append(sources, o)
		}
	}
	defer func() { r.countFiles(objs, removed, added) }()
	for worthPlanning(sources, exclusions) {
		// The plan takes sources in key order up to the byte budget: the plan limit, and what the
		// time left can merge (reading an exclusion's key columns costs about a quarter of its size).
		budget := r.maxPlanBytes()
		if left := r.stopAt.Sub(r.c.opts.Now()); !r.req.DryRun {
			budget = min(budget, int64(left.Seconds()*assumedBytesPerSecond)-sumSize(exclusions)/4)
		}
		n, total := 0, int64(0)
		for n < len(sources) && (n < 2 || total+sources[n].Size <= budget) {
			total += sources[n].Size
			n++
		}
		if total > budget && !r.req.DryRun {
			return errStop // the plan does not fit the time left: a continuation does it
		}
		plan := sources[:n:n]
		sources = sources[n:]
		if len(sources) == 1 && total+sources[0].Size <= budget { // do not leave one file behind
			plan = append(plan, sources[0])
			sources = nil
		}
		if r.req.DryRun {
			r.res.Details = append(r.res.Details, PartitionOp{Partition: date, Sources: len(plan), BytesIn: sumSize(plan), Exclusions: len(exclusions)})
			r.res.Plans++
			r.res.SourcesMerged += len(plan)
			removed = append(removed, plan...)
			guess := Object{Key: PartitionPrefix(date) + targetTag + "dry-run.parquet", Size: sumSize(plan)} // one file
			added = append(added, guess)
			exclusions = append(exclusions, guess)
			continue
		}
		deleted, targets, err := r.execute(ctx, date, plan, exclusions)
		switch {
		case err == nil:
			removed = append(removed, deleted...)
			added = append(added, targets...)
			exclusions = append(exclusions, targets...)
			r.progress = true
		case errors.Is(err, errBusy):
			r.res.Busy++
			return nil
		case errors.Is(err, errSourceGone):
			// Another writer got there first (a retried ProcessFunction batch, another compaction
			// that finished meanwhile): nothing is wrong, the next run plans from a fresh listing.
			return nil
		case errors.Is(err, errDeadline):
			r.res.CutShort = true
			return errStop
		default:
			r.errorf(ctx, "%s: %v", date, err)
			return nil
		}
	}
	return nil
}

// isCompacted reports whether key names a file a compaction wrote (sorted, no duplicates).
func isCompacted(key string) bool {
	i := strings.LastIndexByte(key, '/')
	return strings.HasPrefix(key[i+1:], targetTag)
}

// worthPlanning reports whether merging sources changes something: two or more files become fewer,
// or a file that is not a compaction's own is checked against the compacted ones for duplicates.
func worthPlanning(sources, exclusions []Object) bool {
	return len(sources) >= 2 || (len(sources) == 1 && len(exclusions) > 0 && !isCompacted(sources[0].Key))
}

func sumSize(objs []Object) int64 {
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return n
}

// countFiles adds a partition's Parquet objects before and after (removed sources, added targets)
// to the result.
func (r *run) countFiles(objs, removed, added []Object) {
	n, bytes := 0, int64(0)
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") {
			n++
			bytes += o.Size
		}
	}
	r.res.FilesBefore += n
	r.res.BytesBefore += bytes
	r.res.FilesAfter += n + len(added) - len(removed)
	r.res.BytesAfter += bytes + sumSize(added) - sumSize(removed)
}

// listPartition lists one partition's objects.
func (r *run) listPartition(ctx context.Context, date string) ([]Object, error) {
	var objs []Object
	pages := s3.NewListObjectsV2Paginator(r.c.store, &s3.ListObjectsV2Input{
		Bucket: aws.String(r.c.opts.Bucket), Prefix: aws.String(PartitionPrefix(date)),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", r.c.opts.Bucket, PartitionPrefix(date), err)
		}
		for _, o := range page.Contents {
			objs = append(objs, Object{Key: aws.ToString(o.Key), ETag: aws.ToString(o.ETag), Size: aws.ToInt64(o.Size)})
		}
	}
	return objs, nil
}

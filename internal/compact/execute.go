package compact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/s3object"
)

var (
	// errBusy: another run holds the partition's plan.
	errBusy = errors.New("another compaction holds the partition's plan")
	// errDeadline: the deadline came during a merge; the plan was rolled back.
	errDeadline = errors.New("deadline reached during the merge")
	// errSourceGone: a source was deleted or rewritten since the listing; the plan was rolled back.
	errSourceGone = errors.New("a source changed or disappeared since the listing")
)

// execute carries out one plan: manifest (planned) → targets → manifest (written) → sources deleted →
// manifest deleted. It returns the sources deleted and the targets written.
//
// exclusions are compacted files of the partition that are not merged: rows of the sources equal to
// one of theirs are dropped (they are sorted, so their keys are merged in as they are read).
func (r *run) execute(ctx context.Context, date string, sources, exclusions []Object) (deleted, targets []Object, err error) {
	start := r.c.opts.Now()
	p := &Plan{
		Version: planVersion, ID: NewRunID(start), RunID: r.req.RunID, Partition: date, Status: StatusPlanned,
		Created: start.UTC(), LeaseUntil: r.lease.UTC(), Sources: sources, Exclusions: exclusions,
	}
	p.TargetPrefix = PartitionPrefix(date) + targetTag + p.ID + "-"
	etag, err := r.m.put(ctx, p, "")
	if s3object.IsPreconditionFailed(err) {
		return nil, nil, errBusy
	}
	if err != nil {
		// The manifest may or may not exist: if it does, a later run rolls it back (nothing else was written).
		return nil, nil, fmt.Errorf("starting plan %s: %w", p.ID, err)
	}
	log := r.c.opts.Log.With("run_id", r.req.RunID, "plan_id", p.ID, "partition", date)

	// The merge must end before the hard stop minus half the margin: the rest is for the rollback.
	workCtx, cancel := context.WithDeadline(ctx, r.hardStop.Add(-r.c.opts.DeadlineMargin/2))
	defer cancel()
	targets, op, err := r.merge(workCtx, p)
	if err != nil {
		r.res.Aborted++
		if rbErr := r.rollback(ctx, p, etag); rbErr != nil {
			log.ErrorContext(ctx, "rolling back a plan failed; a later run recovers it", "error", rbErr.Error())
			err = errors.Join(err, rbErr)
		} else {
			log.WarnContext(ctx, "plan rolled back", "reason", err.Error())
		}
		if workCtx.Err() != nil && ctx.Err() == nil {
			return nil, nil, errDeadline
		}
		return nil, nil, fmt.Errorf("plan %s rolled back: %w", p.ID, err)
	}

	// The commit point: from here on the sources go, whoever finishes the plan.
	p.Status, p.Targets = StatusWritten, targets
	p.RowsIn, p.RowsOut, p.Duplicates = op.RowsIn, op.RowsOut, op.Duplicates
	etag, err = r.m.put(ctx, p, etag)
	if err != nil {
		return nil, nil, fmt.Errorf("committing plan %s (it stays; a later run finishes or rolls it back): %w", p.ID, err)
	}
	deleted, changed, err := r.deleteSources(ctx, p)
	r.res.SourcesChanged += changed
	if err != nil {
		return nil, nil, fmt.Errorf("deleting the sources of plan %s (a later run finishes it): %w", p.ID, err)
	}
	if err := r.m.remove(ctx, date, etag); err != nil {
		return nil, nil, fmt.Errorf("finishing plan %s (a later run finishes it): %w", p.ID, err)
	}
	op.Seconds = r.c.opts.Now().Sub(start).Seconds()
	r.res.Plans++
	if len(r.res.Details) == 0 || r.res.Details[len(r.res.Details)-1].Partition != date {
		r.res.Compacted++
	}
	r.res.Details = append(r.res.Details, op)
	r.res.SourcesMerged += len(sources)
	r.res.TargetsWritten += len(targets)
	r.res.RowsIn += op.RowsIn
	r.res.RowsOut += op.RowsOut
	r.res.Duplicates += op.Duplicates
	r.res.BytesRead += op.BytesIn
	r.res.BytesWritten += op.BytesOut
	log.InfoContext(ctx, "partition compacted", "sources", len(sources), "targets", len(targets), "rows_in", op.RowsIn,
		"rows_out", op.RowsOut, "duplicates", op.Duplicates, "bytes_in", op.BytesIn, "bytes_out", op.BytesOut,
		"sources_changed", changed, "runs", op.Runs, "seconds", op.Seconds)
	return deleted, targets, nil
}

// merge downloads the plan's sources, sorts and merges them and uploads the targets.
func (r *run) merge(ctx context.Context, p *Plan) ([]Object, PartitionOp, error) {
	op := PartitionOp{Partition: p.Partition, Sources: len(p.Sources)}
	dir, err := os.MkdirTemp(r.c.opts.TempDir, "compact-")
	if err != nil {
		return nil, op, fmt.Errorf("creating a temporary folder: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := mergeConfig{
		tempDir: dir, runBytes: r.c.opts.RunBytes, runFanIn: r.c.opts.RunFanIn,
		rowGroupRows: r.c.opts.RowGroupRows, targetBytes: r.c.opts.TargetFileBytes,
	}
	s := r.sorter(cfg)
	err = r.fetch(ctx, p.Sources, func(o Object, body []byte) error {
		op.BytesIn += int64(len(body))
		return s.add(o.Key, bytes.NewReader(body), int64(len(body)))
	})
	if err != nil {
		return nil, op, err
	}
	// Rows that all fit in the buffer are merged from it; otherwise the rest is written as a run too.
	mem := s.memoryRun()
	runSize := s.runSize
	if mem != nil {
		runSize = op.BytesIn // what the output will be about
	} else if err := s.flush(); err != nil {
		return nil, op, err
	}
	op.RowsIn, op.Runs = s.rowsIn, len(s.runs)
	if mem != nil {
		op.Runs = 1
	}
	st := mergeStats{runs: op.Runs, passes: 1}
	runs, err := reduceRuns(ctx, cfg, s.runs, &st)
	if err != nil {
		return nil, op, err
	}
	var targets []Object
	sink := &fileSink{
		cfg: cfg, pick: columnIndex(pickupColumn), bpr: float64(op.BytesIn) / float64(max(1, s.rowsIn)),
		bigFiles: min(runSize, cfg.targetBytes) >= pagesOnDiskBytes,
		emit: func(o output) error {
			if o.path != "" {
				defer os.Remove(o.path)
			}
			t, err := r.upload(ctx, p.targetKey(len(targets)+1), o)
			if err != nil {
				return err
			}
			targets = append(targets, t)
			op.BytesOut += t.Size
			return nil
		},
	}
	var (
		excl    []*cursor
		readers []*rangeReader
	)
	for _, o := range p.Exclusions {
		rr := &rangeReader{ctx: ctx, store: r.c.store, bucket: r.c.opts.Bucket, obj: o}
		c, err := openKeyCursor(o.Key, rr, o.Size, nil)
		if err != nil {
			for _, c := range excl {
				c.close()
			}
			return nil, op, err
		}
		excl, readers = append(excl, c), append(readers, rr)
	}
	var memRun parquet.RowGroup
	if mem != nil {
		memRun = mem
	}
	written, dropped, err := mergeInto(ctx, runs, memRun, excl, sink)
	op.Exclusions = len(readers)
	for _, rr := range readers {
		op.BytesExcluded += rr.bytes
	}
	if err == nil {
		err = sink.finish()
	}
	if err != nil {
		return nil, op, err
	}
	op.RowsOut, op.Duplicates, op.Targets = written, st.duplicates+dropped, len(targets)
	if op.RowsOut+op.Duplicates != op.RowsIn {
		return nil, op, fmt.Errorf("merge lost rows: %d in, %d out, %d duplicates", op.RowsIn, op.RowsOut, op.Duplicates)
	}
	return targets, op, nil
}

// sorter returns the run's sorter, emptied and configured for a plan: one per run, so that its buffer
// is allocated and grown once, not for every plan.
func (r *run) sorter(cfg mergeConfig) *sorter {
	if r.sort == nil {
		r.sort = newSorter(cfg)
	}
	r.sort.reset(cfg)
	return r.sort
}

// upload puts one output file.
func (r *run) upload(ctx context.Context, key string, o output) (Object, error) {
	var body io.Reader = bytes.NewReader(o.body)
	if o.path != "" {
		f, err := os.Open(o.path)
		if err != nil {
			return Object{}, err
		}
		defer f.Close()
		body = f
	}
	out, err := r.c.store.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(r.c.opts.Bucket), Key: aws.String(key), Body: body,
		ContentLength: aws.Int64(o.size), ContentType: aws.String("application/vnd.apache.parquet"),
	})
	if err != nil {
		return Object{}, fmt.Errorf("putting s3://%s/%s: %w", r.c.opts.Bucket, key, err)
	}
	return Object{Key: key, ETag: aws.ToString(out.ETag), Size: o.size, Rows: o.rows}, nil
}

// fetch downloads the sources (the version listed: If-Match) with Concurrency requests in flight and
// at most fetchWindowBytes downloaded but not consumed, and calls fn for each, one at a time, in
// completion order.
func (r *run) fetch(ctx context.Context, sources []Object, fn func(Object, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type got struct {
		o    Object
		body []byte
		cost int
		err  error
	}
	const unit = 1 << 20
	tokens := make(chan struct{}, fetchWindowBytes/unit) // bytes in flight or waiting, in MiB
	slots := make(chan struct{}, r.c.opts.Concurrency)   // requests in flight
	results := make(chan got)
	var wg sync.WaitGroup
	go func() {
		defer func() { wg.Wait(); close(results) }()
		for _, o := range sources {
			cost := int(min(int64(cap(tokens)), max(1, (o.Size+unit-1)/unit)))
			for range cost {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				body, err := r.get(ctx, o)
				<-slots
				select {
				case results <- got{o: o, body: body, cost: cost, err: err}:
				case <-ctx.Done():
				}
			})
		}
	}()
	var firstErr error
	for g := range results {
		for range g.cost {
			<-tokens
		}
		if firstErr != nil {
			continue
		}
		if g.err == nil {
			g.err = fn(g.o, g.body)
		}
		if g.err != nil {
			firstErr = g.err
			cancel()
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// get reads one source, the version listed.
func (r *run) get(ctx context.Context, o Object) ([]byte, error) {
	out, err := r.c.store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.c.opts.Bucket), Key: aws.String(o.Key), IfMatch: aws.String(o.ETag)})
	if s3object.IsNotFound(err) || s3object.IsPreconditionFailed(err) {
		return nil, fmt.Errorf("%w: s3://%s/%s: %v", errSourceGone, r.c.opts.Bucket, o.Key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("getting s3://%s/%s: %w", r.c.opts.Bucket, o.Key, err)
	}
	defer out.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(o.Size, 0)+bytes.MinRead))
	if _, err := io.Copy(buf, out.Body); err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", r.c.opts.Bucket, o.Key, err)
	}
	return buf.Bytes(), nil
}

// deleteSources deletes the sources of a written plan, each only if it is still the version merged
// (If-Match). A source already gone counts as deleted; one rewritten since (412) is kept and counted
// as changed. An error means some deletions may not have happened (the plan stays written).
func (r *run) deleteSources(ctx context.Context, p *Plan) (deleted []Object, changed int, err error) {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	slots := make(chan struct{}, r.c.opts.Concurrency)
	for _, o := range p.Sources {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			_, err := r.c.store.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.c.opts.Bucket), Key: aws.String(o.Key), IfMatch: aws.String(o.ETag)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil || s3object.IsNotFound(err):
				deleted = append(deleted, o)
			case s3object.IsPreconditionFailed(err):
				changed++
				r.c.opts.Log.WarnContext(ctx, "source rewritten after it was merged; kept", "key", o.Key, "plan_id", p.ID)
			default:
				errs = append(errs, fmt.Errorf("deleting s3://%s/%s: %w", r.c.opts.Bucket, o.Key, err))
			}
		})
	}
	wg.Wait()
	return deleted, changed, errors.Join(errs...)
}

// rollback deletes whatever a planned plan wrote under its target prefix, then its manifest.
func (r *run) rollback(ctx context.Context, p *Plan, etag string) error {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(r.c.store, &s3.ListObjectsV2Input{
		Bucket: aws.String(r.c.opts.Bucket), Prefix: aws.String(p.TargetPrefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", r.c.opts.Bucket, p.TargetPrefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	for _, k := range keys {
		if _, err := r.c.store.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.c.opts.Bucket), Key: aws.String(k)}); err != nil && !s3object.IsNotFound(err) {
			return fmt.Errorf("deleting s3://%s/%s: %w", r.c.opts.Bucket, k, err)
		}
	}
	return r.m.remove(ctx, p.Partition, etag)
}

// recover finishes or rolls back the unfinished plan of a partition. false means the plan belongs to
// a run that may still be working (its lease has not expired) and was left alone.
func (r *run) recover(ctx context.Context, date string) (bool, error) {
	p, etag, err := r.m.get(ctx, date)
	if err != nil {
		return false, err
	}
	if p == nil {
		return true, nil // finished meanwhile
	}
	now := r.c.opts.Now()
	if p.RunID != r.req.RunID && now.Before(p.LeaseUntil) && !r.req.Takeover {
		r.c.opts.Log.InfoContext(ctx, "partition busy: a compaction holds its plan", "partition", date, "plan_id", p.ID,
			"lease_until", p.LeaseUntil.Format(time.RFC3339))
		return false, nil
	}
	log := r.c.opts.Log.With("run_id", r.req.RunID, "plan_id", p.ID, "partition", date, "status", p.Status)
	switch p.Status {
	case StatusPlanned:
		if err := r.rollback(ctx, p, etag); err != nil {
			return false, err
		}
		r.res.RolledBack++
		log.InfoContext(ctx, "unfinished plan rolled back")
	case StatusWritten:
		_, changed, err := r.deleteSources(ctx, p)
		r.res.SourcesChanged += changed
		if err != nil {
			return false, err
		}
		if err := r.m.remove(ctx, date, etag); err != nil {
			return false, err
		}
		r.res.RolledForward++
		log.InfoContext(ctx, "unfinished plan finished")
	}
	r.progress = true
	return true, nil
}

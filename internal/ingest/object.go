package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/producer"
	"github.com/taxistream/taxistream/internal/s3object"
)

// stateWriteTimeout bounds the final manifest write when the invocation's context has already ended.
const stateWriteTimeout = 10 * time.Second

// owned is a manifest this invocation owns, with the ETag of its last write.
type owned struct {
	key       string
	etag      string
	m         Manifest
	lastWrite time.Time // when this invocation last wrote it (busy time accounting)
}

// object ingests one object version (or the part of it left by the checkpoint). kind is "" for an S3
// notification, else the Event kind.
func (inv *invocation) object(ctx context.Context, o objectRef, kind string) (ObjectResult, error) {
	h := inv.h
	res := ObjectResult{Bucket: o.Bucket, Key: o.Key}
	switch {
	case o.Bucket != h.cfg.Bucket:
		h.log.WarnContext(ctx, "refusing object of another bucket", "bucket", o.Bucket, "key", o.Key, "want_bucket", h.cfg.Bucket)
		res.Outcome, res.Reason = OutcomeSkipped, "bucket is not "+h.cfg.Bucket
		return res, nil
	case !strings.HasPrefix(o.Key, rawPrefix) || strings.HasSuffix(o.Key, "/"):
		h.log.WarnContext(ctx, "refusing key outside raw/", "bucket", o.Bucket, "key", o.Key)
		res.Outcome, res.Reason = OutcomeSkipped, "key is not an object under "+rawPrefix
		return res, nil
	}
	if err := checkObject(o); err != nil {
		h.log.ErrorContext(ctx, "refusing object the pipeline cannot name its state after", "bucket", o.Bucket, "key", o.Key, "error", err.Error())
		res.Outcome, res.Reason = OutcomeSkipped, err.Error()
		return res, nil
	}
	if o.version() == "" {
		hd, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key)})
		if err != nil {
			if s3object.IsNotFound(err) {
				h.log.WarnContext(ctx, "object not found", "bucket", o.Bucket, "key", o.Key)
				res.Outcome, res.Reason = OutcomeSkipped, "object not found"
				return res, nil
			}
			return res, fmt.Errorf("heading s3://%s/%s: %w", o.Bucket, o.Key, err)
		}
		o.VersionID, o.ETag, o.Size = aws.ToString(hd.VersionId), unquoteETag(aws.ToString(hd.ETag)), aws.ToInt64(hd.ContentLength)
		if err := checkObject(o); err != nil { // now with the version its state keys carry
			h.log.ErrorContext(ctx, "refusing object the pipeline cannot name its state after", "bucket", o.Bucket, "key", o.Key, "error", err.Error())
			res.Outcome, res.Reason = OutcomeSkipped, err.Error()
			return res, nil
		}
	}
	if kind == KindReplay && o.VersionID == "" {
		// A replay names the object by the ETag its listing gave (ListObjectsV2 has no version ids). In
		// a versioned bucket the object's identity (manifest, record_id) is its version id, as for its
		// notification: learn it, pinned to that ETag.
		hd, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key), IfMatch: etagParam(o)})
		switch {
		case err == nil:
			if v := aws.ToString(hd.VersionId); v != "" && v != "null" {
				o.VersionID = v
			}
		case s3object.IsPreconditionFailed(err) || s3object.IsNotFound(err):
			// Replaced or deleted since the listing: reading it fails the same way below, and the
			// manifest says so.
		default:
			return res, fmt.Errorf("heading s3://%s/%s: %w", o.Bucket, o.Key, err)
		}
	}
	res.Version = o.version()
	res.Manifest = o.manifestKey()

	format := h.readers.formatOf(o.Key)
	st, dup, err := inv.claim(ctx, o, format)
	if err != nil {
		return res, err
	}
	if dup != "" {
		inv.duplicate++
		h.log.InfoContext(ctx, "duplicate notification", "bucket", o.Bucket, "key", o.Key, "version", o.version(),
			"kind", kind, "manifest", res.Manifest, "state", dup)
		res.Outcome, res.Reason = OutcomeDuplicate, dup
		return res, nil
	}
	res.Continuation = st.m.Continuations
	if format == convert.FormatUnknown {
		return inv.fail(ctx, st, res, 0, "unsupported format: the key must end in .csv, .csv.gz or .parquet")
	}
	r := &run{inv: inv, o: o, st: st, format: format, res: res,
		rej: &rejectWriter{h: h, o: o, next: st.m.RejectedParts}, lines: map[int64]int64{}, begun: h.now()}
	return r.do(ctx)
}

// claim makes this invocation the owner of the object's manifest, or says why not (dup != "").
func (inv *invocation) claim(ctx context.Context, o objectRef, f convert.Format) (st *owned, dup string, err error) {
	h := inv.h
	key := o.manifestKey()
	now := h.now()
	m, etag, found, err := h.loadManifest(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if !found {
		// The in-flight marker goes first: an object whose manifest exists is always findable by the
		// sweeper, even when this invocation dies right after creating it.
		if err := h.markInflight(ctx, key); err != nil {
			return nil, "", err
		}
		m = Manifest{
			Bucket: o.Bucket, Key: o.Key, Version: o.version(), VersionID: o.VersionID, ETag: o.ETag, Size: o.Size,
			ReplayID: o.ReplayID, Format: formatName(f), StartedAt: now,
			RejectedPrefix: rejectedDir(o.Key, o.version(), o.ReplayID),
		}
	} else {
		switch {
		case m.Status == StatusDone || m.Status == StatusFailed:
			return nil, m.Status, nil
		case m.Status == StatusRunning && now.Before(m.LeaseUntil) && m.Owner != inv.requestID:
			return nil, "running (owner " + m.Owner + ")", nil
		}
		// A released or expired lease (a continuation, a retry, a dead owner): take it over.
	}
	m.Status = StatusRunning
	m.Owner = inv.requestID
	m.LeaseUntil = inv.lease(ctx)
	m.Claims++
	m.UpdatedAt = now
	newTag, err := h.putManifest(ctx, key, &m, etag)
	if errors.Is(err, errLostOwnership) {
		return nil, "claimed by another invocation", nil
	}
	if err != nil {
		return nil, "", err
	}
	return &owned{key: key, etag: newTag, m: m, lastWrite: now}, "", nil
}

// write writes the manifest conditionally on the owner's last ETag; m is adopted only on success.
func (inv *invocation) write(ctx context.Context, st *owned, m Manifest) error {
	if ctx.Err() != nil { // the invocation is out of time: record the state anyway
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), stateWriteTimeout)
		defer cancel()
	}
	m.UpdatedAt = inv.h.now()
	m.BusyMillis += m.UpdatedAt.Sub(st.lastWrite).Milliseconds()
	if _, ok := ctx.Deadline(); !ok && m.Status == StatusRunning && m.LeaseUntil.After(m.UpdatedAt) {
		m.LeaseUntil = m.UpdatedAt.Add(noDeadlineLease)
	}
	etag, err := inv.h.putManifest(ctx, st.key, &m, st.etag)
	if err != nil {
		return err
	}
	st.etag, st.m, st.lastWrite = etag, m, m.UpdatedAt
	if m.Status != StatusRunning {
		inv.h.unmarkInflight(ctx, st.key)
	}
	return nil
}

// fail marks an owned object failed for good. failed is the number of rows whose fate is unknown.
func (inv *invocation) fail(ctx context.Context, st *owned, res ObjectResult, failed int64, reason string) (ObjectResult, error) {
	m := st.m
	m.Status, m.Reason, m.FinishedAt = StatusFailed, reason, inv.h.now()
	m.Counts.Failed += failed
	res.Outcome, res.Reason = OutcomeFailed, reason
	inv.h.log.WarnContext(ctx, "object failed", "bucket", m.Bucket, "key", m.Key, "version", m.Version, "reason", reason)
	if err := inv.write(ctx, st, m); err != nil {
		return res, inv.lostOrErr(ctx, &res, err)
	}
	return res, nil
}

// lostOrErr turns a lost ownership into a logged outcome (nothing to retry: someone else owns it).
func (inv *invocation) lostOrErr(ctx context.Context, res *ObjectResult, err error) error {
	if errors.Is(err, errLostOwnership) {
		inv.h.log.WarnContext(ctx, "lost ownership of the object to another invocation; stopping",
			"bucket", res.Bucket, "key", res.Key, "manifest", res.Manifest)
		res.Outcome, res.Reason = OutcomeDuplicate, "lost ownership"
		return nil
	}
	return err
}

// release gives the lease up so that a retry of the event can take over from the last checkpoint, and
// returns cause (wrapped) for Lambda to retry.
func (inv *invocation) release(ctx context.Context, st *owned, res *ObjectResult, cause error) error {
	m := st.m
	m.LeaseUntil = inv.h.now()
	m.Reason = "released after error: " + cause.Error()
	res.Outcome, res.Reason = OutcomeReleased, cause.Error()
	if err := inv.write(ctx, st, m); err != nil && !errors.Is(err, errLostOwnership) {
		return errors.Join(cause, fmt.Errorf("releasing the manifest: %w", err))
	}
	return cause
}

// release releases the object at its last checkpoint (inv.release) after an error. The rows handed to
// the producer since that checkpoint may be in the stream already, and the retry that resumes there
// sends them again: they are counted as possible duplicates (in the manifest, the summary and the
// metrics), so every copy a consumer drops by record_id is accounted for.
func (r *run) release(ctx context.Context, cause error) error {
	if r.pending > 0 {
		r.st.m.Counts.PossibleDuplicates += r.pending
		r.inv.totals.PossibleDuplicates += r.pending
		r.pending = 0
	}
	return r.inv.release(ctx, r.st, &r.res, cause)
}

// run is the ingestion of one owned object in this invocation.
type run struct {
	inv    *invocation
	o      objectRef
	st     *owned
	format convert.Format
	res    ObjectResult
	src    *source
	prod   RecordProducer
	rej    *rejectWriter
	begun  time.Time // when this invocation took the object on

	// since the last commit
	rows, rejected, pending, pendingBytes int64
	lines                                 map[int64]int64 // row → line of the records in the producer
	last                                  producer.Stats  // producer stats at the last commit
}

func (r *run) do(ctx context.Context) (ObjectResult, error) {
	inv, h := r.inv, r.inv.h
	src, err := h.openSource(ctx, r.o, r.format, r.st.m.Checkpoint)
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) {
			return inv.fail(ctx, r.st, r.res, 0, se.Error())
		}
		return r.res, r.release(ctx, err)
	}
	r.src = src
	defer src.close()
	// Retries are bounded by time, not by count (MaxRetries -1): a record that cannot be written before
	// the deadline is handed over with the object (release or continuation), never given up on.
	pc := producer.Config{StreamName: h.cfg.Stream, Aggregate: h.cfg.Aggregate, Logger: h.log,
		MaxBufferedBytes: bufferFor(h.cfg.DeadlineMargin), MaxRetries: -1}
	if pc.Routing = producer.RouteBalanced; h.cfg.ShardRouting == "key" { // config.Load checked the value
		pc.Routing = producer.RouteByKey
	}
	if strings.HasPrefix(h.cfg.Stream, "arn:") {
		pc.StreamName, pc.StreamARN = "", h.cfg.Stream
	}
	if r.prod, err = h.newProducer(ctx, h.kinesis, pc); err != nil {
		return r.res, r.release(ctx, fmt.Errorf("starting the producer: %w", err))
	}
	stopAt := inv.stopAt(ctx)
	// Put runs on the invocation's own context: a deadline any earlier would cancel requests in flight
	// that Kinesis may already have stored, and the hand-over would send them again. Put's waits are
	// short (per-shard throttle backoff ≤ 1 s, a buffer that drains in a quarter of the margin), so
	// reading stops close to stopAt; a producer that runs out of time releases the object.
	readThisInvocation := int64(0)
	for {
		if !stopAt.IsZero() && !h.now().Before(stopAt) {
			return r.handoff(ctx, readThisInvocation)
		}
		rec, err := src.rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *convert.RowError
			if isTransport(err) {
				// The connection to S3 failed, not the object: keep what was sent and release the
				// object at that checkpoint for the retry.
				if done, res, err := r.commit(ctx, nil); done {
					return res, err
				}
				return r.res, r.release(ctx, fmt.Errorf("reading after row %d: %w", r.st.m.Counts.RowsRead, err))
			}
			if !errors.As(err, &re) {
				// Fatal for the file (corrupt gzip, not a Parquet file, ...): keep what was read.
				reason := fmt.Sprintf("reading after row %d: %v", r.st.m.Counts.RowsRead+r.rows, err)
				return r.commitAndFail(ctx, reason)
			}
			r.rows++
			readThisInvocation++
			r.rejected++
			r.rej.addRowError(re)
			if r.rej.full() {
				if err := r.rej.flush(ctx); err != nil {
					return r.res, r.release(ctx, err)
				}
			}
			continue
		}
		r.rows++
		readThisInvocation++
		if err := r.prod.Put(ctx, producer.Entry{Data: rec.JSON, PartitionKey: r.partitionKey(), Tag: rec.Row}); err != nil {
			r.pending++ // its fate is unknown too
			return r.producerFailed(ctx, fmt.Errorf("putting row %d: %w", rec.Row, err))
		}
		r.pending++
		r.pendingBytes += int64(len(rec.JSON))
		r.lines[rec.Row] = rec.Line
		if r.pending >= int64(h.flushRecords) || r.pendingBytes >= h.flushBytes {
			if done, res, err := r.commit(ctx, nil); done {
				return res, err
			}
		}
	}
	_, res, err := r.commit(ctx, func(m *Manifest) {
		m.Status, m.Reason, m.FinishedAt = StatusDone, "", h.now()
		var cp convert.Checkpoint
		if m.Checkpoint != nil {
			cp = *m.Checkpoint
		}
		m.Warnings = convert.Warnings(cp, convert.Stats{RowsRead: m.Counts.RowsRead, Records: m.Counts.RecordsSent, Rejected: m.Counts.Rejected}, r.o.Size)
	})
	if res.Outcome == "" {
		res.Outcome = OutcomeDone
	}
	if res.Outcome == OutcomeDone {
		attrs := []any{"bucket", r.o.Bucket, "key", r.o.Key, "version", r.o.version(),
			"rows", r.st.m.Counts.RowsRead, "records", r.st.m.Counts.RecordsSent, "rejected", r.st.m.Counts.Rejected}
		if w := r.st.m.Warnings; len(w) > 0 {
			h.log.WarnContext(ctx, "object done with warnings", append(attrs, "warnings", w)...)
		} else {
			h.log.InfoContext(ctx, "object done", attrs...)
		}
	}
	return res, err
}

// commit flushes the producer, writes the rejected rows and stores the checkpoint (and whatever final
// changes set makes) in the manifest. done is true when the run must stop (an error or a failed object).
func (r *run) commit(ctx context.Context, set func(m *Manifest)) (done bool, res ObjectResult, err error) {
	inv := r.inv
	fctx := ctx
	if d, ok := ctx.Deadline(); ok {
		// The flush may use the margin but a reserve (a quarter of it, at most 5 s), kept for the
		// manifest write and the hand-over or release after it. The buffer drains in a quarter of the
		// margin at one shard's limit (bufferFor).
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(ctx, d.Add(-min(inv.h.cfg.DeadlineMargin/4, 5*time.Second)))
		defer cancel()
	}
	failures, err := r.prod.Flush(fctx)
	if err != nil {
		res, err := r.producerFailed(ctx, fmt.Errorf("flushing: %w", err))
		return true, res, err
	}
	// Only a record that can never be written (too large, bad key) is a rejected row; any other
	// failure means "not now": the object is released at its last checkpoint for the retry.
	for _, f := range failures {
		if !producer.IsTerminal(f.Err) {
			res, err := r.producerFailed(ctx, fmt.Errorf("row %d not written: %s: %w", f.Tag, f.Reason, f.Err))
			return true, res, err
		}
	}
	for _, f := range failures {
		detail := f.Reason
		if f.Err != nil {
			detail = f.Err.Error()
		}
		r.rej.add(RejectedRow{Line: r.lines[f.Tag], Row: f.Tag, Reason: "producer:" + f.Reason, Detail: detail})
	}
	if err := r.rej.flush(ctx); err != nil {
		return true, r.res, r.release(ctx, err)
	}
	m := r.st.m
	cp := r.src.rows.Checkpoint()
	m.Checkpoint = &cp
	m.RejectedParts = r.rej.next
	sent := r.pending - int64(len(failures))
	m.Counts.RowsRead += r.rows
	m.Counts.RecordsSent += sent
	m.Counts.Rejected += r.rejected + int64(len(failures))
	s := r.prod.Stats()
	m.Counts.KinesisRecords += s.KinesisRecords - r.last.KinesisRecords
	m.Counts.Bytes += s.Bytes - r.last.Bytes
	m.Counts.Retries += s.Retries - r.last.Retries
	m.Counts.Throttled += s.Throttled - r.last.Throttled
	m.Counts.PossibleDuplicates += s.PossibleDuplicates - r.last.PossibleDuplicates
	if set != nil {
		set(&m)
	}
	if err := inv.write(ctx, r.st, m); err != nil {
		// The rows are in the stream; without the checkpoint a retry sends them again (duplicates that
		// record_id identifies), never loses them.
		if errors.Is(err, errLostOwnership) {
			return true, r.res, inv.lostOrErr(ctx, &r.res, err)
		}
		return true, r.res, r.release(ctx, err)
	}
	// Account this invocation's share.
	r.res.RowsRead += r.rows
	r.res.RecordsSent += sent
	r.res.Rejected += r.rejected + int64(len(failures))
	r.res.Throttled += s.Throttled - r.last.Throttled
	t := &inv.totals
	t.RowsRead += r.rows
	t.RecordsSent += sent
	t.Rejected += r.rejected + int64(len(failures))
	t.KinesisRecords += s.KinesisRecords - r.last.KinesisRecords
	t.Bytes += s.Bytes - r.last.Bytes
	t.Retries += s.Retries - r.last.Retries
	t.Throttled += s.Throttled - r.last.Throttled
	t.PossibleDuplicates += s.PossibleDuplicates - r.last.PossibleDuplicates
	r.last = s
	r.rows, r.rejected, r.pending, r.pendingBytes = 0, 0, 0, 0
	clear(r.lines)
	return false, r.res, nil
}

// commitAndFail commits what was read and marks the object failed with reason.
func (r *run) commitAndFail(ctx context.Context, reason string) (ObjectResult, error) {
	done, res, err := r.commit(ctx, func(m *Manifest) {
		m.Status, m.Reason, m.FinishedAt = StatusFailed, reason, r.inv.h.now()
	})
	if done {
		return res, err
	}
	res.Outcome, res.Reason = OutcomeFailed, reason
	r.inv.h.log.WarnContext(ctx, "object failed", "bucket", r.o.Bucket, "key", r.o.Key, "version", r.o.version(), "reason", reason)
	return res, nil
}

// producerFailed handles a Put or Flush error: the rows since the last commit have an unknown fate.
// When the invocation ran out of time the lease is released for a retry from the checkpoint; any
// other producer error fails the object with the rows counted as failed.
func (r *run) producerFailed(ctx context.Context, cause error) (ObjectResult, error) {
	inv := r.inv
	// Out of time (the context ended, or the producer's next backoff would pass the deadline), or an
	// error that may pass (throttling, a server or transport error, a failed shard-map refresh): not the
	// object's fault. Release it at its last checkpoint for the retry of this event, which resumes there
	// (rows sent since the checkpoint are sent again: duplicates that consumers drop by record_id).
	// Only a terminal error (access denied, no such stream, a validation error) fails the object.
	if ctx.Err() != nil || !producer.IsTerminal(cause) {
		return r.res, r.release(ctx, cause)
	}
	// Rejected rows are final: keep them; the records in flight are counted as failed. When the rejected
	// rows cannot be written, the manifest must not count them: release at the checkpoint like any other
	// failed write, and the retry of the event reads them again from there.
	if err := r.rej.flush(ctx); err != nil {
		return r.res, r.release(ctx, errors.Join(cause, err))
	}
	m := r.st.m
	m.RejectedParts = r.rej.next
	m.Counts.RowsRead += r.rows
	m.Counts.Rejected += r.rejected
	r.res.RowsRead += r.rows
	r.res.Rejected += r.rejected
	r.res.Failed += r.pending
	inv.totals.RowsRead += r.rows
	inv.totals.Rejected += r.rejected
	inv.totals.Failed += r.pending
	st := *r.st
	st.m = m
	res, err := inv.fail(ctx, &st, r.res, r.pending, "producing to the stream: "+cause.Error())
	*r.st = st
	return res, err
}

// handoff checkpoints and sends the rest of the object to a continuation of the function.
func (r *run) handoff(ctx context.Context, readThisInvocation int64) (ObjectResult, error) {
	inv, h := r.inv, r.inv.h
	next := r.st.m.Continuations + 1
	switch {
	case next > h.cfg.MaxContinuations:
		return r.commitAndFail(ctx, fmt.Sprintf("stopped after %d continuations (MAX_CONTINUATIONS); the checkpoint is kept: replay the object to finish it", r.st.m.Continuations))
	case readThisInvocation == 0 && r.noTimeToRead(ctx):
		return r.commitAndFail(ctx, fmt.Sprintf("no row read before the deadline margin (%s): raise the function timeout or lower DEADLINE_MARGIN", h.cfg.DeadlineMargin))
	}
	done, res, err := r.commit(ctx, func(m *Manifest) {
		m.Continuations = next
		m.LeaseUntil = h.now() // released: the continuation takes it over
	})
	if done {
		return res, err
	}
	inv.handoffs++
	res.Outcome = OutcomeContinued
	ev := Event{Kind: KindContinuation, Bucket: r.o.Bucket, Key: r.o.Key, VersionID: r.o.VersionID, ETag: r.o.ETag,
		Size: r.o.Size, ReplayID: r.o.ReplayID, Continuation: next}
	if err := h.invokeSelf(ctx, ev); err != nil {
		// The manifest is released at the checkpoint: Lambda's retry of this event takes over from there.
		return res, fmt.Errorf("invoking continuation %d of s3://%s/%s: %w", next, r.o.Bucket, r.o.Key, err)
	}
	h.log.InfoContext(ctx, "continuation sent", "bucket", r.o.Bucket, "key", r.o.Key, "continuation", next,
		"rows", r.st.m.Counts.RowsRead)
	return res, nil
}

// partitionKey is the configured field of the last record, or a random key.
func (r *run) partitionKey() string {
	if f := r.inv.h.cfg.PartitionKeyField; f != "" && f != "random" {
		if v := r.src.rows.Value(f); v != "" && v != "null" {
			if strings.HasPrefix(v, `"`) {
				if s, err := strconv.Unquote(v); err == nil {
					v = s
				}
			}
			if v != "" {
				if utf8.RuneCountInString(v) > kinesislimit.MaxPartitionKeyLength {
					v = string([]rune(v)[:kinesislimit.MaxPartitionKeyLength])
				}
				return v
			}
		}
	}
	return producer.RandomKey()
}

// invokeSelf sends ev to this function asynchronously (InvocationType Event).
func (h *Handler) invokeSelf(ctx context.Context, ev Event) error {
	name := h.cfg.FunctionName // config.Load requires it
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding continuation: %w", err)
	}
	out, err := h.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(name),
		InvocationType: lambdatypes.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("invoking %s: %w", name, err)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("invoking %s: %s", name, aws.ToString(out.FunctionError))
	}
	return nil
}

// bufferFor sizes the producer's buffer so that what it holds at a hand-over can be written well
// within the flush's share of the deadline margin (see commit) even on a single shard: a
// quarter of the margin at one shard's write limit (1 MiB/s), between 256 KiB and the producer's
// default. A small margin means smaller, more frequent writes, never a final flush that outlasts the
// invocation.
func bufferFor(margin time.Duration) int {
	b := int(margin.Seconds() / 4 * float64(kinesislimit.ShardWriteBytesPerSecond))
	return min(max(b, 256<<10), producer.DefaultMaxBufferedBytes)
}

// noTimeToRead reports whether this invocation never had time to read: it began within the deadline
// margin (a timeout not above DEADLINE_MARGIN). Then handing over again would loop, so the object
// fails with the reason. An invocation that had time but read nothing (a shard throttled for long)
// hands over like any other.
func (r *run) noTimeToRead(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && d.Sub(r.begun) <= r.inv.h.cfg.DeadlineMargin
}

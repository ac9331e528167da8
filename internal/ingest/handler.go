package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/producer"
)

// Flush points: the producer is flushed and the manifest checkpointed after this many records or bytes.
const (
	flushRecords = 20000
	flushBytes   = 16 << 20
)

// leaseGrace is added to the invocation's deadline to make its lease: a running manifest whose owner has
// not written it by then belongs to an invocation that died (timeout, crash) and may be taken over.
const leaseGrace = 2 * time.Minute

// noDeadlineLease is the lease of an invocation whose context has no deadline (CLI, tests); it is renewed
// at every checkpoint.
const noDeadlineLease = 15 * time.Minute

// Handler is IngestFunction.
type Handler struct {
	cfg         config.Config
	s3          ObjectStore
	kinesis     producer.Client
	lambda      Invoker
	log         *slog.Logger
	metrics     io.Writer
	now         func() time.Time
	newProducer func(ctx context.Context, c producer.Client, cfg producer.Config) (RecordProducer, error)
	readers     readers

	flushRecords int
	flushBytes   int64
}

// New returns the handler (the constructor shape of every handler: docs/decisions.md). cfg is what
// config.Load returned and is not checked again; New checks the dependencies, joins every problem into
// one error, and does no I/O.
func New(_ context.Context, cfg config.Config, d Deps) (*Handler, error) {
	var errs []error
	if d.S3 == nil {
		errs = append(errs, errors.New("ingest: Deps.S3 is required"))
	}
	if d.Kinesis == nil && d.NewProducer == nil {
		errs = append(errs, errors.New("ingest: Deps.Kinesis is required"))
	}
	if d.Lambda == nil {
		errs = append(errs, errors.New("ingest: Deps.Lambda is required (continuations)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{
		cfg: cfg, s3: d.S3, kinesis: d.Kinesis, lambda: d.Lambda, log: d.Log, metrics: d.Metrics, now: d.Now,
		newProducer: d.NewProducer, readers: defaultReaders, flushRecords: flushRecords, flushBytes: flushBytes,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = io.Discard
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.newProducer == nil {
		h.newProducer = func(ctx context.Context, c producer.Client, pc producer.Config) (RecordProducer, error) {
			p, err := producer.New(ctx, c, pc)
			if err != nil {
				return nil, err
			}
			return p, nil
		}
	}
	return h, nil
}

// Result is what one invocation did, object by object (the Lambda response; logs and tests read it).
type Result struct {
	Objects []ObjectResult `json:"objects"`
}

// Object outcomes in a Result.
const (
	OutcomeDone      = "done"      // the object is finished (this invocation wrote its last rows)
	OutcomeContinued = "continued" // checkpointed and handed over to a continuation
	OutcomeFailed    = "failed"    // the manifest says failed, with Reason
	OutcomeDuplicate = "duplicate" // a finished or owned version: nothing done
	OutcomeSkipped   = "skipped"   // not ours to ingest (outside raw/, another bucket, not an object-created event)
	OutcomeDeferred  = "deferred"  // not started before the deadline: handed to a new invocation
	OutcomeReleased  = "released"  // an error to be retried; the manifest lease was released for the retry
	OutcomeResumed   = "resumed"   // the sweeper found it stuck and handed it to a new invocation at its checkpoint
	OutcomeWaiting   = "waiting"   // the sweeper found it stuck; it resumes it at NextSweepAt (backoff)
)

// ObjectResult is the outcome of one object in one invocation. Counts are this invocation's.
type ObjectResult struct {
	Bucket       string `json:"bucket"`
	Key          string `json:"key"`
	Version      string `json:"version,omitempty"`
	Outcome      string `json:"outcome"`
	Reason       string `json:"reason,omitempty"`
	Manifest     string `json:"manifest,omitempty"`
	Continuation int    `json:"continuation"`
	RowsRead     int64  `json:"rows_read"`
	RecordsSent  int64  `json:"records_sent"`
	Rejected     int64  `json:"rejected"`
	Failed       int64  `json:"failed"`
	Throttled    int64  `json:"throttled"`
}

// eventShape is the union of the inputs Handle accepts, enough to tell them apart.
type eventShape struct {
	Kind    string            `json:"taxistream"`
	Event   string            `json:"Event"` // "s3:TestEvent"
	Records []json.RawMessage `json:"Records"`
}

// Handle processes an events.S3Event, an s3:TestEvent (ignored) or an Event (continuation, replay).
// It returns an error only when a retry of the same event should help (S3 or Lambda unavailable, the
// continuation could not be sent); problems of the object itself end in its manifest instead.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Result, error) {
	start := h.now()
	inv := &invocation{h: h, requestID: requestID(ctx), metrics: obs.NewMetrics(h.cfg.MetricsNamespace, map[string]string{"Function": "ingest"})}
	inv.metrics.SetClock(h.now)
	res, err := h.dispatch(ctx, inv, raw)
	inv.finish(ctx, res, err, h.now().Sub(start))
	return res, err
}

// Invoke is the Lambda runtime's entry point (lambda.Handler): it hands Handle the payload exactly as
// received, so that trailing data after the event is seen and refused (the runtime's own decoder keeps
// the first JSON value and silently drops the rest).
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	res, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

func (h *Handler) dispatch(ctx context.Context, inv *invocation, raw json.RawMessage) (Result, error) {
	var shape eventShape
	if err := decodeStrict(raw, &shape, false); err != nil {
		return inv.invalid(ctx, Event{}, fmt.Errorf("decoding event: %w", err)), nil
	}
	switch {
	case shape.Kind != "":
		var ev Event
		if err := decodeStrict(raw, &ev, true); err != nil {
			return inv.invalid(ctx, ev, fmt.Errorf("decoding %s event: %w", shape.Kind, err)), nil
		}
		if err := ev.validate(h.cfg.MaxContinuations); err != nil {
			return inv.invalid(ctx, ev, err), nil
		}
		if ev.Kind == KindSweep {
			return inv.sweep(ctx, ev.Idle)
		}
		o := objectRef{Bucket: ev.Bucket, Key: ev.Key, VersionID: ev.VersionID, ETag: unquoteETag(ev.ETag), Size: ev.Size, ReplayID: ev.ReplayID}
		r, err := inv.object(ctx, o, ev.Kind)
		return Result{Objects: []ObjectResult{r}}, err
	case shape.Event == "s3:TestEvent":
		h.log.InfoContext(ctx, "ignoring s3:TestEvent")
		return Result{}, nil
	case shape.Records != nil:
		var ev events.S3Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			// A key that is not valid form encoding: retrying cannot help.
			return inv.invalid(ctx, Event{}, fmt.Errorf("decoding S3 event: %w", err)), nil
		}
		var res Result
		var errs []error
		for i, rec := range ev.Records {
			o := objectRef{
				Bucket: rec.S3.Bucket.Name, Key: rec.S3.Object.URLDecodedKey, VersionID: rec.S3.Object.VersionID,
				ETag: unquoteETag(rec.S3.Object.ETag), Size: rec.S3.Object.Size,
			}
			if rec.EventSource != "" && rec.EventSource != "aws:s3" || rec.EventName != "" && !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
				h.log.InfoContext(ctx, "ignoring S3 record", "bucket", o.Bucket, "key", o.Key, "event_source", rec.EventSource, "event_name", rec.EventName)
				res.Objects = append(res.Objects, ObjectResult{Bucket: o.Bucket, Key: o.Key, Outcome: OutcomeSkipped, Reason: "not an ObjectCreated event"})
				continue
			}
			if i > 0 && inv.stopping(ctx) {
				// Out of time after earlier records used it: hand this one to a fresh invocation. (The
				// first record always starts: with no time even for it the timeout is not above
				// DEADLINE_MARGIN, and the object fails with that reason instead of deferring forever.)
				r, err := inv.deferObject(ctx, o, i)
				res.Objects = append(res.Objects, r)
				errs = append(errs, err)
				continue
			}
			r, err := inv.object(ctx, o, "")
			res.Objects = append(res.Objects, r)
			errs = append(errs, err)
		}
		return res, errors.Join(errs...)
	}
	return inv.invalid(ctx, Event{}, errors.New("unrecognised event: want an S3 event, s3:TestEvent or a taxistream event")), nil
}

// invalid refuses an event that no retry can make valid (undecodable, trailing data, a taxistream event
// with a bad field): it is logged at ERROR with the reason, counted as InvalidEvents, and acknowledged
// (no error), so Lambda does not retry it. Nothing is read or written for it.
func (inv *invocation) invalid(ctx context.Context, ev Event, err error) Result {
	inv.invalidEvents++
	inv.h.log.ErrorContext(ctx, "invalid event refused", "bucket", ev.Bucket, "key", ev.Key, "kind", ev.Kind, "error", err.Error())
	return Result{Objects: []ObjectResult{{Bucket: ev.Bucket, Key: ev.Key, Outcome: OutcomeSkipped, Reason: "invalid event: " + err.Error()}}}
}

// invocation holds the per-invocation state: request id, metrics, totals for the summary line.
type invocation struct {
	h         *Handler
	requestID string
	metrics   *obs.Metrics
	totals    Counts
	duplicate int
	handoffs  int
	// invalidEvents counts events refused by invalid.
	invalidEvents int
	// swept counts what a sweep did.
	swept struct{ resumed, failed, waiting int }
}

// stopAt is the instant reading must stop: ctx's deadline minus the margin (zero when there is none).
func (inv *invocation) stopAt(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return d.Add(-inv.h.cfg.DeadlineMargin)
}

func (inv *invocation) stopping(ctx context.Context) bool {
	at := inv.stopAt(ctx)
	return !at.IsZero() && !inv.h.now().Before(at)
}

// lease returns the lease of this invocation.
func (inv *invocation) lease(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d.Add(leaseGrace)
	}
	return inv.h.now().Add(noDeadlineLease)
}

// deferObject hands an object this invocation has no time for to a new invocation of the function.
func (inv *invocation) deferObject(ctx context.Context, o objectRef, i int) (ObjectResult, error) {
	r := ObjectResult{Bucket: o.Bucket, Key: o.Key, Version: o.version(), Outcome: OutcomeDeferred}
	if err := inv.h.invokeSelf(ctx, Event{Kind: KindContinuation, Bucket: o.Bucket, Key: o.Key, VersionID: o.VersionID, ETag: o.ETag, Size: o.Size}); err != nil {
		return r, fmt.Errorf("deferring record %d (%s): %w", i, o.Key, err)
	}
	return r, nil
}

// finish writes the summary log line and the EMF line of the invocation.
func (inv *invocation) finish(ctx context.Context, res Result, err error, d time.Duration) {
	m := inv.metrics
	t := inv.totals
	m.Add("RowsRead", obs.Count, float64(t.RowsRead))
	m.Add("RecordsSent", obs.Count, float64(t.RecordsSent))
	m.Add("RowsRejected", obs.Count, float64(t.Rejected))
	m.Add("RowsFailed", obs.Count, float64(t.Failed))
	m.Add("KinesisRecords", obs.Count, float64(t.KinesisRecords))
	m.Add("Bytes", obs.Bytes, float64(t.Bytes))
	m.Add("Retries", obs.Count, float64(t.Retries))
	m.Add("Throttled", obs.Count, float64(t.Throttled))
	m.Add("PossibleDuplicates", obs.Count, float64(t.PossibleDuplicates))
	m.Add("Continuations", obs.Count, float64(inv.handoffs))
	m.Add("DuplicateNotifications", obs.Count, float64(inv.duplicate))
	m.Add("InvalidEvents", obs.Count, float64(inv.invalidEvents))
	if inv.swept != (struct{ resumed, failed, waiting int }{}) {
		m.Add("SweepResumed", obs.Count, float64(inv.swept.resumed))
		m.Add("SweepFailed", obs.Count, float64(inv.swept.failed))
		m.Add("SweepWaiting", obs.Count, float64(inv.swept.waiting))
	}
	m.Add("Duration", obs.Milliseconds, float64(d.Milliseconds()))
	m.Property("request_id", inv.requestID)
	attrs := []any{"request_id", inv.requestID, "objects", len(res.Objects)}
	if len(res.Objects) == 1 {
		o := res.Objects[0]
		m.Property("bucket", o.Bucket)
		m.Property("key", o.Key)
		attrs = append(attrs, "bucket", o.Bucket, "key", o.Key, "version", o.Version, "outcome", o.Outcome,
			"continuation", o.Continuation)
		if o.Reason != "" {
			attrs = append(attrs, "reason", o.Reason)
		}
	} else if len(res.Objects) > 1 {
		outcomes := make(map[string]int)
		for _, o := range res.Objects {
			outcomes[o.Outcome]++
		}
		attrs = append(attrs, "outcomes", outcomes)
	}
	attrs = append(attrs, "rows", t.RowsRead, "records", t.RecordsSent, "rejected", t.Rejected, "failed", t.Failed,
		"kinesis_records", t.KinesisRecords, "bytes", t.Bytes, "retries", t.Retries, "throttles", t.Throttled, "possible_duplicates", t.PossibleDuplicates,
		"continuations", inv.handoffs, "duplicates", inv.duplicate, "duration_ms", d.Milliseconds())
	if err != nil {
		attrs = append(attrs, "error", err.Error())
		inv.h.log.ErrorContext(ctx, "ingest summary", attrs...)
	} else {
		inv.h.log.InfoContext(ctx, "ingest summary", attrs...)
	}
	if werr := m.Write(inv.h.metrics); werr != nil {
		inv.h.log.WarnContext(ctx, "writing metrics", "error", werr.Error())
	}
}

// requestID is the Lambda request id, or a random id outside Lambda.
func requestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	return "local-" + uuid.NewString()
}

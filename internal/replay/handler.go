// Package replay is ReplayFunction (DESIGN.md, replay contract): it lists a prefix of raw/ and hands
// every ingestible object to IngestFunction with a replay id, continuing itself before its deadline.
//
// Rate. MaxInFlight (REPLAY_MAX_IN_FLIGHT) bounds the concurrent Invoke calls of one replay invocation.
// An asynchronous (Event) invoke returns as soon as Lambda has queued the event, so this bounds the
// hand-off rate, not the ingestion: the real bound on objects being ingested at once is IngestFunction's
// ReservedConcurrentExecutions (template parameter IngestReservedConcurrency). Events beyond it wait in
// Lambda's internal queue and are retried on throttling for up to MaximumEventAgeInSeconds (6 h), so a
// replay of thousands of objects drains at reserved-concurrency speed instead of flooding a 1-shard
// stream. Without reserved concurrency, ingestion may scale to the account's unreserved concurrency and
// the stream's write limit becomes the throttle (the producer backs off, but every ingest pays for it).
//
// Exactly once per replay id. Objects are handed off in listing order; a continuation starts after the
// last key handed off, once every earlier hand-off has returned. Ingestion keeps a manifest per
// (replay id, object version), so handing an object off again with the same replay id (a retried
// invocation) ingests it once.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/obs"
)

// Lister is the part of *s3.Client the handler uses: ListObjectsV2, through s3.NewListObjectsV2Paginator.
type Lister = s3.ListObjectsV2APIClient

// Invoker is the part of *lambda.Client the handler uses: asynchronous invokes of IngestFunction and of
// ReplayFunction itself (continuations).
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var (
	_ Lister  = (*s3.Client)(nil)
	_ Invoker = (*lambda.Client)(nil)
)

// ErrTooManyContinuations: the replay reached MAX_CONTINUATIONS before the end of its listing.
var ErrTooManyContinuations = errors.New("continuation limit reached")

// dryRunKeys is how many keys a dry run lists in its response.
const dryRunKeys = 100

// Deps are the handler's collaborators, built once per execution environment.
type Deps struct {
	S3      Lister
	Lambda  Invoker
	Log     *slog.Logger // nil = discard
	Metrics io.Writer    // one EMF line per invocation; nil = discard
	Now     func() time.Time
}

// Handler is ReplayFunction's handler.
type Handler struct {
	cfg      config.Config
	s3       Lister
	lambda   Invoker
	log      *slog.Logger
	metrics  io.Writer
	now      func() time.Time
	pageSize int32 // ListObjectsV2 MaxKeys; 0 = S3's default (1,000)
}

// Response is the summary of one replay invocation (not of the whole chain: each continuation reports
// its own; they share ReplayID).
type Response struct {
	ReplayID     string `json:"replay_id"`
	Prefix       string `json:"prefix"`
	Objects      int    `json:"objects"` // handed off (or, in a dry run, that would be)
	Bytes        int64  `json:"bytes"`   // their total size
	Skipped      int    `json:"skipped"` // listed but not ingestible (suffix not .csv, .csv.gz, .parquet)
	Continued    bool   `json:"continued"`
	Continuation int    `json:"continuation"` // this invocation's place in the chain: 0 for the first
	// LastKey is the last key handed off; a manual resume starts after it (a continuation starts after
	// the last key listed, which may be a skipped one after it).
	LastKey string `json:"last_key,omitempty"`
	// Complete: the listing reached its end or max_objects. False with Continued false means the replay
	// stopped early (a dry run at its deadline, an error): resume with start_after = LastKey.
	Complete bool     `json:"complete"`
	DryRun   bool     `json:"dry_run"`
	Keys     []string `json:"keys,omitempty"` // dry run: the first 100 keys that would be handed off
}

// New returns the handler (the constructor shape of every handler: docs/decisions.md). cfg is what
// config.Load returned and is not checked again; New checks the dependencies, joins every problem into
// one error, and does no I/O.
func New(_ context.Context, cfg config.Config, d Deps) (*Handler, error) {
	var errs []error
	if d.S3 == nil {
		errs = append(errs, errors.New("replay: Deps.S3 is required"))
	}
	if d.Lambda == nil {
		errs = append(errs, errors.New("replay: Deps.Lambda is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, s3: d.S3, lambda: d.Lambda, log: d.Log, metrics: d.Metrics, now: d.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = io.Discard
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Handle runs one replay invocation. A bad request returns an error wrapping ErrBadRequest before
// anything is listed. A failed hand-off stops the invocation: it waits for the hand-offs in flight and
// returns the response so far with an error naming the key to resume after.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Response, error) {
	start := h.now()
	req, err := DecodeRequest(ctx, raw, start)
	if err == nil && req.Continuation > h.cfg.MaxContinuations {
		err = fmt.Errorf("%w: continuation %d: want 0 to %d (MAX_CONTINUATIONS)", ErrBadRequest, req.Continuation, h.cfg.MaxContinuations)
	}
	if err != nil {
		h.log.ErrorContext(ctx, "replay refused", "error", err.Error())
		return Response{}, err
	}
	run := &run{h: h, req: req, resp: Response{ReplayID: req.ReplayID, Prefix: req.Prefix, DryRun: req.DryRun, Continuation: req.Continuation}}
	err = run.do(ctx)
	h.summarize(ctx, run, start, err)
	return run.resp, err
}

// Invoke is the Lambda runtime's entry point (lambda.Handler): it hands Handle the payload exactly as
// received. Passing Handle itself to lambda.Start would let the runtime decode the payload first, and
// its decoder keeps the first JSON value and silently drops whatever follows it.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// run is the state of one invocation.
type run struct {
	h    *Handler
	req  Request
	resp Response

	cursor string // the last listed key processed (handed off or skipped): where a continuation starts

	mu      sync.Mutex
	failure error    // first failed hand-off (lowest index)
	failIdx int      // its index in keys
	keys    []string // keys dispatched, in order
	sizes   []int64  // their sizes
}

func (r *run) do(ctx context.Context) error {
	h := r.h
	stopAt, hasDeadline := time.Time{}, false
	if d, ok := ctx.Deadline(); ok {
		stopAt, hasDeadline = d.Add(-h.cfg.DeadlineMargin), true
	}
	timeUp := func() bool { return hasDeadline && !h.now().Before(stopAt) }
	limit := r.req.MaxObjects // what is left of max_objects for this invocation; 0 = unbounded

	in := &s3.ListObjectsV2Input{Bucket: aws.String(h.cfg.Bucket), Prefix: aws.String(r.req.Prefix)}
	if r.req.StartAfter != "" {
		in.StartAfter = aws.String(r.req.StartAfter)
	}
	if h.pageSize > 0 {
		in.MaxKeys = aws.Int32(h.pageSize)
	}
	pages := s3.NewListObjectsV2Paginator(h.s3, in)

	sem := make(chan struct{}, h.cfg.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	// dispatch starts the hand-off of obj once a slot is free; false when an earlier one failed meanwhile.
	dispatch := func(obj ingest.Event) bool {
		sem <- struct{}{}
		r.mu.Lock()
		if r.failure != nil {
			r.mu.Unlock()
			<-sem
			return false
		}
		idx := len(r.keys)
		r.keys = append(r.keys, obj.Key)
		r.sizes = append(r.sizes, obj.Size)
		r.mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			if err := h.handOff(ctx, obj); err != nil {
				r.mu.Lock()
				if r.failure == nil || idx < r.failIdx {
					r.failure, r.failIdx = err, idx
				}
				r.mu.Unlock()
			}
		})
		return true
	}

	stopped := false // by the deadline, before the end of the listing
listing:
	for pages.HasMorePages() {
		if timeUp() {
			stopped = true
			break
		}
		page, err := pages.NextPage(ctx)
		if err != nil {
			wg.Wait()
			return r.fail(fmt.Errorf("listing s3://%s/%s: %w", h.cfg.Bucket, r.req.Prefix, err))
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !Ingestible(key) {
				r.resp.Skipped++
				r.cursor = key
				continue
			}
			if timeUp() {
				stopped = true
				break listing
			}
			size := aws.ToInt64(o.Size)
			if r.req.DryRun {
				if len(r.resp.Keys) < dryRunKeys {
					r.resp.Keys = append(r.resp.Keys, key)
				}
			} else if !dispatch(ingest.Event{
				Kind:     ingest.KindReplay,
				Bucket:   h.cfg.Bucket,
				Key:      key,
				ETag:     strings.Trim(aws.ToString(o.ETag), `"`),
				Size:     size,
				ReplayID: r.req.ReplayID,
			}) {
				break listing
			}
			r.resp.Objects++
			r.resp.Bytes += size
			r.resp.LastKey = key
			r.cursor = key
			if limit > 0 && r.resp.Objects >= limit {
				break listing // max_objects reached: complete
			}
		}
	}
	wg.Wait()
	if r.failure != nil {
		return r.fail(r.failure)
	}
	if !stopped {
		r.resp.Complete = true
		return nil
	}
	if r.req.DryRun {
		return nil // a dry run invokes nothing, not even itself: resume with start_after = last_key
	}
	return r.continueSelf(ctx)
}

// fail records a failed invocation: objects and last_key cover only the hand-offs known to be done,
// in listing order, before the first failure.
func (r *run) fail(err error) error {
	if r.failure != nil {
		done := r.keys[:r.failIdx]
		r.resp.Objects, r.resp.Bytes = len(done), 0
		for _, n := range r.sizes[:r.failIdx] {
			r.resp.Bytes += n
		}
		r.resp.LastKey = r.req.StartAfter
		if len(done) > 0 {
			r.resp.LastKey = done[len(done)-1]
		}
	}
	resume := r.resp.LastKey
	return fmt.Errorf("replay %s stopped: %w; resume with start_after %q (objects after it may be handed off again, which ingests them once)", r.req.ReplayID, err, resume)
}

// continueSelf hands the rest of the listing to a new invocation of this function.
func (r *run) continueSelf(ctx context.Context) error {
	h := r.h
	if r.cursor == "" {
		// Nothing listed before the deadline: continuing would hand the same work on forever.
		return fmt.Errorf("replay %s: deadline reached before anything was listed (DEADLINE_MARGIN %v too close to the timeout?); resume with start_after %q",
			r.req.ReplayID, h.cfg.DeadlineMargin, r.req.StartAfter)
	}
	next := r.req
	next.Continuation++
	next.StartAfter = r.cursor
	if next.MaxObjects > 0 {
		next.MaxObjects -= r.resp.Objects
	}
	if next.Continuation > h.cfg.MaxContinuations {
		return fmt.Errorf("replay %s: %w (%d, MAX_CONTINUATIONS); resume with start_after %q", r.req.ReplayID, ErrTooManyContinuations, h.cfg.MaxContinuations, next.StartAfter)
	}
	payload, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := h.invoke(ctx, h.cfg.FunctionName, payload); err != nil {
		return fmt.Errorf("replay %s: invoking %s to continue after %q: %w", r.req.ReplayID, h.cfg.FunctionName, next.StartAfter, err)
	}
	r.resp.Continued = true
	return nil
}

// handOff invokes IngestFunction asynchronously with ev.
func (h *Handler) handOff(ctx context.Context, ev ingest.Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := h.invoke(ctx, h.cfg.IngestFunction, payload); err != nil {
		return fmt.Errorf("handing off s3://%s/%s: %w", ev.Bucket, ev.Key, err)
	}
	return nil
}

// invoke sends payload to function with InvocationType Event; Lambda answers 202 once it has queued it.
func (h *Handler) invoke(ctx context.Context, function string, payload []byte) error {
	out, err := h.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(function),
		InvocationType: lambdatypes.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("invoking %s: %w", function, err)
	}
	if out.StatusCode != 202 {
		return fmt.Errorf("invoking %s: status %d, want 202", function, out.StatusCode)
	}
	return nil
}

func (h *Handler) summarize(ctx context.Context, r *run, start time.Time, err error) {
	resp := r.resp
	elapsed := h.now().Sub(start)
	attrs := []any{
		"replay_id", resp.ReplayID, "prefix", resp.Prefix, "start_after", r.req.StartAfter,
		"max_objects", r.req.MaxObjects, "dry_run", resp.DryRun, "continuation", resp.Continuation,
		"objects", resp.Objects, "bytes", resp.Bytes, "skipped", resp.Skipped,
		"continued", resp.Continued, "complete", resp.Complete, "last_key", resp.LastKey,
		"duration_ms", elapsed.Milliseconds(),
	}
	if err != nil {
		h.log.ErrorContext(ctx, "replay failed", append(attrs, "error", err.Error())...)
	} else {
		h.log.InfoContext(ctx, "replay", attrs...)
	}
	m := obs.NewMetrics(h.cfg.MetricsNamespace, map[string]string{"Function": "replay"})
	m.SetClock(h.now)
	m.Add("ObjectsMatched", obs.Count, float64(resp.Objects))
	if !resp.DryRun {
		m.Add("ObjectsHandedOff", obs.Count, float64(resp.Objects))
		m.Add("BytesHandedOff", obs.Bytes, float64(resp.Bytes))
	}
	m.Add("ObjectsSkipped", obs.Count, float64(resp.Skipped))
	m.Add("Continuations", obs.Count, b2f(resp.Continued))
	m.Add("Errors", obs.Count, b2f(err != nil))
	m.Property("replay_id", resp.ReplayID)
	m.Property("dry_run", resp.DryRun)
	if werr := m.Write(h.metrics); werr != nil {
		h.log.WarnContext(ctx, "writing metrics", "error", werr.Error())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Ingestible reports whether IngestFunction converts key, by its suffix (convert.FormatOf: .csv,
// .csv.gz, .parquet, case-insensitive). Folder markers ("raw/2019/") are not.
func Ingestible(key string) bool {
	return !strings.HasSuffix(key, "/") && convert.FormatOf(key) != convert.FormatUnknown
}

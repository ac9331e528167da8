package compact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
)

// Invoker is the part of *lambda.Client the handler uses: the asynchronous invocation of itself that
// continues a run before the deadline.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ Invoker = (*lambda.Client)(nil)

// ErrTooManyContinuations: the run reached MAX_CONTINUATIONS before the end of its range.
var ErrTooManyContinuations = errors.New("continuation limit reached")

// ErrBadRequest marks an event that is neither a compaction request nor a scheduled event.
var ErrBadRequest = errors.New("bad request")

// Deps are the handler's collaborators, built once per execution environment.
type Deps struct {
	S3      ObjectStore
	Lambda  Invoker
	Log     *slog.Logger // nil = discard
	Metrics io.Writer    // one EMF line per invocation; nil = discard
	Now     func() time.Time
	TempDir string // default os.TempDir() (/tmp on Lambda)
}

// Handler is CompactFunction's handler: a scheduled event (EventBridge) compacts every partition; a
// Request (a manual invoke) compacts a range of dates; both continue themselves before the deadline.
type Handler struct {
	cfg     config.Config
	c       *Compactor
	lambda  Invoker
	log     *slog.Logger
	metrics io.Writer
	now     func() time.Time
}

// New returns the handler (the constructor shape of every handler: docs/decisions.md). cfg is what
// config.Load returned and is not checked again; New checks the dependencies, joins every problem into
// one error, and does no I/O.
func New(_ context.Context, cfg config.Config, d Deps) (*Handler, error) {
	var errs []error
	if d.S3 == nil {
		errs = append(errs, errors.New("compact: Deps.S3 is required"))
	}
	if d.Lambda == nil {
		errs = append(errs, errors.New("compact: Deps.Lambda is required"))
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = io.Discard
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c, err := NewCompactor(d.S3, Options{
		Bucket: cfg.Bucket, TargetFileBytes: int64(cfg.CompactTargetMB) << 20, DeadlineMargin: cfg.DeadlineMargin,
		TempDir: d.TempDir, Log: d.Log, Now: d.Now,
	})
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, c: c, lambda: d.Lambda, log: d.Log, metrics: d.Metrics, now: d.Now}, nil
}

// Response is what an invocation returns: its run's result and whether it continued itself.
type Response struct {
	Result
	Continuation int  `json:"continuation"`
	Continued    bool `json:"continued"`
}

// DecodeRequest reads an invocation's event: an EventBridge scheduled event (or any EventBridge event)
// is a run over every partition; anything else must be a Request, with no unknown field.
func DecodeRequest(raw json.RawMessage) (Request, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Request{}, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if _, ok := probe["detail-type"]; ok {
		if _, ok := probe["source"]; ok {
			return Request{}, nil
		}
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := req.Validate(); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return req, nil
}

// Handle runs one invocation. Problems with single partitions do not stop the run; when the run ends
// (not when it continues) with such problems, an error is returned so that the failure queue gets it.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Response, error) {
	start := h.now()
	req, err := DecodeRequest(raw)
	if err != nil {
		h.log.ErrorContext(ctx, "compaction refused", "error", err.Error())
		return Response{}, err
	}
	res, err := h.c.Run(ctx, req)
	resp := Response{Result: res, Continuation: req.Continuation}
	if err == nil && !res.Complete {
		err = h.continueRun(ctx, req, &resp)
	}
	if err == nil && !resp.Continued && len(res.Errors) > 0 {
		err = fmt.Errorf("compaction %s: %d partition(s) not compacted: %s", res.RunID, len(res.Errors), strings.Join(res.Errors, "; "))
	}
	h.summarize(ctx, req, resp, start, err)
	return resp, err
}

// continueRun hands the rest of the range to a new invocation.
func (h *Handler) continueRun(ctx context.Context, req Request, resp *Response) error {
	res := resp.Result
	next := req
	next.RunID = res.RunID
	next.Continuation++
	if res.Next != "" {
		next.StartAfter = res.Next
	}
	if res.CutShort {
		// A plan did not fit: the next invocation makes smaller ones.
		next.MaxPlanBytes = max(1<<20, h.c.maxPlan(req)/2)
	}
	progressed := res.Plans > 0 || res.RolledBack > 0 || res.RolledForward > 0 || next.StartAfter != req.StartAfter
	if !progressed && !res.CutShort {
		return fmt.Errorf("compaction %s: the deadline came before any progress (DEADLINE_MARGIN %v too close to the timeout?); resume with start_after %q",
			res.RunID, h.cfg.DeadlineMargin, req.StartAfter)
	}
	if next.Continuation > h.cfg.MaxContinuations {
		return fmt.Errorf("compaction %s: %w (%d, MAX_CONTINUATIONS); resume with start_after %q", res.RunID, ErrTooManyContinuations, h.cfg.MaxContinuations, next.StartAfter)
	}
	payload, err := json.Marshal(next)
	if err != nil {
		return err
	}
	out, err := h.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(h.cfg.FunctionName), InvocationType: lambdatypes.InvocationTypeEvent, Payload: payload,
	})
	if err == nil && out.StatusCode != 202 {
		err = fmt.Errorf("status %d, want 202", out.StatusCode)
	}
	if err != nil {
		return fmt.Errorf("compaction %s: invoking %s to continue after %q: %w", res.RunID, h.cfg.FunctionName, next.StartAfter, err)
	}
	resp.Continued = true
	return nil
}

func (c *Compactor) maxPlan(req Request) int64 {
	if req.MaxPlanBytes > 0 {
		return min(req.MaxPlanBytes, c.opts.MaxPlanBytes)
	}
	return c.opts.MaxPlanBytes
}

func (h *Handler) summarize(ctx context.Context, req Request, resp Response, start time.Time, err error) {
	res := resp.Result
	elapsed := h.now().Sub(start)
	attrs := []any{
		"request_id", requestID(ctx), "run_id", res.RunID, "from", req.From, "to", req.To, "start_after", req.StartAfter,
		"continuation", resp.Continuation, "dry_run", req.DryRun, "partitions", res.Partitions,
		"partitions_compacted", res.Compacted, "plans", res.Plans, "files_before", res.FilesBefore,
		"files_after", res.FilesAfter, "rows_in", res.RowsIn, "rows_out", res.RowsOut, "duplicates", res.Duplicates,
		"bytes_read", res.BytesRead, "bytes_written", res.BytesWritten, "rolled_back", res.RolledBack,
		"rolled_forward", res.RolledForward, "aborted", res.Aborted, "busy", res.Busy,
		"sources_changed", res.SourcesChanged, "complete", res.Complete, "continued", resp.Continued,
		"duration_ms", elapsed.Milliseconds(),
	}
	if err != nil {
		h.log.ErrorContext(ctx, "compaction failed", append(attrs, "error", err.Error())...)
	} else {
		h.log.InfoContext(ctx, "compaction", attrs...)
	}
	m := obs.NewMetrics(h.cfg.MetricsNamespace, map[string]string{"Function": "compact"})
	m.SetClock(h.now)
	m.Add("CompactionRuns", obs.Count, 1)
	m.Add("PartitionsCompacted", obs.Count, float64(res.Compacted))
	m.Add("Plans", obs.Count, float64(res.Plans))
	m.Add("ObjectsMerged", obs.Count, float64(res.SourcesMerged))
	m.Add("ObjectsWritten", obs.Count, float64(res.TargetsWritten))
	m.Add("RowsMerged", obs.Count, float64(res.RowsIn))
	m.Add("RowsWritten", obs.Count, float64(res.RowsOut))
	m.Add("DuplicatesDropped", obs.Count, float64(res.Duplicates))
	m.Add("BytesRead", obs.Bytes, float64(res.BytesRead))
	m.Add("BytesWritten", obs.Bytes, float64(res.BytesWritten))
	m.Add("PlansRecovered", obs.Count, float64(res.RolledBack+res.RolledForward))
	m.Add("PlansAborted", obs.Count, float64(res.Aborted))
	m.Add("PartitionsBusy", obs.Count, float64(res.Busy))
	m.Add("SourcesChanged", obs.Count, float64(res.SourcesChanged))
	m.Add("Continuations", obs.Count, b2f(resp.Continued))
	m.Add("Errors", obs.Count, float64(len(res.Errors))+b2f(err != nil && len(res.Errors) == 0))
	m.Add("Duration", obs.Milliseconds, float64(elapsed.Milliseconds()))
	m.Property("run_id", res.RunID)
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

func requestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}

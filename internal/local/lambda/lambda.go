// Package lambda is the local cloud's Lambda service: functions registered in-process and invoked through
// the aws-sdk-go-v2 Lambda client's Invoke signature, so handlers that invoke functions (IngestFunction
// continuing itself, ReplayFunction handing objects to ingestion) run on it unchanged.
//
// What it emulates:
//   - RequestResponse (synchronous) invokes: 200 with the handler's payload, or FunctionError "Unhandled"
//     and Lambda's error document {"errorMessage", "errorType"}; a handler that runs past its Timeout has
//     its context cancelled and yields "Task timed out after N seconds" (errorType "Sandbox.Timedout");
//     a panic is recovered and reported as a function error.
//   - Event (asynchronous) invokes: 202, queued per function and run as concurrency allows; a function
//     error or timeout is retried MaximumRetryAttempts times (default 2) after RetryDelays (AWS waits about
//     1 and 2 minutes; the local default is 1 s and 2 s); events older than MaximumEventAge are dropped;
//     events that fail for good go to the function's OnFailure callback and to Failed(name), in the
//     shape of Lambda's on-failure destination record.
//   - DryRun: 204 after checking the function and payload.
//   - Concurrency: a per-function limit like ReservedConcurrentExecutions. A synchronous invoke over the
//     limit fails at once with TooManyRequestsException (429), as on AWS; an asynchronous one waits in the
//     queue (counted as a throttle), as Lambda's internal queue does.
//   - Payload limits: 6 MB synchronous request and response, 1 MB asynchronous request (the limit was
//     256 KB until Lambda raised it; set Config.MaxAsyncPayload to get the old one; Config.MaxSyncPayload
//     overrides the synchronous one).
//   - Every invocation gets context.WithTimeout(Timeout) (handlers see ctx.Deadline() as on Lambda) and a
//     lambdacontext with AwsRequestID and InvokedFunctionArn arn:aws:lambda:<region>:<account>:function:<name>.
//
// One difference is unavoidable in-process: a handler that ignores its context cannot be frozen. Its
// invocation is reported as timed out at the deadline, but it keeps its concurrency slot, and the runtime
// stays Busy, until the handler goroutine returns.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	golambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/uuid"
)

// Lambda limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
const (
	// MaxSyncPayload is the limit on a synchronous invocation's request and response: 6 MB.
	MaxSyncPayload = 6 * 1024 * 1024
	// MaxAsyncPayload is the limit on an asynchronous invocation's request: 1 MB (256 KB before 2025).
	MaxAsyncPayload = 1024 * 1024
	// DefaultTimeout is a function's timeout when none is set: 3 s.
	DefaultTimeout = 3 * time.Second
	// DefaultMemoryMB is a function's memory when none is set: 128 MB.
	DefaultMemoryMB = 128
	// DefaultConcurrency is the local runtime's concurrency per function without a reserved one (ours:
	// AWS's account limit is 1,000, far more than one machine runs well).
	DefaultConcurrency = 10
	// DefaultMaximumRetryAttempts is how often Lambda retries a failed asynchronous event: 2 (0–2 allowed).
	DefaultMaximumRetryAttempts = 2
	// DefaultMaximumEventAge is how long Lambda keeps an asynchronous event: 6 h (60 s–6 h allowed).
	DefaultMaximumEventAge = 6 * time.Hour
)

// Function is one registered function.
type Function struct {
	Handler  golambda.Handler // e.g. lambda.NewHandler(h.Handle)
	Timeout  time.Duration    // DefaultTimeout when zero
	MemoryMB int              // DefaultMemoryMB when zero; informational (AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
	Env      map[string]string

	// ReservedConcurrency caps concurrent invocations (ReservedConcurrentExecutions);
	// Config.DefaultConcurrency when zero.
	ReservedConcurrency int
	// MaximumRetryAttempts for asynchronous events; DefaultMaximumRetryAttempts when nil.
	MaximumRetryAttempts *int
	// MaximumEventAge for asynchronous events; DefaultMaximumEventAge when zero.
	MaximumEventAge time.Duration
	// OnFailure, if set, receives every asynchronous event that failed for good (the on-failure
	// destination / dead-letter queue). It runs in a runtime goroutine and must not block for long.
	OnFailure func(FailedEvent)
}

// Config configures a Runtime. The zero value is usable.
type Config struct {
	Region    string // "us-east-1" when empty
	AccountID string // "000000000000" when empty

	// RetryDelays are the waits before the first, second, ... retry of a failed asynchronous event
	// (the last one repeats). AWS waits about 1 min then 2 min; default 1 s, 2 s.
	RetryDelays []time.Duration
	// DefaultConcurrency is the concurrency of a function without ReservedConcurrency; default
	// DefaultConcurrency (the package constant).
	DefaultConcurrency int
	// MaxAsyncPayload overrides the asynchronous request limit (MaxAsyncPayload when zero).
	MaxAsyncPayload int
	// MaxSyncPayload overrides the synchronous request and response limit (MaxSyncPayload when zero;
	// the local cloud lifts it with its limits off).
	MaxSyncPayload int

	// Now is the clock for event ages and failure records; time.Now when nil.
	Now func() time.Time
	// AfterFunc schedules retries; time.AfterFunc when nil. It returns a func that cancels the call.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	Logger    *slog.Logger // slog.Default() when nil
	// Observer, if set, is called after every execution; it must be quick.
	Observer func(Invocation)
}

// Stats are a function's counters.
type Stats struct {
	Invocations int64 // handler executions: synchronous calls plus every asynchronous attempt
	Errors      int64 // executions that ended in a function error, timeouts included
	Timeouts    int64 // executions that ran past the function's timeout
	Throttles   int64 // synchronous invokes refused, and asynchronous events that waited, for concurrency
	Retries     int64 // asynchronous retries scheduled
	Dropped     int64 // asynchronous events given up (retries exhausted or too old)
	Queued      int   // asynchronous events waiting now (queue length), retries waiting included
	Running     int   // executions running now
}

// FailedEvent is an asynchronous event that failed for good. Record returns it in the JSON shape of
// Lambda's on-failure destination record.
type FailedEvent struct {
	Function        string
	FunctionArn     string
	RequestID       string
	Condition       string // "RetriesExhausted" or "EventAgeExceeded"
	Attempts        int    // approximateInvokeCount
	Time            time.Time
	Payload         []byte // the event
	FunctionError   string // "Unhandled" when the last attempt returned an error
	ResponsePayload []byte // the last attempt's error document
}

// Record is the on-failure destination record Lambda sends for this event.
func (f FailedEvent) Record() []byte {
	type requestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	}
	type responseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	}
	rec := struct {
		Version         string          `json:"version"`
		Timestamp       string          `json:"timestamp"`
		RequestContext  requestContext  `json:"requestContext"`
		RequestPayload  json.RawMessage `json:"requestPayload"`
		ResponseContext responseContext `json:"responseContext"`
		ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
	}{
		Version:         "1.0",
		Timestamp:       f.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext:  requestContext{f.RequestID, f.FunctionArn + ":$LATEST", f.Condition, f.Attempts},
		RequestPayload:  rawJSON(f.Payload),
		ResponseContext: responseContext{200, "$LATEST", f.FunctionError},
		ResponsePayload: rawJSONOrNil(f.ResponsePayload),
	}
	data, _ := json.Marshal(rec)
	return data
}

func rawJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func rawJSONOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return rawJSON(b)
}

// Runtime runs registered functions. Its Invoke has the signature of *lambda.Client's.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	base   context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	fns   map[string]*function
	busy  int           // async events not yet finished + executions running (guarded by mu)
	idle  chan struct{} // closed when busy drops to 0; replaced when it rises again
	stops map[*int]func() bool
}

type function struct {
	name string
	arn  string
	fn   Function
	sem  chan struct{}

	qmu     sync.Mutex
	queue   []*event
	waiting int // retries scheduled but not yet back in the queue
	holding int // 1 while the dispatcher holds an event waiting for a concurrency slot
	wake    chan struct{}

	invocations, errors, timeouts, throttles, retries, dropped atomic.Int64
	running                                                    atomic.Int64

	fmu    sync.Mutex
	failed []FailedEvent
}

type event struct {
	id       string
	payload  []byte
	received time.Time
	attempts int
	last     result
}

type result struct {
	payload  []byte
	errType  string // "" on success
	timedOut bool
}

// New returns a runtime; Close stops it.
func New(cfg Config) *Runtime {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = []time.Duration{time.Second, 2 * time.Second}
	}
	if cfg.DefaultConcurrency <= 0 {
		cfg.DefaultConcurrency = DefaultConcurrency
	}
	if cfg.MaxAsyncPayload <= 0 {
		cfg.MaxAsyncPayload = MaxAsyncPayload
	}
	if cfg.MaxSyncPayload <= 0 {
		cfg.MaxSyncPayload = MaxSyncPayload
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{cfg: cfg, log: log, base: ctx, cancel: cancel, fns: map[string]*function{}, stops: map[*int]func() bool{}}
}

// ARN is the ARN of the function called name in this runtime.
func (r *Runtime) ARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", r.cfg.Region, r.cfg.AccountID, name)
}

// Register adds a function. Names are unique.
func (r *Runtime) Register(name string, fn Function) error {
	if name == "" || strings.ContainsAny(name, ":/ ") {
		return fmt.Errorf("registering function %q: invalid name", name)
	}
	if fn.Handler == nil {
		return fmt.Errorf("registering function %s: no handler", name)
	}
	if fn.Timeout <= 0 {
		fn.Timeout = DefaultTimeout
	}
	if fn.MemoryMB <= 0 {
		fn.MemoryMB = DefaultMemoryMB
	}
	if fn.ReservedConcurrency <= 0 {
		fn.ReservedConcurrency = r.cfg.DefaultConcurrency
	}
	if fn.MaximumRetryAttempts == nil {
		fn.MaximumRetryAttempts = ptr(DefaultMaximumRetryAttempts)
	}
	if fn.MaximumEventAge <= 0 {
		fn.MaximumEventAge = DefaultMaximumEventAge
	}
	f := &function{name: name, arn: r.ARN(name), fn: fn, sem: make(chan struct{}, fn.ReservedConcurrency), wake: make(chan struct{}, 1)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.fns[name]; dup {
		return fmt.Errorf("registering function %s: already registered", name)
	}
	r.fns[name] = f
	go r.dispatch(f)
	return nil
}

// Getenv returns the environment the function called name sees on Lambda: fn.Env plus the reserved
// variables (AWS_REGION, AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE, ...). Pass it to
// config.Load when building the handler.
func (r *Runtime) Getenv(name string, fn Function) func(string) string {
	mem := fn.MemoryMB
	if mem <= 0 {
		mem = DefaultMemoryMB
	}
	reserved := map[string]string{
		"AWS_REGION":                      r.cfg.Region,
		"AWS_DEFAULT_REGION":              r.cfg.Region,
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(mem),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + name,
	}
	return func(k string) string {
		if v, ok := reserved[k]; ok {
			return v
		}
		return fn.Env[k]
	}
}

// Invoke invokes a function like the Lambda API. FunctionName may be a name, a full or partial ARN;
// Qualifier may be empty or "$LATEST".
func (r *Runtime) Invoke(ctx context.Context, in *awslambda.InvokeInput, _ ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error) {
	f, err := r.lookup(in)
	if err != nil {
		return nil, err
	}
	switch in.InvocationType {
	case types.InvocationTypeRequestResponse, "":
		if len(in.Payload) > r.cfg.MaxSyncPayload {
			return nil, apiError(http.StatusRequestEntityTooLarge, &types.RequestTooLargeException{
				Message: ptr(fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", r.cfg.MaxSyncPayload)),
			})
		}
		return r.invokeSync(ctx, f, in.Payload)
	case types.InvocationTypeEvent:
		if len(in.Payload) > r.cfg.MaxAsyncPayload {
			return nil, apiError(http.StatusRequestEntityTooLarge, &types.RequestTooLargeException{
				Message: ptr(fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", r.cfg.MaxAsyncPayload)),
			})
		}
		if r.base.Err() != nil {
			return nil, apiError(http.StatusServiceUnavailable, &types.ServiceException{Message: ptr("local Lambda runtime is closed")})
		}
		r.enqueue(f, &event{id: uuid.NewString(), payload: in.Payload, received: r.cfg.Now()})
		return &awslambda.InvokeOutput{StatusCode: http.StatusAccepted}, nil
	case types.InvocationTypeDryRun:
		if len(in.Payload) > r.cfg.MaxSyncPayload {
			return nil, apiError(http.StatusRequestEntityTooLarge, &types.RequestTooLargeException{Message: ptr("Request too large")})
		}
		return &awslambda.InvokeOutput{StatusCode: http.StatusNoContent}, nil
	default:
		return nil, apiError(http.StatusBadRequest, &types.InvalidParameterValueException{
			Message: ptr(fmt.Sprintf("1 validation error detected: Value '%s' at 'invocationType' failed to satisfy constraint", in.InvocationType)),
		})
	}
}

func (r *Runtime) lookup(in *awslambda.InvokeInput) (*function, error) {
	name := ""
	if in.FunctionName != nil {
		name = *in.FunctionName
	}
	qualifier := ""
	if in.Qualifier != nil {
		qualifier = *in.Qualifier
	}
	if i := strings.LastIndex(name, "function:"); i >= 0 {
		name = name[i+len("function:"):]
	}
	if n, q, ok := strings.Cut(name, ":"); ok {
		name, qualifier = n, q
	}
	r.mu.Lock()
	f := r.fns[name]
	r.mu.Unlock()
	if f == nil || (qualifier != "" && qualifier != "$LATEST") {
		return nil, apiError(http.StatusNotFound, &types.ResourceNotFoundException{
			Type: ptr("User"), Message: ptr("Function not found: " + r.ARN(name)),
		})
	}
	return f, nil
}

func (r *Runtime) invokeSync(ctx context.Context, f *function, payload []byte) (*awslambda.InvokeOutput, error) {
	select {
	case f.sem <- struct{}{}:
	default:
		f.throttles.Add(1)
		return nil, apiError(http.StatusTooManyRequests, &types.TooManyRequestsException{
			Type: ptr("User"), Message: ptr("Rate Exceeded."),
			Reason: types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded,
		})
	}
	r.addBusy(1)
	done := make(chan result, 1)
	go func() {
		done <- r.execute(f, uuid.NewString(), payload)
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// The caller gave up; the execution goes on, as on Lambda.
		go func() { <-done; r.addBusy(-1) }()
		return nil, ctx.Err()
	}
	r.addBusy(-1)
	out := &awslambda.InvokeOutput{StatusCode: http.StatusOK, ExecutedVersion: ptr("$LATEST"), Payload: res.payload}
	if res.errType == "" && len(res.payload) > r.cfg.MaxSyncPayload {
		res.errType = "Function.ResponseSizeTooLarge"
		out.Payload = errorDocument(fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", r.cfg.MaxSyncPayload), res.errType)
		f.errors.Add(1)
	}
	if res.errType != "" {
		out.FunctionError = ptr("Unhandled")
	}
	return out, nil
}

// execute runs one invocation; the caller has taken a slot in f.sem, which is released when the handler
// returns (not at the timeout: see the package comment).
func (r *Runtime) execute(f *function, reqID string, payload []byte) (res result) {
	if obs := r.cfg.Observer; obs != nil {
		start := r.cfg.Now()
		defer func() { obs(Invocation{f.name, reqID, start, r.cfg.Now(), payload, res.errType}) }()
	}
	f.invocations.Add(1)
	f.running.Add(1)
	ctx, cancel := context.WithTimeout(r.base, f.fn.Timeout)
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: reqID, InvokedFunctionArn: f.arn})
	done := make(chan result, 1)
	r.addBusy(1)
	go func() {
		defer r.addBusy(-1)
		defer func() { <-f.sem }()
		defer f.running.Add(-1)
		defer cancel()
		out, err := call(ctx, f.fn.Handler, payload)
		late := ctx.Err() != nil
		switch {
		case late:
			done <- result{timedOut: true}
		case err != nil:
			done <- result{payload: errorPayload(err), errType: errorType(err)}
		default:
			done <- result{payload: out}
		}
	}()
	select {
	case res = <-done:
	case <-ctx.Done():
		select {
		case res = <-done: // returned in time; ctx was cancelled by its own deferred cancel
		default:
			res = result{timedOut: true}
		}
	}
	if res.timedOut {
		msg := fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", reqID, f.fn.Timeout.Seconds())
		if r.base.Err() != nil {
			msg = fmt.Sprintf("RequestId: %s Error: Runtime exited: local Lambda runtime closed", reqID)
		}
		res.errType = "Sandbox.Timedout"
		res.payload = errorDocument(msg, res.errType)
		f.timeouts.Add(1)
	}
	if res.errType != "" {
		f.errors.Add(1)
	}
	return res
}

// panicError carries a recovered panic value.
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprint(p.v) }

func call(ctx context.Context, h golambda.Handler, payload []byte) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError{v}
		}
	}()
	return h.Invoke(ctx, payload)
}

// errorPayload is the document Lambda returns for a function error, as aws-lambda-go builds it:
// {"errorMessage": err.Error(), "errorType": <the error's type name>}.
func errorPayload(err error) []byte {
	var ive messages.InvokeResponse_Error
	if errors.As(err, &ive) {
		data, _ := json.Marshal(ive)
		return data
	}
	return errorDocument(err.Error(), errorType(err))
}

func errorType(err error) string {
	var ive messages.InvokeResponse_Error
	if errors.As(err, &ive) {
		return ive.Type
	}
	if p, ok := err.(panicError); ok {
		if p.v == nil {
			return "nil"
		}
		return typeName(reflect.TypeOf(p.v))
	}
	return typeName(reflect.TypeOf(err))
}

func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func errorDocument(msg, typ string) []byte {
	data, _ := json.Marshal(messages.InvokeResponse_Error{Message: msg, Type: typ})
	return data
}

// addBusy tracks outstanding work for Busy and Wait.
func (r *Runtime) addBusy(d int) {
	if d == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy == 0 {
		r.idle = make(chan struct{})
	}
	r.busy += d
	if r.busy == 0 {
		close(r.idle)
	}
}

// Busy reports whether an asynchronous event is queued, waiting for a retry or running, or any
// invocation is running.
func (r *Runtime) Busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy > 0
}

// Wait blocks until the runtime is idle (see Busy) or ctx is done.
func (r *Runtime) Wait(ctx context.Context) error {
	r.mu.Lock()
	if r.busy == 0 {
		r.mu.Unlock()
		return nil
	}
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the counters of the function called name (zero for an unknown name).
func (r *Runtime) Stats(name string) Stats {
	r.mu.Lock()
	f := r.fns[name]
	r.mu.Unlock()
	if f == nil {
		return Stats{}
	}
	f.qmu.Lock()
	queued := len(f.queue) + f.waiting + f.holding
	f.qmu.Unlock()
	return Stats{
		Invocations: f.invocations.Load(), Errors: f.errors.Load(), Timeouts: f.timeouts.Load(),
		Throttles: f.throttles.Load(), Retries: f.retries.Load(), Dropped: f.dropped.Load(),
		Queued: queued, Running: int(f.running.Load()),
	}
}

// Failed returns the asynchronous events of the function called name that failed for good.
func (r *Runtime) Failed(name string) []FailedEvent {
	r.mu.Lock()
	f := r.fns[name]
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	f.fmu.Lock()
	defer f.fmu.Unlock()
	return append([]FailedEvent{}, f.failed...)
}

// Close stops the runtime: queued and waiting events are dropped, running handlers see their context
// cancelled. Invoke fails afterwards.
func (r *Runtime) Close() {
	r.cancel()
	r.mu.Lock()
	stops := r.stops
	r.stops = map[*int]func() bool{}
	fns := make([]*function, 0, len(r.fns))
	for _, f := range r.fns {
		fns = append(fns, f)
	}
	r.mu.Unlock()
	for _, stop := range stops {
		if stop() {
			r.addBusy(-1)
		}
	}
	for _, f := range fns {
		f.qmu.Lock()
		n := len(f.queue)
		f.queue = nil
		f.waiting = 0
		f.qmu.Unlock()
		r.addBusy(-n)
	}
}

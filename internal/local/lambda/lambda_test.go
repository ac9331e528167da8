package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	golambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

// invoker is how handlers invoke functions; the runtime must fit where *lambda.Client does.
type invoker interface {
	Invoke(context.Context, *awslambda.InvokeInput, ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error)
}

var (
	_ invoker = (*awslambda.Client)(nil)
	_ invoker = (*Runtime)(nil)
)

// bound is the longest any test waits for the runtime.
const bound = 10 * time.Second

func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = []time.Duration{time.Millisecond, 2 * time.Millisecond}
	}
	r := New(cfg)
	t.Cleanup(r.Close)
	return r
}

func register(t *testing.T, r *Runtime, name string, fn Function) {
	t.Helper()
	if err := r.Register(name, fn); err != nil {
		t.Fatal(err)
	}
}

func handlerFunc(f func(ctx context.Context, payload []byte) ([]byte, error)) golambda.Handler {
	return bytesHandler(f)
}

type bytesHandler func(ctx context.Context, payload []byte) ([]byte, error)

func (h bytesHandler) Invoke(ctx context.Context, p []byte) ([]byte, error) { return h(ctx, p) }

func invoke(t *testing.T, r *Runtime, name string, typ types.InvocationType, payload []byte) (*awslambda.InvokeOutput, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return r.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(name), InvocationType: typ, Payload: payload})
}

func waitIdle(t *testing.T, r *Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("runtime not idle after %s: %v", bound, err)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

type customError struct{ msg string }

func (e *customError) Error() string { return e.msg }

func TestSyncInvoke(t *testing.T) {
	r := newRuntime(t, Config{Region: "eu-west-1"})
	type in struct {
		Name string `json:"name"`
	}
	var seen *lambdacontext.LambdaContext
	var deadline time.Time
	h := golambda.NewHandler(func(ctx context.Context, e in) (string, error) {
		seen, _ = lambdacontext.FromContext(ctx)
		deadline, _ = ctx.Deadline()
		switch e.Name {
		case "plain":
			return "", errors.New("boom")
		case "custom":
			return "", &customError{"custom boom"}
		case "panic":
			panic("handler panicked")
		}
		return "hello " + e.Name, nil
	})
	register(t, r, "Echo", Function{Handler: h, Timeout: 30 * time.Second})
	start := time.Now()
	out, err := invoke(t, r, "Echo", types.InvocationTypeRequestResponse, []byte(`{"name":"taxi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || out.FunctionError != nil || string(out.Payload) != `"hello taxi"` {
		t.Errorf("got %d %v %s", out.StatusCode, out.FunctionError, out.Payload)
	}
	if seen == nil || seen.InvokedFunctionArn != "arn:aws:lambda:eu-west-1:000000000000:function:Echo" || len(seen.AwsRequestID) != 36 {
		t.Errorf("lambda context = %+v", seen)
	}
	if deadline.Before(start.Add(29*time.Second)) || deadline.After(time.Now().Add(30*time.Second)) {
		t.Errorf("deadline %v is not start + 30 s", deadline)
	}
	for _, tt := range []struct{ name, want string }{
		{"plain", `{"errorMessage":"boom","errorType":"errorString"}`},
		{"custom", `{"errorMessage":"custom boom","errorType":"customError"}`},
		{"panic", `{"errorMessage":"handler panicked","errorType":"string"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := invoke(t, r, "arn:aws:lambda:eu-west-1:000000000000:function:Echo", "", []byte(`{"name":"`+tt.name+`"}`))
			if err != nil {
				t.Fatalf("a function error is not an API error: %v", err)
			}
			if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" {
				t.Errorf("StatusCode %d FunctionError %v, want 200 Unhandled", out.StatusCode, aws.ToString(out.FunctionError))
			}
			if string(out.Payload) != tt.want {
				t.Errorf("payload = %s, want %s", out.Payload, tt.want)
			}
		})
	}
	if s := r.Stats("Echo"); s.Invocations != 4 || s.Errors != 3 {
		t.Errorf("stats = %+v, want 4 invocations, 3 errors", s)
	}
}

func TestTimeout(t *testing.T) {
	r := newRuntime(t, Config{})
	var deadline time.Time
	var start time.Time
	register(t, r, "Slow", Function{Timeout: 100 * time.Millisecond, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done() // a well-behaved handler stops when its time is up
		return nil, ctx.Err()
	})})
	start = time.Now()
	out, err := invoke(t, r, "Slow", "", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if deadline.IsZero() || deadline.Before(start) || deadline.After(start.Add(100*time.Millisecond+time.Second)) {
		t.Errorf("handler saw deadline %v, want about start + 100 ms", deadline)
	}
	var doc struct{ ErrorMessage, ErrorType string }
	json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "Sandbox.Timedout" || !strings.Contains(doc.ErrorMessage, "Task timed out after 0.10 seconds") {
		t.Errorf("timeout result = %v %s", aws.ToString(out.FunctionError), out.Payload)
	}
	if s := r.Stats("Slow"); s.Timeouts != 1 || s.Errors != 1 {
		t.Errorf("stats = %+v, want 1 timeout", s)
	}
}

func TestTimeoutOfAHandlerThatIgnoresItsContext(t *testing.T) {
	r := newRuntime(t, Config{})
	release := make(chan struct{})
	register(t, r, "Stuck", Function{Timeout: 50 * time.Millisecond, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		<-release
		return []byte(`"late"`), nil
	})})
	out, err := invoke(t, r, "Stuck", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte("Task timed out")) {
		t.Errorf("result = %s, want a timeout", out.Payload)
	}
	// The handler still runs: the runtime is busy until it returns.
	if !r.Busy() {
		t.Error("Busy() = false while a timed-out handler still runs")
	}
	close(release)
	waitIdle(t, r)
}

func TestAsyncRetriesThenOnFailure(t *testing.T) {
	r := newRuntime(t, Config{})
	var failures []FailedEvent
	var mu sync.Mutex
	var calls atomic.Int64
	register(t, r, "Fails", Function{
		Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
			calls.Add(1)
			return nil, errors.New("always fails")
		}),
		OnFailure: func(fe FailedEvent) { mu.Lock(); failures = append(failures, fe); mu.Unlock() },
	})
	out, err := invoke(t, r, "Fails", types.InvocationTypeEvent, []byte(`{"key":"raw/x.csv"}`))
	if err != nil || out.StatusCode != 202 || out.Payload != nil {
		t.Fatalf("async invoke = %+v, %v; want 202 and no payload", out, err)
	}
	waitIdle(t, r)
	if got := calls.Load(); got != 3 {
		t.Errorf("handler called %d times, want 3 (1 + 2 retries)", got)
	}
	s := r.Stats("Fails")
	if s.Invocations != 3 || s.Errors != 3 || s.Retries != 2 || s.Dropped != 1 || s.Queued != 0 || s.Running != 0 {
		t.Errorf("stats = %+v", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 1 || failures[0].Condition != "RetriesExhausted" || failures[0].Attempts != 3 {
		t.Fatalf("failures = %+v", failures)
	}
	if d := cmp.Diff(failures, r.Failed("Fails")); d != "" {
		t.Errorf("Failed() differs from OnFailure (-callback +Failed):\n%s", d)
	}
	var rec struct {
		Version        string
		RequestContext struct {
			Condition              string
			ApproximateInvokeCount int
			FunctionArn            string
		}
		RequestPayload  map[string]string
		ResponseContext struct{ FunctionError string }
		ResponsePayload struct{ ErrorMessage string }
	}
	if err := json.Unmarshal(failures[0].Record(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Version != "1.0" || rec.RequestContext.Condition != "RetriesExhausted" || rec.RequestContext.ApproximateInvokeCount != 3 ||
		rec.RequestPayload["key"] != "raw/x.csv" || rec.ResponseContext.FunctionError != "Unhandled" || rec.ResponsePayload.ErrorMessage != "always fails" ||
		rec.RequestContext.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:Fails:$LATEST" {
		t.Errorf("record = %s", failures[0].Record())
	}
}

func TestAsyncRetrySucceeds(t *testing.T) {
	r := newRuntime(t, Config{})
	var calls atomic.Int64
	register(t, r, "Flaky", Function{Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("first attempt fails")
		}
		return nil, nil
	})})
	invoke(t, r, "Flaky", types.InvocationTypeEvent, []byte(`{}`))
	waitIdle(t, r)
	if s := r.Stats("Flaky"); s.Invocations != 2 || s.Retries != 1 || s.Dropped != 0 || len(r.Failed("Flaky")) != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestAsyncTimeoutsAreRetried(t *testing.T) {
	r := newRuntime(t, Config{})
	zero := 0
	register(t, r, "Slow", Function{Timeout: 20 * time.Millisecond, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})})
	register(t, r, "NoRetry", Function{MaximumRetryAttempts: &zero, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		return nil, errors.New("x")
	})})
	invoke(t, r, "Slow", types.InvocationTypeEvent, nil)
	invoke(t, r, "NoRetry", types.InvocationTypeEvent, nil)
	waitIdle(t, r)
	if s := r.Stats("Slow"); s.Invocations != 3 || s.Timeouts != 3 || s.Dropped != 1 {
		t.Errorf("Slow stats = %+v, want 3 timed-out attempts", s)
	}
	if s := r.Stats("NoRetry"); s.Invocations != 1 || s.Retries != 0 || s.Dropped != 1 {
		t.Errorf("NoRetry stats = %+v, want 1 attempt", s)
	}
}

func TestAsyncEventAge(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&t0)
	var calls atomic.Int64
	r := newRuntime(t, Config{Now: func() time.Time { return *now.Load() }, RetryDelays: []time.Duration{time.Millisecond}})
	register(t, r, "Aging", Function{MaximumEventAge: time.Minute, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		calls.Add(1)
		later := t0.Add(2 * time.Minute) // the first attempt takes "2 minutes"
		now.Store(&later)
		return nil, errors.New("fails")
	})})
	invoke(t, r, "Aging", types.InvocationTypeEvent, nil)
	waitIdle(t, r)
	f := r.Failed("Aging")
	if calls.Load() != 1 || len(f) != 1 || f[0].Condition != "EventAgeExceeded" {
		t.Errorf("calls %d, failures %+v; want 1 call then EventAgeExceeded", calls.Load(), f)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	r := newRuntime(t, Config{})
	release := make(chan struct{})
	var running, peak atomic.Int64
	register(t, r, "Limited", Function{ReservedConcurrency: 2, Timeout: time.Minute, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil, nil
	})})
	for range 6 {
		if _, err := invoke(t, r, "Limited", types.InvocationTypeEvent, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(bound)
	for r.Stats("Limited").Running < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s := r.Stats("Limited")
	if s.Running != 2 || s.Queued != 4 {
		t.Errorf("stats = %+v, want 2 running and 4 queued", s)
	}
	_, err := invoke(t, r, "Limited", types.InvocationTypeRequestResponse, nil)
	var tmr *types.TooManyRequestsException
	if !errors.As(err, &tmr) || tmr.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Errorf("sync invoke over the limit = %v, want TooManyRequestsException", err)
	}
	close(release)
	waitIdle(t, r)
	s = r.Stats("Limited")
	if peak.Load() != 2 || s.Invocations != 6 || s.Throttles < 2 {
		t.Errorf("peak %d, stats %+v; want peak 2, 6 invocations, throttles counted", peak.Load(), s)
	}
}

func TestWaitReturnsOnlyWhenIdle(t *testing.T) {
	r := newRuntime(t, Config{RetryDelays: []time.Duration{100 * time.Millisecond}})
	release := make(chan struct{})
	var calls atomic.Int64
	register(t, r, "F", Function{Timeout: time.Minute, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			<-release
			return nil, errors.New("first attempt fails")
		}
		return nil, nil
	})})
	if err := r.Wait(context.Background()); err != nil || r.Busy() {
		t.Fatalf("fresh runtime: Wait %v, Busy %v", err, r.Busy())
	}
	invoke(t, r, "F", types.InvocationTypeEvent, nil)
	if !r.Busy() {
		t.Error("Busy() = false with an event queued")
	}
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := r.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while running = %v, want DeadlineExceeded", err)
	}
	close(release)
	waitIdle(t, r) // must cover the retry waiting in its delay
	if calls.Load() != 2 || r.Busy() {
		t.Errorf("after Wait: %d calls, Busy %v; want the retry done", calls.Load(), r.Busy())
	}
}

// TestSyncPayloadOverride: Config.MaxSyncPayload (the local cloud's limits off) moves the synchronous
// request limit; the asynchronous one stays.
func TestSyncPayloadOverride(t *testing.T) {
	r := newRuntime(t, Config{MaxSyncPayload: 2 * MaxSyncPayload})
	register(t, r, "Echo", Function{Handler: handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) { return p[:1], nil })})
	for _, tt := range []struct {
		typ     types.InvocationType
		size    int
		wantErr bool
	}{
		{types.InvocationTypeRequestResponse, MaxSyncPayload + 1, false},
		{types.InvocationTypeRequestResponse, 2*MaxSyncPayload + 1, true},
		{types.InvocationTypeEvent, MaxAsyncPayload + 1, true},
	} {
		_, err := invoke(t, r, "Echo", tt.typ, bytes.Repeat([]byte("a"), tt.size))
		var rtl *types.RequestTooLargeException
		if got := errors.As(err, &rtl); got != tt.wantErr {
			t.Errorf("%s of %d bytes: RequestTooLargeException = %v (%v), want %v", tt.typ, tt.size, got, err, tt.wantErr)
		}
	}
	waitIdle(t, r)
}

func TestPayloadLimitsAndAPIErrors(t *testing.T) {
	r := newRuntime(t, Config{})
	var calls atomic.Int64
	register(t, r, "Echo", Function{Handler: handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
		calls.Add(1)
		if string(p) == `"big"` {
			return bytes.Repeat([]byte("x"), MaxSyncPayload+1), nil
		}
		return p, nil
	})})
	tests := []struct {
		name    string
		typ     types.InvocationType
		size    int
		wantErr bool
	}{
		{"sync at limit", types.InvocationTypeRequestResponse, MaxSyncPayload, false},
		{"sync over limit", types.InvocationTypeRequestResponse, MaxSyncPayload + 1, true},
		{"async at limit", types.InvocationTypeEvent, MaxAsyncPayload, false},
		{"async over limit", types.InvocationTypeEvent, MaxAsyncPayload + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := invoke(t, r, "Echo", tt.typ, bytes.Repeat([]byte("a"), tt.size))
			var rtl *types.RequestTooLargeException
			if got := errors.As(err, &rtl); got != tt.wantErr {
				t.Errorf("RequestTooLargeException = %v (%v), want %v", got, err, tt.wantErr)
			}
		})
	}
	out, err := invoke(t, r, "Echo", "", []byte(`"big"`))
	if err != nil || aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte("Function.ResponseSizeTooLarge")) {
		t.Errorf("oversized response = %v, %s", err, out.Payload)
	}
	waitIdle(t, r)
	before := calls.Load()
	out, err = invoke(t, r, "Echo", types.InvocationTypeDryRun, []byte(`{}`))
	if err != nil || out.StatusCode != 204 || calls.Load() != before {
		t.Errorf("DryRun = %+v, %v; want 204 and no invocation", out, err)
	}
	_, err = invoke(t, r, "Nope", "", nil)
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) || apiCode(err) != "ResourceNotFoundException" {
		t.Errorf("unknown function = %v, want ResourceNotFoundException", err)
	}
	_, err = r.Invoke(context.Background(), &awslambda.InvokeInput{FunctionName: aws.String("Echo"), Qualifier: aws.String("7")})
	if !errors.As(err, &rnf) {
		t.Errorf("unknown qualifier = %v, want ResourceNotFoundException", err)
	}
	if err := r.Register("Echo", Function{Handler: handlerFunc(nil)}); err == nil {
		t.Error("registering a name twice succeeded")
	}
}

func TestGetenv(t *testing.T) {
	r := newRuntime(t, Config{Region: "eu-central-1"})
	getenv := r.Getenv("IngestFunction", Function{MemoryMB: 1024, Env: map[string]string{"STREAM_NAME": "trips"}})
	for k, want := range map[string]string{
		"STREAM_NAME": "trips", "AWS_REGION": "eu-central-1", "AWS_LAMBDA_FUNCTION_NAME": "IngestFunction",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "UNSET": "",
	} {
		if got := getenv(k); got != want {
			t.Errorf("getenv(%s) = %q, want %q", k, got, want)
		}
	}
}

// TestCloseDuringLastAttemptIsNotAFailure: an asynchronous event whose last attempt is running when
// the runtime is closed (a Ctrl-C) was stopped, not failed: it does not reach the failure destination.
func TestCloseDuringLastAttemptIsNotAFailure(t *testing.T) {
	r := New(Config{RetryDelays: []time.Duration{time.Millisecond}})
	var calls atomic.Int64
	running := make(chan struct{})
	var failures atomic.Int64
	register(t, r, "Slow", Function{
		Timeout: time.Hour,
		Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
			if calls.Add(1) < 3 {
				return nil, errors.New("fails")
			}
			close(running) // the third and last attempt
			<-ctx.Done()
			return nil, ctx.Err()
		}),
		OnFailure: func(FailedEvent) { failures.Add(1) },
	})
	if _, err := invoke(t, r, "Slow", types.InvocationTypeEvent, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(bound):
		t.Fatal("the last attempt did not start")
	}
	r.Close()
	waitIdle(t, r)
	if n := failures.Load(); n != 0 || len(r.Failed("Slow")) != 0 {
		t.Errorf("%d on-failure records for an event stopped by Close", n)
	}
}

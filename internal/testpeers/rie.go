package testpeers

// The AWS Lambda Runtime Interface Emulator (RIE), as installed by `make tools`
// (github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie at the Makefile's
// RIE_VERSION). What this harness relies on, read from that version's source and checked by rie_test.go:
//
//   - Flags (go-flags, unknown options IGNORED and kept as arguments, so a typo such as
//     `--rie-address` or `--help` silently becomes the command to exec):
//     --runtime-api-address HOST:PORT            Runtime API for the bootstrap (default 127.0.0.1:9001)
//     --runtime-interface-emulator-address H:P   invoke endpoint (default 0.0.0.0:8080)
//     --log-level LEVEL                          its own logrus level (else env LOG_LEVEL, else info)
//     --enable-init-caching
//     The first positional argument is the bootstrap to exec (further ones are its arguments; with two or
//     more the last is also taken as the handler name); the bootstrap runs in the emulator's working dir.
//   - Setting AWS_LAMBDA_MAX_CONCURRENCY switches it to a different (managed instances) mode: never set.
//   - Both ports are bound at start; if either is taken it panics and exits with status 2.
//   - The function's environment is the emulator's whole environment plus defaults it adds when unset:
//     AWS_LAMBDA_FUNCTION_NAME=test_function, AWS_LAMBDA_FUNCTION_VERSION=$LATEST,
//     AWS_LAMBDA_FUNCTION_MEMORY_SIZE=3008, AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME,
//     and AWS_LAMBDA_RUNTIME_API. AWS_LAMBDA_FUNCTION_TIMEOUT (whole seconds, default 300) sets the
//     invoke deadline the runtime sees; it is passed on only if set. AWS_REGION is not set by it.
//   - Init is lazy: the bootstrap starts on the first invoke (one cold start per emulator process), and
//     is started again after a timeout or a crash.
//   - POST /2015-03-31/functions/function/invocations (the only route; one invoke at a time, a concurrent
//     one gets 400). A handler error is HTTP 200 with {"errorMessage","errorType"} and no
//     X-Amz-Function-Error header; a timeout is HTTP 200 with the text "Task timed out after N.00 seconds";
//     a bootstrap that exits during init gives 502 with an empty body.
//   - Its stdout carries START/END/REPORT lines AND the function's stdout and stderr (both); its stderr
//     carries its own log, including "INIT REPORT(durationMs: X)" for the real init phase. The REPORT
//     line's "Init Duration: X ms" (first invoke only) measures only the emulator dispatching Init, not the
//     bootstrap's start-up, so InitDuration uses the INIT REPORT line.
//   - On SIGTERM it SIGKILLs the bootstrap (which it runs in its own process group) and exits.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taxistream/taxistream/internal/testenv"
)

const (
	// rieStartTimeout bounds the wait for the emulator's ports to accept connections.
	rieStartTimeout = 10 * time.Second
	// rieStartAttempts is how often StartRIE tries fresh ports when one was taken in the meantime.
	rieStartAttempts = 3
	// rieStopTimeout bounds the wait for the emulator to exit after SIGTERM before it is SIGKILLed.
	rieStopTimeout = 5 * time.Second
	// rieDefaultInvokeTimeout bounds an Invoke whose context has no deadline.
	rieDefaultInvokeTimeout = 2 * time.Minute
	// rieReportWait bounds the wait for an invocation's REPORT line after its response.
	rieReportWait = 2 * time.Second
	// rieInvokePath is the emulator's (only) invoke route.
	rieInvokePath = "/2015-03-31/functions/function/invocations"
)

// RIE is a running Runtime Interface Emulator with one function. Invoke it; read what it printed with
// Stdout (function output + START/END/REPORT) and Stderr (the emulator's log).
type RIE struct {
	// Endpoint is the invoke base URL, http://127.0.0.1:PORT.
	Endpoint string
	// RuntimeAPI is the Runtime API address the bootstrap talks to (127.0.0.1:PORT).
	RuntimeAPI string

	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
	mu     sync.Mutex // one invoke at a time: the emulator refuses concurrent ones with 400
	client *http.Client
}

// FunctionError is a function's error as the emulator returns it: the runtime's
// {"errorMessage","errorType"} (HTTP 200), or a timeout (Type "Sandbox.Timedout").
type FunctionError struct {
	Message    string   `json:"errorMessage"`
	Type       string   `json:"errorType"`
	StackTrace []string `json:"stackTrace,omitempty"`
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// InvokeError is an emulator-level failure: a non-200 status (502 when the bootstrap failed to start
// or crashed, 400 for a concurrent invoke, ...).
type InvokeError struct {
	StatusCode int
	Body       []byte
}

func (e *InvokeError) Error() string {
	return fmt.Sprintf("emulator answered HTTP %d: %q", e.StatusCode, e.Body)
}

// StartRIE runs bootstrap under the Runtime Interface Emulator (testenv.RIE: skipped, or failed under
// CI=true, when it is not installed) on two free loopback ports, waits until it accepts connections,
// and stops it in t.Cleanup (SIGTERM, then SIGKILL of its process group). On failure the test log gets
// the emulator's output.
//
// The environment is hermetic, not the test's: PATH, HOME, TMPDIR (and GOCOVERDIR when set) are
// inherited; AWS_REGION=us-east-1, AWS_DEFAULT_REGION=us-east-1, AWS_ACCESS_KEY_ID=test,
// AWS_SECRET_ACCESS_KEY=test, AWS_EC2_METADATA_DISABLED=true are defaults; env overrides all of them
// (an empty value removes a default). The emulator runs with --log-level info (env LOG_LEVEL reaches
// only the function).
func StartRIE(t testing.TB, bootstrap string, env map[string]string) *RIE {
	t.Helper()
	bin := testenv.RIE(t)
	if _, err := os.Stat(bootstrap); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	var lastErr error
	for range rieStartAttempts {
		r, err := startRIE(t, bin, bootstrap, env)
		if err == nil {
			return r
		}
		lastErr = err
		var busy errPortBusy
		if !errors.As(err, &busy) {
			break
		}
	}
	t.Fatalf("starting the Runtime Interface Emulator: %v", lastErr)
	return nil
}

// errPortBusy: the emulator exited at start because a port was taken since freePort picked it.
type errPortBusy struct{ output string }

func (e errPortBusy) Error() string { return "a port was taken:\n" + e.output }

func startRIE(t testing.TB, bin, bootstrap string, env map[string]string) (*RIE, error) {
	t.Helper()
	rapi := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	invoke := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin,
		"--log-level", "info",
		"--runtime-api-address", rapi,
		"--runtime-interface-emulator-address", invoke,
		bootstrap)
	cmd.Env = rieEnv(env)
	cmd.SysProcAttr = rieSysProcAttr()
	r := &RIE{
		Endpoint:   "http://" + invoke,
		RuntimeAPI: rapi,
		cmd:        cmd,
		stdout:     &syncBuffer{},
		stderr:     &syncBuffer{},
		exited:     make(chan struct{}),
		client:     &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
	}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// The exit status is not needed: stderr and ProcessState say why it ended when that matters.
	go func() { _ = cmd.Wait(); close(r.exited) }()

	deadline := time.Now().Add(rieStartTimeout)
	for _, addr := range []string{invoke, rapi} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-r.exited:
				out := r.stderr.String()
				if strings.Contains(out, "address already in use") {
					return nil, errPortBusy{out}
				}
				return nil, fmt.Errorf("exited before it was ready (%v):\n%s%s", cmd.ProcessState, r.stdout.String(), out)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				r.stop(t)
				return nil, fmt.Errorf("%s not accepting connections after %v:\n%s", addr, rieStartTimeout, r.stderr.String())
			}
		}
	}
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("Runtime Interface Emulator stdout (function output):\n%s", r.stdout.String())
			t.Logf("Runtime Interface Emulator stderr:\n%s", r.stderr.String())
		}
	})
	return r, nil
}

// stop sends SIGTERM to the emulator (it kills its bootstrap and exits), then SIGKILL to its group.
func (r *RIE) stop(t testing.TB) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM) // fails only when it has exited already; the wait below tells
	select {
	case <-r.exited:
		return
	case <-time.After(rieStopTimeout):
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) // as above: checked by the wait that follows
	select {
	case <-r.exited:
	case <-time.After(rieStopTimeout):
		t.Errorf("Runtime Interface Emulator (pid %d) did not exit", r.cmd.Process.Pid)
	}
}

func rieEnv(extra map[string]string) []string {
	m := map[string]string{
		"AWS_REGION":                "us-east-1",
		"AWS_DEFAULT_REGION":        "us-east-1",
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_EC2_METADATA_DISABLED": "true",
	}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	delete(m, "AWS_LAMBDA_MAX_CONCURRENCY") // would switch the emulator to another mode
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// Invoke sends payload to the function and returns its response body. A function error (the runtime's
// {"errorMessage","errorType"} or a timeout) returns the body AND a *FunctionError; an emulator failure
// (non-200) returns an *InvokeError. Invokes are serialized, as the emulator runs one at a time. Without
// a deadline on ctx the call is bounded by two minutes. When Invoke returns, Stdout and Reports include
// the invocation's output and REPORT line.
func (r *RIE) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rieDefaultInvokeTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Endpoint+rieInvokePath, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	id := newRequestID()
	req.Header.Set("X-Amzn-RequestId", id) // the emulator uses it as the invocation's request id
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoking the emulator: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the emulator's response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, &InvokeError{StatusCode: resp.StatusCode, Body: body}
	}
	r.awaitReport(id)
	if fe := functionError(body); fe != nil {
		return body, fe
	}
	return body, nil
}

// awaitReport waits (briefly, bounded) until the REPORT line of request id has been copied from the
// emulator's stdout pipe: the emulator prints it before answering, but the copy is asynchronous. After
// it, Stdout holds everything the function printed during the invocation.
func (r *RIE) awaitReport(id string) {
	want := "REPORT RequestId: " + id + "\t"
	deadline := time.Now().Add(rieReportWait)
	for !strings.Contains(r.stdout.String(), want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func newRequestID() string { return uuid.NewString() }

var timedOut = regexp.MustCompile(`^Task timed out after [0-9.]+ seconds$`)

// functionError recognises the emulator's two shapes of a failed invocation.
func functionError(body []byte) *FunctionError {
	b := bytes.TrimSpace(body)
	if timedOut.Match(b) {
		return &FunctionError{Type: "Sandbox.Timedout", Message: string(b)}
	}
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) != nil {
		return nil
	}
	_, hasMsg := probe["errorMessage"]
	_, hasType := probe["errorType"]
	if !hasMsg || !hasType {
		return nil
	}
	var fe FunctionError
	if json.Unmarshal(b, &fe) != nil {
		return nil
	}
	return &fe
}

// Stdout returns what the emulator printed on stdout so far: START/END/REPORT lines and the function's
// own stdout and stderr (the emulator merges both), e.g. its slog JSON and EMF lines. The first MiB is kept.
func (r *RIE) Stdout() string { return r.stdout.String() }

// Stderr returns the emulator's own log so far (INIT START, INIT REPORT, INVOKE RTDONE, errors).
func (r *RIE) Stderr() string { return r.stderr.String() }

// Report is one REPORT line of the emulator's stdout.
type Report struct {
	RequestID      string
	InitDuration   time.Duration // only on the first invoke; the emulator's Init dispatch, see InitDuration
	Duration       time.Duration
	BilledDuration time.Duration
}

var (
	reportLine = regexp.MustCompile(`(?m)^REPORT RequestId: (\S+)\t(.*)$`)
	reportPart = regexp.MustCompile(`(Init Duration|Billed Duration|Duration): ([0-9.]+) ms`)
	initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

// Reports parses the REPORT lines printed so far, in order.
func (r *RIE) Reports() []Report {
	var out []Report
	for _, m := range reportLine.FindAllStringSubmatch(r.Stdout(), -1) {
		rep := Report{RequestID: m[1]}
		for _, p := range reportPart.FindAllStringSubmatch(m[2], -1) {
			d := msDuration(p[2])
			switch p[1] {
			case "Init Duration":
				rep.InitDuration = d
			case "Duration":
				rep.Duration = d
			case "Billed Duration":
				rep.BilledDuration = d
			}
		}
		out = append(out, rep)
	}
	return out
}

// LogLinesWithoutRequestID returns the function's JSON log lines (objects with a "message") that do
// not carry, as requestId, the request id of an invocation the emulator reported, leaving out lines
// whose message is one of initMessages (logged at start-up, outside any invocation).
func (r *RIE) LogLinesWithoutRequestID(initMessages ...string) []string {
	ids := map[string]bool{}
	for _, rep := range r.Reports() {
		ids[rep.RequestID] = true
	}
	var out []string
	for _, line := range strings.Split(r.Stdout(), "\n") {
		var l map[string]any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		msg, ok := l["message"].(string)
		if !ok || slices.Contains(initMessages, msg) {
			continue
		}
		if id, _ := l["requestId"].(string); !ids[id] {
			out = append(out, line)
		}
	}
	return out
}

// InitDuration returns the duration of the first init phase (from the bootstrap's start until it asked
// for its first event), from the emulator's "INIT REPORT(durationMs: X)" log line; false before the
// first invoke.
func (r *RIE) InitDuration() (time.Duration, bool) {
	m := initReport.FindStringSubmatch(r.Stderr())
	if m == nil {
		return 0, false
	}
	return msDuration(m[1]), true
}

func msDuration(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

// FreePort returns a loopback TCP port that was free a moment ago (another process may take it before
// it is used: retry on "address already in use").
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t)
}

package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// coldStartFunctions are the functions measured, with the sample event each is invoked with.
var coldStartFunctions = []struct{ name, event string }{
	{"ingest", "s3-put.json"},
	{"process", "kinesis.json"},
	{"replay", "replay.json"},
}

// ColdStartSection is each function's bootstrap size and INIT duration under the Runtime Interface
// Emulator.
type ColdStartSection struct {
	Skipped   string           `json:"skipped,omitempty"`
	Setup     string           `json:"setup,omitempty"`
	Functions []ColdStartEntry `json:"functions"`
}

// ColdStartEntry is one function.
type ColdStartEntry struct {
	Function    string    `json:"function"`
	ARM64Bytes  int64     `json:"arm64_bootstrap_bytes,omitempty"`  // bin/<fn>/bootstrap (what Lambda runs), 0 = not built
	NativeBytes int64     `json:"native_bootstrap_bytes,omitempty"` // bin/native/<fn>/bootstrap (what the emulator runs here)
	InitMillis  []float64 `json:"init_ms,omitempty"`                // "Init Duration" of each emulator start
	InitMedian  float64   `json:"init_median_ms,omitempty"`
	InitMin     float64   `json:"init_min_ms,omitempty"`
	Skipped     string    `json:"skipped,omitempty"`
}

// initReportRE matches the emulator's own log line at the end of the INIT phase: "INIT REPORT(durationMs:
// 24.635000)", from INIT START (the bootstrap is started) to the runtime's first /next. This emulator
// version runs INIT inside the first invoke, and its REPORT line's "Init Duration" then says 0.05 ms
// (the init had already happened when it started timing), so that line is not used.
var (
	initReportRE = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initOKRE     = regexp.MustCompile(`INIT RTDONE\(status: success\)`)
)

func runColdStart(ctx context.Context, opts *Options) (*ColdStartSection, error) {
	sec := &ColdStartSection{Setup: fmt.Sprintf("aws-lambda-rie (%s) running bin/native/<fn>/bootstrap (host arch, built by `make build-native`); "+
		"INIT = the emulator's \"INIT REPORT(durationMs)\": from starting the bootstrap to its first /runtime/invocation/next; "+
		"%d fresh emulator per function; AWS endpoints point at a closed local port", opts.RIE, opts.ColdStarts)}
	haveRIE := fileExists(opts.RIE)
	for _, fn := range coldStartFunctions {
		e := ColdStartEntry{Function: fn.name}
		if st, err := os.Stat(filepath.Join(opts.RepoDir, "bin", fn.name, "bootstrap")); err == nil {
			e.ARM64Bytes = st.Size()
		}
		native := filepath.Join(opts.RepoDir, "bin", "native", fn.name, "bootstrap")
		if st, err := os.Stat(native); err == nil {
			e.NativeBytes = st.Size()
		}
		event := filepath.Join(opts.RepoDir, "events", fn.event)
		switch {
		case !haveRIE:
			e.Skipped = skipf(opts, "%s: no Runtime Interface Emulator at %s (run `make tools`)", fn.name, opts.RIE)
		case e.NativeBytes == 0:
			e.Skipped = skipf(opts, "%s: %s not built (run `make build-native`)", fn.name, native)
		case !fileExists(event):
			e.Skipped = skipf(opts, "%s: no event %s", fn.name, event)
		default:
			payload, err := os.ReadFile(event)
			if err != nil {
				return nil, err
			}
			for range opts.ColdStarts {
				ms, err := coldStart(ctx, opts.RIE, native, fn.name, payload)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", fn.name, err)
				}
				e.InitMillis = append(e.InitMillis, ms)
			}
			s := slices.Clone(e.InitMillis)
			slices.Sort(s)
			e.InitMin, e.InitMedian = s[0], s[len(s)/2]
			fmt.Fprintf(opts.Log, "   %-8s bootstrap %.1f MiB (arm64 %s), INIT median %.1f ms, min %.1f ms over %d starts\n",
				fn.name, mib(e.NativeBytes), sizeOrDash(e.ARM64Bytes), e.InitMedian, e.InitMin, len(e.InitMillis))
		}
		sec.Functions = append(sec.Functions, e)
	}
	if !haveRIE {
		sec.Skipped = fmt.Sprintf("no Runtime Interface Emulator at %s (run `make tools`); bootstrap sizes only", opts.RIE)
	}
	return sec, nil
}

func sizeOrDash(b int64) string {
	if b == 0 {
		return "not built"
	}
	return fmt.Sprintf("%.1f MiB", mib(b))
}

// coldStart starts a fresh emulator for bootstrap, invokes it once and returns the INIT duration the
// emulator reports.
func coldStart(ctx context.Context, rie, bootstrap, fn string, payload []byte) (float64, error) {
	var lastErr error
	for range 3 { // a free port can be taken between choosing and binding it: try again
		ms, err := coldStartOnce(ctx, rie, bootstrap, fn, payload)
		if err == nil {
			return ms, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return 0, lastErr
}

func coldStartOnce(ctx context.Context, rie, bootstrap, fn string, payload []byte) (float64, error) {
	rapi, err := freeAddr()
	if err != nil {
		return 0, err
	}
	invoke, err := freeAddr()
	if err != nil {
		return 0, err
	}
	closed, err := freeAddr() // nothing listens there: AWS calls fail fast instead of leaving the machine
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(rie, "--log-level", "info", "--runtime-api-address", rapi, "--runtime-interface-emulator-address", invoke, bootstrap)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1", "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL=http://" + closed, "AWS_MAX_ATTEMPTS=1",
		"AWS_LAMBDA_FUNCTION_NAME=" + fn, "AWS_LAMBDA_FUNCTION_TIMEOUT=30",
		"BUCKET_NAME=bench", "STREAM_NAME=bench", "INGEST_FUNCTION_NAME=ingest", "LOG_LEVEL=ERROR",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", rie, err)
	}
	exited := make(chan struct{})
	// The exit status is not measured (it is stopped by a signal): only that it is gone.
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		// Kill fails only when the group has exited already; the wait below tells either way.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()

	// Wait for the invoke endpoint.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", invoke, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("emulator exited: %s", tail(out.String(), 1000))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("emulator not listening on %s: %s", invoke, tail(out.String(), 1000))
		}
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ictx, http.MethodPost, "http://"+invoke+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("invoking: %w: %s", err, tail(out.String(), 1000))
	}
	resp.Body.Close()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		log := out.String()
		if m := initReportRE.FindStringSubmatch(log); m != nil {
			if !initOKRE.MatchString(log) {
				return 0, fmt.Errorf("the bootstrap's INIT failed: %s", tail(log, 1500))
			}
			return strconv.ParseFloat(m[1], 64)
		}
	}
	return 0, fmt.Errorf("no INIT REPORT in the emulator's output: %s", tail(out.String(), 1000))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer is a bytes.Buffer safe for the emulator's output goroutines and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package testpeers

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/testenv"
)

// buildEcho builds testdata/echo, a minimal Lambda function, for this machine.
func buildEcho(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "./testdata/echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/echo: %v\n%s", err, b)
	}
	return out
}

type echoResponse struct {
	Echo         any               `json:"echo"`
	Env          map[string]string `json:"env"`
	FunctionName string            `json:"function_name"`
	HasDeadline  bool              `json:"has_deadline"`
	RequestID    string            `json:"request_id"`
}

func TestRIE(t *testing.T) {
	testenv.RIE(t) // skip before building anything when the emulator is absent
	bootstrap := buildEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var endpoint string
	t.Run("invoke", func(t *testing.T) {
		r := StartRIE(t, bootstrap, map[string]string{
			"AWS_LAMBDA_FUNCTION_NAME":    "echo-fn",
			"AWS_LAMBDA_FUNCTION_TIMEOUT": "1",
			"CUSTOM":                      "value=with=equals",
			"AWS_DEFAULT_REGION":          "", // removes a default
		})
		endpoint = r.Endpoint

		body, err := r.Invoke(ctx, []byte(`{"echo":{"n":1},"env":["CUSTOM","AWS_REGION","AWS_DEFAULT_REGION","AWS_LAMBDA_RUNTIME_API"]}`))
		if err != nil {
			t.Fatalf("Invoke: %v (body %s)", err, body)
		}
		var got echoResponse
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
		want := echoResponse{
			Echo: map[string]any{"n": 1.0},
			Env: map[string]string{
				"CUSTOM":                 "value=with=equals",
				"AWS_REGION":             "us-east-1",
				"AWS_DEFAULT_REGION":     "",
				"AWS_LAMBDA_RUNTIME_API": r.RuntimeAPI,
			},
			FunctionName: "echo-fn",
			HasDeadline:  true,
			RequestID:    got.RequestID,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("response (-want +got):\n%s", diff)
		}
		if got.RequestID == "" {
			t.Error("no request id in the Lambda context")
		}

		// A handler error: HTTP 200 with the runtime's error document.
		body, err = r.Invoke(ctx, []byte(`{"fail":"boom"}`))
		var fe *FunctionError
		if !errors.As(err, &fe) {
			t.Fatalf("Invoke of a failing handler: err = %v, want *FunctionError (body %s)", err, body)
		}
		if fe.Message != "boom" || fe.Type != "errorString" {
			t.Errorf("FunctionError = %+v, want message boom, type errorString", fe)
		}

		// A timeout (AWS_LAMBDA_FUNCTION_TIMEOUT=1): HTTP 200 with a text body.
		_, err = r.Invoke(ctx, []byte(`{"sleep_ms":3000}`))
		if !errors.As(err, &fe) || fe.Type != "Sandbox.Timedout" {
			t.Fatalf("Invoke past the timeout: err = %v, want a Sandbox.Timedout *FunctionError", err)
		}

		// The emulator starts the function again after a timeout.
		if _, err := r.Invoke(ctx, []byte(`{"echo":2}`)); err != nil {
			t.Fatalf("Invoke after a timeout: %v", err)
		}

		for _, line := range []string{"echo: stdout line", "echo: stderr line", "START RequestId: " + got.RequestID} {
			if !strings.Contains(r.Stdout(), line) {
				t.Errorf("Stdout lacks %q:\n%s", line, r.Stdout())
			}
		}
		reports := r.Reports()
		if len(reports) != 4 {
			t.Fatalf("got %d REPORT lines, want 4:\n%s", len(reports), r.Stdout())
		}
		if reports[0].RequestID != got.RequestID || reports[0].InitDuration <= 0 || reports[0].Duration <= 0 {
			t.Errorf("first report = %+v, want request %s with init and invoke durations", reports[0], got.RequestID)
		}
		if reports[1].InitDuration != 0 {
			t.Errorf("second report = %+v, want no init duration (warm)", reports[1])
		}
		if d, ok := r.InitDuration(); !ok || d <= 0 {
			t.Errorf("InitDuration() = %v, %v; want a positive duration\nstderr:\n%s", d, ok, r.Stderr())
		}
	})

	// The subtest's cleanup stopped the emulator: nothing listens on its port any more.
	addr := strings.TrimPrefix(endpoint, "http://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the emulator still accepts connections on %s after cleanup", addr)
	}

	t.Run("bootstrap fails at init", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "bootstrap")
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'init failing' >&2\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		r := StartRIE(t, script, nil)
		_, err := r.Invoke(ctx, []byte(`{}`))
		var ie *InvokeError
		if !errors.As(err, &ie) || ie.StatusCode != 502 {
			t.Fatalf("Invoke: err = %v, want *InvokeError 502", err)
		}
		if !strings.Contains(r.Stdout(), "init failing") {
			t.Errorf("Stdout lacks the bootstrap's stderr:\n%s", r.Stdout())
		}
	})
}

func TestFunctionError(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *FunctionError
	}{
		{"result", `{"ok":true}`, nil},
		{"string result", `"errorMessage"`, nil},
		{"only errorMessage", `{"errorMessage":"x"}`, nil},
		{"error", `{"errorMessage":"boom","errorType":"errorString"}`, &FunctionError{Message: "boom", Type: "errorString"}},
		{"error with trace", `{"errorMessage":"m","errorType":"T","stackTrace":["a"]}`, &FunctionError{Message: "m", Type: "T", StackTrace: []string{"a"}}},
		{"timeout", "Task timed out after 3.00 seconds", &FunctionError{Type: "Sandbox.Timedout", Message: "Task timed out after 3.00 seconds"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, functionError([]byte(tt.body))); diff != "" {
				t.Errorf("functionError(%q) (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

func TestReports(t *testing.T) {
	r := &RIE{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	r.stdout.Write([]byte("START RequestId: a Version: $LATEST\nEND RequestId: a\n" +
		"REPORT RequestId: a\tInit Duration: 0.32 ms\tDuration: 8.68 ms\tBilled Duration: 9 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t\n" +
		"REPORT RequestId: b\tDuration: 1000.00 ms\tBilled Duration: 1000 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t\n"))
	r.stderr.Write([]byte("25 Nov 2026 20:16:36,451 [INFO] (rapid) INIT REPORT(durationMs: 4.540000)\n"))
	want := []Report{
		{RequestID: "a", InitDuration: 320 * time.Microsecond, Duration: 8680 * time.Microsecond, BilledDuration: 9 * time.Millisecond},
		{RequestID: "b", Duration: time.Second, BilledDuration: time.Second},
	}
	if diff := cmp.Diff(want, r.Reports()); diff != "" {
		t.Errorf("Reports() (-want +got):\n%s", diff)
	}
	if d, ok := r.InitDuration(); !ok || d != 4540*time.Microsecond {
		t.Errorf("InitDuration() = %v, %v; want 4.54ms, true", d, ok)
	}
}

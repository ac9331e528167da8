package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
)

func invocation(id string) context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
}

func TestLoggerJSONHasLambdaKeysAndRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := NewFormatLogger(&buf, "info", "JSON").With("function", "ingest")
	log.InfoContext(invocation("8f2c1a4e-0000-4000-8000-000000000001"), "ingest summary", "rows", 3)
	log.DebugContext(invocation("dropped"), "below the level")
	log.Info("at start-up, outside an invocation")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s: %v", l, err)
		}
		if _, ok := m["timestamp"].(string); !ok {
			t.Errorf("no timestamp in %s", l)
		}
		delete(m, "timestamp")
		got = append(got, m)
	}
	want := []map[string]any{
		{"level": "INFO", "message": "ingest summary", "function": "ingest", "rows": 3.0, "requestId": "8f2c1a4e-0000-4000-8000-000000000001"},
		{"level": "INFO", "message": "at start-up, outside an invocation", "function": "ingest"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

func TestLoggerTextFormat(t *testing.T) {
	for _, format := range []string{"Text", "TEXT", " text "} {
		var buf bytes.Buffer
		NewFormatLogger(&buf, "DEBUG", format).DebugContext(invocation("req-1"), "process batch", "records", 2)
		line := buf.String()
		for _, want := range []string{"level=DEBUG", `message="process batch"`, "records=2", "requestId=req-1", "timestamp="} {
			if !strings.Contains(line, want) {
				t.Errorf("format %q: %q does not contain %s", format, line, want)
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "{") {
			t.Errorf("format %q wrote JSON: %s", format, line)
		}
	}
}

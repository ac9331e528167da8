package obs

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMetricsWriteGolden(t *testing.T) {
	tests := []struct {
		name string
		fill func(m *Metrics)
	}{
		{"ingest", func(m *Metrics) {
			m.Add("RowsRead", Count, 10)
			m.Add("RowsRead", Count, 5)
			m.Set("Rejected", Count, 1)
			m.Add("BytesRead", Bytes, 2048)
			m.Property("key", "raw/a b.csv")
		}},
		{"empty", func(m *Metrics) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics("taxistream", map[string]string{"Function": "ingest"})
			m.SetClock(func() time.Time { return time.Unix(1700000000, 0) })
			tt.fill(m)
			var buf bytes.Buffer
			if err := m.Write(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("EMF line mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]string{"": "INFO", "debug": "DEBUG", "TRACE": "DEBUG", "WARN": "WARN", "fatal": "ERROR", "bogus": "INFO"} {
		if got := ParseLevel(in).String(); got != want {
			t.Errorf("ParseLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

// lambdaKeeps models Lambda's application log-level filtering of a JSON line, as AWS documents it
// (monitoring-cloudwatchlogs-log-level): the line's "level" (case-insensitive) against the configured
// level, TRACE < DEBUG < INFO < WARN < ERROR < FATAL; a missing or invalid "level", or a missing or
// invalid RFC 3339 "timestamp", makes the line INFO.
func lambdaKeeps(line map[string]any, configured string) bool {
	order := []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	rank := func(l string) int { return slices.Index(order, strings.ToUpper(l)) }
	level, _ := line["level"].(string)
	ts, _ := line["timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rank(level) < 0 {
		level = "INFO"
	}
	return rank(level) >= rank(configured)
}

// TestEMFSurvivesLambdaLogLevels writes the EMF line under each application log level Lambda offers
// and checks that Lambda's filter keeps it; the same line without "level" (what the metrics were
// before) is dropped at WARN and above, so the model bites.
func TestEMFSurvivesLambdaLogLevels(t *testing.T) {
	for _, configured := range []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"} {
		t.Run(configured, func(t *testing.T) {
			m := NewMetrics("taxistream", map[string]string{"Function": "ingest"})
			m.SetLogLevel(configured)
			m.Add("RowsRead", Count, 3)
			var buf bytes.Buffer
			if err := m.Write(&buf); err != nil {
				t.Fatal(err)
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			if !lambdaKeeps(line, configured) {
				t.Errorf("Lambda at %s drops the EMF line %s", configured, buf.Bytes())
			}
			if line["RowsRead"] != float64(3) || line["_aws"] == nil {
				t.Errorf("EMF line lost its metrics: %s", buf.Bytes())
			}
			// Still a valid EMF document: level and timestamp are plain properties to CloudWatch.
			ts, _ := line["timestamp"].(string)
			at, _ := time.Parse(time.RFC3339Nano, ts)
			if aws, _ := line["_aws"].(map[string]any); aws["Timestamp"] != float64(at.UnixMilli()) {
				t.Errorf("timestamp %q and _aws.Timestamp %v disagree", ts, aws["Timestamp"])
			}
			delete(line, "level")
			if wantDropped := configured == "WARN" || configured == "ERROR" || configured == "FATAL"; lambdaKeeps(line, configured) == wantDropped {
				t.Errorf("the filter model keeps a line without level at %s: %v, want %v", configured, !wantDropped, !wantDropped)
			}
		})
	}
}

func TestEMFLevel(t *testing.T) {
	for in, want := range map[string]string{"": "INFO", "TRACE": "INFO", "debug": "INFO", "INFO": "INFO", "WARN": "WARN",
		"warning": "WARN", "ERROR": "ERROR", "FATAL": "FATAL", "bogus": "INFO"} {
		if got := EMFLevel(in); got != want {
			t.Errorf("EMFLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestMetricsReservedKeys(t *testing.T) {
	for _, k := range []string{"level", "timestamp", "_aws"} {
		m := NewMetrics("taxistream", nil)
		m.Add("Rows", Count, 1)
		m.Property(k, "x")
		if err := m.Write(io.Discard); err == nil {
			t.Errorf("a property %q was written over the line's own key", k)
		}
	}
}

// TestEMFLevelFromLambda runs this test binary again with AWS_LAMBDA_LOG_LEVEL set, as Lambda sets it
// from LoggingConfig, and checks that a line written with the defaults carries that level.
func TestEMFLevelFromLambda(t *testing.T) {
	if os.Getenv("TAXISTREAM_EMF_CHILD") == "1" {
		m := NewMetrics("taxistream", map[string]string{"Function": "ingest"})
		m.Add("RowsRead", Count, 1)
		if err := m.Write(os.Stdout); err != nil {
			t.Fatal(err)
		}
		return
	}
	for configured, want := range map[string]string{"ERROR": "ERROR", "WARN": "WARN", "DEBUG": "INFO", "": "INFO"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEMFLevelFromLambda$")
		cmd.Env = append(os.Environ(), "TAXISTREAM_EMF_CHILD=1", "AWS_LAMBDA_LOG_LEVEL="+configured)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("AWS_LAMBDA_LOG_LEVEL=%s: %v\n%s", configured, err, out)
		}
		var line map[string]any
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `"_aws"`) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
			}
		}
		filter := configured
		if filter == "" {
			filter = "INFO" // Lambda's default application log level
		}
		if line["level"] != want || !lambdaKeeps(line, filter) {
			t.Errorf("AWS_LAMBDA_LOG_LEVEL=%q: EMF line level %v, want %s", configured, line["level"], want)
		}
	}
}

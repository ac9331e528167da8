package wire

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/testenv"
)

// checkReport is what tools/python/wire_*_check.py print.
type checkReport struct {
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Failed int `json:"failed"`
}

// runChecks runs a check script and fails the test for every check that failed.
func runChecks(t *testing.T, env []string, script string, args ...string) {
	t.Helper()
	py := testenv.Python(t, "boto3")
	out, err := runCmd(t, env, 5*time.Minute, nil, py, append([]string{filepath.Join(testenv.Root(t), "tools", "python", script)}, args...)...)
	var rep checkReport
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("%s printed no report (%v): %v\n%s", script, jerr, err, out)
	}
	if len(rep.Checks) == 0 {
		t.Fatalf("%s ran no check", script)
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("%s: %s: %s", script, c.Name, c.Detail)
		} else {
			t.Logf("ok: %s %s", c.Name, c.Detail)
		}
	}
	if err != nil && rep.Failed == 0 {
		t.Errorf("%s: %v", script, err)
	}
}

// TestBoto3S3 runs boto3 against the S3 side: objects, ranges, conditional requests, listing, copy,
// delete, multipart uploads (API and s3transfer), checksums, unsigned and presigned requests.
func TestBoto3S3(t *testing.T) {
	s := serve(t, stream.Config{})
	runChecks(t, awsEnv(t, s.url), "wire_s3_check.py", "--endpoint", s.url, "--bucket", testBucket)
	if n := len(s.srv.uploads.uploads); n != 0 {
		t.Errorf("%d multipart uploads left in progress", n)
	}
}

// TestBoto3Kinesis runs boto3 against the Kinesis side: every operation served, the routing of
// partition keys, every iterator type, the error shapes. Limits are off here (the checks read each shard
// many times a second); TestBoto3Throttling has them on.
func TestBoto3Kinesis(t *testing.T) {
	s := serve(t, stream.Config{ShardCount: 3, LimitsOff: true})
	runChecks(t, awsEnv(t, s.url), "wire_kinesis_check.py", "--endpoint", s.url, "--stream", s.stream.Name(), "api")
}

// TestBoto3Throttling: a boto3 producer that writes 1,500 records within one second to one shard gets
// exactly 1,000 accepted and 500 ProvisionedThroughputExceededException entries, from the stream's own
// limits. The stream's clock stands still, so "within one second" holds however slow the machine is.
func TestBoto3Throttling(t *testing.T) {
	frozen := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	s := serve(t, stream.Config{ShardCount: 2, Now: func() time.Time { return frozen }})
	py := testenv.Python(t, "boto3")
	out := mustRun(t, awsEnv(t, s.url), 5*time.Minute, py, filepath.Join(testenv.Root(t), "tools", "python", "wire_kinesis_check.py"),
		"--endpoint", s.url, "--stream", s.stream.Name(), "produce", "--records", "1500")
	var got struct {
		Accepted        int            `json:"accepted"`
		Throttled       int            `json:"throttled"`
		OtherErrors     map[string]int `json:"other_errors"`
		Messages        []string       `json:"throttle_messages"`
		PutRecordsError string         `json:"put_record_error"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decoding the producer's report: %v\n%s", err, out)
	}
	if got.Accepted != kinesislimit.ShardWriteRecordsPerSecond || got.Throttled != 500 || len(got.OtherErrors) != 0 {
		t.Errorf("accepted %d, throttled %d, other errors %v; want %d, 500, none", got.Accepted, got.Throttled, got.OtherErrors, kinesislimit.ShardWriteRecordsPerSecond)
	}
	if len(got.Messages) != 1 || !strings.HasPrefix(got.Messages[0], "Rate exceeded for shard shardId-00000000000") {
		t.Errorf("throttle messages %q, want one naming the shard", got.Messages)
	}
	if got.PutRecordsError != "ProvisionedThroughputExceededException" {
		t.Errorf("PutRecord on the saturated shard: error %q, want ProvisionedThroughputExceededException", got.PutRecordsError)
	}
	st := s.stream.Stats()
	if d := cmp.Diff([2]int64{1000, 501}, [2]int64{st.RecordsStored, st.Throttled}); d != "" {
		t.Errorf("stream stats (stored, throttled) (-want +got):\n%s", d)
	}
}

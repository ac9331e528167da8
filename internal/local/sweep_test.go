package local

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/ingest"
)

// strandingFaults make every manifest update of IngestFunction fail until Lambda has spent its async
// retries on the S3 event (a failure record is written): the first invocation cannot checkpoint nor
// release its lease, its two retries cannot claim, and the object stays "running" with nobody to
// finish it. Its claim (If-None-Match) succeeds, so there is a manifest and a checkpoint-free start.
func strandingFaults(c **Cloud) S3Faults {
	return S3Faults{Function: IngestFunction, FailPut: func(in *s3.PutObjectInput) bool {
		return in.IfMatch != nil && strings.HasPrefix(aws.ToString(in.Key), "state/ingest/") && *c != nil && len((*c).Failures()) == 0
	}}
}

// TestStuckObjectFinishedBySweeper: an object stranded as above would stay running forever. When the
// pipeline goes idle, the local cloud's sweeper resumes it at its checkpoint and the run reconciles.
func TestStuckObjectFinishedBySweeper(t *testing.T) {
	t.Parallel()
	var c *Cloud
	c = startCloud(t, Options{
		LimitsOff:     true,
		ScheduleEvery: time.Hour, // the drain's idle sweeps only, so the test sees exactly what they do
		S3Faults:      strandingFaults(&c),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const key = "raw/stuck/yellow_tripdata_2019-03.csv"
	putGen(t, c, key, gen.Options{Taxi: "yellow", Layout: 2019, Month: 3, Rows: 25000, Seed: 5})
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, c, key)
	if m.Status != ingest.StatusRunning || len(c.Failures()) != 1 {
		t.Fatalf("before the sweep: manifest %s (%s), %d failure records; want running and one", m.Status, m.Reason, len(c.Failures()))
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	m = readManifest(t, c, key)
	if m.Status != ingest.StatusDone || m.Sweeps != 1 {
		t.Fatalf("after the drain: manifest %s (%s), sweeps %d; want done after one sweep", m.Status, m.Reason, m.Sweeps)
	}
	if n, err := c.inflight(ctx); err != nil || n != 0 {
		t.Errorf("in-flight markers %d (%v), want none", n, err)
	}
	s, err := c.Summarize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The one failure record is the S3 event whose retries were spent: expected, and named.
	if s.RowsRead != 25000 || s.RecordsSent+s.Rejected != 25000 || s.ObjectsDone != 1 {
		t.Errorf("summary: rows %d, sent %d, rejected %d, done %d; want 25000 accounted for\n%s", s.RowsRead, s.RecordsSent, s.Rejected, s.ObjectsDone, strings.Join(s.Reconciliation, "\n"))
	}
}

// TestStuckObjectFailedWithReason: an object whose every resumption dies (its continuations crash) is
// failed by the sweeper after SWEEP_MAX_ATTEMPTS with the reason; the run ends and the summary names it.
func TestStuckObjectFailedWithReason(t *testing.T) {
	t.Parallel()
	var c *Cloud
	c = startCloud(t, Options{
		LimitsOff:     true,
		ScheduleEvery: time.Hour,
		Env:           map[string]map[string]string{IngestFunction: {"SWEEP_MAX_ATTEMPTS": "2"}},
		S3Faults:      strandingFaults(&c),
		WrapHandler: func(id string, h lambda.Handler) lambda.Handler {
			if id != IngestFunction {
				return h
			}
			return crashingContinuations{h}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const key = "raw/doomed/yellow_tripdata_2019-04.csv"
	putGen(t, c, key, gen.Options{Taxi: "yellow", Layout: 2019, Month: 4, Rows: 25000, Seed: 6})
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, c, key)
	if m.Status != ingest.StatusFailed || m.Sweeps != 2 || !strings.Contains(m.Reason, "not finished after 2 sweeper attempts") {
		t.Fatalf("manifest %s after %d sweeps: %q, want failed by the sweeper after 2", m.Status, m.Sweeps, m.Reason)
	}
	s, err := c.Summarize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.ObjectsFailed != 1 || len(s.FailedReasons) != 1 || !strings.Contains(s.FailedReasons[0], "sweeper attempts") {
		t.Errorf("summary: %d failed, reasons %q", s.ObjectsFailed, s.FailedReasons)
	}
}

// crashingContinuations fails every continuation before it does anything, like an invocation that
// crashes at start.
type crashingContinuations struct{ lambda.Handler }

func (h crashingContinuations) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if strings.Contains(string(payload), `"taxistream":"continuation"`) {
		return nil, errors.New("crashed (injected)")
	}
	return h.Handler.Invoke(ctx, payload)
}

func readManifest(t *testing.T, c *Cloud, key string) ingest.Manifest {
	t.Helper()
	out, err := c.Bucket.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String("state/ingest/" + key + "/")})
	if err != nil || len(out.Contents) != 1 {
		t.Fatalf("manifests of %s: %v %v, want one", key, out, err)
	}
	obj, err := c.Bucket.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: out.Contents[0].Key})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	var m ingest.Manifest
	if err := json.NewDecoder(obj.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/testenv"
)

// startCloud starts a local cloud on the project's template in a temporary folder.
func startCloud(t *testing.T, opts Options) *Cloud {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.TemplatePath = filepath.Join(testenv.Root(t), "template.yaml")
	if opts.PollInterval == 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	opts.AsyncRetryDelays = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func putFiles(t *testing.T, c *Cloud, files map[string]string) {
	t.Helper()
	for key, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Bucket.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(key), Body: f})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func drainAndSummarize(t *testing.T, c *Cloud, limit time.Duration) Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatalf("draining: %v", err)
	}
	s, err := c.Summarize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPipelineRealSamples runs every real TLC sample through the whole local pipeline with the stream's
// limits on, and checks the reconciliation: rows read = records sent + rejected, every record archived
// and consumed exactly once (distinct record ids), nothing in a failure destination. The heads are cut
// after 1 KiB, so each has exactly one rejected (cut-off) last row.
func TestPipelineRealSamples(t *testing.T) {
	tlc := testenv.TLCDir(t)
	files := map[string]string{}
	wantRows := int64(0)
	samples := map[string]int64{ // data rows per file (README of the samples)
		"yellow_tripdata_sample_2019-01_renamed.csv": 10000,
		"yellow_tripdata_2015-01_head.csv":           1999,
		"green_tripdata_2013-08.csv":                 7623,
		"yellow_rides_2020-07.csv":                   266,
		"yellow_tripdata_2025-01_head.csv":           1000,
	}
	for name, rows := range samples {
		files["raw/samples/"+name] = filepath.Join(tlc, "samples", name)
		wantRows += rows
	}
	heads, err := filepath.Glob(filepath.Join(tlc, "heads", "*.csv"))
	if err != nil || len(heads) == 0 {
		t.Fatalf("no heads under %s: %v", tlc, err)
	}
	for _, h := range heads {
		files["raw/heads/"+filepath.Base(h)] = h
	}
	c := startCloud(t, Options{})
	putFiles(t, c, files)
	s := drainAndSummarize(t, c, 4*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	if s.Objects != len(files) {
		t.Errorf("objects = %d, want %d", s.Objects, len(files))
	}
	if s.RowsRead < wantRows {
		t.Errorf("rows read = %d, want at least the %d rows of the samples", s.RowsRead, wantRows)
	}
	if s.Rejected < int64(len(heads)) {
		t.Errorf("rejected = %d, want at least one cut-off row per head (%d)", s.Rejected, len(heads))
	}
	if len(s.RejectedByReason) == 0 {
		t.Errorf("no rejected rows found under rejected/")
	}
	if s.ArchiveObjects == 0 || s.TripObjects == 0 || s.Windows == 0 {
		t.Errorf("missing outputs: %d archive objects, %d trip objects, %d windows", s.ArchiveObjects, s.TripObjects, s.Windows)
	}
	if s.TripsProcessed+s.Quarantined < s.RecordsSent {
		t.Errorf("consumer outputs %d + %d < %d records sent", s.TripsProcessed, s.Quarantined, s.RecordsSent)
	}
}

// TestPipelineUnderFaults injects InternalFailure entries, 5xx requests and requests that are stored but
// answered with a timeout: nothing may be lost, and the duplicates the timeouts cause are dropped by
// record id downstream (the reconciliation counts distinct record ids).
func TestPipelineUnderFaults(t *testing.T) {
	tlc := testenv.TLCDir(t)
	c := startCloud(t, Options{LimitsOff: true, Faults: stream.Faults{
		Seed: 7, InternalFailureRate: 0.05, RequestErrorRate: 0.05, StoreThenFailRate: 0.05,
	}})
	putFiles(t, c, map[string]string{
		"raw/a/yellow_tripdata_sample_2019-01_renamed.csv": filepath.Join(tlc, "samples", "yellow_tripdata_sample_2019-01_renamed.csv"),
		"raw/a/green_tripdata_2013-08.csv":                 filepath.Join(tlc, "samples", "green_tripdata_2013-08.csv"),
	})
	s := drainAndSummarize(t, c, 4*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled under faults:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	if s.RowsRead != 10000+7623 {
		t.Errorf("rows read = %d, want %d", s.RowsRead, 10000+7623)
	}
	st := c.Stream.Stats()
	if st.InternalFailures == 0 || st.RequestErrors == 0 {
		t.Errorf("faults were not injected: %+v", st)
	}
}

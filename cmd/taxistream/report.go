package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/report"
)

// reportFile is the report's name in a local cloud's folder.
const reportFile = "report.html"

// cmdReport writes the run report of a local cloud's folder or of a deployed bucket.
func cmdReport(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("report", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("out", "", "the HTML file to write (default <DIR>/report.html, or report-<bucket>.html for s3://)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream report [--out report.html] [DIR | s3://bucket]\n\n"+
			"Writes one self-contained HTML page (inline SVG, nothing loaded from elsewhere) about a run: the pipeline,\n"+
			"the data in processed/ and the outputs. DIR is a local cloud's folder (default .taxistream), whose\n"+
			"timeline gives the charts over time; s3://bucket reads a deployed stack's bucket with the default AWS\n"+
			"configuration (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, ...).")
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 1 {
		flags.Usage()
		return fmt.Errorf("%w: give one folder or s3://bucket", errUsage)
	}
	src := ".taxistream"
	if flags.NArg() == 1 {
		src = flags.Arg(0)
	}
	var in report.Input
	if name, ok := strings.CutPrefix(src, "s3://"); ok {
		name = strings.TrimSuffix(name, "/")
		if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("%w: %q: give s3://bucket (the stack's bucket, no prefix)", errUsage, src)
		}
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("loading the AWS configuration: %w", err)
		}
		// S3-compatible stores (MinIO, LocalStack, gofakes3) often send no checksum: not worth a warning.
		client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
		in = report.Input{Bucket: client, BucketName: name, Location: src, FailureRecords: -1}
		if *out == "" {
			*out = "report-" + name + ".html"
		}
	} else {
		b, err := openLocalBucket(src)
		if err != nil {
			return err
		}
		defer b.Close()
		in = report.Input{Bucket: b, BucketName: b.Name(), Location: src, FailureRecords: countFailures(src)}
		tl, err := local.ReadTimeline(local.TimelinePath(src))
		switch {
		case err == nil:
			in.Timeline = tl
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(stderr, "no timeline in %s (a run of an older build?): the pipeline charts over time are left out\n", src)
		default:
			return err
		}
		if sum, ok := runSummary(src); ok {
			in.Summary = sum
		}
		if *out == "" {
			*out = filepath.Join(src, reportFile)
		}
	}
	if err := writeReport(ctx, in, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", *out)
	return nil
}

// runSummaryFile is where `taxistream local` leaves the summary it printed, in its folder.
const runSummaryFile = "summary.json"

// runSummary returns the summary the run in dir printed, when it is still the folder's latest: it
// holds what only the run could know (the stream records its on-failure records name). A timeline
// written after it (`taxistream invoke` on the folder) means the bucket changed since: recompute.
func runSummary(dir string) (*local.Summary, bool) {
	path := filepath.Join(dir, runSummaryFile)
	st, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	if tl, err := os.Stat(local.TimelinePath(dir)); err == nil && tl.ModTime().After(st.ModTime()) {
		return nil, false
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var s local.Summary
	if json.Unmarshal(body, &s) != nil {
		return nil, false
	}
	return &s, true
}

// openLocalBucket opens the bucket of the local cloud in dir for reading.
func openLocalBucket(dir string) (*bucket.Bucket, error) {
	bdir := filepath.Join(dir, "bucket")
	if st, err := os.Stat(bdir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a local cloud's folder (no bucket/ in it): run `taxistream local` first, or give s3://bucket", dir)
	}
	// The name only addresses requests to this bucket; the report shows the folder.
	return bucket.Open(bdir, "local-bucket")
}

// countFailures counts the on-failure records the local cloud wrote under <dir>/failures/.
func countFailures(dir string) int {
	n := 0
	// The callback never returns an error, so neither does the walk: a missing or unreadable folder
	// counts as no records.
	_ = filepath.WalkDir(filepath.Join(dir, "failures"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
			n++
		}
		return nil
	})
	return n
}

// writeReport builds the report and writes it to path (through a temporary file, so a reader never
// sees half a page).
func writeReport(ctx context.Context, in report.Input, path string) error {
	r, err := report.Build(ctx, in)
	if err != nil {
		return fmt.Errorf("building the report: %w", err)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := r.Render(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// writeRunReport saves the timeline and the summary (<dir>/summary.json) of a local run that just
// finished and writes its report to <dir>/report.html.
func writeRunReport(ctx context.Context, cloud *local.Cloud, dir string, sum *local.Summary) (string, error) {
	if _, err := cloud.SaveTimeline(); err != nil {
		return "", err
	}
	b, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, runSummaryFile), append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("saving the summary: %w", err)
	}
	path := filepath.Join(dir, reportFile)
	in := report.Input{
		Bucket: cloud.Bucket, BucketName: cloud.Bucket.Name(), Location: dir,
		Timeline: cloud.Timeline.Snapshot(), Summary: sum,
	}
	return path, writeReport(ctx, in, path)
}

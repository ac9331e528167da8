package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

// chromium returns Debian's chromium (CHROMIUM, /usr/bin/chromium or chromium on PATH), or skips the
// test (fails it under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if lp, err := exec.LookPath("chromium"); err == nil {
		return lp
	}
	const how = "`make tools` installs Debian's chromium with apt-get (as root); or set CHROMIUM"
	if testenv.CI() {
		t.Fatalf("chromium not found at %s or on PATH (required when CI=true; %s)", p, how)
	}
	t.Skipf("skipped: chromium not found at %s or on PATH (%s)", p, how)
	return ""
}

// runLocalDemo runs `taxistream local --demo` into dir and returns its summary JSON (file and decoded).
func runLocalDemo(t *testing.T, dir string, extra ...string) (string, local.Summary, string) {
	t.Helper()
	summary := filepath.Join(t.TempDir(), "summary.json")
	args := append([]string{"local", "--demo", "--quiet", "--dir", dir, "--template", filepath.Join(testenv.Root(t), "template.yaml"),
		"--summary-json", summary}, extra...)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, &stdout, &stderr)
	}
	body, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	var s local.Summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return summary, s, stdout.String()
}

// checkInBrowser runs tools/node/report-check.mjs on a report.
func checkInBrowser(t *testing.T, report, summary string, charts []string, extra ...string) {
	t.Helper()
	browser := chromium(t)
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	if _, err := os.Stat(filepath.Join(modules, "playwright-core")); err != nil {
		if testenv.CI() {
			t.Fatalf("playwright-core is not installed under %s (required when CI=true; `make tools`)", modules)
		}
		t.Skipf("skipped: playwright-core is not installed under %s (`make tools`)", modules)
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	args := append([]string{filepath.Join(testenv.Root(t), "tools", "node", "report-check.mjs"),
		"--report", report, "--summary", summary, "--screenshot", shot, "--expect-charts", strings.Join(charts, ","),
		"--require-metrics", "rows_read,records_sent,rejected,throttled,trips_processed,quarantined,reconciled"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = filepath.Dir(modules) // node resolves playwright-core from tools/node/node_modules
	cmd.Env = append(os.Environ(), "CHROMIUM="+browser)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("report-check.mjs on %s: %v\n%s\n%s", report, err, &stderr, &stdout)
	}
	var res struct {
		Requests []string `json:"requests"`
		Charts   []struct {
			ID string `json:"id"`
		} `json:"charts"`
		Metrics        int `json:"metrics"`
		Reconciliation int `json:"reconciliation"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("report-check.mjs output: %v\n%s", err, &stdout)
	}
	if len(res.Requests) != 1 || len(res.Charts) < len(charts) || res.Metrics < 7 || res.Reconciliation == 0 {
		t.Errorf("report-check.mjs checked %d requests, %d charts, %d metrics, %d reconciliation lines", len(res.Requests), len(res.Charts), res.Metrics, res.Reconciliation)
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
		t.Errorf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	t.Logf("%s: %d charts, %d numbers and %d reconciliation lines checked in chromium; screenshot %s", report, len(res.Charts), res.Metrics, res.Reconciliation, shot)
}

// expectedCharts are the charts a local demo run's report must have.
func expectedCharts(s local.Summary) []string {
	charts := []string{"shard-bytes", "shard-records", "throttles", "records-per-request", "user-records-per-aggregate", "consumer",
		"invocations", "latency", "trips-per-date", "trips-per-hour", "top-zones", "payment-types", "taxi-types",
		"dist-fare", "dist-tip", "dist-distance", "dist-speed", "file-sizes"}
	if s.Rejected > 0 {
		charts = append(charts, "rejected-reasons")
	}
	if s.Quarantined > 0 {
		charts = append(charts, "quarantine-rules")
	}
	return charts
}

// TestReportInBrowser runs the demo on the local cloud (limits on), which writes its report, and checks
// the page in chromium: every chart drawn with axis labels and a legend, the numbers equal to the
// summary JSON, no network request at all. `taxistream report DIR` afterwards, from the folder alone
// (timeline and bucket), gives a page that passes the same checks.
func TestReportInBrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	dir := filepath.Join(t.TempDir(), "cloud")
	summary, s, out := runLocalDemo(t, dir, "--demo-rows", "5000")
	page := filepath.Join(dir, reportFile)
	if !strings.Contains(out, "report: "+page) {
		t.Errorf("local did not print the report's path %s:\n%s", page, out)
	}
	checkInBrowser(t, page, summary, expectedCharts(s))

	// From the folder alone: the run left its summary there; without it the report recomputes it from
	// the bucket, which must give the same page.
	saved, err := os.ReadFile(filepath.Join(dir, runSummaryFile))
	if err != nil {
		t.Fatalf("the run left no summary in its folder: %v", err)
	}
	if want, _ := os.ReadFile(summary); !bytes.Equal(saved, want) {
		t.Errorf("%s differs from --summary-json:\n%s\n%s", runSummaryFile, saved, want)
	}
	if err := os.Remove(filepath.Join(dir, runSummaryFile)); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(t.TempDir(), "again.html")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"report", "--out", again, dir}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("report: exit %d\n%s%s", code, &stdout, &stderr)
	}
	checkInBrowser(t, again, summary, expectedCharts(s))
}

// TestReportFromS3 builds the report of a deployed bucket: a local run's bucket copied into gofakes3
// and read with the default AWS configuration (AWS_ENDPOINT_URL_S3), as `taxistream report
// s3://bucket` reads a real one. The numbers equal the run's summary, and the page says that the
// charts over time need a local run's timeline.
func TestReportFromS3(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cloud")
	_, s, _ := runLocalDemo(t, dir, "--demo-rows", "2000", "--limits-off")
	fake := testpeers.StartS3(t)
	const name = "taxistream-123456789012-us-east-1"
	fake.CreateBucket(t, name)
	src, err := bucket.Open(filepath.Join(dir, "bucket"), "copy-source")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	pages := s3.NewListObjectsV2Paginator(src, &s3.ListObjectsV2Input{Bucket: aws.String("copy-source")})
	copied := 0
	for pages.HasMorePages() {
		p, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Contents {
			out, err := src.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("copy-source"), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			fake.Put(t, name, aws.ToString(o.Key), body)
			copied++
		}
	}
	for k, v := range fake.Env() {
		t.Setenv(k, v)
	}
	page := filepath.Join(t.TempDir(), "s3.html")
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"report", "--out", page, "s3://" + name}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("report s3://: exit %d\n%s%s", code, &stdout, &stderr)
	}
	body, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(body)
	for key, want := range map[string]int64{"rows_read": s.RowsRead, "records_sent": s.RecordsSent, "rejected": s.Rejected,
		"trips_processed": s.TripsProcessed, "quarantined": s.Quarantined, "objects": int64(s.Objects)} {
		m := regexp.MustCompile(`data-metric="` + key + `" data-value="(\d+)"`).FindStringSubmatch(html)
		if m == nil || m[1] != fmt.Sprint(want) {
			t.Errorf("%s on the page: %v, want %d", key, m, want)
		}
	}
	for _, want := range []string{`data-note="no-timeline"`, "not checked: the failure destinations", `data-metric="reconciled" data-value="true"`,
		`data-chart="trips-per-date"`, `data-chart="file-sizes"`} {
		if !strings.Contains(html, want) {
			t.Errorf("the s3 report lacks %s", want)
		}
	}
	if strings.Contains(html, `data-chart="shard-bytes"`) {
		t.Error("the s3 report has a throughput chart without a timeline")
	}
	if reqs := fake.Requests("/" + name); len(reqs) == 0 {
		t.Error("the report made no request to the S3 endpoint")
	}
	t.Logf("%d objects copied; %s", copied, strings.TrimSpace(stdout.String()))
}

func TestReportUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report", "a", "b"}, 2, "give one folder or s3://bucket"},
		{[]string{"report", "s3://"}, 2, "give s3://bucket"},
		{[]string{"report", "s3://bucket/prefix"}, 2, "no prefix"},
		{[]string{"report", filepath.Join(t.TempDir(), "nothing")}, 1, "not a local cloud's folder"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, &stderr, tc.code, tc.want)
		}
	}
}

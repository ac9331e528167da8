package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	"github.com/taxistream/taxistream/internal/testenv"
)

// awsToolEnv is the environment of an AWS CLI or boto3 process pointed at endpoint: test credentials, no
// shared config files, no instance metadata, no proxies.
func awsToolEnv(t *testing.T, endpoint string) []string {
	home := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=8", "AWS_PAGER=", "NO_PROXY=*",
		"PYTHONDONTWRITEBYTECODE=1",
	}
	for _, k := range []string{"PYENV_ROOT", "PYENV_VERSION"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func runTool(t *testing.T, env []string, stdin []byte, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

var (
	servingLine = regexp.MustCompile(`serving S3 and Kinesis at (http://127\.0\.0\.1:\d+)`)
	streamLine  = regexp.MustCompile(`aws kinesis list-shards --stream-name (\S+)`)
	bucketLine  = regexp.MustCompile(`aws s3 cp trips.csv (s3://\S+/raw/)`)
)

// TestLocalServe runs `taxistream local --serve --addr 127.0.0.1:0` as a user would, uploads a real TLC
// sample with `aws s3 cp` into raw/ (which triggers ingestion), reads the stream's description with `aws
// kinesis`, then stops the command (Ctrl-C): the server stops, the pipeline drains and the summary
// reconciles.
func TestLocalServe(t *testing.T) {
	tlc := testenv.TLCDir(t)
	aws := testenv.AWSCLI(t)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"local", "--serve", "--addr", "127.0.0.1:0", "--quiet", "--dir", filepath.Join(dir, "cloud"),
			"--template", filepath.Join(testenv.Root(t), "template.yaml")}, strings.NewReader(""), &stdout, &stderr)
	}()
	var url, streamName, raw string
	waitFor(t, time.Minute, func() bool {
		m, sn, b := servingLine.FindStringSubmatch(stderr.String()), streamLine.FindStringSubmatch(stderr.String()), bucketLine.FindStringSubmatch(stderr.String())
		if m != nil && sn != nil && b != nil {
			url, streamName, raw = m[1], sn[1], b[1]
			return true
		}
		return false
	})
	env := awsToolEnv(t, url)
	runTool(t, env, nil, aws, "s3", "cp", "--only-show-errors", filepath.Join(tlc, "samples", "yellow_rides_2020-07.csv"),
		raw+"2020/")
	summary := runTool(t, env, nil, aws, "kinesis", "describe-stream-summary", "--stream-name", streamName,
		"--query", "StreamDescriptionSummary.[StreamStatus,OpenShardCount]", "--output", "text")
	if got := strings.Fields(summary); len(got) != 2 || got[0] != "ACTIVE" {
		t.Errorf("describe-stream-summary: %q", summary)
	}
	manifests := filepath.Join(dir, "cloud", "bucket", "state", "ingest", "raw", "2020", "yellow_rides_2020-07.csv")
	waitFor(t, 2*time.Minute, func() bool {
		entries, _ := os.ReadDir(manifests)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(manifests, e.Name())); err == nil && bytes.Contains(bytes.ReplaceAll(b, []byte(" "), nil), []byte(`"status":"done"`)) {
				return true
			}
		}
		return false
	})
	stop() // Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("taxistream local --serve did not stop after Ctrl-C")
	}
	out := stdout.String()
	for _, want := range []string{"rows read          266", "reconciliation: every row is accounted for"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("the server still answers after the command stopped")
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "cloud", "logs", "functions.log"))
	if !bytes.Contains(logs, []byte(`"message":"wire request"`)) {
		t.Error("the requests served are not in functions.log")
	}
}

// TestProduceOverWire: `taxistream produce` with AWS_ENDPOINT_URL pointed at the served local cloud
// writes a real sample into the stream, paced by the stream's real limits; boto3 reads the stream back
// and the official KPL module de-aggregates exactly the rows sent, with their partition keys.
func TestProduceOverWire(t *testing.T) {
	tlc := testenv.TLCDir(t)
	py := testenv.Python(t, "boto3")
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	c, err := local.Start(context.Background(), local.Options{Dir: t.TempDir(), TemplatePath: filepath.Join(testenv.Root(t), "template.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var banner bytes.Buffer
	stopServe, err := startServe(c, "127.0.0.1:0", &banner)
	if err != nil {
		t.Fatal(err)
	}
	defer stopServe()
	m := servingLine.FindStringSubmatch(banner.String())
	if m == nil {
		t.Fatalf("no address in %q", banner.String())
	}
	url := m[1]
	for _, kv := range awsToolEnv(t, url) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	t.Setenv("AWS_PROFILE", "")

	// One local file, and one object read through the wire (ListObjectsV2, GetObject: the Go SDK's S3 path).
	sample := filepath.Join(tlc, "samples", "yellow_tripdata_2025-01_head.csv")
	other, err := os.Open(filepath.Join(tlc, "samples", "yellow_rides_2020-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := c.Bucket.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String("feed/yellow_rides_2020-07.csv"), Body: other}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"produce", "--stream", c.Stream.Name(), "--quiet", "--json", sample, "s3://" + c.Bucket.Name() + "/feed/"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr.String())
	}
	var sum struct {
		Rows     int64 `json:"rows_read"`
		Sent     int64 `json:"records_sent"`
		Rejected int64 `json:"rejected"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("produce --json: %v\n%s", err, stdout.String())
	}
	const rows = 1000 + 266
	if sum.Rows != rows || sum.Sent != rows || sum.Rejected != 0 {
		t.Errorf("produce summary %+v, want %d rows read and sent", sum, rows)
	}

	raw := runTool(t, awsToolEnv(t, url), nil, py, filepath.Join(testenv.Root(t), "tools", "python", "wire_kinesis_read.py"),
		"--endpoint", url, "--stream", c.Stream.Name())
	deagg := runTool(t, append(os.Environ(), "NODE_PATH="+modules), []byte(raw), node, filepath.Join(testenv.Root(t), "tools", "node", "deagg.js"))
	var res struct {
		Records []struct {
			Error       string `json:"error"`
			UserRecords []struct {
				PartitionKey string `json:"partitionKey"`
				Data         []byte `json:"data"`
			} `json:"userRecords"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(deagg), &res); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	users := 0
	for _, r := range res.Records {
		if r.Error != "" {
			t.Fatalf("a Kinesis record does not de-aggregate: %s", r.Error)
		}
		for _, u := range r.UserRecords {
			users++
			var rec struct {
				RecordID string `json:"record_id"`
				PU       *int   `json:"pu_location_id"`
			}
			if err := json.Unmarshal(u.Data, &rec); err != nil || rec.RecordID == "" || rec.PU == nil {
				t.Fatalf("user record %q: %v", u.Data, err)
			}
			if want := fmt.Sprint(*rec.PU); u.PartitionKey != want {
				t.Errorf("partition key %q, want the record's pu_location_id %s", u.PartitionKey, want)
			}
			ids[rec.RecordID] = true
		}
	}
	if users != rows || len(ids) != rows {
		t.Errorf("read back %d user records (%d distinct), want %d", users, len(ids), rows)
	}
}

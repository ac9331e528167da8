package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/testenv"
)

// TestLocalSummaryJSON runs `taxistream local --demo --summary-json FILE` and decodes FILE into
// local.Summary: the JSON has every field of the summary (no unknown or missing keys) and the demo's
// counts are there.
func TestLocalSummaryJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "summary.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"local", "--demo", "--demo-rows", "4000", "--limits-off", "--quiet",
		"--dir", filepath.Join(dir, "cloud"), "--template", filepath.Join(testenv.Root(t), "template.yaml"), "--summary-json", file},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "reconciliation: every row is accounted for") {
		t.Errorf("summary on stdout without the reconciliation verdict:\n%s", &stdout)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var s local.Summary
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decoding %s into local.Summary: %v", body, err)
	}
	// Every field of the struct is in the file.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	st := reflect.TypeOf(s)
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if _, ok := keys[name]; !ok {
			t.Errorf("field %s (%q) missing from the JSON", st.Field(i).Name, name)
		}
	}
	if len(keys) != st.NumField() {
		t.Errorf("%d keys in the JSON, local.Summary has %d fields", len(keys), st.NumField())
	}
	if !s.Reconciled || s.Objects != len(local.DemoFiles) || s.ObjectsDone != s.Objects || s.RowsRead != 4000 ||
		s.RecordsSent == 0 || s.Rejected == 0 || s.KinesisRecords == 0 || s.ArchiveObjects == 0 || s.ArchiveRecords == 0 ||
		s.ArchiveDistinct == 0 || s.TripObjects == 0 || s.TripsProcessed == 0 || s.ConsumerDistinct == 0 || s.Windows == 0 ||
		len(s.RejectedByReason) == 0 || len(s.Reconciliation) == 0 {
		t.Errorf("summary with zero fields where the demo has data:\n%s", body)
	}
}

// TestInvokeIngest runs `taxistream invoke ingest --event events/s3-put.json --object FILE`: the
// sample event names another bucket and an ETag no local object has; invoke uploads FILE to the
// event's (form-decoded) key without a notification, rewrites bucket and ETag, and the one invocation
// ingests it. A second invoke without --object finds the object, rewrites the ETag again and is a
// duplicate; --as-is sends the sample's bucket name, which IngestFunction skips.
func TestInvokeIngest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csv := filepath.Join(dir, "trips.csv")
	f, err := os.Create(csv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, gen.Options{Rows: 300, Seed: 41}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	root := testenv.Root(t)
	invoke := func(extra ...string) (ingest.Result, string) {
		t.Helper()
		args := append([]string{"invoke", "ingest", "--event", filepath.Join(root, "events", "s3-put.json"), "--limits-off",
			"--dir", filepath.Join(dir, "cloud"), "--template", filepath.Join(root, "template.yaml")}, extra...)
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, &stdout, &stderr)
		}
		var res ingest.Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Objects) != 1 {
			t.Fatalf("response %s: %v", &stdout, err)
		}
		return res, stderr.String()
	}
	const key = "raw/2019/yellow tripdata+sample.csv" // the event's raw/2019/yellow+tripdata%2Bsample.csv

	res, notes := invoke("--object", csv)
	o := res.Objects[0]
	if o.Outcome != ingest.OutcomeDone || o.Key != key || o.RowsRead != 300 || o.RecordsSent != 300 {
		t.Errorf("first invoke: %+v, want %s done with 300 rows sent", o, key)
	}
	for _, want := range []string{`bucket "taxistream-123456789012-us-east-1" rewritten to the local bucket "taxistream-000000000000-us-east-1"`,
		"without an S3 notification", `ETag "0f343b0931126a20f133d67c2b018a3b" rewritten`} {
		if !strings.Contains(notes, want) {
			t.Errorf("stderr lacks %q:\n%s", want, notes)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cloud", "bucket", filepath.FromSlash(ingest.ManifestKey(key, o.Version, "")))); err != nil {
		t.Errorf("no manifest on disk: %v", err)
	}

	res, _ = invoke()
	if o := res.Objects[0]; o.Outcome != ingest.OutcomeDuplicate || o.RecordsSent != 0 {
		t.Errorf("second invoke: %+v, want a duplicate that sends nothing", o)
	}

	res, notes = invoke("--as-is")
	if o := res.Objects[0]; o.Outcome != ingest.OutcomeSkipped || strings.Contains(notes, "rewritten") {
		t.Errorf("--as-is: %+v (notes %q), want the sample's bucket skipped and nothing rewritten", o, notes)
	}
}

package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/local/lambda"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var _ invoker = (*lambda.Runtime)(nil)

// fakeInvoker records invocations; err, if set, is returned instead.
type fakeInvoker struct {
	mu    sync.Mutex
	calls []*awslambda.InvokeInput
	err   error
}

func (f *fakeInvoker) Invoke(_ context.Context, in *awslambda.InvokeInput, _ ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	return &awslambda.InvokeOutput{StatusCode: 202}, nil
}

var templateRules = []Rule{
	{ID: "csv", Function: "IngestFunction", Events: []string{"s3:ObjectCreated:*"}, Prefix: "raw/", Suffix: ".csv"},
	{ID: "csvgz", Function: "IngestFunction", Events: []string{"s3:ObjectCreated:*"}, Prefix: "raw/", Suffix: ".csv.gz"},
	{ID: "parquet", Function: "IngestFunction", Events: []string{"s3:ObjectCreated:Put"}, Prefix: "raw/", Suffix: ".parquet"},
}

func created(key string) bucket.ObjectCreated {
	return bucket.ObjectCreated{
		Bucket: "taxistream-local", Key: key, Size: 1234, ETag: `"9e107d9d372bb6826bd81d3542a419d6"`,
		Sequencer: "0017BD5C3F1A2B3C40", EventName: bucket.EventPut,
		Time: time.Date(2024, 3, 10, 7, 30, 1, 123456789, time.FixedZone("EST", -5*3600)),
	}
}

func TestFilterRules(t *testing.T) {
	tests := []struct {
		key       string
		eventName string
		want      []string // configuration ids invoked
	}{
		{"raw/x.csv", bucket.EventPut, []string{"csv"}},
		{"raw/2024/yellow_tripdata_2024-01.csv", bucket.EventCopy, []string{"csv"}},
		{"raw/x.csv.gz", bucket.EventPut, []string{"csvgz"}},
		{"raw/x.parquet", bucket.EventPut, []string{"parquet"}},
		{"raw/x.parquet", bucket.EventCopy, nil}, // rule is Put only
		{"archive/x.csv", bucket.EventPut, nil},
		{"state/raw/x.csv", bucket.EventPut, nil},
		{"processed/trips/x.csv", bucket.EventPut, nil},
		{"RAW/x.csv", bucket.EventPut, nil},
		{"raw/x.CSV", bucket.EventPut, nil},
		{"raw/x.csv.tmp", bucket.EventPut, nil},
		{"raw/x.json", bucket.EventPut, nil},
	}
	for _, tt := range tests {
		t.Run(tt.key+" "+tt.eventName, func(t *testing.T) {
			inv := &fakeInvoker{}
			trig, err := New(Config{Bucket: "taxistream-local", Rules: templateRules}, inv)
			if err != nil {
				t.Fatal(err)
			}
			ev := created(tt.key)
			ev.EventName = tt.eventName
			trig.Handle(ev)
			var got []string
			for _, c := range inv.calls {
				if c.InvocationType != types.InvocationTypeEvent || aws.ToString(c.FunctionName) != "IngestFunction" {
					t.Errorf("invoked %s %s, want an Event invoke of IngestFunction", aws.ToString(c.FunctionName), c.InvocationType)
				}
				var e events.S3Event
				if err := json.Unmarshal(c.Payload, &e); err != nil {
					t.Fatal(err)
				}
				got = append(got, e.Records[0].S3.ConfigurationID)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("invoked rules (-want +got):\n%s", d)
			}
			s := trig.Stats()
			if s.Received != 1 || s.Invoked != int64(len(tt.want)) || (len(tt.want) == 0) != (s.Skipped == 1) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestAmbiguousRulesAreRefused(t *testing.T) {
	ok := func(p, s string, ev ...string) Rule {
		if len(ev) == 0 {
			ev = []string{"s3:ObjectCreated:*"}
		}
		return Rule{Function: "F", Events: ev, Prefix: p, Suffix: s}
	}
	tests := []struct {
		name    string
		rules   []Rule
		wantErr bool
	}{
		{"template", templateRules, false},
		{"nested prefixes, same suffix", []Rule{ok("raw/", ".csv"), ok("raw/2024/", ".csv")}, true},
		{"same prefix, nested suffixes", []Rule{ok("raw/", ".gz"), ok("raw/", ".csv.gz")}, true},
		{"no filter twice", []Rule{ok("", ""), ok("", "")}, true},
		{"disjoint prefixes", []Rule{ok("raw/", ".csv"), ok("replay/", ".csv")}, false},
		{"disjoint events", []Rule{ok("raw/", ".csv", "s3:ObjectCreated:Put"), ok("raw/", ".csv", "s3:ObjectCreated:Copy")}, false},
		{"wildcard covers put", []Rule{ok("raw/", ".csv", "s3:ObjectCreated:*"), ok("raw/", ".csv", "s3:ObjectCreated:Put")}, true},
		{"no function", []Rule{{Events: []string{"s3:ObjectCreated:*"}}}, true},
		{"no s3: prefix", []Rule{ok("raw/", "", "ObjectCreated:*")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Bucket: "b", Rules: tt.rules}, &fakeInvoker{})
			if (err != nil) != tt.wantErr {
				t.Errorf("New error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestEventGolden(t *testing.T) {
	const key = "raw/yellow tripdata+2024 (1)/zone=Él Barrio.csv"
	inv := &fakeInvoker{}
	trig, err := New(Config{Bucket: "taxistream-local", Region: "us-east-1", Rules: templateRules}, inv)
	if err != nil {
		t.Fatal(err)
	}
	trig.Handle(created(key))
	if len(inv.calls) != 1 {
		t.Fatalf("%d invocations, want 1", len(inv.calls))
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, inv.calls[0].Payload, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", "s3-put.golden")
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), pretty.String()); d != "" {
		t.Errorf("event (-golden +got):\n%s", d)
	}

	// The raw payload decodes with aws-lambda-go's events, as IngestFunction decodes it.
	var e events.S3Event
	if err := json.Unmarshal(inv.calls[0].Payload, &e); err != nil {
		t.Fatal(err)
	}
	r := e.Records[0]
	if r.S3.Object.URLDecodedKey != key {
		t.Errorf("URLDecodedKey = %q, want %q", r.S3.Object.URLDecodedKey, key)
	}
	if want := "raw/yellow+tripdata%2B2024+%281%29/zone%3D%C3%89l+Barrio.csv"; r.S3.Object.Key != want {
		t.Errorf("key = %q, want %q", r.S3.Object.Key, want)
	}
	if !r.EventTime.Equal(time.Date(2024, 3, 10, 12, 30, 1, 123000000, time.UTC)) {
		t.Errorf("eventTime = %v, want 2024-03-10T12:30:01.123Z", r.EventTime)
	}
	if r.EventVersion != "2.1" || r.EventSource != "aws:s3" || r.EventName != "ObjectCreated:Put" || r.S3.Object.ETag != "9e107d9d372bb6826bd81d3542a419d6" ||
		r.S3.Object.Size != 1234 || r.S3.Bucket.Arn != "arn:aws:s3:::taxistream-local" || r.S3.Object.Sequencer != "0017BD5C3F1A2B3C40" {
		t.Errorf("record = %+v", r)
	}
	if bytes.Contains(inv.calls[0].Payload, []byte("versionId")) || bytes.Contains(inv.calls[0].Payload, []byte("urlDecodedKey")) {
		t.Errorf("payload has fields S3 does not send for an unversioned bucket: %s", inv.calls[0].Payload)
	}
}

func TestEncodeKey(t *testing.T) {
	for key, want := range map[string]string{
		"raw/a b+c.csv":   "raw/a+b%2Bc.csv",
		"raw/x=1/y.csv":   "raw/x%3D1/y.csv",
		"raw/(1)~!'.csv":  "raw/%281%29%7E%21%27.csv",
		"raw/é.csv":       "raw/%C3%A9.csv",
		"raw/a-b_c.d*e":   "raw/a-b_c.d*e",
		"raw/100%.csv":    "raw/100%25.csv",
		"raw/&$@:;,?#":    "raw/%26%24%40%3A%3B%2C%3F%23",
		"raw/tab\tnl\n":   "raw/tab%09nl%0A",
		"raw/日本.csv":      "raw/%E6%97%A5%E6%9C%AC.csv",
		"raw/plus+space ": "raw/plus%2Bspace+",
	} {
		if got := EncodeKey(key); got != want {
			t.Errorf("EncodeKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func FuzzEncodeKey(f *testing.F) {
	for _, s := range []string{"raw/a b+c.csv", "raw/%2e%2e/x", "é+ +%", "a/b//c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		enc := EncodeKey(key)
		dec, err := url.QueryUnescape(enc)
		if err != nil || dec != key {
			t.Errorf("QueryUnescape(EncodeKey(%q)) = %q, %v", key, dec, err)
		}
		if strings.ContainsAny(enc, " \"\\") {
			t.Errorf("EncodeKey(%q) = %q keeps characters that must be encoded", key, enc)
		}
	})
}

func TestInvokeFailureIsCounted(t *testing.T) {
	inv := &fakeInvoker{err: errors.New("RequestTooLargeException")}
	trig, err := New(Config{Bucket: "taxistream-local", Rules: templateRules}, inv)
	if err != nil {
		t.Fatal(err)
	}
	trig.Handle(created("raw/x.csv"))
	trig.Handle(bucket.ObjectCreated{Bucket: "other-bucket", Key: "raw/x.csv", EventName: bucket.EventPut})
	if s := trig.Stats(); s.Failed != 1 || s.Invoked != 0 || s.Received != 2 || s.Skipped != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// TestBucketToFunction wires the real local bucket, trigger and Lambda runtime: a put under raw/ runs the
// function once with an event that names the object; the pipeline's own outputs trigger nothing.
func TestBucketToFunction(t *testing.T) {
	b, err := bucket.Open(filepath.Join(t.TempDir(), "bucket"), "taxistream-local")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rt := lambda.New(lambda.Config{RetryDelays: []time.Duration{time.Millisecond}})
	defer rt.Close()
	var mu sync.Mutex
	var got []events.S3EventRecord
	err = rt.Register("IngestFunction", lambda.Function{Handler: handler(func(ctx context.Context, e events.S3Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Records...)
		return nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	trig, err := New(Config{Bucket: b.Name(), Rules: templateRules}, rt)
	if err != nil {
		t.Fatal(err)
	}
	b.OnCreate(trig.Handle)
	ctx := context.Background()
	for _, k := range []string{"raw/a b+c.csv", "archive/2024/01/x.gz", "state/raw/a b+c.csv.json", "raw/notes.txt"} {
		if _, err := b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Name()), Key: aws.String(k), Body: strings.NewReader("a,b\n1,2\n")}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rt.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].S3.Object.URLDecodedKey != "raw/a b+c.csv" || got[0].S3.Object.Size != 8 || got[0].S3.Bucket.Name != b.Name() {
		t.Fatalf("function got %+v", got)
	}
	if s := trig.Stats(); s.Received != 4 || s.Invoked != 1 || s.Skipped != 3 {
		t.Errorf("trigger stats = %+v", s)
	}
	if s := rt.Stats("IngestFunction"); s.Invocations != 1 || s.Errors != 0 {
		t.Errorf("function stats = %+v", s)
	}
}

type handler func(context.Context, events.S3Event) error

func (h handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var e events.S3Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, err
	}
	return nil, h(ctx, e)
}

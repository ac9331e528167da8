package process

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/config"
)

// fakeS3 is an in-memory bucket with ETags and conditional writes (If-Match, If-None-Match: *);
// failPut, when set, decides whether a PutObject fails (cleanly: the object is not stored), failGet
// whether a GetObject does.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	etags   map[string]string
	puts    []string
	gets    []string
	failPut func(key string) bool
	failGet func(key string) bool
	// storeThenFail, when set, decides whether a PutObject that did not fail stores its object and
	// then fails anyway (a response lost after the write).
	storeThenFail func(key string) bool
	// ops, when ≥ 0, is how many more calls succeed: then the process "dies" and every call fails
	// without effect (a Lambda frozen at a timeout or killed; its remaining code has no effect).
	ops     int
	version int
}

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string][]byte{}, etags: map[string]string{}, ops: -1}
}

// dead counts a call against ops and reports whether the process has died.
func (f *fakeS3) dead() bool {
	if f.ops < 0 {
		return false
	}
	if f.ops == 0 {
		return true
	}
	f.ops--
	return false
}

var errInjected = errors.New("injected: service unavailable")

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := aws.ToString(in.Key)
	if f.dead() {
		return nil, errInjected
	}
	f.puts = append(f.puts, key)
	if f.failPut != nil && f.failPut(key) {
		return nil, errInjected
	}
	etag, exists := f.etags[key]
	if (in.IfNoneMatch != nil && exists) || (in.IfMatch != nil && (!exists || *in.IfMatch != etag)) {
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	f.version++
	f.objects[key] = b
	f.etags[key] = fmt.Sprintf(`"%d"`, f.version)
	if f.storeThenFail != nil && f.storeThenFail(key) {
		return nil, errInjected
	}
	return &s3.PutObjectOutput{ETag: aws.String(f.etags[key])}, nil
}

func (f *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := aws.ToString(in.Key)
	if f.dead() {
		return nil, errInjected
	}
	f.gets = append(f.gets, key)
	if f.failGet != nil && f.failGet(key) {
		return nil, errInjected
	}
	b, ok := f.objects[key]
	if !ok {
		return nil, &types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ContentLength: aws.Int64(int64(len(b))), ETag: aws.String(f.etags[key])}, nil
}

func (f *fakeS3) keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// outputKeys are the keys under processed/ and quarantine/ (not the ledgers under state/).
func (f *fakeS3) outputKeys() []string {
	return append(f.keys("processed/"), f.keys(QuarantinePrefix)...)
}

// testNow is the clock of the tests: after every pickup in the fixtures.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newTestHandler(t testing.TB, store *fakeS3, zones *Zones) (*Handler, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var logs, metrics bytes.Buffer
	h, err := New(context.Background(), config.Config{Bucket: "bucket", MetricsNamespace: "taxistream"}, Deps{
		S3: store, Log: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: &metrics,
		Now: func() time.Time { return testNow }, Zones: zones,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, &logs, &metrics
}

func loadEvent(t testing.TB, path string) events.KinesisTimeWindowEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisTimeWindowEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return ev
}

// readTrips reads every row of a Parquet object.
func readTrips(t testing.TB, b []byte) []TripRow {
	t.Helper()
	rows, err := parquet.Read[TripRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("reading parquet: %v", err)
	}
	return rows
}

// readQuarantine reads every line of a quarantine object.
func readQuarantine(t testing.TB, b []byte) []map[string]any {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("quarantine line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func zonesFile(t testing.TB, dir, name string) *Zones {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "zones", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := LoadZones(f)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

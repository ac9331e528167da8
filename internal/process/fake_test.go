package process

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/config"
)

// fakeS3 is an in-memory bucket; failPut, when set, decides whether a PutObject fails (cleanly: the
// object is not stored).
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    []string
	failPut func(key string) bool
}

func newFakeS3() *fakeS3 { return &fakeS3{objects: map[string][]byte{}} }

var errInjected = errors.New("injected: service unavailable")

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := aws.ToString(in.Key)
	f.puts = append(f.puts, key)
	if f.failPut != nil && f.failPut(key) {
		return nil, errInjected
	}
	f.objects[key] = b
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ContentLength: aws.Int64(int64(len(b)))}, nil
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

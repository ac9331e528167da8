package compact

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/config"
)

// fakeInvoker records the asynchronous invocations (continuations).
type fakeInvoker struct {
	mu       sync.Mutex
	payloads [][]byte
	names    []string
	err      error
}

func (f *fakeInvoker) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.payloads = append(f.payloads, in.Payload)
	f.names = append(f.names, aws.ToString(in.FunctionName))
	return &lambda.InvokeOutput{StatusCode: 202}, nil
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err) // an in-repo fixture missing is a failure
	}
	return b
}

func TestDecodeRequestFixtures(t *testing.T) {
	// events/schedule.json is what EventBridge sends on the schedule: aws-lambda-go's type reads it
	// strictly, and the handler treats it as a run over every partition.
	var ev events.EventBridgeEvent
	dec := json.NewDecoder(bytes.NewReader(fixture(t, "schedule.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" {
		t.Fatalf("events/schedule.json: %v %+v", err, ev)
	}
	req, err := DecodeRequest(fixture(t, "schedule.json"))
	if err != nil || req != (Request{}) {
		t.Errorf("schedule: %+v %v, want the zero request", req, err)
	}
	req, err = DecodeRequest(fixture(t, "compact.json"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Request{From: "2019-01-01", To: "2019-01-31"}, req); diff != "" {
		t.Errorf("events/compact.json (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"form":"2019-01-01"}`, `{"from":"01/01/2019"}`, `[1]`, `{"to":"2019-01-01","from":"2019-02-01"}`} {
		if _, err := DecodeRequest(json.RawMessage(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: error %v, want ErrBadRequest", bad, err)
		}
	}
	if req, err := DecodeRequest(nil); err != nil || req != (Request{}) {
		t.Errorf("empty payload: %+v %v", req, err)
	}
}

func testConfig() config.Config {
	return config.Config{Bucket: testBucket, FunctionName: "stack-compact", DeadlineMargin: 30 * time.Second,
		MaxContinuations: 20, CompactTargetMB: 128, MetricsNamespace: "taxistream"}
}

// TestHandlerContinuesBeforeTheDeadline: with a clock that runs fast, an invocation stops between
// partitions before its deadline and hands the rest to a continuation; following the chain compacts
// every partition once.
func TestHandlerContinuesBeforeTheDeadline(t *testing.T) {
	b := newTestBucket(t)
	dates := []string{"2019-01-01", "2019-01-02", "2019-01-03", "2019-01-04", "2019-01-05", "2019-01-06"}
	for i, d := range dates {
		putSources(t, b, d, "shardId-000000000000", genTrips(d, uint64(i), 60), 20)
	}
	inv := &fakeInvoker{}
	var clock time.Time
	var mu sync.Mutex
	now := func() time.Time { // each reading of the clock is 40 s later
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(40 * time.Second)
		return clock
	}
	var metrics bytes.Buffer
	h, err := New(context.Background(), testConfig(), Deps{S3: b, Lambda: inv, Now: now, Metrics: &metrics, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	payload := fixture(t, "schedule.json")
	compacted, invocations := 0, 0
	for {
		invocations++
		if invocations > 20 {
			t.Fatal("the chain does not end")
		}
		mu.Lock()
		clock = time.Now()
		mu.Unlock()
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(5*time.Minute))
		resp, err := h.Handle(ctx, payload)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		compacted += resp.Compacted
		if !resp.Continued {
			if !resp.Complete {
				t.Fatalf("invocation %d neither complete nor continued: %+v", invocations, resp)
			}
			break
		}
		payload = inv.payloads[len(inv.payloads)-1]
	}
	if invocations < 2 || compacted != len(dates) {
		t.Errorf("%d invocations compacted %d partitions; want a chain compacting %d", invocations, compacted, len(dates))
	}
	for _, d := range dates {
		if n := len(keys(t, b, PartitionPrefix(d))); n != 1 {
			t.Errorf("%s: %d files", d, n)
		}
	}
	var first Request
	if err := json.Unmarshal(inv.payloads[0], &first); err != nil || first.RunID == "" || first.Continuation != 1 || first.StartAfter == "" {
		t.Errorf("first continuation %s: %v", inv.payloads[0], err)
	}
	for _, n := range inv.names {
		if n != "stack-compact" {
			t.Errorf("continuation invoked %q", n)
		}
	}
	// One EMF line per invocation, with the dashboard's metrics.
	sc := bufio.NewScanner(&metrics)
	lines := 0
	for sc.Scan() {
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"CompactionRuns", "PartitionsCompacted", "ObjectsMerged", "ObjectsWritten", "RowsMerged", "DuplicatesDropped", "Errors", "Continuations"} {
			if _, ok := m[k]; !ok {
				t.Errorf("EMF line without %s: %s", k, sc.Text())
			}
		}
		if m["Function"] != "compact" || m["CompactionRuns"] != 1.0 {
			t.Errorf("EMF line %s", sc.Text())
		}
	}
	if lines != invocations {
		t.Errorf("%d EMF lines for %d invocations", lines, invocations)
	}
}

// TestHandlerReportsPartitionErrors: a partition that cannot be compacted (a source with a column the
// schema does not know) does not stop the others, and the invocation returns an error (failure queue).
func TestHandlerReportsPartitionErrors(t *testing.T) {
	b := newTestBucket(t)
	putSources(t, b, "2019-01-01", "shardId-000000000000", genTrips("2019-01-01", 1, 40), 20)
	putSources(t, b, "2019-01-02", "shardId-000000000000", genTrips("2019-01-02", 2, 40), 20)
	put(t, b, PartitionPrefix("2019-01-01")+"newer-writer.parquet", encodeWithExtraColumn(t))
	h, err := New(context.Background(), testConfig(), Deps{S3: b, Lambda: &fakeInvoker{}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.Handle(context.Background(), json.RawMessage(`{}`))
	if err == nil || !strings.Contains(err.Error(), "not in the schema") {
		t.Fatalf("error %v, want the unknown column named", err)
	}
	if resp.Compacted != 1 || len(keys(t, b, PartitionPrefix("2019-01-01"))) != 3 || len(keys(t, b, PlanPrefix)) != 0 {
		t.Errorf("response %+v: want 2019-01-02 compacted and 2019-01-01 untouched", resp)
	}
}

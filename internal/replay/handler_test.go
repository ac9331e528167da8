package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/obs"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// env is a handler over fakes: a bucket listing, a recording Lambda whose ingest invokes advance the clock.
type env struct {
	h       *Handler
	clock   *clock
	rec     *recorder
	lists   int
	logs    *bytes.Buffer
	metrics *bytes.Buffer
}

// newEnv builds a handler; perHandOff is how far each hand-off advances the clock; invokeErr, when set,
// decides the error of a hand-off.
func newEnv(t *testing.T, cfg config.Config, objs []object, perHandOff time.Duration, invokeErr func(ingest.Event) error) *env {
	t.Helper()
	e := &env{clock: &clock{now: t0}, rec: &recorder{}, logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}}
	lam := &fakeLambda{invoke: func(_ context.Context, in *lambda.InvokeInput) (*lambda.InvokeOutput, error) {
		if in.InvocationType != lambdatypes.InvocationTypeEvent {
			t.Errorf("InvocationType = %q, want Event", in.InvocationType)
		}
		if aws.ToString(in.FunctionName) == ingestFn {
			e.clock.Advance(perHandOff)
			if invokeErr != nil {
				var ev ingest.Event
				_ = json.Unmarshal(in.Payload, &ev)
				if err := invokeErr(ev); err != nil {
					return nil, err
				}
			}
		}
		e.rec.record(t, in)
		return &lambda.InvokeOutput{StatusCode: 202}, nil
	}}
	h, err := New(context.Background(), cfg, Deps{
		S3:      &fakeS3{list: listing(objs, &e.lists)},
		Lambda:  lam,
		Log:     obs.NewLogger(e.logs, "INFO"),
		Metrics: e.metrics,
		Now:     e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

// handle runs one invocation with a Lambda deadline of timeout from the fake clock's now.
func (e *env) handle(t *testing.T, raw []byte, timeout time.Duration) (Response, error) {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), e.clock.Now().Add(timeout))
	defer cancel()
	return e.h.Handle(ctx, raw)
}

// chain runs raw and then every continuation it sends itself, like Lambda would.
func (e *env) chain(t *testing.T, raw []byte, timeout time.Duration) []Response {
	t.Helper()
	var resps []Response
	for i := 0; ; i++ {
		if i > 20 {
			t.Fatal("more than 20 invocations")
		}
		resp, err := e.handle(t, raw, timeout)
		if err != nil {
			t.Fatalf("invocation %d (%s): %v", i, raw, err)
		}
		resps = append(resps, resp)
		if !resp.Continued {
			return resps
		}
		e.rec.mu.Lock()
		next := e.rec.continuations[len(e.rec.continuations)-1]
		e.rec.mu.Unlock()
		raw, _ = json.Marshal(next)
	}
}

func ingestibleKeys(objs []object) []string {
	var keys []string
	for _, o := range objs {
		if Ingestible(o.key) {
			keys = append(keys, o.key)
		}
	}
	return keys
}

func TestContinuationsHandOffEveryObjectOnce(t *testing.T) {
	objs := bucketObjects(50, true)
	e := newEnv(t, testConfig(), objs, time.Second, nil)
	e.h.pageSize = 7 // several pages per invocation
	// 50 s of Lambda time, 30 s of margin: about 20 hand-offs (1 s each) per invocation → 20, 20, 10.
	resps := e.chain(t, []byte(`{"prefix":"raw/2019/","replay_id":"r-50"}`), 50*time.Second)

	if len(resps) != 3 {
		t.Fatalf("got %d invocations, want 3 (two continuations): %+v", len(resps), resps)
	}
	var objects, skipped int
	var bytes int64
	for i, r := range resps {
		objects += r.Objects
		skipped += r.Skipped
		bytes += r.Bytes
		if r.ReplayID != "r-50" || r.Continuation != i {
			t.Errorf("response %d: replay id %q continuation %d, want r-50 and %d", i, r.ReplayID, r.Continuation, i)
		}
		if last := i == len(resps)-1; r.Continued == last || r.Complete != last {
			t.Errorf("response %d: continued %v complete %v", i, r.Continued, r.Complete)
		}
	}
	want := ingestibleKeys(objs)
	if objects != len(want) || skipped != 5 {
		t.Errorf("objects %d skipped %d over the chain, want %d and 5", objects, skipped, len(want))
	}
	var wantBytes int64
	for i := range 50 {
		wantBytes += int64(100 + i)
	}
	if bytes != wantBytes {
		t.Errorf("bytes %d, want %d", bytes, wantBytes)
	}
	got := e.rec.keysHandedOff()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s handed off %d times, want once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct keys handed off, want %d", len(got), len(want))
	}
	for _, ev := range e.rec.handOffs {
		if ev.Kind != ingest.KindReplay || ev.Bucket != testBucket || ev.ReplayID != "r-50" || ev.Size < 100 ||
			ev.ETag != "etag-"+ev.Key[len(ev.Key)-8:] {
			t.Errorf("hand-off %+v: want kind replay, bucket, replay id r-50, size, unquoted etag", ev)
			break
		}
	}
	for i, c := range e.rec.continuations {
		if c.Continuation != i+1 || c.ReplayID != "r-50" || c.Prefix != "raw/2019/" || c.StartAfter != resps[i].LastKey {
			t.Errorf("continuation %d = %+v, want continuation %d after %q", i, c, i+1, resps[i].LastKey)
		}
	}
	if n := strings.Count(e.logs.String(), `"message":"replay"`); n != 3 {
		t.Errorf("%d summary log lines, want 3 (one per invocation):\n%s", n, e.logs)
	}
	if n := strings.Count(e.metrics.String(), "\n"); n != 3 {
		t.Errorf("%d EMF lines, want 3", n)
	}
}

func TestMaxObjectsAcrossContinuations(t *testing.T) {
	objs := bucketObjects(50, false)
	e := newEnv(t, testConfig(), objs, time.Second, nil)
	resps := e.chain(t, []byte(`{"max_objects":33,"replay_id":"r-33"}`), 50*time.Second)
	total := 0
	for _, r := range resps {
		total += r.Objects
	}
	if len(resps) != 2 || total != 33 || !resps[1].Complete {
		t.Fatalf("got %d invocations handing off %d objects, want 2 and 33: %+v", len(resps), total, resps)
	}
	if c := e.rec.continuations[0]; c.MaxObjects != 33-resps[0].Objects {
		t.Errorf("continuation max_objects = %d, want %d", c.MaxObjects, 33-resps[0].Objects)
	}
	want := ingestibleKeys(objs)[:33]
	got := e.rec.keysHandedOff()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s handed off %d times, want once", k, got[k])
		}
	}
	if len(got) != 33 {
		t.Errorf("%d keys handed off, want 33", len(got))
	}
}

func TestDryRunInvokesNothing(t *testing.T) {
	objs := bucketObjects(50, true)
	e := newEnv(t, testConfig(), objs, 0, nil)
	resp, err := e.handle(t, []byte(`{"dry_run":true,"replay_id":"dry"}`), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.rec.inputs) != 0 {
		t.Errorf("a dry run invoked %d times", len(e.rec.inputs))
	}
	want := ingestibleKeys(objs)
	if resp.Objects != 50 || resp.Skipped != 5 || !resp.Complete || !resp.DryRun || resp.Continued {
		t.Errorf("response %+v, want 50 objects, 5 skipped, complete dry run", resp)
	}
	if diff := cmp.Diff(want, resp.Keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}

	t.Run("stops at its deadline without continuing", func(t *testing.T) {
		e := newEnv(t, testConfig(), objs, 0, nil)
		e.h.pageSize = 10
		// The listing advances the clock instead of the (absent) invokes: 10 s a page.
		list := e.h.s3.(*fakeS3).list
		e.h.s3 = &fakeS3{list: func(ctx context.Context, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
			e.clock.Advance(10 * time.Second)
			return list(ctx, in)
		}}
		resp, err := e.handle(t, []byte(`{"dry_run":true}`), 55*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.rec.inputs) != 0 || resp.Continued || resp.Complete || resp.LastKey == "" || resp.Objects == 0 || resp.Objects >= 50 {
			t.Errorf("response %+v after %d invokes; want a partial dry run with last_key and no invoke", resp, len(e.rec.inputs))
		}
	})
}

func TestMaxInFlight(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxInFlight = n
			var cur, peak atomic.Int32
			release := make(chan struct{})
			var once sync.Once
			rec := &recorder{}
			h, err := New(context.Background(), cfg, Deps{
				S3: &fakeS3{list: listing(bucketObjects(20, false), nil)},
				Lambda: &fakeLambda{invoke: func(ctx context.Context, in *lambda.InvokeInput) (*lambda.InvokeOutput, error) {
					c := cur.Add(1)
					defer cur.Add(-1)
					for {
						p := peak.Load()
						if c <= p || peak.CompareAndSwap(p, c) {
							break
						}
					}
					if c == int32(n) {
						once.Do(func() { close(release) })
					}
					select {
					case <-release:
					case <-time.After(5 * time.Second):
						t.Errorf("only %d invokes in flight after 5 s, want %d", cur.Load(), n)
					}
					rec.record(t, in)
					return &lambda.InvokeOutput{StatusCode: 202}, nil
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := h.Handle(context.Background(), []byte(`{}`))
			if err != nil || resp.Objects != 20 {
				t.Fatalf("Handle = %+v, %v", resp, err)
			}
			if p := peak.Load(); p != int32(n) {
				t.Errorf("peak in flight %d, want %d", p, n)
			}
			if len(rec.keysHandedOff()) != 20 {
				t.Errorf("%d keys handed off, want 20", len(rec.keysHandedOff()))
			}
		})
	}
}

func TestHandOffFailureStopsWithResumeKey(t *testing.T) {
	objs := bucketObjects(30, false)
	keys := ingestibleKeys(objs)
	cfg := testConfig()
	cfg.MaxInFlight = 1
	boom := errors.New("TooManyRequestsException")
	e := newEnv(t, cfg, objs, 0, func(ev ingest.Event) error {
		if ev.Key == keys[10] {
			return boom
		}
		return nil
	})
	resp, err := e.handle(t, []byte(`{"replay_id":"r-f"}`), 15*time.Minute)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `resume with start_after "`+keys[9]+`"`) {
		t.Fatalf("error = %v, want the invoke error and a resume key %s", err, keys[9])
	}
	if resp.Objects != 10 || resp.LastKey != keys[9] || resp.Complete || resp.Continued {
		t.Errorf("response %+v, want 10 objects up to %s", resp, keys[9])
	}
	if len(e.rec.handOffs) != 10 || len(e.rec.continuations) != 0 {
		t.Errorf("%d hand-offs %d continuations after the failure, want 10 and 0", len(e.rec.handOffs), len(e.rec.continuations))
	}
	if !strings.Contains(e.logs.String(), `"message":"replay failed"`) {
		t.Errorf("no failure summary in the log:\n%s", e.logs)
	}
}

func TestContinuationLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxContinuations = 1
	e := newEnv(t, cfg, bucketObjects(50, false), time.Second, nil)
	resp, err := e.handle(t, []byte(`{"replay_id":"r-l"}`), 50*time.Second)
	if err != nil || !resp.Continued {
		t.Fatalf("first invocation: %+v, %v", resp, err)
	}
	raw, _ := json.Marshal(e.rec.continuations[0])
	resp, err = e.handle(t, raw, 50*time.Second)
	if !errors.Is(err, ErrTooManyContinuations) || resp.Continued || resp.Complete {
		t.Fatalf("second invocation: %+v, %v; want ErrTooManyContinuations", resp, err)
	}
	if !strings.Contains(err.Error(), `resume with start_after "`+resp.LastKey+`"`) {
		t.Errorf("error %v does not name the resume key %s", err, resp.LastKey)
	}
	if len(e.rec.continuations) != 1 {
		t.Errorf("%d continuations, want 1", len(e.rec.continuations))
	}
}

func TestDeadlineBeforeAnything(t *testing.T) {
	e := newEnv(t, testConfig(), bucketObjects(5, false), time.Second, nil)
	_, err := e.handle(t, []byte(`{}`), 10*time.Second) // less than the 30 s margin
	if err == nil || !strings.Contains(err.Error(), "deadline reached before anything was listed") {
		t.Fatalf("error = %v, want the no-progress error", err)
	}
	if len(e.rec.inputs) != 0 {
		t.Errorf("%d invokes, want none", len(e.rec.inputs))
	}
}

func TestBadRequestsTouchNothing(t *testing.T) {
	for _, raw := range []string{`{"prefx":"raw/"}`, `{"prefix":"state/"}`, `{"prefix":"raw/../state/"}`, `{"max_objects":-2}`} {
		t.Run(raw, func(t *testing.T) {
			e := newEnv(t, testConfig(), bucketObjects(5, false), 0, nil)
			_, err := e.handle(t, []byte(raw), time.Minute)
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error = %v, want ErrBadRequest", err)
			}
			if e.lists != 0 || len(e.rec.inputs) != 0 {
				t.Errorf("%d listings %d invokes, want none", e.lists, len(e.rec.inputs))
			}
			if !strings.Contains(e.logs.String(), "replay refused") {
				t.Errorf("no log line for the refusal:\n%s", e.logs)
			}
		})
	}
}

func TestEmptyPrefixReplaysRaw(t *testing.T) {
	objs := append(bucketObjects(3, false), object{"rawish/x.csv", 1}, object{"state/x.csv", 1})
	e := newEnv(t, testConfig(), objs, 0, nil)
	resp, err := e.handle(t, []byte(`{"prefix":""}`), time.Minute)
	if err != nil || resp.Prefix != "raw/" || resp.Objects != 3 {
		t.Fatalf("Handle = %+v, %v; want 3 objects under raw/", resp, err)
	}
}

func TestNew(t *testing.T) {
	deps := Deps{S3: &fakeS3{}, Lambda: &fakeLambda{}}
	if _, err := New(context.Background(), testConfig(), deps); err != nil {
		t.Fatalf("New: %v", err)
	}
	// Settings are config.Load's to check; New reports every missing dependency at once.
	_, err := New(context.Background(), testConfig(), Deps{})
	for _, want := range []string{"Deps.S3", "Deps.Lambda"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v does not mention %s", err, want)
		}
	}
}

func TestIngestible(t *testing.T) {
	tests := map[string]bool{
		"raw/2019/yellow_tripdata_2019-01.csv":     true,
		"raw/2019/yellow_tripdata_2019-01.csv.gz":  true,
		"raw/2024/yellow_tripdata_2024-01.parquet": true,
		"raw/2024/GREEN.CSV":                       true,
		"raw/2019/":                                false,
		"raw/2019/README.md":                       false,
		"raw/2019/a.csv.bak":                       false,
		"raw/2019/a.json":                          false,
		"raw/2019/csv":                             false,
	}
	for key, want := range tests {
		if got := Ingestible(key); got != want {
			t.Errorf("Ingestible(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestMetricsGolden(t *testing.T) {
	e := newEnv(t, testConfig(), bucketObjects(6, true), time.Second, nil)
	if _, err := e.handle(t, []byte(`{"replay_id":"r-golden"}`), 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "emf.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, e.metrics.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), e.metrics.String()); diff != "" {
		t.Errorf("EMF line (-want +got):\n%s", diff)
	}
}

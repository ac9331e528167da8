package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/replay"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/testpeers"
)

const (
	bucket   = "taxistream-123456789012-us-east-1"
	ingestFn = "taxistream-ingest"
	replayFn = "taxistream-replay"
)

// invocation is one Lambda Invoke REST call received by lambdaRecorder.
type invocation struct {
	Function string
	Type     string // X-Amz-Invocation-Type
	Payload  []byte
}

// lambdaRecorder is an httptest server speaking the Lambda Invoke REST API
// (POST /2015-03-31/functions/<name>/invocations): it records each call and answers 202 to Event
// invokes after delay.
type lambdaRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	calls []invocation
}

func startLambdaRecorder(t *testing.T, delay time.Duration) *lambdaRecorder {
	t.Helper()
	l := &lambdaRecorder{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/2015-03-31/functions/")
		name, ok2 := strings.CutSuffix(name, "/invocations")
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !ok || !ok2 {
			http.Error(w, `{"message":"unexpected request"}`, http.StatusNotFound)
			t.Errorf("unexpected Lambda request %s %s", r.Method, r.URL)
			return
		}
		l.mu.Lock()
		l.calls = append(l.calls, invocation{Function: name, Type: r.Header.Get("X-Amz-Invocation-Type"), Payload: body})
		l.mu.Unlock()
		time.Sleep(delay)
		if r.Header.Get("X-Amz-Invocation-Type") != "Event" {
			http.Error(w, `{"message":"want Event"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *lambdaRecorder) invocations() []invocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]invocation(nil), l.calls...)
}

// setup starts gofakes3 with 12 green (before events/replay.json's start_after) and 12 yellow objects,
// a .pdf (skipped), and the Lambda recorder; it returns the bootstrap's environment.
func setup(t *testing.T, delay time.Duration) (*testpeers.S3, *lambdaRecorder, map[string]string, []string) {
	t.Helper()
	s3 := testpeers.StartS3(t)
	s3.CreateBucket(t, bucket)
	var yellow []string
	for m := 1; m <= 12; m++ {
		s3.Put(t, bucket, fmt.Sprintf("raw/2019/green_tripdata_2019-%02d.csv", m), []byte("VendorID\n1\n"))
		k := fmt.Sprintf("raw/2019/yellow_tripdata_2019-%02d.csv.gz", m)
		s3.Put(t, bucket, k, []byte(fmt.Sprintf("gz-%d", m)))
		yellow = append(yellow, k)
	}
	s3.Put(t, bucket, "raw/2019/yellow_tripdata_dictionary.pdf", []byte("notes"))
	lam := startLambdaRecorder(t, delay)
	env := s3.Env()
	env["AWS_ENDPOINT_URL_LAMBDA"] = lam.URL
	env["BUCKET_NAME"] = bucket
	env["INGEST_FUNCTION_NAME"] = ingestFn
	env["AWS_LAMBDA_FUNCTION_NAME"] = replayFn
	return s3, lam, env, yellow
}

func readEvent(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", "replay.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertHandOffs checks that every yellow object was handed to IngestFunction once, as an Event with
// the replay id, and returns the continuation payloads.
func assertHandOffs(t *testing.T, calls []invocation, yellow []string, replayID string) []replay.Request {
	t.Helper()
	seen := map[string]int{}
	var conts []replay.Request
	for _, c := range calls {
		if c.Type != "Event" {
			t.Errorf("invoke of %s with X-Amz-Invocation-Type %q, want Event", c.Function, c.Type)
		}
		switch c.Function {
		case ingestFn:
			var ev ingest.Event
			if err := json.Unmarshal(c.Payload, &ev); err != nil {
				t.Fatalf("hand-off payload %s: %v", c.Payload, err)
			}
			if ev.Kind != ingest.KindReplay || ev.Bucket != bucket || ev.ReplayID != replayID || ev.ETag == "" || ev.Size == 0 {
				t.Errorf("hand-off %+v: want kind replay, bucket %s, replay id %s, etag and size", ev, bucket, replayID)
			}
			seen[ev.Key]++
		case replayFn:
			var req replay.Request
			if err := json.Unmarshal(c.Payload, &req); err != nil {
				t.Fatalf("continuation payload %s: %v", c.Payload, err)
			}
			conts = append(conts, req)
		default:
			t.Errorf("invoke of unexpected function %q", c.Function)
		}
	}
	for _, k := range yellow {
		if seen[k] != 1 {
			t.Errorf("%s handed off %d times, want once", k, seen[k])
		}
	}
	if len(seen) != len(yellow) {
		t.Errorf("%d keys handed off, want the %d after start_after: %v", len(seen), len(yellow), seen)
	}
	return conts
}

// The built bootstrap (bin/native/replay/bootstrap, `make build-native`) under the Runtime Interface
// Emulator with events/replay.json, real SDK clients pointed at gofakes3 and a Lambda recorder.
func TestBootstrapUnderRIE(t *testing.T) {
	bootstrap := testenv.Bootstrap(t, "replay")
	testenv.RIE(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("events/replay.json", func(t *testing.T) {
		_, lam, env, yellow := setup(t, 0)
		rie := testpeers.StartRIE(t, bootstrap, env)
		body, err := rie.Invoke(ctx, readEvent(t))
		if err != nil {
			t.Fatalf("Invoke: %v (body %s)", err, body)
		}
		var resp replay.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("response %s: %v", body, err)
		}
		if resp.ReplayID != "replay-2024-05-14T10-00-00Z-7f3a" || resp.Objects != 12 || resp.Skipped != 1 || !resp.Complete || resp.Continued {
			t.Errorf("response %+v, want 12 objects, 1 skipped (the .pdf), complete", resp)
		}
		if conts := assertHandOffs(t, lam.invocations(), yellow, resp.ReplayID); len(conts) != 0 {
			t.Errorf("%d continuations, want none", len(conts))
		}
		for _, want := range []string{`"message":"replay"`, `"ObjectsHandedOff":12`} {
			if !strings.Contains(rie.Stdout(), want) {
				t.Errorf("the function's output lacks %s:\n%s", want, rie.Stdout())
			}
		}
		if bad := rie.LogLinesWithoutRequestID(); len(bad) > 0 {
			t.Errorf("log lines without the invocation's requestId:\n%s", strings.Join(bad, "\n"))
		}
		if d, ok := rie.InitDuration(); !ok || d <= 0 {
			t.Errorf("no init duration in the emulator's log")
		}
	})

	// Bad requests are refused before anything is listed or invoked. The trailing-data case checks that the
	// function sees the payload as sent: the runtime's own decoder would keep the first value only.
	for _, bad := range []struct{ name, payload, want string }{
		{"prefix outside raw/", `{"prefix":"state/","replay_id":"x"}`, `prefix "state/" is outside raw/`},
		{"trailing data", `{"prefix":"raw/","replay_id":"x"} {"prefix":"state/"}`, "trailing data"},
		{"continuation beyond MAX_CONTINUATIONS", `{"replay_id":"x","continuation":99999999}`, "continuation 99999999: want 0 to"},
	} {
		t.Run("bad request/"+bad.name, func(t *testing.T) {
			_, lam, env, _ := setup(t, 0)
			rie := testpeers.StartRIE(t, bootstrap, env)
			_, err := rie.Invoke(ctx, []byte(bad.payload))
			var fe *testpeers.FunctionError
			if !errors.As(err, &fe) || !strings.Contains(fe.Message, bad.want) {
				t.Fatalf("Invoke: err = %v, want a function error containing %q", err, bad.want)
			}
			if n := len(lam.invocations()); n != 0 {
				t.Errorf("%d invokes for a bad request", n)
			}
		})
	}

	// A 4 s timeout, a 2.5 s margin and 150 ms per hand-off (12 of them): the replay continues itself.
	// The test plays Lambda: it runs each continuation the function sends itself through the emulator.
	t.Run("continues itself before its deadline", func(t *testing.T) {
		_, lam, env, yellow := setup(t, 150*time.Millisecond)
		env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "4"
		env["DEADLINE_MARGIN"] = "2500ms"
		env["REPLAY_MAX_IN_FLIGHT"] = "1"
		rie := testpeers.StartRIE(t, bootstrap, env)
		payload := readEvent(t)
		var resps []replay.Response
		for i := 0; ; i++ {
			if i > 12 {
				t.Fatal("more than 12 invocations")
			}
			body, err := rie.Invoke(ctx, payload)
			if err != nil {
				t.Fatalf("invocation %d: %v (body %s)", i, err, body)
			}
			var resp replay.Response
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("response %s: %v", body, err)
			}
			resps = append(resps, resp)
			if !resp.Continued {
				break
			}
			calls := lam.invocations()
			last := calls[len(calls)-1]
			if last.Function != replayFn {
				t.Fatalf("the last invoke was of %s, want the continuation", last.Function)
			}
			payload = last.Payload
		}
		conts := assertHandOffs(t, lam.invocations(), yellow, "replay-2024-05-14T10-00-00Z-7f3a")
		if len(resps) < 2 || len(conts) != len(resps)-1 || !resps[len(resps)-1].Complete {
			t.Errorf("%d invocations, %d continuations, last %+v; want a chain of 2 or more ending complete", len(resps), len(conts), resps[len(resps)-1])
		}
		total := 0
		for i, r := range resps {
			total += r.Objects
			if r.Continuation != i {
				t.Errorf("invocation %d reports continuation %d", i, r.Continuation)
			}
		}
		if total != 12 {
			t.Errorf("%d objects over the chain, want 12", total)
		}
	})
}

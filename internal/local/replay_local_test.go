package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/replay"
)

// slowInvoker makes every Invoke take a while, so that a replay invocation runs out of time part-way
// through a prefix and continues itself.
type slowInvoker struct {
	next  replay.Invoker
	delay time.Duration
}

func (s slowInvoker) Invoke(ctx context.Context, in *awslambda.InvokeInput, optFns ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error) {
	time.Sleep(s.delay)
	return s.next.Invoke(ctx, in, optFns...)
}

// lazyHandler builds its handler on the first invoke.
type lazyHandler struct {
	once  sync.Once
	build func() (lambda.Handler, error)
	h     lambda.Handler
	err   error
}

func (l *lazyHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	l.once.Do(func() { l.h, l.err = l.build() })
	if l.err != nil {
		return nil, l.err
	}
	return l.h.Invoke(ctx, payload)
}

// TestReplayEndToEnd replays a prefix of 50 objects through the local cloud: ReplayFunction (with a 2 s
// timeout and a slow hand-off, so it has to continue itself at least twice) hands every object to
// IngestFunction with its replay id; every object is ingested exactly once for that replay id, every row
// reaches the stream once, and replaying with the same id again sends nothing.
func TestReplayEndToEnd(t *testing.T) {
	var c *Cloud
	c = startCloud(t, Options{
		LimitsOff:        true,
		ScheduleEvery:    time.Hour, // this test counts ingest invocations, which the sweeper's schedule would add to
		FunctionTimeouts: map[string]time.Duration{ReplayFunction: 2 * time.Second},
		WrapHandler: func(id string, h lambda.Handler) lambda.Handler {
			if id != ReplayFunction {
				return h
			}
			// The template's ReplayFunction, with a slow invoker and a 1 s deadline margin; built on its
			// first invoke, when the cloud exists.
			return &lazyHandler{build: func() (lambda.Handler, error) {
				cfg, err := config.Load(func(k string) string {
					switch k {
					case "BUCKET_NAME":
						return c.Bucket.Name()
					case "INGEST_FUNCTION_NAME":
						return c.FunctionName(IngestFunction)
					case "AWS_LAMBDA_FUNCTION_NAME":
						return c.FunctionName(ReplayFunction)
					case "DEADLINE_MARGIN":
						return "1s"
					case "REPLAY_MAX_IN_FLIGHT":
						return "1"
					}
					return ""
				}, config.Replay)
				if err != nil {
					return nil, err
				}
				r, err := replay.New(context.Background(), cfg, replay.Deps{S3: c.Bucket, Lambda: slowInvoker{next: c.Lambda, delay: 70 * time.Millisecond},
					Log: slog.New(slog.NewJSONHandler(io.Discard, nil))})
				if err != nil {
					return nil, err
				}
				return lambda.NewHandler(r.Handle), nil
			}}
		},
	})
	ctx := context.Background()
	const objects, rowsEach = 50, 40
	for i := range objects {
		var buf bytes.Buffer
		if _, err := gen.Write(&buf, gen.Options{Taxi: "yellow", Layout: 2019, Rows: rowsEach, Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		// Quietly: the objects are already in raw/ (as after an earlier run); only the replay ingests them.
		if _, err := c.PutObjectQuietly(ctx, fmt.Sprintf("raw/replay/trips %02d.csv", i), &buf); err != nil {
			t.Fatal(err)
		}
	}
	// Not under the prefix: must not be replayed.
	if _, err := c.PutObjectQuietly(ctx, "raw/other/x.csv", strings.NewReader("a,b\n1,2\n")); err != nil {
		t.Fatal(err)
	}

	invokeReplay := func(replayID string) replay.Response {
		t.Helper()
		payload := fmt.Sprintf(`{"prefix":"raw/replay/","replay_id":%q}`, replayID)
		out, err := c.Lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(c.FunctionName(ReplayFunction)),
			InvocationType: lambdatypes.InvocationTypeRequestResponse, Payload: []byte(payload)})
		if err != nil || out.FunctionError != nil {
			t.Fatalf("invoking the replay: %v %s", err, out.Payload)
		}
		var resp replay.Response
		if err := json.Unmarshal(out.Payload, &resp); err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := c.Drain(dctx); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	first := invokeReplay("replay-test-1")
	if !first.Continued {
		t.Errorf("first replay invocation did not continue itself (handed off %d objects): the test no longer exercises continuations", first.Objects)
	}
	stats := c.Lambda.Stats(c.FunctionName(ReplayFunction))
	if stats.Invocations < 3 {
		t.Errorf("%d replay invocations, want at least 3 (two continuations)", stats.Invocations)
	}
	manifests := replayManifests(t, c, "replay-test-1")
	if len(manifests) != objects {
		t.Fatalf("%d replay manifests, want %d", len(manifests), objects)
	}
	var sent int64
	for key, m := range manifests {
		if m.Status != ingest.StatusDone || m.Claims != 1 || m.Counts.RowsRead != rowsEach || m.Counts.RecordsSent+m.Counts.Rejected != rowsEach {
			t.Errorf("%s: %s, %d claims, %+v; want done once with %d rows", key, m.Status, m.Claims, m.Counts, rowsEach)
		}
		sent += m.Counts.RecordsSent
	}
	if got := c.Stream.Stats().RecordsStored; got == 0 {
		t.Errorf("nothing stored in the stream")
	}
	ingests := c.Lambda.Stats(c.FunctionName(IngestFunction)).Invocations
	if ingests != objects {
		t.Errorf("%d ingest invocations, want %d (one per object)", ingests, objects)
	}
	s, err := c.Summarize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.ArchiveDistinct != sent || s.ConsumerDistinct != sent {
		t.Errorf("archive %d and consumer %d distinct records, want the %d replayed", s.ArchiveDistinct, s.ConsumerDistinct, sent)
	}

	// The same replay id again: every object is a duplicate for it, nothing new reaches the stream.
	stored := c.Stream.Stats().RecordsStored
	invokeReplay("replay-test-1")
	if got := c.Stream.Stats().RecordsStored; got != stored {
		t.Errorf("replaying the same id stored %d more records", got-stored)
	}
	if got := len(replayManifests(t, c, "replay-test-1")); got != objects {
		t.Errorf("%d manifests after the second replay, want %d", got, objects)
	}
}

func replayManifests(t *testing.T, c *Cloud, replayID string) map[string]ingest.Manifest {
	t.Helper()
	out := map[string]ingest.Manifest{}
	err := each(context.Background(), c.Bucket, c.Bucket.Name(), "state/replay/"+replayID+"/", func(key string, body []byte) error {
		var m ingest.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		out[key] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

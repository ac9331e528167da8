package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
)

const sweepEvent = `{"taxistream":"sweep"}`

// stuckObject leaves raw/yellow.csv (200 rows) running at row 50 with a dead owner: every manifest write
// after the claim and two checkpoints fails, as when an invocation dies mid-object.
func stuckObject(t *testing.T, e *env) json.RawMessage {
	t.Helper()
	ev := e.putObject("raw/yellow.csv", tlcCSV(200))
	writes := 0
	e.s3.onPut = func(in *s3.PutObjectInput) error {
		if k := aws.ToString(in.Key); strings.HasPrefix(k, "state/ingest/") {
			if writes++; writes > 3 {
				return errBoom
			}
		}
		return nil
	}
	ctx, cancel := e.withDeadline(10 * time.Minute)
	defer cancel()
	if _, err := e.handle(ctx, ev); !errors.Is(err, errBoom) {
		t.Fatalf("Handle: %v, want the S3 error", err)
	}
	e.s3.onPut = nil
	if m := e.manifest("state/ingest/"); m.Status != StatusRunning || m.Counts.RowsRead != 50 {
		t.Fatalf("manifest: %s at row %d, want running at row 50", m.Status, m.Counts.RowsRead)
	}
	if got := e.s3.keys(inflightPrefix); len(got) != 1 {
		t.Fatalf("in-flight markers %v, want one", got)
	}
	return ev
}

func (e *env) sweep(t *testing.T, raw string) Result {
	t.Helper()
	res, err := e.handle(context.Background(), json.RawMessage(raw))
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return res
}

func outcomes(res Result) []string {
	var out []string
	for _, o := range res.Objects {
		out = append(out, o.Outcome)
	}
	return out
}

func TestSweepResumesAStuckObject(t *testing.T) {
	e := newEnv(t, nil)
	stuckObject(t, e)
	e.inv.take()

	// Within the dead owner's lease, and within the grace after it: the sweeper leaves it alone.
	if res := e.sweep(t, sweepEvent); len(res.Objects) != 0 {
		t.Fatalf("within the lease: %+v, want nothing", res)
	}
	e.clock.advance(time.Hour) // the lease (deadline + 2 min) and the 15 min grace are over
	res := e.sweep(t, sweepEvent)
	if got := outcomes(res); len(got) != 1 || got[0] != OutcomeResumed {
		t.Fatalf("outcomes %v, want one resumed", got)
	}
	if !strings.Contains(res.Objects[0].Reason, "attempt 1 of 5") || !strings.Contains(res.Objects[0].Reason, "timeout or a crash") {
		t.Errorf("reason %q", res.Objects[0].Reason)
	}
	evs := e.inv.take()
	if len(evs) != 1 || evs[0].Kind != KindContinuation || evs[0].Key != "raw/yellow.csv" || evs[0].ETag == "" {
		t.Fatalf("hand-overs %+v, want one continuation of raw/yellow.csv", evs)
	}
	m := e.manifest("state/ingest/")
	if m.Sweeps != 1 || !m.NextSweepAt.After(e.clock.Now()) {
		t.Errorf("manifest sweeps %d next %v, want 1 and a later time", m.Sweeps, m.NextSweepAt)
	}
	// The continuation finishes the object from its checkpoint: no row lost, none sent twice.
	payload, _ := json.Marshal(evs[0])
	out, err := e.handle(context.Background(), payload)
	if err != nil || out.Objects[0].Outcome != OutcomeDone || out.Objects[0].RowsRead != 150 {
		t.Fatalf("continuation: %+v %v, want done reading 150 rows", out, err)
	}
	if got := e.sink.data(); len(uniq(got)) != 200 {
		t.Errorf("%d distinct records, want 200", len(uniq(got)))
	}
	checkReconciles(t, e.manifest("state/ingest/"))
	if got := e.s3.keys(inflightPrefix); len(got) != 0 {
		t.Errorf("in-flight markers after done: %v, want none", got)
	}
	e.clock.advance(24 * time.Hour)
	if res := e.sweep(t, sweepEvent); len(res.Objects) != 0 {
		t.Errorf("sweep after done: %+v, want nothing", res)
	}
}

// TestSweepGivesUpWithTheReason: hand-overs that never finish the object are retried with backoff,
// SWEEP_MAX_ATTEMPTS times, then the object is failed with the last error in its reason.
func TestSweepGivesUpWithTheReason(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.SweepMaxAttempts = 3 })
	stuckObject(t, e)
	wantWaits := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour}
	e.clock.advance(time.Hour)
	for attempt := 1; attempt <= 3; attempt++ {
		res := e.sweep(t, sweepEvent)
		if got := outcomes(res); len(got) != 1 || got[0] != OutcomeResumed {
			t.Fatalf("attempt %d: outcomes %v, want resumed", attempt, got)
		}
		e.inv.take() // the hand-over is lost: the continuation never runs
		m := e.manifest("state/ingest/")
		if wait := m.NextSweepAt.Sub(e.clock.Now()); wait != wantWaits[attempt-1] {
			t.Errorf("attempt %d: next sweep in %v, want %v", attempt, wait, wantWaits[attempt-1])
		}
		// Before the backoff is over the object waits, and says when it is due.
		e.clock.advance(wantWaits[attempt-1] / 2)
		if res := e.sweep(t, sweepEvent); len(res.Objects) != 1 || res.Objects[0].Outcome != OutcomeWaiting {
			t.Fatalf("attempt %d, within the backoff: %+v, want waiting", attempt, res)
		}
		e.clock.advance(wantWaits[attempt-1])
	}
	res := e.sweep(t, sweepEvent)
	if got := outcomes(res); len(got) != 1 || got[0] != OutcomeFailed {
		t.Fatalf("outcomes %v, want failed", got)
	}
	m := e.manifest("state/ingest/")
	if m.Status != StatusFailed || !strings.Contains(m.Reason, "not finished after 3 sweeper attempts") || !strings.Contains(m.Reason, "replay the object") {
		t.Errorf("manifest %s: %q", m.Status, m.Reason)
	}
	if len(e.inv.take()) != 0 {
		t.Error("a hand-over after giving up")
	}
	if got := e.s3.keys(inflightPrefix); len(got) != 0 {
		t.Errorf("in-flight markers after failing: %v, want none", got)
	}
}

// TestSweepIdleResumesAtOnce: a sender that knows nothing runs (the local cloud, idle or just started)
// has the dead owner's live-looking lease released and the object resumed at once; the attempt counts.
func TestSweepIdleResumesAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	stuckObject(t, e)
	e.inv.take()
	res := e.sweep(t, `{"taxistream":"sweep","idle":true}`)
	if got := outcomes(res); len(got) != 1 || got[0] != OutcomeResumed {
		t.Fatalf("outcomes %v, want resumed within the lease", got)
	}
	if m := e.manifest("state/ingest/"); m.Sweeps != 1 {
		t.Errorf("sweeps %d, want 1 (an idle sweep's attempt counts)", m.Sweeps)
	}
	evs := e.inv.take()
	payload, _ := json.Marshal(evs[0])
	out, err := e.handle(context.Background(), payload)
	if err != nil || out.Objects[0].Outcome != OutcomeDone || out.Objects[0].RowsRead != 150 {
		t.Fatalf("continuation: %+v %v, want done reading the last 150 rows", out, err)
	}
	if got := e.sink.data(); len(uniq(got)) != 200 {
		t.Errorf("%d distinct records, want 200", len(uniq(got)))
	}
}

func TestSweepRemovesOrphanMarkers(t *testing.T) {
	e := newEnv(t, nil)
	e.s3.put(testBucket, inflightPrefix+"ingest/raw/gone.csv/e1.json", nil) // no manifest
	ev := e.putObject("raw/a.csv", tlcCSV(10))
	e.s3.onDelete = func(in *s3.DeleteObjectInput) error { return errBoom } // the done object's marker stays
	if res, err := e.handle(context.Background(), ev); err != nil || res.Objects[0].Outcome != OutcomeDone {
		t.Fatalf("Handle: %+v %v", res, err)
	}
	e.s3.onDelete = nil
	if got := e.s3.keys(inflightPrefix); len(got) != 2 {
		t.Fatalf("markers %v, want two", got)
	}
	e.clock.advance(time.Hour)
	if res := e.sweep(t, sweepEvent); len(res.Objects) != 0 {
		t.Errorf("sweep: %+v, want nothing to report", res)
	}
	if got := e.s3.keys(inflightPrefix); len(got) != 0 {
		t.Errorf("markers after the sweep: %v, want none", got)
	}
}

func TestSweepEventIsStrict(t *testing.T) {
	for _, raw := range []string{
		`{"taxistream":"sweep","key":"raw/a.csv"}`,
		`{"taxistream":"sweep","continuation":3}`,
		`{"taxistream":"continuation","bucket":"` + testBucket + `","key":"raw/a.csv","etag":"e1","idle":true}`,
	} {
		e := newEnv(t, nil)
		res := e.sweep(t, raw)
		if len(res.Objects) != 1 || res.Objects[0].Outcome != OutcomeSkipped || !strings.Contains(res.Objects[0].Reason, "invalid event") {
			t.Errorf("%s: %+v, want refused", raw, res)
		}
	}
}

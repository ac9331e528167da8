package esm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

// A mapping created again on its state file (a restart after a crash) goes on after the last batch
// that succeeded, with its tumbling window's state: no record is skipped, none processed twice but the
// batch that was in flight.
func TestRestartResumesAtCheckpointWithWindow(t *testing.T) {
	e := setup(t, 1, Config{})
	cfg := Config{BatchSize: 2, TumblingWindowInSeconds: 60, MaximumRetryAttempts: Infinite, StatePath: filepath.Join(t.TempDir(), "esm", "state.json")}
	e.start(t, cfg)
	crash := false
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		if crash {
			return nil, errors.New("the process died during this invoke")
		}
		n := 0
		fmt.Sscan(ev.State["n"], &n)
		return events.KinesisTimeWindowEventResponse{TimeWindowEventResponseProperties: events.TimeWindowEventResponseProperties{State: map[string]string{"n": fmt.Sprint(n + len(ev.Records))}}}, nil
	}
	e.put(t, "a", 7)
	e.poll(t, 1) // all 7 read: batches a0-1, a2-3, a4-5, a6
	if got := len(e.f.events); got != 4 {
		t.Fatalf("%d invokes before the crash, want 4", got)
	}
	// Two more records; their batch is in flight when the process dies.
	e.put(t, "b", 2)
	crash = true
	e.poll(t, 1)
	crash = false
	before := len(e.f.events)

	e.start(t, cfg) // the restart
	e.poll(t, 1)
	if err := e.esm.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	type call struct {
		Records []string
		State   string
		Final   bool
	}
	var got []call
	for i, ev := range e.f.events[before:] {
		got = append(got, call{e.f.data(before + i), ev.State["n"], ev.IsFinalInvokeForWindow})
	}
	want := []call{
		{[]string{"b0", "b1"}, "7", false},
		{nil, "9", true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("invokes after the restart (-want +got):\n%s", d)
	}
	if st := e.esm.Stats(); st.RecordsProcessed != 2 {
		t.Errorf("the restarted mapping processed %d records, want 2", st.RecordsProcessed)
	}
	if s := strings.Join(e.f.data(0), ","); s != "a0,a1" {
		t.Errorf("first batch %s", s)
	}
}

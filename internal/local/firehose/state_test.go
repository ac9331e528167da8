package firehose

import (
	"path/filepath"
	"strings"
	"testing"
)

// A delivery stream created again on its state file (a restart) re-reads what it had buffered but not
// delivered, does not archive again what it had delivered, and keeps its LATEST position of creation;
// with its buffers in memory or in files (SpoolDir).
func TestRestartLosesNothingBuffered(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "spool"}[spool], func(t *testing.T) { testRestart(t, spool) })
	}
}

func testRestart(t *testing.T, spool bool) {
	e := setup(t, 2, Config{BufferSizeMiB: 1, BufferIntervalSeconds: 900, CompressionFormat: CompressionGZIP})
	e.cfg.StatePath = filepath.Join(t.TempDir(), "firehose", "state.json")
	if spool {
		e.cfg.SpoolDir = filepath.Join(t.TempDir(), "buffers")
	}
	e.put(t, "a", lines("before-creation", 2)...)
	e.start(t)
	e.put(t, "a", lines("first", 3)...)
	e.put(t, "b", lines("first-b", 2)...)
	poll(t, e)
	if err := e.f.Flush(ctx); err != nil { // delivered: must not come again
		t.Fatal(err)
	}
	// An aggregate whose three user records go in; then the process dies with them buffered.
	e.put(t, "a", aggregate([]string{"k", "k", "k"}, lines("buffered", 3)))
	e.put(t, "b", lines("buffered-b", 1)...)
	poll(t, e)
	if st := e.f.Stats(); st.BufferedRecords != 4 {
		t.Fatalf("buffered %d user records, want 4", st.BufferedRecords)
	}

	// The "restart": a new delivery stream on the same state file; the old one is dropped unflushed.
	e.start(t)
	e.put(t, "b", lines("after", 2)...)
	poll(t, e)
	if err := e.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(e.b.content(t, ""), "")
	for _, want := range []string{join(lines("first", 3)), join(lines("first-b", 2)), join(lines("buffered", 3)), join(lines("buffered-b", 1)), join(lines("after", 2))} {
		if c := strings.Count(got, want); c != 1 {
			t.Errorf("archive holds %q %d times, want once", want, c)
		}
	}
	if strings.Contains(got, "before-creation") {
		t.Error("a restart archived records written before the delivery stream was created")
	}
}

func poll(t *testing.T, e *env) {
	t.Helper()
	e.c.Advance(250e6)
	if err := e.f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
}

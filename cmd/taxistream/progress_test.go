package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/testenv"
)

// TestProgressLines: off a terminal the tracker prints plain progress lines (rows, MB of the input,
// rows/s, each shard's use, the consumer and the archive), a line when a file is picked up and one
// when it is done with its counts.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cloud, err := local.Start(context.Background(), local.Options{Dir: filepath.Join(dir, "cloud"), TemplatePath: filepath.Join(testenv.Root(t), "template.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	var out lockedBuffer
	tr := newTracker(cloud, &out, false)
	tr.plainEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.run(ctx, "")
	file := filepath.Join(dir, "green_tripdata_2020-05.csv")
	writeGen(t, file, 3000)
	fi, _ := os.Stat(file)
	if err := putFile(ctx, cloud, file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "done raw/green_tripdata_2020-05.csv") {
		if time.Now().After(deadline) {
			t.Fatalf("no done line:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tr.stopAndWait()
	got := out.String()
	for _, want := range []string{
		"picked up raw/green_tripdata_2020-05.csv (" + mb(fi.Size()) + ")",
		"done raw/green_tripdata_2020-05.csv: 3000 rows, 3000 records, 0 rejected",
		"progress: ", " rows | ", " of " + mb(fi.Size()) + " (", " rows/s | shards ", "% | consumer ", " Kinesis records | archive ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if thousands(1234567) != "1,234,567" || thousands(-1000) != "-1,000" || thousands(999) != "999" {
		t.Errorf("thousands: %s %s %s", thousands(1234567), thousands(-1000), thousands(999))
	}
}

// TestPrintEndingNamesWhatIsStuck: the end of the summary names each object not finished, with its
// rows, the sweeper's attempts, its next attempt and its last error, and how to resume.
func TestPrintEndingNamesWhatIsStuck(t *testing.T) {
	next := time.Date(2026, 5, 1, 10, 30, 0, 0, time.Local)
	s := local.Summary{InFlight: []local.ObjectState{
		{Key: "raw/a.csv", RowsRead: 1200, Sweeps: 2, NextSweepAt: next, Reason: "released after error: putting row 1201: throttled"},
		{Key: "raw/b.csv", RowsRead: 0},
	}}
	for _, tc := range []struct{ ending, head string }{
		{endDone, "2 object(s) not finished:"},
		{endInterrupted, "interrupted with 2 object(s) in flight"},
		{endTimedOut, "timed out after 1m0s with 2 object(s) in flight"},
	} {
		var b strings.Builder
		printEnding(&b, s, tc.ending, time.Minute, "/x/cloud")
		for _, want := range []string{tc.head,
			"raw/a.csv: 1200 rows read, resumed 2 time(s) by the sweeper, next attempt 10:30:00; last error: released after error: putting row 1201: throttled",
			"raw/b.csv: 0 rows read\n", "resume with: taxistream local --dir /x/cloud"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: lacks %q:\n%s", tc.ending, want, b.String())
			}
		}
	}
	var b strings.Builder
	printEnding(&b, local.Summary{}, endDone, time.Minute, "d")
	if b.Len() != 0 {
		t.Errorf("nothing in flight, yet: %q", b.String())
	}
}

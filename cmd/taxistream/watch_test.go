package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/testenv"
)

// lockedBuffer is a bytes.Buffer safe to read while the command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLocalWatch runs `taxistream local --watch`, copies a trip file into <dir>/bucket/raw/ as a user
// would, waits until its manifest appears, then stops the command (Ctrl-C): the file went through the
// whole pipeline and the summary reconciles.
func TestLocalWatch(t *testing.T) {
	dir := t.TempDir()
	cloudDir := filepath.Join(dir, "cloud")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"local", "--watch", "--limits-off", "--quiet", "--dir", cloudDir,
			"--template", filepath.Join(testenv.Root(t), "template.yaml")}, strings.NewReader(""), &stdout, &stderr)
	}()
	raw := filepath.Join(cloudDir, "bucket", "raw")
	// --watch creates raw/ itself, and says so before it watches.
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "watching "+raw) })
	if _, err := os.Stat(raw); err != nil {
		t.Fatalf("watching a folder that does not exist: %v", err)
	}
	// A file no S3 event takes, and a named pipe (not a file: the bucket skips it): each gets a line.
	if err := os.WriteFile(filepath.Join(raw, "notes.txt"), []byte("not a trip file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(raw, "pipe.csv"))
	// Written elsewhere and renamed in, as `cp` to another folder then `mv` would: the watcher must
	// also cope with a file that grows, which the bucket's own tests cover.
	tmp := filepath.Join(dir, "green_tripdata_2019-01.csv")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, gen.Options{Taxi: "green", Layout: 2019, Rows: 300, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(raw, "green_tripdata_2019-01.csv")); err != nil {
		t.Fatal(err)
	}
	manifests := filepath.Join(cloudDir, "bucket", "state", "ingest", "raw", "green_tripdata_2019-01.csv")
	waitFor(t, 60*time.Second, func() bool {
		entries, _ := os.ReadDir(manifests)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(manifests, e.Name())); err == nil && bytes.Contains(bytes.ReplaceAll(b, []byte(" "), nil), []byte(`"status":"done"`)) {
				return true
			}
		}
		return false
	})
	stop() // Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("taxistream local --watch did not stop after Ctrl-C")
	}
	out := stdout.String()
	for _, want := range []string{"rows read          300", "reconciliation: every row is accounted for"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	errs := stderr.String()
	for _, want := range []string{
		"picked up raw/green_tripdata_2019-01.csv",
		"done raw/green_tripdata_2019-01.csv: 300 rows, 300 records, 0 rejected",
		"raw/notes.txt: will not trigger ingestion (the template's S3 events take keys raw/….csv",
		filepath.Join(raw, "pipe.csv") + ": skipped: a named pipe",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

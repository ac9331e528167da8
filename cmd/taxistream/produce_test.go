package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/gen"
)

// TestProduceCommand runs `taxistream produce` as a user would: usage errors exit 2, a dry run prints
// one record per row on stdout and the summary on stderr.
func TestProduceCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "green_tripdata_2019-01.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, gen.Options{Taxi: "green", Layout: 2019, Rows: 120, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"produce", path}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("produce without --stream: exit %d, want 2 (stderr %q)", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"produce", "--dry-run", path}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("produce --dry-run: exit %d: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 120 {
		t.Errorf("dry run printed %d records, want 120", n)
	}
	if !strings.Contains(stderr.String(), "120 rows read, 120 sent, 0 rejected") {
		t.Errorf("summary missing from stderr: %q", stderr.String())
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/testenv"
)

// badInputs makes, in dir, one input of each kind that is not a readable file, and returns them with
// the words their message must hold.
func badInputs(t *testing.T, dir string) map[string]string {
	t.Helper()
	fifo := filepath.Join(dir, "pipe.csv")
	mkfifo(t, fifo) // reading it would block until a writer comes: it must never be opened
	loop := filepath.Join(dir, "loop.csv")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "month")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return map[string]string{ // what follows the name in the message
		fifo:                              " is a named pipe (FIFO)",
		loop:                              " is a symbolic link loop",
		sub:                               " is a directory (use a glob such as " + sub + "/*.csv)",
		filepath.Join(dir, "missing.csv"): ": no such file",
	}
}

// TestConvertSkipsBadInputs: convert checks every argument first, reports each bad one, converts the
// good ones (a zero-byte .csv.gz is an empty file, with a warning, as in ingest) and exits 1 naming the
// skipped ones.
func TestConvertSkipsBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "green_tripdata_2020-05.csv")
	writeGen(t, good, 20)
	empty := filepath.Join(dir, "empty.csv.gz")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	generic := filepath.Join(dir, "other.csv")
	if err := os.WriteFile(generic, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := badInputs(t, dir)
	args := []string{"convert"}
	for name := range bad {
		args = append(args, name)
	}
	args = append(args, good, empty, generic)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 21 {
		t.Errorf("%d records on stdout, want 21 (20 trips and the generic row)", n)
	}
	errs := stderr.String()
	for name, why := range bad {
		if !strings.Contains(errs, "skipping "+name+why) {
			t.Errorf("stderr lacks %q for %s:\n%s", why, name, errs)
		}
	}
	for _, want := range []string{
		empty + ": rows read 0, records 0, rejected 0",
		empty + ": warning: empty file (0 bytes)",
		generic + ": warning: no TLC trip column recognised",
		"skipped 4 input(s)",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, good+": warning") {
		t.Errorf("a warning for a good trip file:\n%s", errs)
	}
}

// TestLocalSkipsBadInputs: `taxistream local` reports every bad argument before the cloud starts,
// ingests the good ones (the empty .csv.gz is done with 0 rows and a warning, in the manifest and the
// summary), reconciles, and exits 1 naming the skipped ones. With only bad arguments nothing starts.
func TestLocalSkipsBadInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "green_tripdata_2020-05.csv")
	writeGen(t, good, 200)
	empty := filepath.Join(dir, "empty.csv.gz")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := badInputs(t, dir)
	cloud := filepath.Join(dir, "cloud")
	sumFile := filepath.Join(dir, "summary.json")
	base := []string{"local", "--limits-off", "--quiet", "--dir", cloud, "--template", filepath.Join(testenv.Root(t), "template.yaml"), "--summary-json", sumFile}

	var onlyBad []string
	for name := range bad {
		onlyBad = append(onlyBad, name)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(base, onlyBad...), strings.NewReader(""), &stdout, &stderr); code != 1 {
		t.Errorf("only bad inputs: exit %d, want 1", code)
	}
	if _, err := os.Stat(cloud); err == nil || strings.Contains(stderr.String(), "local cloud up") {
		t.Errorf("only bad inputs: the local cloud started\n%s", &stderr)
	}

	// A bad one before and after each good one: none cuts the others off.
	args := append([]string{}, base...)
	args = append(args, onlyBad[0], good, onlyBad[1], empty)
	args = append(args, onlyBad[2:]...)
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1\n%s\n%s", code, &stdout, &stderr)
	}
	errs := stderr.String()
	for name, why := range bad {
		if !strings.Contains(errs, "skipping "+name+why) {
			t.Errorf("stderr lacks %q for %s:\n%s", why, name, errs)
		}
	}
	if i, j := strings.Index(errs, "skipping"), strings.Index(errs, "local cloud up"); i < 0 || j < i {
		t.Errorf("the bad inputs were not reported before the cloud started:\n%s", errs)
	}
	s := readSummary(t, sumFile)
	if !s.Reconciled || s.Objects != 2 || s.RowsRead != 200 {
		t.Errorf("reconciled %v, %d objects, %d rows; want the good file and the empty one", s.Reconciled, s.Objects, s.RowsRead)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "raw/empty.csv.gz: empty file (0 bytes)") {
		t.Errorf("summary warnings %q, want the empty .csv.gz", s.Warnings)
	}
	if !strings.Contains(errs, "skipped 4 input(s)") || !strings.Contains(stdout.String(), "warning: raw/empty.csv.gz") {
		t.Errorf("the end does not name the skipped inputs or the warning:\n%s\n%s", &stdout, errs)
	}
}

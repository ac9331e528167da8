package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/version"
)

// runCLI runs the CLI in-process and returns its exit status, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelpExitsZero: `taxistream COMMAND --help` (and -h) prints the command's usage and exits 0 for
// every command.
func TestHelpExitsZero(t *testing.T) {
	for _, c := range commands {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(c.name+" "+flag, func(t *testing.T) {
				code, _, stderr := runCLI(t, c.name, flag)
				if code != 0 {
					t.Errorf("exit status %d, want 0; stderr:\n%s", code, stderr)
				}
				if !strings.Contains(stderr, "usage: taxistream "+c.name) {
					t.Errorf("no usage of %s in:\n%s", c.name, stderr)
				}
				if strings.Contains(stderr, "help requested") {
					t.Errorf("help reported as an error:\n%s", stderr)
				}
			})
		}
	}
}

func TestTopLevelHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"help", "--help", "-h"} {
		code, stdout, _ := runCLI(t, arg)
		if code != 0 || !strings.Contains(stdout, "taxistream COMMAND --help") {
			t.Errorf("taxistream %s: exit %d, output %q; want 0 and a pointer to 'taxistream COMMAND --help'", arg, code, stdout)
		}
	}
	if code, _, stderr := runCLI(t); code != 2 || !strings.Contains(stderr, "taxistream COMMAND --help") {
		t.Errorf("taxistream with no command: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}
	for _, arg := range []string{"--version", "-version", "version"} {
		code, stdout, _ := runCLI(t, arg)
		first, _, _ := strings.Cut(stdout, "\n")
		if code != 0 || first != "taxistream "+version.Get().Short() || !strings.Contains(stdout, "revision ") {
			t.Errorf("taxistream %s: exit %d, output %q; want 0, 'taxistream %s' and the revision", arg, code, stdout, version.Get().Short())
		}
	}
}

// TestMissingInputFailsFirst: a missing file or a directory is reported before anything starts: no
// record or summary line from convert, no local cloud from local or invoke. (convert and local go on
// with the good files they are given besides, and still exit 1: TestConvertSkipsBadInputs,
// TestLocalSkipsBadInputs; here they are given none.)
func TestMissingInputFailsFirst(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.csv")
	cloudDir := filepath.Join(dir, "cloud")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"convert missing", []string{"convert", missing}, missing + ": no such file"},
		{"convert directory", []string{"convert", dir}, "is a directory (use a glob such as " + dir + "/*.csv)"},
		{"local missing", []string{"local", "--dir", cloudDir, missing}, missing + ": no such file"},
		{"local directory", []string{"local", "--dir", cloudDir, dir}, "is a directory (use a glob such as " + dir + "/*.csv)"},
		{"produce directory", []string{"produce", "--dry-run", dir}, "is a directory (use a glob such as " + dir + "/*.csv)"},
		{"invoke missing object", []string{"invoke", "ingest", "--dir", cloudDir, "--event", good, "--object", missing}, missing + ": no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
			if stdout != "" || strings.Contains(stderr, "rows read") || strings.Contains(stderr, "local cloud up") {
				t.Errorf("something started before the error: stdout %q, stderr %q", stdout, stderr)
			}
			if _, err := os.Stat(cloudDir); err == nil {
				t.Errorf("the local cloud's folder %s was created", cloudDir)
			}
		})
	}
}

// TestBenchMeasureMissingBinary: bench --measure names the binary the child processes run; one that
// does not exist is a usage error (exit 2) before anything is measured.
func TestBenchMeasureMissingBinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-taxistream")
	code, stdout, stderr := runCLI(t, "bench", "--measure", missing, "--sections", "local", "--json", "-")
	if code != 2 || !strings.Contains(stderr, "--measure") || !strings.Contains(stderr, "no-such-taxistream") {
		t.Errorf("exit %d, stderr %q; want 2 and the missing --measure binary named", code, stderr)
	}
	if strings.Contains(stdout+stderr, "== local") {
		t.Errorf("the section started: %q", stdout+stderr)
	}
}

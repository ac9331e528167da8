package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/testenv"
)

// cliChildEnv makes the test binary act as the taxistream CLI (see TestMain): the crash tests run it
// as a process of its own, which they can kill.
const cliChildEnv = "TAXISTREAM_CLI_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) == "1" {
		ctx, stop := interruptContext(os.Stderr)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// cli is a `taxistream` process (the test binary as the CLI).
type cli struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

func startCLI(t *testing.T, args ...string) *cli {
	t.Helper()
	c := &cli{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the process to end (at most limit) and returns its exit status.
func (c *cli) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(limit):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("%v did not end within %s\nstdout:\n%s\nstderr:\n%s", c.cmd.Args[1:], limit, c.stdout.String(), c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

func (c *cli) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// killPoint is a moment of a run, seen from its folder, at which the crash test kills it.
type killPoint struct {
	name string
	at   func(dir string) bool
}

// treeHas reports whether a file under root satisfies ok.
func treeHas(root string, ok func(path string, size int64) bool) bool {
	found := false
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && ok(p, fi.Size()) {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

var killPoints = []killPoint{
	{"an object claimed", func(d string) bool { return treeHas(filepath.Join(d, "bucket", "state", "inflight"), nil2) }},
	{"records in the stream", func(d string) bool {
		return treeHas(filepath.Join(d, "stream"), func(p string, n int64) bool { return strings.HasSuffix(p, ".seg") && n > 200<<10 })
	}},
	{"trips written", func(d string) bool { return treeHas(filepath.Join(d, "bucket", "processed", "trips"), nil2) }},
	{"an object done", func(d string) bool {
		return treeHas(filepath.Join(d, "bucket", "state", "ingest"), func(p string, _ int64) bool {
			b, _ := os.ReadFile(p)
			return bytes.Contains(b, []byte(`"status": "done"`))
		})
	}},
	{"the archive written", func(d string) bool { return treeHas(filepath.Join(d, "bucket", "archive"), nil2) }},
}

func nil2(string, int64) bool { return true }

// TestKillNineResumes kills `taxistream local --demo` (SIGKILL: nothing runs after it) at several
// points of its run — an object claimed, records in the stream, trips written, an object done, the
// archive written — after a seeded extra delay, then runs `taxistream local` in the same folder: the
// restarted run resumes what was in flight, finishes, and every row is accounted for (a record may be
// sent, archived or written twice; the reconciliation compares distinct record ids).
func TestKillNineResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a process several times (about a minute); skipped with -short")
	}
	tpl := filepath.Join(testenv.Root(t), "template.yaml")
	for i, kp := range killPoints {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(i)+15, 9))
			dir := filepath.Join(t.TempDir(), "cloud")
			first := startCLI(t, "local", "--demo", "--demo-rows", "8000", "--quiet", "--dir", dir, "--template", tpl,
				"--param", "ShardCount=2")
			deadline := time.Now().Add(3 * time.Minute)
			for !kp.at(dir) && !first.exited() {
				if time.Now().After(deadline) {
					t.Fatalf("the kill point %q was not reached within 3 minutes\nstderr:\n%s", kp.name, first.stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			if first.exited() {
				t.Logf("the run ended before the kill point %q (exit %d): the resume has nothing to do", kp.name, first.cmd.ProcessState.ExitCode())
			} else {
				_ = first.cmd.Process.Signal(syscall.SIGKILL)
				<-first.done
			}

			second := startCLI(t, "local", "--quiet", "--dir", dir, "--template", tpl, "--param", "ShardCount=2",
				"--summary-json", filepath.Join(dir, "..", "summary.json"))
			if code := second.wait(t, 5*time.Minute); code != 0 {
				t.Fatalf("the run after kill -9 exited %d\nstdout:\n%s\nstderr:\n%s", code, second.stdout.String(), second.stderr.String())
			}
			s := readSummary(t, filepath.Join(dir, "..", "summary.json"))
			// The demo files put into raw/ before the kill are all there is to ingest (a put is atomic:
			// a file is in raw/ whole or not at all); each is done, and every row accounted for.
			raw := countRaw(dir)
			if !s.Reconciled || raw == 0 || s.Objects != raw || s.ObjectsDone != raw || s.RowsRead != int64(raw)*8000/int64(len(local.DemoFiles)) || len(s.InFlight) != 0 {
				t.Errorf("after kill -9 at %q and a restart: reconciled %v, %d objects (%d done) for %d files in raw/, %d rows, %d in flight\n%s",
					kp.name, s.Reconciled, s.Objects, s.ObjectsDone, raw, s.RowsRead, len(s.InFlight), strings.Join(s.Reconciliation, "\n"))
			}
			t.Logf("killed at %q: restart resumed %d objects; archive %d lines for %d records, %d processed duplicates",
				kp.name, s.ThisRun.Objects, s.ArchiveRecords, s.ArchiveDistinct, s.ProcessedDuplicates)
		})
	}
}

// countRaw counts the files under the folder's raw/.
func countRaw(dir string) int {
	raw := 0
	_ = filepath.WalkDir(filepath.Join(dir, "bucket", "raw"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			raw++
		}
		return nil
	})
	return raw
}

func readSummary(t *testing.T, file string) local.Summary {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var s local.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return s
}

// TestInterruptReleasesAndResumes: Ctrl-C (SIGINT) on a run without --watch stops it, releases the
// objects in flight, prints the summary naming them and how to resume, writes --summary-json and
// exits 130; the next run in the folder finishes them. --timeout ends a run the same way (exit 1).
func TestInterruptReleasesAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a process; skipped with -short")
	}
	tpl := filepath.Join(testenv.Root(t), "template.yaml")
	for _, tc := range []struct {
		name  string
		extra []string
		stop  func(c *cli)
		code  int
		word  string
	}{
		{"ctrl-c", nil, func(c *cli) { _ = c.cmd.Process.Signal(os.Interrupt) }, 130, "interrupted with"},
		{"timeout", []string{"--timeout", "10s"}, func(*cli) {}, 1, "timed out after 10s with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "cloud")
			sumFile := filepath.Join(dir, "..", "summary.json")
			// Limits on and 40,000 rows: at one shard's 1 MiB/s the run takes well over a minute.
			args := append([]string{"local", "--demo", "--demo-rows", "40000", "--quiet", "--dir", dir, "--template", tpl, "--summary-json", sumFile}, tc.extra...)
			c := startCLI(t, args...)
			// Stop it once every demo file is claimed and records are in the stream.
			claimed := func() bool {
				n := 0
				_ = filepath.WalkDir(filepath.Join(dir, "bucket", "state", "ingest"), func(p string, d os.DirEntry, err error) error {
					if err == nil && strings.HasSuffix(p, ".json") {
						n++
					}
					return nil
				})
				return n == len(local.DemoFiles)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for tc.code == 130 && (!claimed() || !killPoints[1].at(dir)) {
				if time.Now().After(deadline) || c.exited() {
					t.Fatalf("the demo files were not all claimed with records in the stream\nstderr:\n%s", c.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			tc.stop(c)
			if code := c.wait(t, 2*time.Minute); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, c.stdout.String(), c.stderr.String())
			}
			out := c.stdout.String()
			for _, want := range []string{tc.word, "resume with: taxistream local --dir " + dir, "reconciliation: NOT every row is accounted for"} {
				if !strings.Contains(out, want) {
					t.Errorf("summary lacks %q:\n%s", want, out)
				}
			}
			s := readSummary(t, sumFile)
			if len(s.InFlight) == 0 {
				t.Fatalf("summary JSON names no object in flight:\n%s", out)
			}
			for _, o := range s.InFlight {
				if o.LeaseUntil.After(time.Now()) {
					t.Errorf("%s still leased until %s after the run ended", o.Key, o.LeaseUntil)
				}
			}
			// The next run in the folder resumes and finishes (limits off: no need to wait for the shard).
			next := startCLI(t, "local", "--quiet", "--limits-off", "--dir", dir, "--template", tpl, "--summary-json", sumFile)
			if code := next.wait(t, 5*time.Minute); code != 0 {
				t.Fatalf("resume: exit %d\nstdout:\n%s\nstderr:\n%s", code, next.stdout.String(), next.stderr.String())
			}
			// A demo file is in raw/ whole or not at all (the timeout may end the run while it puts
			// them): each one there has its 10,000 rows accounted for.
			raw := countRaw(dir)
			if s := readSummary(t, sumFile); !s.Reconciled || raw == 0 || s.RowsRead != int64(raw)*10000 || len(s.InFlight) != 0 {
				t.Errorf("after the resume: reconciled %v, %d rows for %d files, %d in flight", s.Reconciled, s.RowsRead, raw, len(s.InFlight))
			}
			if !strings.Contains(next.stderr.String(), "resuming raw/demo/") {
				t.Errorf("the resume does not say what it resumes:\n%s", next.stderr.String())
			}
		})
	}
}

// TestRepeatRunsKeepEarlierOutputs is `make run` twice in one folder, then `taxistream local FILE` in
// it: every object an earlier run wrote is still there, unchanged (the stream numbers its records on,
// so the consumer's objects get new names, and its ledger skips nothing new), but for processed/trips,
// which compaction merges, and where no trip goes missing or twice; each run reports its own objects
// and the folder's totals, and the folder reconciles after each run.
func TestRepeatRunsKeepEarlierOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cloud := filepath.Join(dir, "cloud")
	tpl := filepath.Join(testenv.Root(t), "template.yaml")
	trip := filepath.Join(dir, "green_tripdata_2020-05.csv")
	writeGen(t, trip, 1500)
	runs := [][]string{
		{"--demo", "--demo-rows", "2000"},
		{"--demo", "--demo-rows", "2000"},
		{trip},
	}
	var before map[string][]byte
	wantRows := int64(0)
	for i, args := range runs {
		sumFile := filepath.Join(dir, fmt.Sprintf("summary-%d.json", i))
		args = append([]string{"local", "--limits-off", "--quiet", "--dir", cloud, "--template", tpl, "--summary-json", sumFile}, args...)
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", i+1, code, &stdout, &stderr)
		}
		s := readSummary(t, sumFile)
		thisRows := int64(2000)
		if i == 2 {
			thisRows = 1500
		}
		wantRows += thisRows
		if !s.Reconciled || s.RowsRead != wantRows || s.ThisRun.RowsRead != thisRows || s.ProcessedDuplicates != 0 {
			t.Errorf("run %d: reconciled %v, folder rows %d (want %d), this run %d (want %d), %d processed duplicates\n%s",
				i+1, s.Reconciled, s.RowsRead, wantRows, s.ThisRun.RowsRead, thisRows, s.ProcessedDuplicates, strings.Join(s.Reconciliation, "\n"))
		}
		// processed/trips is compacted at the end of each run (its objects are merged, on purpose):
		// that no trip of an earlier run is lost or written twice there is what the reconciliation
		// and processed_duplicates say. Everything else an earlier run wrote stays byte for byte.
		now := snapshot(t, filepath.Join(cloud, "bucket"), filepath.Join("processed", "zone_stats"), "archive", "quarantine", "rejected")
		for name, body := range before {
			if got, ok := now[name]; !ok {
				t.Errorf("run %d removed %s", i+1, name)
			} else if !bytes.Equal(got, body) {
				t.Errorf("run %d overwrote %s", i+1, name)
			}
		}
		if len(now) <= len(before) {
			t.Errorf("run %d added no output (%d files before, %d after)", i+1, len(before), len(now))
		}
		before = now
	}
}

// snapshot reads every file under the given folders of root.
func snapshot(t *testing.T, root string, dirs ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, d := range dirs {
		_ = filepath.Walk(filepath.Join(root, d), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = b
			return nil
		})
	}
	return out
}

// writeGen writes a generated green 2020 trip file of n rows.
func writeGen(t *testing.T, name string, n int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := gen.Write(f, gen.Options{Taxi: "green", Layout: 2019, Month: 5, Rows: n, Seed: 2020}); err != nil {
		t.Fatal(err)
	}
}

// TestWatchResumesAfterKill: `--watch` on a folder whose last run was killed resumes the objects it
// left in flight (and the file copied in while nothing ran), then Ctrl-C drains it: it reconciles.
func TestWatchResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a process; skipped with -short")
	}
	t.Parallel()
	tpl := filepath.Join(testenv.Root(t), "template.yaml")
	dir := filepath.Join(t.TempDir(), "cloud")
	first := startCLI(t, "local", "--demo", "--demo-rows", "8000", "--quiet", "--dir", dir, "--template", tpl)
	deadline := time.Now().Add(3 * time.Minute)
	for !killPoints[1].at(dir) {
		if time.Now().After(deadline) || first.exited() {
			t.Fatalf("no records reached the stream\nstderr:\n%s", first.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.done
	// A file copied into raw/ while nothing runs.
	writeGen(t, filepath.Join(dir, "bucket", "raw", "green_tripdata_2020-05.csv"), 500)

	sumFile := filepath.Join(dir, "..", "summary.json")
	w := startCLI(t, "local", "--watch", "--limits-off", "--quiet", "--dir", dir, "--template", tpl, "--summary-json", sumFile)
	deadline = time.Now().Add(5 * time.Minute)
	for {
		errs := w.stderr.String()
		if strings.Count(errs, "done raw/") == countRaw(dir) && strings.Contains(errs, "done raw/green_tripdata_2020-05.csv: 500 rows") {
			break
		}
		if time.Now().After(deadline) || w.exited() {
			t.Fatalf("--watch after kill -9 did not finish the objects\nstderr:\n%s", errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = w.cmd.Process.Signal(os.Interrupt)
	if code := w.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, w.stdout.String(), w.stderr.String())
	}
	s := readSummary(t, sumFile)
	if !s.Reconciled || s.Objects != countRaw(dir) || len(s.InFlight) != 0 {
		t.Errorf("reconciled %v, %d objects for %d files, %d in flight", s.Reconciled, s.Objects, countRaw(dir), len(s.InFlight))
	}
	if !strings.Contains(w.stderr.String(), "resuming raw/demo/") {
		t.Errorf("--watch does not say it resumes:\n%s", w.stderr.String())
	}
}

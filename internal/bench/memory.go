package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The memory section (issue 15) runs the whole local pipeline — `taxistream local` on one generated
// file, as a process of its own — on growing inputs and 1 and 4 shards, and reports its peak resident
// memory: every function, the stream, Firehose, the event source mapping, the summary and the report
// in one process. Limits are off so that a 1 GB month takes minutes, not hours (memory does not depend
// on the pace: records wait in the stream's files, not in memory).

// SectionMemory is the name of the memory section.
const SectionMemory = "memory"

// Memory targets (issue 15): peak RSS under 1 GiB, and at most 2× from the smallest to the largest
// input (flat: nothing held per row).
const (
	targetLocalRSS  = 1 << 30
	targetRSSGrowth = 2.0
)

// MemorySection is the memory section's result.
type MemorySection struct {
	Skipped string      `json:"skipped,omitempty"`
	Runs    []MemoryRun `json:"runs"`
}

// MemoryRun is one `taxistream local` run.
type MemoryRun struct {
	InputBytes  int64   `json:"input_bytes"`
	Rows        int64   `json:"rows"`
	Shards      int     `json:"shards"`
	PeakRSS     int64   `json:"peak_rss_bytes"` // VmHWM of the process at its end (the summary's peak_rss_bytes)
	MaxRSS      int64   `json:"maxrss_bytes"`   // ru_maxrss from wait4
	Wall        float64 `json:"wall_s"`
	CPU         float64 `json:"cpu_s"`
	RecordsSent int64   `json:"records_sent"`
	Reconciled  bool    `json:"reconciled"`
	DiskBytes   int64   `json:"disk_bytes"` // the run's folder at its end (bucket, stream, checkpoints)
}

// memorySizes returns the input sizes in bytes: 100 MB and 500 MB (and 1 GB with Big); quick: 2 and
// 10 MB.
func memorySizes(opts *Options) []int64 {
	if len(opts.MemoryMB) > 0 {
		out := make([]int64, len(opts.MemoryMB))
		for i, mb := range opts.MemoryMB {
			out[i] = int64(mb) * 1e6
		}
		return out
	}
	if opts.Quick {
		return []int64{2e6, 10e6}
	}
	s := []int64{100e6, 500e6}
	if opts.Big {
		s = append(s, 1e9)
	}
	return s
}

func runMemory(ctx context.Context, opts *Options, work string) (*MemorySection, error) {
	sec := &MemorySection{}
	if len(opts.CLI) == 0 {
		sec.Skipped = skipf(opts, "no taxistream binary to run `taxistream local` with (the CLI passes itself)")
		return sec, nil
	}
	shards := opts.MemoryShards
	if len(shards) == 0 {
		shards = []int{1, 4}
	}
	for _, size := range memorySizes(opts) {
		file := filepath.Join(work, "yellow_tripdata_2019-01.csv")
		fmt.Fprintf(opts.Log, "   generating %.0f MB\n", float64(size)/1e6)
		st, err := genFile(file, size)
		if err != nil {
			return sec, err
		}
		for _, n := range shards {
			r, err := localRun(ctx, opts, work, file, n)
			if err != nil {
				return sec, err
			}
			r.InputBytes, r.Rows = st.Bytes, st.Rows
			fmt.Fprintf(opts.Log, "   %.0f MB, %d shard(s): peak RSS %.1f MiB, %.0f s, reconciled %v\n", float64(st.Bytes)/1e6, n, mib(r.PeakRSS), r.Wall, r.Reconciled)
			sec.Runs = append(sec.Runs, r)
		}
		if err := os.Remove(file); err != nil {
			return sec, err
		}
	}
	return sec, nil
}

// localRun runs `taxistream local --limits-off` on file in a fresh folder, which it removes after.
func localRun(ctx context.Context, opts *Options, work, file string, shards int) (MemoryRun, error) {
	dir, err := os.MkdirTemp(work, "local-")
	if err != nil {
		return MemoryRun{}, err
	}
	defer os.RemoveAll(dir)
	sumFile := filepath.Join(dir, "summary.json")
	args := append(append([]string{}, opts.CLI...), "local", "--limits-off", "--quiet", "--timeout", "3h",
		"--dir", filepath.Join(dir, "cloud"), "--summary-json", sumFile, "--param", "ShardCount="+strconv.Itoa(shards))
	if tpl := filepath.Join(opts.RepoDir, "template.yaml"); fileExists(tpl) {
		args = append(args, "--template", tpl)
	}
	args = append(args, file)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	runErr := cmd.Run()
	r := MemoryRun{Shards: shards, Wall: time.Since(start).Seconds()}
	if cmd.ProcessState != nil {
		r.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		r.MaxRSS = rusageMaxRSS(cmd.ProcessState.SysUsage())
	}
	b, err := os.ReadFile(sumFile)
	if err != nil {
		return r, fmt.Errorf("taxistream local on %s (%d shards) left no summary: %w\n%s", file, shards, errors.Join(runErr, err), tail(errb.String(), 2000))
	}
	var s struct {
		PeakRSS     int64 `json:"peak_rss_bytes"`
		RecordsSent int64 `json:"records_sent"`
		Reconciled  bool  `json:"reconciled"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return r, fmt.Errorf("reading %s: %w", sumFile, err)
	}
	r.PeakRSS, r.RecordsSent, r.Reconciled = s.PeakRSS, s.RecordsSent, s.Reconciled
	if r.PeakRSS == 0 {
		r.PeakRSS = r.MaxRSS
	}
	r.DiskBytes = duBytes(filepath.Join(dir, "cloud"))
	return r, nil
}

// duBytes sums the sizes of the files under dir.
func duBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// memoryTargets evaluates the memory goals.
func memoryTargets(m *MemorySection, add func(name, goal string, measured bool, value string, met bool, note string)) {
	const name, goal = "local pipeline peak RSS", "< 1 GiB, at most 2× from the smallest to the largest input"
	if m == nil || len(m.Runs) == 0 {
		reason := "section not run"
		if m != nil && m.Skipped != "" {
			reason = m.Skipped
		}
		add(name, goal, false, "", false, reason)
		return
	}
	var parts []string
	met := true
	byShards := map[int][]MemoryRun{}
	for _, r := range m.Runs {
		byShards[r.Shards] = append(byShards[r.Shards], r)
		met = met && r.PeakRSS < targetLocalRSS && r.Reconciled
	}
	for _, n := range []int{1, 2, 4, 8} {
		runs := byShards[n]
		if len(runs) == 0 {
			continue
		}
		first, last := runs[0], runs[len(runs)-1]
		growth := float64(last.PeakRSS) / float64(max(first.PeakRSS, 1))
		met = met && growth <= targetRSSGrowth
		parts = append(parts, fmt.Sprintf("%d shard(s): %.0f → %.0f MiB from %.0f to %.0f MB (%.2f×)", n,
			mib(first.PeakRSS), mib(last.PeakRSS), float64(first.InputBytes)/1e6, float64(last.InputBytes)/1e6, growth))
	}
	add(name, goal, true, strings.Join(parts, "; "), met, "")
}

// memoryRows are the memory section's table lines.
func memoryRows(m *MemorySection, add func(sec, what, format string, args ...any)) {
	if m == nil {
		return
	}
	if m.Skipped != "" {
		add("memory", "skipped", "%s", m.Skipped)
	}
	for _, r := range m.Runs {
		add("memory", fmt.Sprintf("local, %.0f MB, %d shard(s)", float64(r.InputBytes)/1e6, r.Shards),
			"peak RSS %.1f MiB (ru_maxrss %.1f MiB); %.0f s wall, %.0f s CPU; %d rows, %d records sent, reconciled %v; folder %.2f GB on disk",
			mib(r.PeakRSS), mib(r.MaxRSS), r.Wall, r.CPU, r.Rows, r.RecordsSent, r.Reconciled, float64(r.DiskBytes)/1e9)
	}
}

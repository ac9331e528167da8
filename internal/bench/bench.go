// Package bench measures where the pipeline stands (issue 9): conversion speed against the workshop's
// Python baseline, the saturation of one shard of the local stream with its real limits, ingest end to
// end with peak resident memory, consumer throughput per core and Lambda cold starts under the Runtime
// Interface Emulator. `taxistream bench` runs it and docs/performance.md holds the latest numbers.
//
// Every measurement that needs its own memory figure or its own CPU budget runs in a child process (the
// taxistream binary re-executed with a hidden `bench --child` mode, see ChildMain), so one section cannot
// inflate another's resident set. Things compared with each other run side by side in one run; the
// machine is usually shared, so CPU time is reported next to wall time.
//
// Units: MB is 10^6 bytes (throughput of files), MiB is 2^20 bytes (the Kinesis shard limit is 1 MiB/s).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Section names, in the order they run.
const (
	SectionConversion = "conversion"
	SectionParquet    = "parquet"
	SectionSaturation = "saturation"
	SectionIngest     = "ingest"
	SectionConsumer   = "consumer"
	SectionColdStart  = "coldstart"
	SectionCompact    = "compact"
	SectionLocal      = "local"
	SectionShards     = "shards"
	SectionCost       = "cost"
)

// Sections lists every section in run order. The cost section computes from the ingest and consumer
// sections' numbers.
var Sections = []string{SectionConversion, SectionParquet, SectionSaturation, SectionIngest, SectionConsumer, SectionColdStart,
	SectionCompact, SectionLocal, SectionShards, SectionCost, SectionMemory}

// Options configure a run. The zero value (plus Child) is the full default run.
type Options struct {
	MB    int  // size of the generated yellow 2019 CSV for conversion and ingest, in MB (default 100; quick 2)
	Big   bool // also ingest a 1 GiB object (takes minutes)
	Quick bool // small sizes and short durations: a smoke run

	SaturationDuration time.Duration // measured time per saturation variant (default 15 s; quick 2 s)
	ConsumerTrips      int           // distinct trips fed to ProcessFunction (default 200,000; quick 20,000)
	ConsumerSeconds    float64       // the consumer loops over its batches at least this long (default 5; quick 0)
	ColdStarts         int           // emulator starts per function (default 5; quick 1)
	ShardCounts        []int         // shards of the shards section's runs (default 4, 8; quick 2)
	Routings           []string      // shard routings of the shards section (default balanced, key)
	CompactMB          int           // size of the partition compacted (default 1,000 MB; quick 32)

	Sections []string // the sections to run; nil = all

	TempDir   string // where generated files go (a fresh folder inside it, removed afterwards); default os.TempDir()
	RepoDir   string // the project root: bin/, .tools/bin/aws-lambda-rie, events/ (default ".")
	SharedDir string // ../shared: the workshop baseline and the zone lookup (default RepoDir/../shared)
	Python    string // python interpreter ("" looks up python3 on PATH; "-" skips the baseline)
	RIE       string // the Runtime Interface Emulator ("" = $TAXISTREAM_RIE, else RepoDir/.tools/bin/aws-lambda-rie)

	// Child is the argv prefix that runs ChildMain in a fresh process (the CLI passes its own binary and
	// `bench --child`); the child's arguments are appended. Without it the sections that need a child
	// are skipped.
	Child    []string
	ChildEnv []string // extra environment of the children (KEY=value)
	// CLI is the argv prefix that runs the taxistream CLI itself (the memory section runs
	// `taxistream local`); without it that section is skipped.
	CLI []string
	// MemoryMB and MemoryShards override the memory section's input sizes (default 100 and 500 MB,
	// plus 1,000 with Big) and shard counts (default 1 and 4).
	MemoryMB     []int
	MemoryShards []int

	Log io.Writer // progress lines (default io.Discard)
}

func (o *Options) defaults() {
	if o.MB <= 0 {
		o.MB = 100
		if o.Quick {
			o.MB = 2
		}
	}
	if o.SaturationDuration <= 0 {
		o.SaturationDuration = 15 * time.Second
		if o.Quick {
			o.SaturationDuration = 2 * time.Second
		}
	}
	if o.ConsumerTrips <= 0 {
		o.ConsumerTrips = 200_000
		if o.Quick {
			o.ConsumerTrips = 20_000
		}
	}
	if o.ConsumerSeconds <= 0 && !o.Quick {
		o.ConsumerSeconds = 5
	}
	if len(o.ShardCounts) == 0 {
		o.ShardCounts = []int{4, 8}
		if o.Quick {
			o.ShardCounts = []int{2}
		}
	}
	if len(o.Routings) == 0 {
		o.Routings = []string{"balanced", "key"}
	}
	if o.ColdStarts <= 0 {
		o.ColdStarts = 5
		if o.Quick {
			o.ColdStarts = 1
		}
	}
	if o.CompactMB <= 0 {
		o.CompactMB = 1000
		if o.Quick {
			o.CompactMB = 32
		}
	}
	if len(o.Sections) == 0 {
		o.Sections = Sections
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.RepoDir == "" {
		o.RepoDir = "."
	}
	if o.SharedDir == "" {
		o.SharedDir = filepath.Join(o.RepoDir, "..", "shared")
	}
	if o.RIE == "" {
		o.RIE = os.Getenv("TAXISTREAM_RIE")
	}
	if o.RIE == "" {
		o.RIE = filepath.Join(o.RepoDir, ".tools", "bin", "aws-lambda-rie")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Results is everything a run measured; it is the JSON file `taxistream bench` writes. A section that
// could not run has Skipped set to the reason.
type Results struct {
	Machine    Machine            `json:"machine"`
	Command    string             `json:"command,omitempty"`
	Quick      bool               `json:"quick"`
	Conversion *ConversionResult  `json:"conversion,omitempty"`
	Parquet    *ParquetSection    `json:"parquet,omitempty"`
	Saturation *SaturationSection `json:"saturation,omitempty"`
	Ingest     *IngestSection     `json:"ingest,omitempty"`
	Consumer   *ConsumerResult    `json:"consumer,omitempty"`
	ColdStart  *ColdStartSection  `json:"cold_start,omitempty"`
	Local      *LocalSection      `json:"local,omitempty"`
	Shards     *LocalSection      `json:"shards,omitempty"`
	Cost       *CostSection       `json:"cost,omitempty"`
	Compaction *CompactionResult  `json:"compaction,omitempty"`
	Memory     *MemorySection     `json:"memory,omitempty"`
	Targets    []Target           `json:"targets"`
	Elapsed    float64            `json:"elapsed_s"`
}

// Machine describes where the numbers come from.
type Machine struct {
	Date       time.Time `json:"date"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	CPUs       int       `json:"cpus"`
	CPUModel   string    `json:"cpu_model"`
	GoVersion  string    `json:"go_version"`
	LoadBefore string    `json:"load_before"` // /proc/loadavg at the start: the machine may be shared
	LoadAfter  string    `json:"load_after"`
}

// Target is one goal of the issues and whether this run met it.
type Target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Status string `json:"status"` // met | missed | not measured
	Note   string `json:"note,omitempty"`
}

// Target statuses.
const (
	StatusMet         = "met"
	StatusMissed      = "missed"
	StatusNotMeasured = "not measured"
)

// Run runs the selected sections one after the other and returns what they measured. A section whose
// prerequisite is missing is skipped with the reason (in its result and on Log); Run fails only for an
// error of the benchmark itself or a cancelled ctx.
func Run(ctx context.Context, opts Options) (*Results, error) {
	opts.defaults()
	for _, s := range opts.Sections {
		if !slices.Contains(Sections, s) {
			return nil, fmt.Errorf("unknown section %q (want one of %s)", s, strings.Join(Sections, ", "))
		}
	}
	start := time.Now()
	res := &Results{Machine: machine(), Quick: opts.Quick}
	work, err := os.MkdirTemp(opts.TempDir, "taxistream-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating the work folder: %w", err)
	}
	defer os.RemoveAll(work)

	run := func(name string, f func() error) error {
		if !slices.Contains(opts.Sections, name) {
			return nil
		}
		fmt.Fprintf(opts.Log, "== %s\n", name)
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(opts.Log, "   (%s took %.1f s)\n", name, time.Since(t).Seconds())
		return ctx.Err()
	}
	steps := []struct {
		name string
		f    func() error
	}{
		{SectionConversion, func() (err error) { res.Conversion, err = runConversion(ctx, &opts, work); return }},
		{SectionParquet, func() (err error) { res.Parquet, err = runParquet(ctx, &opts, work); return }},
		{SectionSaturation, func() (err error) { res.Saturation, err = runSaturation(ctx, &opts); return }},
		{SectionIngest, func() (err error) { res.Ingest, err = runIngest(ctx, &opts, work); return }},
		{SectionConsumer, func() (err error) { res.Consumer, err = runConsumer(ctx, &opts); return }},
		{SectionColdStart, func() (err error) { res.ColdStart, err = runColdStart(ctx, &opts); return }},
		{SectionCompact, func() (err error) { res.Compaction, err = runCompaction(ctx, &opts, work); return }},
		{SectionLocal, func() (err error) { res.Local, err = runLocal(ctx, &opts, work); return }},
		{SectionShards, func() (err error) { res.Shards, err = runShards(ctx, &opts, work); return }},
		{SectionCost, func() error { res.Cost = costOf(res, &opts); return nil }},
		{SectionMemory, func() (err error) { res.Memory, err = runMemory(ctx, &opts, work); return }},
	}
	for _, s := range steps {
		if err := run(s.name, s.f); err != nil {
			return res, err
		}
	}
	res.Machine.LoadAfter = loadavg()
	res.Targets = targets(res)
	res.Elapsed = time.Since(start).Seconds()
	return res, nil
}

// skipf logs and returns a skip reason.
func skipf(opts *Options, format string, args ...any) string {
	reason := fmt.Sprintf(format, args...)
	fmt.Fprintf(opts.Log, "   skipped: %s\n", reason)
	return reason
}

func machine() Machine {
	m := Machine{
		Date:       time.Now().UTC().Truncate(time.Second),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		LoadBefore: loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// fileExists reports whether path is a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// lookPython returns the interpreter to run the baseline with, or why there is none.
func lookPython(opts *Options) (string, string) {
	switch opts.Python {
	case "-":
		return "", "disabled (--python -)"
	case "":
		p, err := exec.LookPath("python3")
		if err != nil {
			return "", "python3 not found on PATH"
		}
		return p, ""
	default:
		return opts.Python, ""
	}
}

var errNoChild = errors.New("no child command (Options.Child): this section measures in a separate process")

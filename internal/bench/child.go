package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child modes (the first argument of ChildMain).
const (
	childConvert  = "convert"  // convert FILE: CSV → canonical records written to /dev/null
	childIngest   = "ingest"   // ingest DIR KEY [discard]: IngestFunction on a local bucket and stream
	childConsumer = "consumer" // consumer [flags]: ProcessFunction on generated batches, GOMAXPROCS=1
	childParquet  = "parquet"  // parquet FILE N: Parquet → canonical records (N times) to /dev/null, GOMAXPROCS=1
	childLocal    = "local"    // local [flags]: a whole local-cloud run (see childLocalRun)
	childCompact  = "compact"  // compact BUCKET-DIR TMP-DIR: compaction of the bench partition
)

// childResult is what a child prints (JSON on stdout).
type childResult struct {
	Rows     int64   `json:"rows"`     // rows read (or trips processed)
	Records  int64   `json:"records"`  // records produced / sent / written
	Rejected int64   `json:"rejected"` // rows rejected
	Bytes    int64   `json:"bytes"`    // input bytes
	Wall     float64 `json:"wall_s"`   // seconds of the measured part
	CPU      float64 `json:"cpu_s"`    // user+system CPU seconds of the measured part
	// PeakRSS is the child's VmHWM (/proc/self/status) at the end: the resident high-water mark of its
	// own address space.
	PeakRSS int64              `json:"peak_rss_bytes"`
	Extra   map[string]float64 `json:"extra,omitempty"`
	Note    string             `json:"note,omitempty"`
	Local   *LocalRun          `json:"local,omitempty"` // childLocal's result
}

// childRun is a childResult plus what the parent saw of the process.
type childRun struct {
	childResult
	// MaxRSS is ru_maxrss of the child from wait4. Go starts children with vfork semantics and Linux
	// carries the parent's high-water mark over exec into it, so it can exceed what the child itself
	// used when the parent is bigger; PeakRSS (VmHWM) is the child's own and is what we report.
	MaxRSS  int64   `json:"maxrss_bytes"`
	ProcCPU float64 `json:"process_cpu_s"` // user+system of the whole child process
	ProcWal float64 `json:"process_wall_s"`
}

// ChildMain runs one measurement in this process and prints its result as JSON on stdout. The CLI
// calls it for `taxistream bench --child ...`; it is not meant for users.
func ChildMain(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("child: no mode")
	}
	var (
		res childResult
		err error
	)
	switch args[0] {
	case childConvert:
		if len(args) != 2 {
			return errors.New("child convert: want FILE")
		}
		res, err = childConvertFile(args[1])
	case childIngest:
		if len(args) != 3 && (len(args) != 4 || args[3] != "discard") {
			return errors.New("child ingest: want BUCKET-DIR KEY [discard]")
		}
		res, err = childIngestObject(ctx, args[1], args[2], len(args) == 4)
	case childConsumer:
		fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
		trips := fs.Int("trips", 20000, "distinct trips")
		seconds := fs.Float64("seconds", 0, "loop at least this long")
		passes := fs.Int("passes", 1, "loop at least this many passes over the trips (a fixed amount of work, for instruction counts)")
		zones := fs.String("zones", "", "zone lookup CSV")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the timed loop to this file")
		input := fs.String("input", "", "trip CSV whose rows are the trips (converted again under new keys until -trips); default generated 2019 rows")
		shapes := fs.String("shapes", "", "zone shapes (taxi_zones.zip or GeoJSON) for trips with coordinates only")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		res, err = childConsume(ctx, consumeOptions{trips: *trips, minSeconds: *seconds, minPasses: *passes, zones: *zones, profile: *profile, input: *input, shapes: *shapes})
	case childParquet:
		if len(args) != 3 {
			return errors.New("child parquet: want FILE N")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 {
			return fmt.Errorf("child parquet: N %q", args[2])
		}
		res, err = childParquetFile(args[1], n)
		if err != nil {
			return err
		}
	case childLocal:
		res, err = childLocalRun(ctx, args[1:])
	case childCompact:
		if len(args) != 3 {
			return errors.New("child compact: want BUCKET-DIR TMP-DIR")
		}
		res, err = childCompactPartition(ctx, args[1], args[2])
	default:
		return fmt.Errorf("child: unknown mode %q", args[0])
	}
	if err != nil {
		return err
	}
	res.PeakRSS = vmHWM()
	return json.NewEncoder(stdout).Encode(res)
}

// runChild runs ChildMain in a fresh process and reads its result and resource usage.
func runChild(ctx context.Context, opts *Options, args ...string) (childRun, error) {
	if len(opts.Child) == 0 {
		return childRun{}, errNoChild
	}
	argv := append(append([]string{}, opts.Child...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), opts.ChildEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return childRun{}, fmt.Errorf("running child %s: %w\n%s", strings.Join(args, " "), err, tail(errb.String(), 2000))
	}
	var r childRun
	if err := json.Unmarshal(lastLine(out.Bytes()), &r.childResult); err != nil {
		return childRun{}, fmt.Errorf("reading child %s result %q: %w", args[0], tail(out.String(), 500), err)
	}
	r.ProcWal = wall.Seconds()
	r.ProcCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	r.MaxRSS = rusageMaxRSS(cmd.ProcessState.SysUsage())
	if r.PeakRSS == 0 {
		r.PeakRSS = r.MaxRSS
	}
	return r, nil
}

// rusageMaxRSS reads ru_maxrss (KiB on Linux) of a finished process in bytes.
func rusageMaxRSS(sys any) int64 {
	if ru, ok := sys.(*syscall.Rusage); ok {
		return int64(ru.Maxrss) * 1024
	}
	return 0
}

// vmHWM returns this process's resident high-water mark in bytes (0 when unknown).
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// cpuNow is the user+system CPU time of this process.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

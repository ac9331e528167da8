package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/taxistream/taxistream/internal/convert"
)

// ConversionResult compares our converter with the workshop's Python baseline on one generated file.
type ConversionResult struct {
	Skipped string `json:"skipped,omitempty"`
	File    string `json:"file,omitempty"` // what was generated (the file itself is deleted)
	Bytes   int64  `json:"bytes"`
	Rows    int64  `json:"rows"`

	// Go: the faster of two runs (before and after the baseline), each in its own process.
	Go      Throughput   `json:"go"`
	GoRuns  []Throughput `json:"go_runs"`
	Python  *Throughput  `json:"python,omitempty"`
	PySkip  string       `json:"python_skipped,omitempty"`
	Ratio   float64      `json:"ratio_wall,omitempty"` // Go MB/s ÷ Python MB/s, wall clock
	RatioCP float64      `json:"ratio_cpu,omitempty"`  // the same per CPU second
}

// Throughput is one timed run over a file.
type Throughput struct {
	Wall       float64 `json:"wall_s"`
	CPU        float64 `json:"cpu_s"`
	MBps       float64 `json:"mb_per_s"`       // MB (10^6 bytes) of CSV per wall second
	RowsPerSec float64 `json:"rows_per_s"`     // rows per wall second
	MBperCPU   float64 `json:"mb_per_cpu_s"`   // MB per CPU second: per core, robust on a shared machine
	PeakRSS    int64   `json:"peak_rss_bytes"` // resident high-water mark of the process (0 = not measured)
}

func throughput(bytes, rows int64, wall, cpu float64, rss int64) Throughput {
	t := Throughput{Wall: wall, CPU: cpu, PeakRSS: rss}
	if wall > 0 {
		t.MBps = float64(bytes) / 1e6 / wall
		t.RowsPerSec = float64(rows) / wall
	}
	if cpu > 0 {
		t.MBperCPU = float64(bytes) / 1e6 / cpu
	}
	return t
}

func runConversion(ctx context.Context, opts *Options, work string) (*ConversionResult, error) {
	res := &ConversionResult{}
	if len(opts.Child) == 0 {
		res.Skipped = skipf(opts, "%v", errNoChild)
		return res, nil
	}
	path := filepath.Join(work, "yellow_tripdata_2019-01.csv")
	fmt.Fprintf(opts.Log, "   generating %d MB of yellow 2019 CSV\n", opts.MB)
	st, err := genFile(path, int64(opts.MB)*1e6)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	res.File = fmt.Sprintf("generated yellow 2019, %d rows, seed %d", st.Rows, benchSeed)
	res.Bytes, res.Rows = st.Bytes, st.Rows

	goRun := func() error {
		r, err := runChild(ctx, opts, childConvert, path)
		if err != nil {
			return err
		}
		if r.Rows != st.Rows {
			return fmt.Errorf("converter read %d rows, the generator wrote %d", r.Rows, st.Rows)
		}
		t := throughput(r.Bytes, r.Rows, r.Wall, r.CPU, r.PeakRSS)
		fmt.Fprintf(opts.Log, "   go:     %.1f MB/s, %.0f rows/s, %.1f MB/cpu-s, peak RSS %.1f MiB\n", t.MBps, t.RowsPerSec, t.MBperCPU, mib(t.PeakRSS))
		res.GoRuns = append(res.GoRuns, t)
		return nil
	}
	if err := goRun(); err != nil {
		return nil, err
	}
	py, reason := lookPython(opts)
	script := filepath.Join(opts.SharedDir, "bench", "workshop_convert.py")
	if reason == "" && !fileExists(script) {
		reason = script + " not found"
	}
	if reason != "" {
		res.PySkip = skipf(opts, "python baseline: %s", reason)
	} else {
		cmd := exec.CommandContext(ctx, py, script, path, os.DevNull)
		cmd.Stderr = opts.Log
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("running %s: %w", script, err)
		}
		wall := time.Since(start).Seconds()
		cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		t := throughput(st.Bytes, st.Rows, wall, cpu, maxRSS(cmd.ProcessState))
		fmt.Fprintf(opts.Log, "   python: %.1f MB/s, %.0f rows/s, %.1f MB/cpu-s\n", t.MBps, t.RowsPerSec, t.MBperCPU)
		res.Python = &t
		if err := goRun(); err != nil {
			return nil, err
		}
	}
	res.Go = res.GoRuns[0]
	for _, t := range res.GoRuns[1:] {
		if t.Wall < res.Go.Wall {
			res.Go = t
		}
	}
	if res.Python != nil && res.Python.MBps > 0 && res.Python.MBperCPU > 0 {
		res.Ratio = res.Go.MBps / res.Python.MBps
		res.RatioCP = res.Go.MBperCPU / res.Python.MBperCPU
		fmt.Fprintf(opts.Log, "   ratio:  %.1f× (wall), %.1f× (CPU)\n", res.Ratio, res.RatioCP)
	}
	return res, nil
}

// childConvertFile converts a CSV file the way ingest does and writes the records to /dev/null (the
// baseline writes its output to the same place).
func childConvertFile(path string) (childResult, error) {
	in, err := os.Open(path)
	if err != nil {
		return childResult{}, err
	}
	defer in.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return childResult{}, err
	}
	defer null.Close()
	out := bufio.NewWriterSize(null, 256<<10)

	start, cpu0 := time.Now(), cpuNow()
	rr, err := convert.NewCSVReader(bufio.NewReaderSize(in, 256<<10), convert.Options{
		Source: convert.Source{Bucket: "bench", Key: "raw/" + filepath.Base(path), Version: "v1"},
	})
	if err != nil {
		return childResult{}, err
	}
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *convert.RowError
		if errors.As(err, &re) {
			continue
		}
		if err != nil {
			return childResult{}, fmt.Errorf("converting %s: %w", path, err)
		}
		if _, err := out.Write(rec.JSON); err != nil {
			return childResult{}, err
		}
	}
	if err := out.Flush(); err != nil {
		return childResult{}, err
	}
	st := rr.Stats()
	return childResult{
		Rows: st.RowsRead, Records: st.Records, Rejected: st.Rejected, Bytes: st.Bytes,
		Wall: time.Since(start).Seconds(), CPU: (cpuNow() - cpu0).Seconds(),
	}, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func maxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	return rusageMaxRSS(ps.SysUsage())
}

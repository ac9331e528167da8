package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/taxistream/taxistream/internal/convert"
)

// parquetRounds is how many paired runs (ours, then DuckDB's) each Parquet input gets; medians are
// reported.
const parquetRounds = 3

// greenRepeat is how often TLC's green 2024-01 file is read per run (56,551 rows: one read is too
// short to time).
const greenRepeat = 20

// ParquetSection compares our Parquet reader (Parquet → the stream's JSON records) with DuckDB's
// single-threaded read_parquet → JSON on the same files (issue 17).
type ParquetSection struct {
	Skipped string       `json:"skipped,omitempty"`
	Setup   string       `json:"setup,omitempty"`
	Runs    []ParquetRun `json:"runs,omitempty"`
}

// ParquetRun is one input file, read by both.
type ParquetRun struct {
	Label     string      `json:"label"`
	FileBytes int64       `json:"file_bytes"`
	Repeat    int         `json:"repeat"` // reads of the file per run
	Rows      int64       `json:"rows"`   // rows per run (all repeats)
	Go        ReaderTimes `json:"go"`
	DuckDB    ReaderTimes `json:"duckdb"`
	RatioWall float64     `json:"ratio_wall"` // our rows/s ÷ DuckDB's, medians
	RatioCPU  float64     `json:"ratio_cpu"`  // per CPU second
}

// ReaderTimes are the runs of one reader and their medians.
type ReaderTimes struct {
	Wall       []float64 `json:"wall_s"`
	CPU        []float64 `json:"cpu_s"`
	RowsPerSec float64   `json:"rows_per_s"`     // median
	RowsPerCPU float64   `json:"rows_per_cpu_s"` // median
	PeakRSS    int64     `json:"peak_rss_bytes,omitempty"`
}

func (r *ReaderTimes) add(rows int64, wall, cpu float64) {
	r.Wall = append(r.Wall, wall)
	r.CPU = append(r.CPU, cpu)
	r.RowsPerSec = float64(rows) / median(r.Wall)
	r.RowsPerCPU = float64(rows) / median(r.CPU)
}

// duckdbScript returns node and the DuckDB bench script, or why they cannot run.
func duckdbScript(opts *Options) (node, script, reason string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "", "node not found on PATH"
	}
	dir := filepath.Join(opts.RepoDir, "tools", "node")
	script = filepath.Join(dir, "duckdb-bench.mjs")
	if !fileExists(script) {
		return "", "", script + " not found"
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		return "", "", "@duckdb/node-api is not installed (make tools)"
	}
	return node, script, ""
}

func runDuckDB(ctx context.Context, node, script string, args ...string) (json.RawMessage, error) {
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("running %s %v: %w\n%s", filepath.Base(script), args, err, tail(errb.String(), 2000))
	}
	return lastLine(out.Bytes()), nil
}

func runParquet(ctx context.Context, opts *Options, work string) (*ParquetSection, error) {
	sec := &ParquetSection{Setup: fmt.Sprintf("ours: convert.NewParquetReader in a child process with GOMAXPROCS=1, records written to /dev/null; "+
		"DuckDB (@duckdb/node-api, threads=1): COPY (SELECT * FROM read_parquet([file × repeat])) TO '/dev/null' (FORMAT json), the query alone timed; "+
		"%d paired rounds, medians", parquetRounds)}
	if len(opts.Child) == 0 {
		sec.Skipped = skipf(opts, "%v", errNoChild)
		return sec, nil
	}
	node, script, reason := duckdbScript(opts)
	if reason != "" {
		sec.Skipped = skipf(opts, "DuckDB: %s", reason)
		return sec, nil
	}
	type input struct {
		label  string
		path   string
		repeat int
	}
	var inputs []input
	green := filepath.Join(opts.SharedDir, "data", "tlc", "parquet", "green_tripdata_2024-01.parquet")
	if fileExists(green) {
		inputs = append(inputs, input{fmt.Sprintf("TLC green 2024-01 (pyarrow, all columns dictionary-encoded) × %d", greenRepeat), green, greenRepeat})
	} else {
		fmt.Fprintf(opts.Log, "   %s not found: only the generated file\n", green)
	}
	csv := filepath.Join(work, "yellow_tripdata_2019-01.csv")
	fmt.Fprintf(opts.Log, "   generating %d MB of yellow 2019 CSV and rewriting it as Parquet with DuckDB\n", opts.MB)
	if _, err := genFile(csv, int64(opts.MB)*1e6); err != nil {
		return nil, err
	}
	pq := filepath.Join(work, "yellow_tripdata_2019-01.parquet")
	_, err := runDuckDB(ctx, node, script, "rewrite", csv, pq)
	os.Remove(csv)
	if err != nil {
		return nil, err
	}
	defer os.Remove(pq)
	inputs = append(inputs, input{fmt.Sprintf("generated yellow 2019 (%d MB CSV) rewritten by DuckDB with TLC's column types", opts.MB), pq, 1})

	for _, in := range inputs {
		st, err := os.Stat(in.path)
		if err != nil {
			return nil, err
		}
		run := ParquetRun{Label: in.label, FileBytes: st.Size(), Repeat: in.repeat}
		for round := range parquetRounds {
			r, err := runChild(ctx, opts, childParquet, in.path, fmt.Sprint(in.repeat))
			if err != nil {
				return nil, err
			}
			run.Rows = r.Rows
			run.Go.add(r.Rows, r.Wall, r.CPU)
			run.Go.PeakRSS = max(run.Go.PeakRSS, r.PeakRSS)
			raw, err := runDuckDB(ctx, node, script, "json", fmt.Sprint(in.repeat), in.path)
			if err != nil {
				return nil, err
			}
			var d struct {
				Rows int64   `json:"rows"`
				Wall float64 `json:"wall_s"`
				CPU  float64 `json:"cpu_s"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, fmt.Errorf("reading the DuckDB result %q: %w", raw, err)
			}
			if d.Rows != r.Rows {
				return nil, fmt.Errorf("%s: DuckDB read %d rows, we read %d", in.label, d.Rows, r.Rows)
			}
			run.DuckDB.add(d.Rows, d.Wall, d.CPU)
			fmt.Fprintf(opts.Log, "   round %d, %s: ours %.0f rows/s (%.0f per CPU s), DuckDB %.0f rows/s (%.0f per CPU s)\n", round+1, in.label,
				float64(r.Rows)/r.Wall, float64(r.Rows)/r.CPU, float64(d.Rows)/d.Wall, float64(d.Rows)/d.CPU)
		}
		run.RatioWall = run.Go.RowsPerSec / run.DuckDB.RowsPerSec
		run.RatioCPU = run.Go.RowsPerCPU / run.DuckDB.RowsPerCPU
		fmt.Fprintf(opts.Log, "   %s: %.2f× DuckDB (wall), %.2f× (CPU)\n", in.label, run.RatioWall, run.RatioCPU)
		sec.Runs = append(sec.Runs, run)
	}
	return sec, nil
}

// childParquetFile converts a Parquet file repeat times, single-threaded, records written to /dev/null.
func childParquetFile(path string, repeat int) (childResult, error) {
	runtime.GOMAXPROCS(1)
	f, err := os.Open(path)
	if err != nil {
		return childResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return childResult{}, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return childResult{}, err
	}
	defer null.Close()
	out := bufio.NewWriterSize(null, 256<<10)
	var res childResult
	start, cpu0 := time.Now(), cpuNow()
	for range repeat {
		rr, err := convert.NewParquetReader(f, st.Size(), convert.Options{
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
		s := rr.Stats()
		res.Rows += s.RowsRead
		res.Records += s.Records
		res.Rejected += s.Rejected
	}
	if err := out.Flush(); err != nil {
		return childResult{}, err
	}
	res.Bytes = st.Size() * int64(repeat)
	res.Wall, res.CPU = time.Since(start).Seconds(), (cpuNow() - cpu0).Seconds()
	return res, nil
}

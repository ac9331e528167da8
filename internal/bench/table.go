package bench

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Target thresholds (issues 3, 4 and 9).
const (
	targetConversionRatio = 15.0      // × the workshop baseline
	targetShardByteShare  = 0.95      // of 1 MiB/s, aggregated
	targetThrottledShare  = 0.01      // of entries, aggregated
	targetFlatRSS         = 64 << 20  // resident bytes for a 1 GiB object, conversion path (issues 3, 9)
	targetIngestRSS       = 256 << 20 // IngestFunction with a 1 GiB object under a 256 MB memory setting (issue 6)
	targetTripsPerCore    = 100_000   // trips per CPU second in the consumer
	targetInitMillis      = 50.0      // bootstrap INIT
	// Issue 17.
	targetParquetVsDuckDB = 1.5     // × DuckDB's single-threaded read_parquet → JSON
	targetOverBound       = 0.05    // ingest time over the uniform bound, balanced routing, limits on
	targetFastRowsPerSec  = 100_000 // rows/s end to end with limits off
)

// targets evaluates the issues' goals against what was measured.
func targets(r *Results) []Target {
	var ts []Target
	add := func(name, goal string, measured bool, value string, met bool, note string) {
		t := Target{Name: name, Goal: goal, Value: value, Status: StatusNotMeasured, Note: note}
		if measured {
			t.Status = StatusMissed
			if met {
				t.Status = StatusMet
			}
		}
		ts = append(ts, t)
	}

	c := r.Conversion
	if c != nil && c.Python != nil {
		note := ""
		if c.Ratio >= targetConversionRatio && c.RatioCP < targetConversionRatio {
			note = fmt.Sprintf("on wall clock; per CPU second %.1f×", c.RatioCP)
		}
		add("conversion vs workshop baseline", fmt.Sprintf("≥ %.0f×", targetConversionRatio), true,
			fmt.Sprintf("%.1f× wall, %.1f× per CPU second", c.Ratio, c.RatioCP), c.Ratio >= targetConversionRatio, note)
	} else {
		add("conversion vs workshop baseline", fmt.Sprintf("≥ %.0f×", targetConversionRatio), false, "", false, skipReason(c, func(c *ConversionResult) string {
			if c.Skipped != "" {
				return c.Skipped
			}
			return c.PySkip
		}))
	}

	s := r.Saturation
	if s != nil && s.Aggregated != nil {
		a := s.Aggregated
		add("one shard, aggregated", fmt.Sprintf("≥ %.0f %% of 1 MiB/s, < %.0f %% throttled", 100*targetShardByteShare, 100*targetThrottledShare), true,
			fmt.Sprintf("%.1f %% of 1 MiB/s, %.2f %% throttled", 100*a.ByteShare, 100*a.ThrottledShare),
			a.ByteShare >= targetShardByteShare && a.ThrottledShare < targetThrottledShare, "")
	} else {
		add("one shard, aggregated", "≥ 95 % of 1 MiB/s, < 1 % throttled", false, "", false, skipReason(s, func(s *SaturationSection) string { return s.Skipped }))
	}
	if s != nil && s.Plain != nil {
		p := s.Plain
		add("one shard, not aggregated", "capped by 1,000 records/s (not by bytes)", true,
			fmt.Sprintf("%.0f records/s (%.1f %%), %.1f %% of 1 MiB/s", p.RecordsPerSec, 100*p.RecordShare, 100*p.ByteShare),
			p.RecordShare >= 0.9 && p.RecordShare <= 1.0 && p.ByteShare < 0.9, "shows why aggregation matters")
	}

	in := r.Ingest
	var big *IngestRun
	if in != nil {
		for i := range in.Runs {
			if in.Runs[i].RequestedBytes >= 1<<30 {
				big = &in.Runs[i]
			}
		}
	}
	const flatGoal = "≤ 64 MiB resident"
	switch {
	case big != nil:
		add("flat memory, 1 GiB object, conversion path", flatGoal, true, fmt.Sprintf("%.1f MiB peak RSS (converter alone)", mib(big.ConvertPeakRSS)),
			big.ConvertPeakRSS > 0 && big.ConvertPeakRSS <= targetFlatRSS, "")
		small := in.Runs[0]
		add("1 GiB object, IngestFunction", "< 256 MB resident (a 256 MB function), flat", true,
			fmt.Sprintf("%.1f MiB (%s: %.1f MiB); Kinesis discarding: %.1f MiB (%s: %.1f MiB)", mib(big.PeakRSS), small.Label, mib(small.PeakRSS),
				mib(big.DiscardPeakRSS), small.Label, mib(small.DiscardPeakRSS)),
			big.PeakRSS < targetIngestRSS && big.PeakRSS < 2*small.PeakRSS, "")
	case in != nil && len(in.Runs) > 0:
		last := in.Runs[len(in.Runs)-1]
		add("flat memory, 1 GiB object, conversion path", flatGoal, false,
			fmt.Sprintf("%.1f MiB converter, %.1f MiB ingest for %s", mib(last.ConvertPeakRSS), mib(last.PeakRSS), last.Label), false, "run with --big for the 1 GiB object")
	default:
		add("flat memory, 1 GiB object, conversion path", flatGoal, false, "", false, skipReason(in, func(s *IngestSection) string { return s.Skipped }))
	}

	co := r.Consumer
	if co != nil && co.Skipped == "" {
		add("consumer per core", "≥ 100,000 trips/s per core", true,
			fmt.Sprintf("%.0f trips per CPU second (%.0f trips/s wall on GOMAXPROCS=1)", co.TripsPerCPU, co.TripsPerSec), co.TripsPerCPU >= targetTripsPerCore, "")
	} else {
		add("consumer per core", "≥ 100,000 trips/s per core", false, "", false, skipReason(co, func(c *ConsumerResult) string { return c.Skipped }))
	}

	if pq := r.Parquet; pq != nil && pq.Skipped == "" && len(pq.Runs) > 0 {
		worst := pq.Runs[0]
		var vals []string
		for _, run := range pq.Runs {
			if min(run.RatioWall, run.RatioCPU) < min(worst.RatioWall, worst.RatioCPU) {
				worst = run
			}
			vals = append(vals, fmt.Sprintf("%.2f× wall, %.2f× CPU (%s)", run.RatioWall, run.RatioCPU, shortLabel(run.Label)))
		}
		add("Parquet → records vs DuckDB", fmt.Sprintf("≥ %.1f× DuckDB read_parquet → JSON, 1 thread", targetParquetVsDuckDB), true,
			strings.Join(vals, "; "), min(worst.RatioWall, worst.RatioCPU) >= targetParquetVsDuckDB, "")
	} else {
		add("Parquet → records vs DuckDB", "≥ 1.5× DuckDB read_parquet → JSON, 1 thread", false, "", false, skipReason(pq, func(s *ParquetSection) string { return s.Skipped }))
	}

	if h := historicOf(co); h != nil && h.Skipped == "" && len(h.With) > 0 {
		add("zone shapes, consumer cost", "≤ 10 % fewer trips per CPU second (2015 trips)", true,
			fmt.Sprintf("%.1f %% (median %.0f → %.0f trips per CPU second, %d rounds)", h.DropPercent, h.WithoutMedian, h.WithMedian, len(h.With)),
			h.DropPercent <= 10, "")
	} else {
		reason := "section not run"
		if h != nil {
			reason = h.Skipped
		} else if co != nil && co.Skipped != "" {
			reason = co.Skipped
		}
		add("zone shapes, consumer cost", "≤ 10 % fewer trips per CPU second (2015 trips)", false, "", false, reason)
	}
	if cp := r.Compaction; cp != nil && cp.Skipped == "" {
		add("compaction memory", fmt.Sprintf("peak RSS within a %d MB function", cp.FunctionMB), true,
			fmt.Sprintf("%.0f MiB compacting %.0f MB", mib(cp.PeakRSS), float64(cp.SourceBytes)/1e6), cp.PeakRSS < int64(cp.FunctionMB)<<20, "")
	} else {
		add("compaction memory", "peak RSS within a 1024 MB function", false, "", false, skipReason(cp, func(c *CompactionResult) string { return c.Skipped }))
	}

	cs := r.ColdStart
	var worst float64
	var measured int
	var worstFn string
	if cs != nil {
		for _, f := range cs.Functions {
			if len(f.InitMillis) > 0 {
				measured++
				if f.InitMedian > worst {
					worst, worstFn = f.InitMedian, f.Function
				}
			}
		}
	}
	if measured > 0 {
		add("bootstrap INIT", "≤ 50 ms", true, fmt.Sprintf("slowest median %.1f ms (%s)", worst, worstFn), worst <= targetInitMillis, "")
	} else {
		add("bootstrap INIT", "≤ 50 ms", false, "", false, skipReason(cs, func(c *ColdStartSection) string { return c.Skipped }))
	}

	if l := r.Local; l != nil && l.Skipped == "" && len(l.Runs) > 0 {
		var vals []string
		met := true
		for _, run := range l.Runs {
			vals = append(vals, fmt.Sprintf("%.0f rows/s (%s)", run.RowsPerSec, run.Label))
			met = met && run.RowsPerSec >= targetFastRowsPerSec && run.Reconciled
		}
		add("local run, limits off", "≥ 100,000 rows/s end to end, reconciled", true, strings.Join(vals, "; "), met, "")
	} else {
		add("local run, limits off", "≥ 100,000 rows/s end to end, reconciled", false, "", false, skipReason(l, func(s *LocalSection) string { return s.Skipped }))
	}
	if sh := r.Shards; sh != nil && sh.Skipped == "" && len(sh.Runs) > 0 {
		var vals []string
		met, any := true, false
		for _, run := range sh.Runs {
			if run.Routing != "balanced" {
				continue
			}
			any = true
			vals = append(vals, fmt.Sprintf("%d shards: %+.1f %% of the bound, %.2f %% throttled", run.Shards, 100*run.OverBound, 100*run.ThrottledShare))
			met = met && run.OverBound <= targetOverBound && run.Throttled == 0
		}
		add("ingest over shards, balanced", "within 5 % of bytes ÷ (shards × 1 MiB/s), 0 % throttled", any, strings.Join(vals, "; "), met && any, "")
	} else {
		add("ingest over shards, balanced", "within 5 % of bytes ÷ (shards × 1 MiB/s), 0 % throttled", false, "", false, skipReason(sh, func(s *LocalSection) string { return s.Skipped }))
	}
	memoryTargets(r.Memory, add)
	return ts
}

// shortLabel is a label up to its first parenthesis or comma.
func shortLabel(s string) string {
	if i := strings.IndexAny(s, "(,"); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

func shares(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", 100*x)
	}
	return strings.Join(parts, "/") + " %"
}

func historicOf(c *ConsumerResult) *HistoricConsumer {
	if c == nil {
		return nil
	}
	return c.Historic
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.0f", f)
	}
	return strings.Join(s, ", ")
}

func skipReason[T any](s *T, f func(*T) string) string {
	if s == nil {
		return "section not run"
	}
	return f(s)
}

// WriteTable writes the results as aligned text tables.
func WriteTable(w io.Writer, r *Results) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs, %s, %s; load %s → %s; %s\n\n", m.OS, m.Arch, m.CPUs, m.CPUModel, m.GoVersion,
		m.LoadBefore, m.LoadAfter, m.Date.Format("2006-01-02 15:04 MST"))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tMEASURE\tVALUE")
	for _, row := range rows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tGOAL\tMEASURED\tSTATUS")
	for _, t := range r.Targets {
		status := t.Status
		if t.Note != "" {
			status += " (" + t.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Goal, t.Value, status)
	}
	return tw.Flush()
}

// rows flattens the results into (section, measure, value) lines.
func rows(r *Results) [][3]string {
	var out [][3]string
	add := func(sec, what, format string, args ...any) {
		out = append(out, [3]string{sec, what, fmt.Sprintf(format, args...)})
	}
	if c := r.Conversion; c != nil {
		if c.Skipped != "" {
			add("conversion", "skipped", "%s", c.Skipped)
		} else {
			add("conversion", "input", "%.1f MB, %d rows (%s)", float64(c.Bytes)/1e6, c.Rows, c.File)
			add("conversion", "go (best of runs)", "%.1f MB/s, %.0f rows/s; %.1f MB per CPU s; peak RSS %.1f MiB", c.Go.MBps, c.Go.RowsPerSec, c.Go.MBperCPU, mib(c.Go.PeakRSS))
			if c.Python != nil {
				add("conversion", "python workshop_convert.py", "%.1f MB/s, %.0f rows/s; %.1f MB per CPU s", c.Python.MBps, c.Python.RowsPerSec, c.Python.MBperCPU)
				add("conversion", "ratio go/python", "%.1f× wall, %.1f× CPU", c.Ratio, c.RatioCP)
			} else {
				add("conversion", "python baseline", "skipped: %s", c.PySkip)
			}
		}
	}
	if s := r.Saturation; s != nil {
		if s.Skipped != "" {
			add("shard", "skipped", "%s", s.Skipped)
		}
		for _, x := range []*SaturationResult{s.Aggregated, s.Plain} {
			if x == nil {
				continue
			}
			name := "plain"
			if x.Aggregate {
				name = "aggregated"
			}
			add("shard", name, "%.3f MiB/s (%.1f %% of 1 MiB/s); %.0f records/s (%.1f %% of 1,000); %.0f trips/s; throttled %.2f %% of %d entries; %.0f s "+
				"(whole run from the first Put: %.1f %% of 1 MiB/s, %.2f %% throttled over %.1f s)",
				x.MiBPerSec, 100*x.ByteShare, x.RecordsPerSec, 100*x.RecordShare, x.TripsPerSec, 100*x.ThrottledShare, x.Entries, x.Seconds,
				100*x.RunByteShare, 100*x.RunThrottledShare, x.RunSeconds)
		}
	}
	if in := r.Ingest; in != nil {
		if in.Skipped != "" {
			add("ingest", "skipped", "%s", in.Skipped)
		}
		for _, x := range in.Runs {
			add("ingest", x.Label, "%.0f rows/s, %.1f MB/s of CSV, %.1f MiB/s to Kinesis, %.2f cores; peak RSS %.1f MiB; %d rows, %d sent, %d rejected, %d Kinesis records",
				x.RowsPerSec, x.MBps, x.KinesisMiBps, x.CoresUsed, mib(x.PeakRSS), x.RowsRead, x.RecordsSent, x.Rejected, x.KinesisRecords)
			add("ingest", x.Label+", Kinesis discarding", "%.0f rows/s; peak RSS %.1f MiB (the function without the in-process stream's records)", x.DiscardRowsPerSec, mib(x.DiscardPeakRSS))
			add("ingest", x.Label+", converter alone", "%.1f MB/s; peak RSS %.1f MiB", x.ConvertMBps, mib(x.ConvertPeakRSS))
		}
	}
	if c := r.Consumer; c != nil {
		if c.Skipped != "" {
			add("consumer", "skipped", "%s", c.Skipped)
		} else {
			add("consumer", "ProcessFunction, GOMAXPROCS=1", "%.0f trips/s wall, %.0f trips per CPU s, %.2f cores (inside the handler alone, decode + Handle + encode: %.0f trips/s); %d trips, %d invokes, %.1f MB written",
				c.TripsPerSec, c.TripsPerCPU, c.CoresUsed, c.TripsPerHandleSec, c.Trips, c.Invokes, float64(c.OutputBytes)/1e6)
			if h := c.Historic; h != nil && h.Skipped != "" {
				add("consumer", "2015 trips, zone shapes", "skipped: %s", h.Skipped)
			} else if h != nil {
				add("consumer", "2015 trips, zone shapes", "without: %s trips per CPU s; with: %s (median %.0f → %.0f, %.1f %% fewer; %d distinct trips of %s)",
					joinFloats(h.Without), joinFloats(h.With), h.WithoutMedian, h.WithMedian, h.DropPercent, h.Trips, filepath.Base(h.Input))
			}
		}
	}
	if cs := r.ColdStart; cs != nil {
		if cs.Skipped != "" {
			add("cold start", "note", "%s", cs.Skipped)
		}
		for _, f := range cs.Functions {
			v := fmt.Sprintf("bootstrap %s native, %s arm64", sizeOrDash(f.NativeBytes), sizeOrDash(f.ARM64Bytes))
			if len(f.InitMillis) > 0 {
				v += fmt.Sprintf("; INIT median %.1f ms, min %.1f ms (%d starts)", f.InitMedian, f.InitMin, len(f.InitMillis))
			} else if f.Skipped != "" {
				v += "; INIT skipped: " + f.Skipped
			}
			add("cold start", f.Function, "%s", v)
		}
	}
	if pq := r.Parquet; pq != nil {
		if pq.Skipped != "" {
			add("parquet", "skipped", "%s", pq.Skipped)
		}
		for _, run := range pq.Runs {
			add("parquet", run.Label, "%.1f MB file, %d rows per run; ours %.0f rows/s, %.0f per CPU s (peak RSS %.1f MiB); DuckDB %.0f rows/s, %.0f per CPU s; %.2f× wall, %.2f× CPU",
				float64(run.FileBytes)/1e6, run.Rows, run.Go.RowsPerSec, run.Go.RowsPerCPU, mib(run.Go.PeakRSS), run.DuckDB.RowsPerSec, run.DuckDB.RowsPerCPU, run.RatioWall, run.RatioCPU)
		}
	}
	for _, sec := range []struct {
		name string
		s    *LocalSection
	}{{"local", r.Local}, {"shards", r.Shards}} {
		if sec.s == nil {
			continue
		}
		if sec.s.Skipped != "" {
			add(sec.name, "skipped", "%s", sec.s.Skipped)
		}
		for _, run := range sec.s.Runs {
			v := fmt.Sprintf("%d rows, %.0f rows/s end to end (pipeline %.1f s, drained %.1f s, summary %.1f s); ingest %.1f s", run.Rows, run.RowsPerSec,
				run.Pipeline, run.Drained, run.Summary, run.Ingest)
			if !run.LimitsOff {
				v += fmt.Sprintf(" vs bound %.1f s (%+.1f %%, %.0f %% of write capacity used), throttled %.2f %% of entries, shard shares %s",
					run.UniformBound, 100*run.OverBound, 100*run.StreamShareUsed, 100*run.ThrottledShare, shares(run.ShardShares))
			}
			v += fmt.Sprintf("; CPU %.1f s per million rows (+ %.1f s summary); peak RSS %.0f MiB; reconciled %v", run.CPUPerMRows, run.SummaryCPUPerMRows, mib(run.PeakRSS), run.Reconciled)
			add(sec.name, run.Label, "%s", v)
		}
	}
	if c := r.Cost; c != nil {
		for _, l := range c.lines() {
			add("cost", l[0], "%s", l[1])
		}
	}
	memoryRows(r.Memory, add)
	if cp := r.Compaction; cp != nil {
		if cp.Skipped != "" {
			add("compaction", "skipped", "%s", cp.Skipped)
		} else {
			add("compaction", fmt.Sprintf("%.0f MB partition", float64(cp.SourceBytes)/1e6),
				"%d → %d objects (%.0f MB after), %d rows (%d duplicates dropped), %d sorted runs; %.1f s wall, %.1f CPU s, %.1f MB/s; peak RSS %.0f MiB (soft limit %d MiB)",
				cp.SourceFiles, cp.FilesAfter, float64(cp.BytesAfter)/1e6, cp.Rows, cp.Duplicates, cp.Runs, cp.Wall, cp.CPU, cp.MBPerSecond, mib(cp.PeakRSS), cp.MemoryLimitMB)
		}
	}
	for i := range out {
		out[i][2] = strings.ReplaceAll(out[i][2], "\t", " ")
	}
	return out
}

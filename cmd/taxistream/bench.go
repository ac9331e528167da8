package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/taxistream/taxistream/internal/bench"
	"github.com/taxistream/taxistream/internal/producer"
)

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// cmdBench measures conversion, shard saturation, ingest, the consumer and cold starts (issue 9) and
// writes a table to stdout and the numbers as JSON. `bench --child MODE ...` is the hidden mode in
// which the command re-executes itself to measure one thing in a fresh process.
func cmdBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "--child" || args[0] == "-child") {
		return bench.ChildMain(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mb       = fs.Int("mb", 100, "size of the generated yellow 2019 CSV for conversion and ingest, in MB")
		big      = fs.Bool("big", false, "also ingest a 1 GiB object (takes minutes; generated under -tmp and deleted)")
		quick    = fs.Bool("quick", false, "a fast smoke run: small sizes, short durations")
		jsonOut  = fs.String("json", "bench-results.json", "write the results as JSON to this file (\"-\" for none)")
		satDur   = fs.Duration("saturation", 0, "measured time per shard saturation variant (default 15s; quick 2s)")
		trips    = fs.Int("trips", 0, "distinct trips fed to ProcessFunction (default 200000; quick 20000)")
		starts   = fs.Int("cold-starts", 0, "emulator starts per function (default 5; quick 1)")
		shards   = fs.String("shards", "", "shard counts of the shards section, comma-separated (default 4,8; quick 2)")
		routings = fs.String("routings", "", "shard routings of the shards section, comma-separated (default balanced,key)")
		compMB   = fs.Int("compact-mb", 0, "size of the partition the compaction section generates and compacts, in MB (default 1000; quick 32)")
		sections = fs.String("sections", "", "comma-separated sections to run (default all: "+strings.Join(bench.Sections, ",")+")")
		tmp      = fs.String("tmp", "", "folder for generated files (default the system temp folder)")
		repo     = fs.String("repo", ".", "project root (bin/, .tools/, events/)")
		shared   = fs.String("shared", "", "the shared folder with bench/workshop_convert.py and data/ (default REPO/../shared)")
		python   = fs.String("python", "", "python interpreter for the baseline (default python3 on PATH; \"-\" skips it)")
		memMB    = fs.String("memory-mb", "", "input sizes of the memory section in MB, comma-separated (default 100,500; with --big also 1000)")
		memSh    = fs.String("memory-shards", "", "shard counts of the memory section, comma-separated (default 1,4)")
		measured = fs.String("measure", "", "the taxistream binary the child processes run (default this one): another build, measured by this one's harness, side by side")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream bench [flags]\n\nMeasures conversion vs the workshop baseline, Parquet input vs DuckDB, one shard's saturation, ingest end to end\nwith peak memory, consumer trips/s per core, cold starts, whole local runs (limits off, and limits on over\nseveral shards), the Lambda cost they imply, and the local pipeline's peak memory against input size;\nprints a table and writes JSON.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *mb < 0 || *trips < 0 || *starts < 0 || *satDur < 0 {
		return fmt.Errorf("%w: sizes and durations must not be negative", errUsage)
	}
	mbSet := false
	fs.Visit(func(f *flag.Flag) { mbSet = mbSet || f.Name == "mb" })
	opts := bench.Options{
		Big: *big, Quick: *quick, SaturationDuration: *satDur, ConsumerTrips: *trips, ColdStarts: *starts, CompactMB: *compMB,
		TempDir: *tmp, RepoDir: *repo, SharedDir: *shared, Python: *python, Log: stderr,
	}
	if mbSet || !*quick {
		opts.MB = *mb
	}
	for _, v := range splitList(*shards) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return fmt.Errorf("%w: --shards %q: want shard counts 1-500", errUsage, v)
		}
		opts.ShardCounts = append(opts.ShardCounts, n)
	}
	for _, v := range splitList(*routings) {
		if _, err := producer.ParseRouting(v); err != nil {
			return fmt.Errorf("%w: --routings: %v", errUsage, err)
		}
		opts.Routings = append(opts.Routings, v)
	}
	if *sections != "" {
		for _, s := range strings.Split(*sections, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(bench.Sections, s) {
				return fmt.Errorf("%w: unknown section %q (want %s)", errUsage, s, strings.Join(bench.Sections, ","))
			}
			opts.Sections = append(opts.Sections, s)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the taxistream binary to measure in child processes: %w", err)
	}
	if *measured != "" {
		if exe, err = filepath.Abs(*measured); err != nil {
			return fmt.Errorf("%w: --measure: %w", errUsage, err)
		}
		if _, err := os.Stat(exe); err != nil {
			return fmt.Errorf("%w: --measure: %w", errUsage, err)
		}
	}
	opts.Child = []string{exe, "bench", "--child"}
	opts.CLI = []string{exe}
	for flagName, list := range map[string]struct {
		v   string
		dst *[]int
	}{"memory-mb": {*memMB, &opts.MemoryMB}, "memory-shards": {*memSh, &opts.MemoryShards}} {
		for _, f := range strings.Split(list.v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				return fmt.Errorf("%w: --%s %q: want positive numbers", errUsage, flagName, list.v)
			}
			*list.dst = append(*list.dst, n)
		}
	}

	res, err := bench.Run(ctx, opts)
	if err != nil {
		return err
	}
	res.Command = "taxistream bench " + strings.Join(args, " ")
	fmt.Fprintln(stdout)
	if err := bench.WriteTable(stdout, res); err != nil {
		return err
	}
	if *jsonOut != "-" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", *jsonOut, err)
		}
		fmt.Fprintf(stderr, "results written to %s (%.0f s)\n", *jsonOut, res.Elapsed)
	}
	return nil
}

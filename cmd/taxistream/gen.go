package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/taxistream/taxistream/internal/gen"
)

// cmdGen writes a generated TLC trip file (deterministic for a seed) to -o or stdout.
func cmdGen(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o gen.Options
	var out string
	fs.StringVar(&o.Taxi, "taxi", "yellow", "taxi type: yellow, green, fhv or fhvhv")
	fs.IntVar(&o.Layout, "layout", 2019, "column layout year, 2009–2025 (the pickups fall in this year)")
	fs.IntVar(&o.Layout, "year", 2019, "alias of -layout")
	fs.IntVar(&o.Month, "month", 1, "month of the pickups, 1–12")
	fs.Int64Var(&o.Rows, "rows", 1000, "data rows")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same file")
	fs.BoolVar(&o.Gzip, "gzip", false, "gzip the output (default when -o ends in .gz)")
	fs.BoolVar(&o.CRLF, "crlf", false, "CRLF line ends")
	fs.Float64Var(&o.BadRowRate, "bad-rate", 0, "share of rows with an unparseable value, 0–1 (shows rejects)")
	fs.StringVar(&out, "o", "-", "output file, - for stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream gen [flags]\n\nWrites a realistic TLC trip CSV.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if err := optionsFromName(fs, out, &o, stderr); err != nil {
		return err
	}
	w := stdout
	if out != "-" {
		if strings.HasSuffix(strings.ToLower(out), ".gz") {
			o.Gzip = true
		}
		f, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("creating %s: %w", out, err)
		}
		defer f.Close()
		w = f
	}
	st, err := gen.Write(w, o)
	if errors.Is(err, gen.ErrOptions) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && w != stdout {
		if err := f.Close(); err != nil {
			return fmt.Errorf("closing %s: %w", out, err)
		}
	}
	fmt.Fprintf(stderr, "gen: %s trips of %d-%02d (the %d column layout), %d rows (%d bad), %d CSV bytes\n",
		o.Taxi, o.Layout, o.Month, o.Layout, st.Rows, st.BadRows, st.Bytes)
	return ctx.Err()
}

// optionsFromName takes the taxi type, year and month from a TLC-style output name
// (fhvhv_tripdata_2022-03.csv) for the flags not given, so the file holds what its name says. A flag
// given explicitly wins, with a note naming the mismatch. A .parquet name is refused: gen writes CSV.
func optionsFromName(fs *flag.FlagSet, out string, o *gen.Options, stderr io.Writer) error {
	if out == "-" {
		return nil
	}
	if strings.HasSuffix(strings.ToLower(out), ".parquet") {
		return fmt.Errorf("%w: -o %s: gen writes CSV (.csv or .csv.gz)", errUsage, out)
	}
	n, ok := gen.FromName(out)
	if !ok {
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	take := func(flagNames []string, nameVal, flagVal any, apply func()) {
		explicit := false
		for _, f := range flagNames {
			explicit = explicit || set[f]
		}
		switch {
		case !explicit:
			apply()
		case nameVal != flagVal:
			fmt.Fprintf(stderr, "gen: note: %s says %s %v, the flags say %v; writing what the flags say\n", out, flagNames[0], nameVal, flagVal)
		}
	}
	take([]string{"taxi"}, n.Taxi, o.Taxi, func() { o.Taxi = n.Taxi })
	take([]string{"year", "layout"}, n.Year, o.Layout, func() { o.Layout = n.Year })
	take([]string{"month"}, n.Month, o.Month, func() { o.Month = n.Month })
	return nil
}

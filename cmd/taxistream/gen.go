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
	fmt.Fprintf(stderr, "gen: %s %d layout, %d rows (%d bad), %d CSV bytes\n", o.Taxi, o.Layout, st.Rows, st.BadRows, st.Bytes)
	return ctx.Err()
}

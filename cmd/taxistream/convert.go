package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/taxistream/taxistream/internal/convert"
)

// cmdConvert converts trip files (.csv, .csv.gz, .parquet; - for stdin) to the stream's JSON records on
// stdout, with a summary per file on stderr: what the stream would see, without AWS.
func cmdConvert(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	taxi := fs.String("taxi", "", "force the taxi type (yellow, green, fhv, fhvhv); default: from the header and file name")
	bucket := fs.String("bucket", "local", "bucket name that goes into record_id")
	version := fs.String("version", "", "object version or ETag that goes into record_id")
	showRejects := fs.Int("rejects", 10, "rejected rows to print per file (line, reason, raw text)")
	quiet := fs.Bool("q", false, "no records on stdout, only the summary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream convert [flags] FILE... (- for stdin)\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *taxi {
	case "", "yellow", "green", "fhv", "fhvhv":
	default:
		return fmt.Errorf("%w: -taxi %q (want yellow, green, fhv or fhvhv)", errUsage, *taxi)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no input files (use - for stdin)", errUsage)
	}
	names, skipped := checkInputs("convert", fs.Args(), stderr) // before anything is converted
	if len(names) == 0 {
		return skippedError(skipped)
	}
	out := bufio.NewWriterSize(stdout, 1<<20)
	var failed []string
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			out.Flush()
			return fmt.Errorf("%w: %v", errInterrupted, err)
		}
		opts := convert.Options{
			Source:   convert.Source{Bucket: *bucket, Key: name, Version: *version},
			FileName: name,
			TaxiType: *taxi,
		}
		st, warnings, err := convertOne(ctx, name, stdin, out, stderr, opts, *showRejects, *quiet)
		fmt.Fprintf(stderr, "%s: rows read %d, records %d, rejected %d%s\n", name, st.RowsRead, st.Records, st.Rejected, reasons(st.Reasons))
		if err == nil {
			for _, w := range warnings {
				fmt.Fprintf(stderr, "%s: warning: %s\n", name, w)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			failed = append(failed, name)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing records: %w", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", errInterrupted, ctx.Err())
	}
	var errs []error
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d files failed: %s", len(failed), len(names), strings.Join(failed, ", ")))
	}
	if len(skipped) > 0 {
		errs = append(errs, skippedError(skipped))
	}
	return errors.Join(errs...)
}

func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// convertOne converts one file (or stdin) and returns its stats and, when it converted, the warnings
// about the whole file (convert.Warnings: the rule ingest applies to an object).
func convertOne(ctx context.Context, name string, stdin io.Reader, out *bufio.Writer, stderr io.Writer, opts convert.Options, showRejects int, quiet bool) (convert.Stats, []string, error) {
	var in io.Reader
	size := int64(-1)
	if name == "-" {
		in = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return convert.Stats{}, nil, fmt.Errorf("opening: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return convert.Stats{}, nil, err
		}
		size = fi.Size()
		if convert.FormatOf(name) == convert.FormatParquet && size > 0 {
			rr, err := convert.NewParquetReader(f, size, opts)
			if err != nil {
				return convert.Stats{}, nil, err
			}
			return drain(ctx, rr, out, stderr, name, showRejects, quiet, size)
		}
		in = f
	}
	br := bufio.NewReaderSize(in, 1<<20)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case len(magic) == 0:
		// No bytes at all: an empty file, whatever its name says (.csv.gz, .parquet included), as
		// IngestFunction takes an empty object.
		size = 0
	case bytes.HasPrefix(magic, []byte("PAR1")):
		// Parquet needs random access: stdin is read into memory.
		data, err := io.ReadAll(br)
		if err != nil {
			return convert.Stats{}, nil, fmt.Errorf("reading: %w", err)
		}
		rr, err := convert.NewParquetReader(bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			return convert.Stats{}, nil, err
		}
		return drain(ctx, rr, out, stderr, name, showRejects, quiet, int64(len(data)))
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b, convert.FormatOf(name) == convert.FormatGzipCSV:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return convert.Stats{}, nil, fmt.Errorf("reading gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	rr, err := convert.NewCSVReader(r, opts)
	if err != nil {
		return convert.Stats{}, nil, err
	}
	return drain(ctx, rr, out, stderr, name, showRejects, quiet, size)
}

func drain(ctx context.Context, rr convert.RowReader, out *bufio.Writer, stderr io.Writer, name string, showRejects int, quiet bool, size int64) (convert.Stats, []string, error) {
	st, err := drainRows(ctx, rr, out, stderr, name, showRejects, quiet)
	if err != nil {
		return st, nil, err
	}
	return st, convert.Warnings(rr.Checkpoint(), st, size), nil
}

func drainRows(ctx context.Context, rr convert.RowReader, out *bufio.Writer, stderr io.Writer, name string, showRejects int, quiet bool) (convert.Stats, error) {
	shown := 0
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return rr.Stats(), ctx.Err()
		}
		rec, err := rr.Next()
		if err == io.EOF {
			return rr.Stats(), nil
		}
		var re *convert.RowError
		if errors.As(err, &re) {
			if shown < showRejects {
				fmt.Fprintf(stderr, "%s:%d: rejected: %s: %s: %q\n", name, re.Line, re.Code, re.Detail, re.Raw)
				shown++
			}
			continue
		}
		if err != nil {
			return rr.Stats(), err
		}
		if !quiet {
			if _, err := out.Write(rec.JSON); err != nil {
				return rr.Stats(), fmt.Errorf("writing records: %w", err)
			}
		}
	}
}

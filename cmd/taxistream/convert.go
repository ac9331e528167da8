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
	"github.com/taxistream/taxistream/internal/feed"
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
	for _, name := range fs.Args() { // before anything is converted
		if name == "-" {
			continue
		}
		if _, err := feed.StatInput(name); err != nil {
			return err
		}
	}
	out := bufio.NewWriterSize(stdout, 1<<20)
	var failed []string
	for _, name := range fs.Args() {
		if err := ctx.Err(); err != nil {
			out.Flush()
			return err
		}
		opts := convert.Options{
			Source:   convert.Source{Bucket: *bucket, Key: name, Version: *version},
			FileName: name,
			TaxiType: *taxi,
		}
		st, err := convertOne(ctx, name, stdin, out, stderr, opts, *showRejects, *quiet)
		fmt.Fprintf(stderr, "%s: rows read %d, records %d, rejected %d%s\n", name, st.RowsRead, st.Records, st.Rejected, reasons(st.Reasons))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			failed = append(failed, name)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing records: %w", err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d files failed: %s", len(failed), fs.NArg(), strings.Join(failed, ", "))
	}
	return nil
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

func convertOne(ctx context.Context, name string, stdin io.Reader, out *bufio.Writer, stderr io.Writer, opts convert.Options, showRejects int, quiet bool) (convert.Stats, error) {
	var in io.Reader
	if name == "-" {
		in = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return convert.Stats{}, fmt.Errorf("opening: %w", err)
		}
		defer f.Close()
		if convert.FormatOf(name) == convert.FormatParquet {
			fi, err := f.Stat()
			if err != nil {
				return convert.Stats{}, err
			}
			rr, err := convert.NewParquetReader(f, fi.Size(), opts)
			if err != nil {
				return convert.Stats{}, err
			}
			return drain(ctx, rr, out, stderr, name, showRejects, quiet)
		}
		in = f
	}
	br := bufio.NewReaderSize(in, 1<<20)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte("PAR1")):
		// Parquet needs random access: stdin is read into memory.
		data, err := io.ReadAll(br)
		if err != nil {
			return convert.Stats{}, fmt.Errorf("reading: %w", err)
		}
		rr, err := convert.NewParquetReader(bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			return convert.Stats{}, err
		}
		return drain(ctx, rr, out, stderr, name, showRejects, quiet)
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b, convert.FormatOf(name) == convert.FormatGzipCSV:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return convert.Stats{}, fmt.Errorf("reading gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	rr, err := convert.NewCSVReader(r, opts)
	if err != nil {
		return convert.Stats{}, err
	}
	return drain(ctx, rr, out, stderr, name, showRejects, quiet)
}

func drain(ctx context.Context, rr convert.RowReader, out *bufio.Writer, stderr io.Writer, name string, showRejects int, quiet bool) (convert.Stats, error) {
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/obs"
)

// cmdCompact runs the compaction of processed/trips/ on a local bucket folder or an s3:// bucket: what
// CompactFunction does on its schedule, from a laptop.
func cmdCompact(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var req compact.Request
	fs.StringVar(&req.From, "from", "", "first pickup date to compact, YYYY-MM-DD (default: the first)")
	fs.StringVar(&req.To, "to", "", "last pickup date to compact, YYYY-MM-DD (default: the last)")
	fs.BoolVar(&req.DryRun, "dry-run", false, "list what would be merged; change nothing")
	fs.BoolVar(&req.Takeover, "takeover", false, "recover unfinished plans even inside their lease (only when no other compaction runs: after a crash)")
	targetMB := fs.Int("target-mb", 128, "size of the files compaction writes (MiB); compacted files of at least half of it are final")
	timeout := fs.Duration("timeout", compact.DefaultMaxDuration, "stop starting partitions after this long (the run's lease); rerun to go on")
	tmp := fs.String("tmp", "", "folder for the merge's temporary files (default the system temp folder)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	verbose := fs.Bool("v", false, "log every partition (JSON lines on stderr)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream compact [flags] BUCKET-DIR | s3://BUCKET\n\nMerges the small Parquet objects of each processed/trips/pickup_date= partition into files of about\n--target-mb, sorted by pickup time, without duplicate record_ids, and deletes the merged objects —\nCompactFunction's work, crash-safe and resumable (docs/query.md). BUCKET-DIR is a folder holding\nprocessed/trips/ (the local cloud's is .taxistream/bucket). For s3://, credentials and region come\nfrom the standard chain; AWS_ENDPOINT_URL_S3 points the client elsewhere (path-style addressing).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: give one bucket folder or s3://bucket", errUsage)
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *targetMB < 1 || *timeout <= 0 {
		return fmt.Errorf("%w: --target-mb and --timeout must be positive", errUsage)
	}
	store, bucketName, closeStore, err := openStore(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer closeStore()
	logLevel := "WARN"
	if *verbose {
		logLevel = "INFO"
	}
	c, err := compact.NewCompactor(store, compact.Options{
		Bucket: bucketName, TargetFileBytes: int64(*targetMB) << 20, TempDir: *tmp,
		DeadlineMargin: time.Minute, Log: obs.NewLogger(stderr, logLevel),
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(ctx, *timeout+time.Minute)
	defer cancel()
	start := time.Now()
	res, err := c.Run(runCtx, req)
	if err != nil {
		return err
	}
	if *jsonOut {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		printCompaction(stdout, res, time.Since(start))
	}
	switch {
	case len(res.Errors) > 0:
		return fmt.Errorf("%d partition(s) not compacted", len(res.Errors))
	case !res.Complete:
		return fmt.Errorf("stopped after %s (--timeout); rerun to go on: the finished partitions are skipped", res.Next)
	}
	return nil
}

// openStore opens a local bucket folder or an S3 bucket.
func openStore(ctx context.Context, arg string) (compact.ObjectStore, string, func(), error) {
	if rest, ok := strings.CutPrefix(arg, "s3://"); ok {
		name, prefix, _ := strings.Cut(rest, "/")
		if name == "" || strings.Trim(prefix, "/") != "" {
			return nil, "", nil, fmt.Errorf("%w: %s: give the bucket only (s3://BUCKET); the layout under it is fixed (processed/trips/)", errUsage, arg)
		}
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, "", nil, fmt.Errorf("loading AWS configuration: %w", err)
		}
		// An endpoint of one's own (LocalStack, MinIO, a fake) usually wants path-style addressing.
		pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
		client := s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.UsePathStyle = pathStyle
			o.DisableLogOutputChecksumValidationSkipped = true // S3-compatible stores may not send checksums
		})
		return client, name, func() {}, nil
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if !fi.IsDir() {
		return nil, "", nil, fmt.Errorf("%w: %s is not a folder (give the folder holding processed/trips/, e.g. .taxistream/bucket)", errUsage, arg)
	}
	if _, err := os.Stat(filepath.Join(arg, filepath.FromSlash(compact.TripsPrefix))); err != nil {
		return nil, "", nil, fmt.Errorf("%w: %s has no %s folder", errUsage, arg, compact.TripsPrefix)
	}
	const name = "local-folder" // any valid name: the folder is the bucket
	b, err := bucket.Open(arg, name)
	if err != nil {
		return nil, "", nil, err
	}
	return b, name, func() { b.Close() }, nil
}

func printCompaction(w io.Writer, r compact.Result, d time.Duration) {
	verb := "compacted"
	if r.DryRun {
		verb = "would compact"
	}
	fmt.Fprintf(w, "taxistream compact — run %s\n", r.RunID)
	parts := map[string]bool{}
	for _, op := range r.Details {
		parts[op.Partition] = true
	}
	fmt.Fprintf(w, "  partitions         %d listed, %d %s (%d plans)\n", r.Partitions, len(parts), verb, r.Plans)
	fmt.Fprintf(w, "  Parquet objects    %d → %d (%.1f MB → %.1f MB)\n", r.FilesBefore, r.FilesAfter, float64(r.BytesBefore)/1e6, float64(r.BytesAfter)/1e6)
	if !r.DryRun {
		fmt.Fprintf(w, "  rows               %d merged, %d written, %d duplicates dropped\n", r.RowsIn, r.RowsOut, r.Duplicates)
	}
	if r.RolledBack+r.RolledForward+r.Aborted+r.Busy+r.SourcesChanged > 0 {
		fmt.Fprintf(w, "  recovery           %d unfinished plans rolled back, %d finished; %d plans given up; %d partitions busy; %d sources rewritten meanwhile (kept)\n",
			r.RolledBack, r.RolledForward, r.Aborted, r.Busy, r.SourcesChanged)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "  time               %.1f s\n", d.Seconds())
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/schollz/progressbar/v3"

	"github.com/taxistream/taxistream/internal/feed"
	"github.com/taxistream/taxistream/internal/producer"
)

// cmdProduce streams local files, globs or an s3:// prefix into a Kinesis stream.
func cmdProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", "", "stream name or ARN (required unless --dry-run)")
	key := fs.String("partition-key", "pu_location_id", "record field used as partition key, or random")
	noAgg := fs.Bool("no-aggregate", false, "send one Kinesis record per row (no KPL aggregation)")
	routing := fs.String("routing", "balanced", "shard routing: balanced (every shard at its limit; records keep their own keys, no per-key order) or key (by partition key hash: per-key order)")
	dry := fs.Bool("dry-run", false, "print the records instead of sending them")
	rateFlag := fs.Float64("rate", 0, "cap on records per second (0: the shards' own limits)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	summaryJSON := fs.Bool("json", false, "print the final summary as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream produce --stream NAME|ARN [flags] FILE|GLOB|s3://bucket/prefix ...\n\nAWS credentials and region come from the standard chain; AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_S3 point the clients elsewhere (LocalStack, kinesis-mock).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: no input files", errUsage)
	}
	if *stream == "" && !*dry {
		return fmt.Errorf("%w: --stream is required (or --dry-run)", errUsage)
	}
	route, err := producer.ParseRouting(*routing)
	if err != nil {
		return fmt.Errorf("%w: --routing: %v", errUsage, err)
	}
	var kc *kinesis.Client
	var s3c *s3.Client
	needAWS := !*dry
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "s3://") {
			needAWS = true
		}
	}
	if needAWS {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("loading AWS configuration: %w", err)
		}
		kc = kinesis.NewFromConfig(cfg)
		s3c = s3.NewFromConfig(cfg)
	}
	var inputs []feed.Input
	for _, a := range fs.Args() {
		var in []feed.Input
		var err error
		if strings.HasPrefix(a, "s3://") {
			in, err = feed.S3Inputs(ctx, s3c, a)
		} else {
			in, err = feed.LocalInputs([]string{a}, stdin)
		}
		if err != nil {
			return err
		}
		inputs = append(inputs, in...)
	}
	var total int64
	for _, in := range inputs {
		total += in.Size
	}
	opts := feed.Options{
		Routing:           route,
		Stream:            *stream,
		PartitionKeyField: *key,
		Aggregate:         !*noAgg,
		DryRun:            *dry,
		Rate:              *rateFlag,
		Out:               stdout,
	}
	var bar *progressbar.ProgressBar
	if !*quiet && !*dry {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		opts.Progress = func(p feed.Progress) {
			rps := float64(p.Sent) / max(p.Elapsed.Seconds(), 0.001)
			bar.Describe(fmt.Sprintf("%d rows, %d sent, %.0f rec/s, %d throttled", p.Rows, p.Sent, rps, p.Throttled))
			bar.Set64(p.BytesRead)
		}
	}
	var client feed.Client
	if kc != nil {
		client = kc
	}
	sum, err := feed.Run(ctx, client, inputs, opts)
	if bar != nil {
		bar.Finish()
	}
	printProduceSummary(stderr, sum)
	if *summaryJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
	}
	if err != nil {
		return err
	}
	if sum.Interrupted {
		return fmt.Errorf("interrupted: %d records sent before the stop were flushed", sum.Sent)
	}
	return nil
}

func printProduceSummary(w io.Writer, s feed.Summary) {
	for _, f := range s.Files {
		fmt.Fprintf(w, "%s: %d rows read, %d sent, %d rejected, %d failed", f.Name, f.RowsRead, f.Sent, f.Rejected, f.Failed)
		if f.Error != "" {
			fmt.Fprintf(w, " (error: %s)", f.Error)
		}
		fmt.Fprintln(w)
		for r, n := range f.Reasons {
			fmt.Fprintf(w, "  %6d  %s\n", n, r)
		}
	}
	p := s.Producer
	fmt.Fprintf(w, "total: %d rows, %d records sent, %d rejected, %d failed in %s; %d Kinesis records in %d requests (%d bytes), %d retries, %d throttled\n",
		s.RowsRead, s.Sent, s.Rejected, s.Failed, s.Elapsed.Round(time.Millisecond), p.KinesisRecords, p.Requests, p.Bytes, p.Retries, p.Throttled)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/taxistream/taxistream/internal/feed"
	"github.com/taxistream/taxistream/internal/local"
)

// functionIDs maps the short names the CLI accepts to the template's logical ids.
var functionIDs = map[string]string{
	"ingest": local.IngestFunction, "process": local.ProcessFunction, "replay": local.ReplayFunction,
	"compact": local.CompactFunction,
}

// cmdInvoke runs one function once against the local cloud, like `sam local invoke`: the response goes to
// stdout; what the invocation set off (continuations, ingestion of replayed objects, Firehose and
// ProcessFunction reading what it wrote to the stream) runs to the end.
func cmdInvoke(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf localFlags
	lf.register(fs)
	event := fs.String("event", "", "event JSON file (- for stdin), e.g. events/s3-put.json")
	wait := fs.Duration("wait", 5*time.Minute, "how long to let what the invocation set off run")
	object := fs.String("object", "", "upload this file to the event's object key first (no S3 notification is sent: the invocation is the only one)")
	asIs := fs.Bool("as-is", false, "send the event exactly as given: do not rewrite its bucket name, ETag and size to the local bucket's")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream invoke ingest|process|replay|<LogicalId> --event FILE [--object FILE] [flags]\n\n"+
			"Runs one function once against the local cloud in --dir, like sam local invoke. S3 and taxistream events\n"+
			"name a bucket: unless --as-is, the bucket is rewritten to the local bucket's name, and the object's\n"+
			"ETag and size to those of the local object (ingest pins its reads to the event's ETag).")
		fs.PrintDefaults()
	}
	// The function name may come first: `invoke ingest --event x.json`.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" || *event == "" {
		fs.Usage()
		return fmt.Errorf("%w: a function and --event are required", errUsage)
	}
	id := logicalID(name)
	var payload []byte
	var err error
	if *event == "-" {
		payload, err = io.ReadAll(stdin)
	} else {
		payload, err = os.ReadFile(*event)
	}
	if err != nil {
		return fmt.Errorf("reading the event: %w", err)
	}
	if *object != "" {
		if _, err := feed.StatInput(*object); err != nil {
			return err
		}
	}
	opts, err := lf.options()
	if err != nil {
		return err
	}
	cloud, err := local.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer cloud.Close()
	fn, ok := cloud.Settings.Functions[id]
	if !ok {
		return fmt.Errorf("%w: no function %q in %s (want ingest, process, replay or a logical id)", errUsage, name, cloud.TemplatePath)
	}
	if !*asIs || *object != "" {
		if payload, err = localizeEvent(ctx, cloud, payload, *object, !*asIs, stderr); err != nil {
			return err
		}
	}
	start := time.Now()
	out, err := cloud.Lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String(fn.Name), InvocationType: lambdatypes.InvocationTypeRequestResponse, Payload: payload,
	})
	if err != nil {
		return fmt.Errorf("invoking %s: %w", fn.Name, err)
	}
	stdout.Write(out.Payload)
	fmt.Fprintln(stdout)
	fmt.Fprintf(stderr, "%s: %s in %s; logs in %s/logs/functions.log\n", id, status(out), time.Since(start).Round(time.Millisecond), opts.Dir)
	waitCtx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	// The stream lives in this process: let the consumers read what the invocation wrote, deliver
	// Firehose's buffer and close the windows before exiting, as `local` does.
	if err := cloud.Drain(waitCtx); err != nil {
		return fmt.Errorf("waiting for what the invocation set off: %w", err)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("function error: %s", aws.ToString(out.FunctionError))
	}
	return nil
}

func status(out *awslambda.InvokeOutput) string {
	if out.FunctionError != nil {
		return "function error (" + aws.ToString(out.FunctionError) + ")"
	}
	return "ok"
}

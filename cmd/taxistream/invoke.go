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

	"github.com/taxistream/taxistream/internal/local"
)

// functionIDs maps the short names the CLI accepts to the template's logical ids.
var functionIDs = map[string]string{
	"ingest": local.IngestFunction, "process": local.ProcessFunction, "replay": local.ReplayFunction,
}

// cmdInvoke runs one function once against the local cloud, like `sam local invoke`: the response goes to
// stdout; what the invocation set off (continuations, ingestion of replayed objects) runs to the end.
func cmdInvoke(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf localFlags
	lf.register(fs)
	event := fs.String("event", "", "event JSON file (- for stdin), e.g. events/s3-put.json")
	wait := fs.Duration("wait", 5*time.Minute, "how long to let what the invocation set off run")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: taxistream invoke ingest|process|replay|<LogicalId> --event FILE [flags]")
		fs.PrintDefaults()
	}
	// The function name may come first: `invoke ingest --event x.json`.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" || *event == "" {
		fs.Usage()
		return fmt.Errorf("%w: a function and --event are required", errUsage)
	}
	id := name
	if v, ok := functionIDs[name]; ok {
		id = v
	}
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
		return fmt.Errorf("%w: no function %q in %s (want ingest, process, replay or a logical id)", errUsage, name, opts.TemplatePath)
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
	if err := cloud.WaitIdle(waitCtx); err != nil {
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

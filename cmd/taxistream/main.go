// Command taxistream is the project's CLI: the embedded local pipeline, one-off invokes, producing
// files into a stream, converting, generating data and benchmarks. `taxistream help` lists the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/taxistream/taxistream/internal/version"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = []command{
	{"local", "run the whole pipeline on the embedded local cloud", cmdLocal},
	{"invoke", "run one function once against the local cloud, like sam local invoke", cmdInvoke},
	{"produce", "stream local files or an s3:// prefix into a Kinesis stream", cmdProduce},
	{"compact", "merge the small Parquet objects of processed/trips/ (a bucket folder or s3://bucket)", cmdCompact},
	{"convert", "convert trip files to the stream's JSON records (stdout) with a summary (stderr)", cmdConvert},
	{"gen", "generate realistic TLC trip files", cmdGen},
	{"bench", "measure conversion, shard saturation, ingest, consumer and cold start", cmdBench},
	{"report", "write the HTML run report of a local run's folder or of a deployed bucket", cmdReport},
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// errInterrupted marks a command stopped by Ctrl-C (SIGINT) or SIGTERM: exit status 130, as shells
// report a process ended by SIGINT.
var errInterrupted = errors.New("interrupted")

// parseFlags parses a command's flags. -h/--help (the flag package has printed the usage) comes back as
// flag.ErrHelp, which run turns into exit status 0; any other mistake is an errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

func main() {
	ctx, stop := interruptContext(os.Stderr)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// interruptContext is cancelled by the first Ctrl-C (SIGINT) or SIGTERM: commands stop what they do
// and report (`local` releases its objects and prints the summary). A second one exits at once, with
// status 130.
func interruptContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		cancel()
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "\ninterrupted again: exiting now")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stderr)
		return 2
	case args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		usage(stdout)
		return 0
	case args[0] == "version" || args[0] == "-version" || args[0] == "--version":
		printVersion(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdin, stdout, stderr)
			switch {
			case err == nil, errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errInterrupted):
				fmt.Fprintf(stderr, "taxistream %s: %v\n", c.name, err)
				return 130
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "taxistream %s: %v\n", c.name, err)
				return 2
			default:
				fmt.Fprintf(stderr, "taxistream %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "taxistream: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: taxistream COMMAND [flags] [arguments]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun 'taxistream COMMAND --help' for a command's flags, 'taxistream --version' for the build.")
}

// printVersion prints the build's version (internal/version): the module version or VCS revision,
// then the details.
func printVersion(w io.Writer) {
	in := version.Get()
	or := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	rev := or(in.Revision)
	if in.Time != "" {
		rev += " " + in.Time
	}
	if in.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "taxistream %s\nmodule %s %s\nrevision %s\n%s\n", or(in.Short()), or(in.Module), or(in.Version), rev, or(in.Go))
}

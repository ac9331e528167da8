// Package feed streams trip files (local files, globs, or objects of an S3 prefix) into a Kinesis
// stream with the converter and the producer: the `taxistream produce` command, for a laptop or EC2.
package feed

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/producer"
)

// Input is one file to produce. Open returns the raw bytes (gzip is detected and decompressed here);
// for Parquet, OpenAt returns random access to the file.
type Input struct {
	Name   string // shown in progress and summaries
	Size   int64  // bytes, for the progress bar (0 when unknown)
	Source convert.Source
	Open   func(ctx context.Context) (io.ReadCloser, error)
	OpenAt func(ctx context.Context) (io.ReaderAt, int64, io.Closer, error)
}

// Options configure a run.
type Options struct {
	Stream            string // stream name or ARN
	PartitionKeyField string // record field for the partition key; "" or "random" for random keys
	Aggregate         bool   // KPL aggregation
	Routing           producer.Routing
	DryRun            bool    // write records to Out instead of sending
	Rate              float64 // records per second across all shards; 0 = only the shards' limits
	FlushEvery        int     // user records between flushes; 0 = 10,000
	Out               io.Writer
	// Progress, when set, is called with the running totals after every flush and at the end.
	Progress func(Progress)
	// NewProducer replaces producer.New (tests).
	NewProducer func(ctx context.Context, c producer.Client, cfg producer.Config) (Producer, error)
}

// Producer is what Run uses of *producer.Producer.
type Producer interface {
	Put(ctx context.Context, e producer.Entry) error
	Flush(ctx context.Context) ([]producer.Failure, error)
	Stats() producer.Stats
}

// Progress is the running state of a run.
type Progress struct {
	File      string
	BytesRead int64 // input bytes consumed, all files
	Rows      int64
	Sent      int64
	Throttled int64
	Elapsed   time.Duration
}

// FileSummary is the outcome of one input.
type FileSummary struct {
	Name     string           `json:"name"`
	RowsRead int64            `json:"rows_read"`
	Sent     int64            `json:"records_sent"`
	Rejected int64            `json:"rejected"`
	Failed   int64            `json:"failed"`
	Reasons  map[string]int64 `json:"reasons,omitempty"`
	Error    string           `json:"error,omitempty"`
}

// Summary is the outcome of a run. Every row read is sent, rejected (with a reason) or failed.
type Summary struct {
	Files       []FileSummary  `json:"files"`
	RowsRead    int64          `json:"rows_read"`
	Sent        int64          `json:"records_sent"`
	Rejected    int64          `json:"rejected"`
	Failed      int64          `json:"failed"`
	Producer    producer.Stats `json:"producer"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
	Interrupted bool           `json:"interrupted"`
}

// Client is the Kinesis client a run writes with (nil for a dry run).
type Client = producer.Client

// Run produces every input in order. When ctx ends (Ctrl-C) it stops reading, flushes what it has
// buffered (with a short grace period) and returns the summary of what was sent with Interrupted set.
func Run(ctx context.Context, client producer.Client, inputs []Input, opts Options) (Summary, error) {
	start := time.Now()
	var sum Summary
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 10000
	}
	var p Producer
	if !opts.DryRun {
		newProducer := opts.NewProducer
		if newProducer == nil {
			newProducer = func(ctx context.Context, c producer.Client, cfg producer.Config) (Producer, error) {
				return producer.New(ctx, c, cfg)
			}
		}
		// Retries are bounded by Ctrl-C, not by a count: a brownout delays the run, it does not drop rows.
		cfg := producer.Config{Aggregate: opts.Aggregate, Routing: opts.Routing, MaxRetries: -1}
		if isARN(opts.Stream) {
			cfg.StreamARN = opts.Stream
		} else {
			cfg.StreamName = opts.Stream
		}
		var err error
		if p, err = newProducer(ctx, client, cfg); err != nil {
			return sum, fmt.Errorf("starting the producer for %s: %w", opts.Stream, err)
		}
	}
	var limiter *rate.Limiter
	if opts.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(opts.Rate), max(1, int(opts.Rate/10)))
	}
	out := bufio.NewWriterSize(io.Discard, 1)
	if opts.DryRun && opts.Out != nil {
		out = bufio.NewWriterSize(opts.Out, 256<<10)
	}
	var bytesBefore int64
	var fatal error
	for _, in := range inputs {
		fs, err := feedOne(ctx, p, in, opts, limiter, out, &sum, start, bytesBefore)
		bytesBefore += in.Size
		sum.Files = append(sum.Files, fs)
		sum.RowsRead += fs.RowsRead
		sum.Sent += fs.Sent
		sum.Rejected += fs.Rejected
		sum.Failed += fs.Failed
		if ctx.Err() != nil {
			sum.Interrupted = true
			break
		}
		if err != nil && errors.Is(err, errFatal) {
			fatal = err
			break
		}
	}
	if err := out.Flush(); err != nil {
		fatal = errors.Join(fatal, fmt.Errorf("writing the records: %w", err))
	}
	return finish(sum, p, start), fatal
}

var errFatal = errors.New("producer failed")

func finish(sum Summary, p Producer, start time.Time) Summary {
	if p != nil {
		sum.Producer = p.Stats()
	}
	sum.Elapsed = time.Since(start)
	return sum
}

func feedOne(ctx context.Context, p Producer, in Input, opts Options, limiter *rate.Limiter, out *bufio.Writer, sum *Summary, start time.Time, bytesBefore int64) (fs FileSummary, err error) {
	fs.Name = in.Name
	defer func() {
		if err != nil && fs.Error == "" {
			fs.Error = err.Error()
		}
	}()
	rr, closeFn, err := open(ctx, in)
	if err != nil {
		return fs, err
	}
	defer closeFn()
	// Sends run on a context that outlives Ctrl-C by a grace period: a stop ends the reading, while what
	// was read is still sent (a request in flight is never cut, a flush under way goes on).
	sendCtx, stopSends := graceContext(ctx, sendGrace)
	defer stopSends()
	pending := 0
	report := func() {
		if opts.Progress == nil {
			return
		}
		st := rr.Stats()
		pr := Progress{File: in.Name, BytesRead: bytesBefore + st.Bytes, Rows: sum.RowsRead + st.RowsRead, Sent: sum.Sent + fs.Sent, Elapsed: time.Since(start)}
		if p != nil {
			pr.Throttled = p.Stats().Throttled
		}
		opts.Progress(pr)
	}
	// flush sends what is buffered; rows that failed for good are counted as failed, the rest as sent.
	flush := func(fctx context.Context) error {
		if p == nil {
			fs.Sent += int64(pending)
			pending = 0
			report()
			return nil
		}
		failures, err := p.Flush(fctx)
		fs.Failed += int64(len(failures))
		fs.Sent += int64(pending - len(failures))
		pending = 0
		for _, f := range failures {
			if fs.Reasons == nil {
				fs.Reasons = map[string]int64{}
			}
			fs.Reasons["send: "+f.Reason]++
		}
		report()
		return err
	}
	for {
		if ctx.Err() != nil {
			break
		}
		rec, rerr := rr.Next()
		if rerr == io.EOF {
			break
		}
		var rowErr *convert.RowError
		if errors.As(rerr, &rowErr) {
			continue // counted by the reader's Stats
		}
		if rerr != nil {
			err = fmt.Errorf("reading %s: %w", in.Name, rerr)
			break
		}
		// A row that was read is always handed on (sent or reported), even when the rate limiter's
		// wait is cut short by Ctrl-C.
		stopping := limiter != nil && limiter.Wait(ctx) != nil
		if opts.DryRun {
			out.Write(rec.JSON) // an error sticks to the bufio.Writer: Run's final Flush returns it
			pending++
		} else {
			key := partitionKey(rr, opts.PartitionKeyField)
			perr := p.Put(sendCtx, producer.Entry{Data: rec.JSON, PartitionKey: key, Tag: rec.Row})
			pending++ // the producer holds it whatever Put returned; the flush below decides
			if perr != nil {
				err = fmt.Errorf("%w: %v", errFatal, perr)
				break
			}
		}
		if stopping {
			break
		}
		if pending >= opts.FlushEvery {
			if ferr := flush(sendCtx); ferr != nil {
				err = fmt.Errorf("%w: %v", errFatal, ferr)
				break
			}
		}
	}
	// Final flush, also after Ctrl-C: what was read is sent or reported.
	if ferr := flush(sendCtx); ferr != nil && err == nil {
		err = fmt.Errorf("%w: %v", errFatal, ferr)
	}
	st := rr.Stats()
	fs.RowsRead = st.RowsRead
	fs.Rejected = st.Rejected
	for r, n := range st.Reasons {
		if fs.Reasons == nil {
			fs.Reasons = map[string]int64{}
		}
		fs.Reasons[r] += n
	}
	return fs, err
}

func partitionKey(rr convert.RowReader, field string) string {
	if field != "" && field != "random" {
		if v := rr.Value(field); v != "" && utf8.RuneCountInString(v) <= kinesislimit.MaxPartitionKeyLength {
			return v
		}
	}
	return producer.RandomKey()
}

func open(ctx context.Context, in Input) (convert.RowReader, func(), error) {
	opts := convert.Options{Source: in.Source, FileName: in.Name}
	switch convert.FormatOf(in.Name) {
	case convert.FormatParquet:
		if in.OpenAt == nil {
			return nil, nil, fmt.Errorf("%s: parquet input needs random access", in.Name)
		}
		ra, size, c, err := in.OpenAt(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("opening %s: %w", in.Name, err)
		}
		rr, err := convert.NewParquetReader(ra, size, opts)
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("reading %s: %w", in.Name, err)
		}
		return rr, func() { c.Close() }, nil
	default:
		rc, err := in.Open(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("opening %s: %w", in.Name, err)
		}
		br := bufio.NewReaderSize(rc, 1<<20)
		var r io.Reader = br
		closers := []io.Closer{rc}
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				rc.Close()
				return nil, nil, fmt.Errorf("reading gzip %s: %w", in.Name, err)
			}
			r = zr
			closers = append(closers, zr)
		}
		rr, err := convert.NewCSVReader(r, opts)
		if err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("reading %s: %w", in.Name, err)
		}
		return rr, func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i].Close()
			}
		}, nil
	}
}

// LocalInputs expands file names and globs ("-" is stdin) into inputs, in the order given.
func LocalInputs(args []string, stdin io.Reader) ([]Input, error) {
	var inputs []Input
	for _, a := range args {
		if a == "-" {
			inputs = append(inputs, Input{Name: "-", Source: convert.Source{Key: "stdin"},
				Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(stdin), nil }})
			continue
		}
		matches, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", a, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no such file", a)
		}
		sort.Strings(matches)
		for _, m := range matches {
			fi, err := StatInput(m)
			if err != nil {
				return nil, err
			}
			name := m
			inputs = append(inputs, Input{
				Name:   name,
				Size:   fi.Size(),
				Source: convert.Source{Bucket: "file", Key: name, Version: fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())},
				Open:   func(context.Context) (io.ReadCloser, error) { return os.Open(name) },
				OpenAt: func(context.Context) (io.ReaderAt, int64, io.Closer, error) {
					f, err := os.Open(name)
					if err != nil {
						return nil, 0, nil, err
					}
					return f, fi.Size(), f, nil
				},
			})
		}
	}
	return inputs, nil
}

// StatInput checks that name is an input file and returns its FileInfo; otherwise an error that
// starts with name and says why: missing, a directory (use a glob), a symbolic link loop or to nothing,
// a named pipe (reading one blocks until a writer comes, and an interrupt cannot stop it), a device or
// socket, or not readable. Every command that takes files uses it, so that a mistake is reported
// before anything starts.
func StatInput(name string) (os.FileInfo, error) {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if target, lerr := os.Readlink(name); lerr == nil {
			return nil, fmt.Errorf("%s is a symbolic link to nothing (%s)", name, target)
		}
		return nil, fmt.Errorf("%s: no such file", name)
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%s is a symbolic link loop", name)
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, fmt.Errorf("%s is a directory (use a glob such as %s/*.csv)", name, strings.TrimSuffix(name, "/"))
	case fi.Mode()&fs.ModeNamedPipe != 0:
		return nil, fmt.Errorf("%s is a named pipe (FIFO), not a file: copy it to a file first (convert also reads - from stdin)", name)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (a device or socket)", name)
	}
	f, err := os.Open(name) // a regular file: opening it cannot block
	if err != nil {
		return nil, err
	}
	f.Close()
	return fi, nil
}

func isARN(s string) bool { return len(s) > 4 && s[:4] == "arn:" }

// sendGrace is how long sends go on after Ctrl-C.
const sendGrace = 30 * time.Second

// graceContext returns a context that ends grace after ctx ends (or when stop is called).
func graceContext(ctx context.Context, grace time.Duration) (c context.Context, stop func()) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var timer *time.Timer
	var mu sync.Mutex
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(grace, cancel)
	})
	return c, func() {
		stopAfter()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/schollz/progressbar/v3"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/bucket"
)

// tracker follows the objects a `taxistream local` run ingests, from their manifests: it prints a line
// when a file is picked up (or will not trigger ingestion), and when it is done or failed (rows,
// records, rejected, seconds, warnings); and it shows the run's progress: rows, MB of input, rows/s,
// percent and ETA, each shard's use of its write limit, the consumer and the archive. On a terminal
// that is a progress bar; otherwise a plain line every plainEvery.
type tracker struct {
	cloud      *local.Cloud
	w          io.Writer
	tty, quiet bool
	plainEvery time.Duration

	mu      sync.Mutex
	objs    map[string]*trackedObject // by manifest key
	order   []string
	noted   map[string]bool // raw/ entries already reported as not triggering or skipped
	bar     *progressbar.ProgressBar
	started time.Time
	rate    rateWindow

	stop chan struct{}
	done chan struct{}
}

type trackedObject struct {
	key, manifest string
	size          int64
	gz            bool
	picked        time.Time
	finished      bool
	m             ingest.Manifest
}

// progressEvery is how often the display is updated; manifests are read every second.
const progressEvery = 250 * time.Millisecond

func newTracker(cloud *local.Cloud, w io.Writer, quiet bool) *tracker {
	t := &tracker{
		cloud: cloud, w: w, quiet: quiet, tty: isTerminal(w), plainEvery: 10 * time.Second,
		objs: map[string]*trackedObject{}, noted: map[string]bool{}, started: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if t.tty && !quiet {
		t.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionThrottle(progressEvery),
			progressbar.OptionClearOnFinish(),
		)
	}
	cloud.Bucket.OnCreate(t.created)
	return t
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printf prints a line of its own, above the progress bar.
func (t *tracker) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != nil {
		_ = t.bar.Clear()
	}
	fmt.Fprintf(t.w, format+"\n", args...)
}

// created is the bucket hook: a new object under a trigger's prefix is picked up, or said not to
// trigger ingestion.
func (t *tracker) created(ev bucket.ObjectCreated) {
	if t.cloud.Trigger == nil {
		return // no S3 trigger in the template: nothing is ingested
	}
	if len(t.cloud.Trigger.Matches(ev.EventName, ev.Key)) == 0 {
		if strings.HasPrefix(ev.Key, "raw/") {
			t.printf("%s: will not trigger ingestion (%s)", ev.Key, t.filters())
		}
		return
	}
	t.track(ev.Key, ev.ETag, ev.Size, "picked up")
}

// filters describes the template's S3 event filters of IngestFunction.
func (t *tracker) filters() string {
	var parts []string
	for _, fn := range t.cloud.Settings.Functions {
		if fn.Name != t.cloud.FunctionName(local.IngestFunction) {
			continue
		}
		for _, e := range fn.S3Events {
			parts = append(parts, fmt.Sprintf("%s…%s", e.Prefix, e.Suffix))
		}
	}
	sort.Strings(parts)
	return "the template's S3 events take keys " + strings.Join(parts, ", ")
}

// track follows one object version from now on.
func (t *tracker) track(key, etag string, size int64, verb string) {
	etag = strings.Trim(etag, `"`)
	mk := ingest.ManifestKey(key, etag, "")
	t.mu.Lock()
	if _, ok := t.objs[mk]; ok {
		t.mu.Unlock()
		return
	}
	t.objs[mk] = &trackedObject{key: key, manifest: mk, size: size, gz: convert.FormatOf(key) == convert.FormatGzipCSV, picked: time.Now()}
	t.order = append(t.order, mk)
	t.mu.Unlock()
	t.printf("%s %s (%s)", verb, key, mb(size))
}

// trackManifest follows an object known by its manifest key (one the start-up resumed).
func (t *tracker) trackManifest(mk, key, verb string) {
	t.mu.Lock()
	if _, ok := t.objs[mk]; ok {
		t.mu.Unlock()
		return
	}
	t.objs[mk] = &trackedObject{key: key, manifest: mk, gz: convert.FormatOf(key) == convert.FormatGzipCSV, picked: time.Now(), size: -1}
	t.order = append(t.order, mk)
	t.mu.Unlock()
	t.printf("%s %s", verb, key)
}

// run updates the display until stop is called.
func (t *tracker) run(ctx context.Context, watchDir string) {
	defer close(t.done)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var lastRead, lastPlain time.Time
	for {
		select {
		case <-t.stop:
			t.poll(context.WithoutCancel(ctx)) // the last done lines
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastRead) >= time.Second {
			lastRead = now
			t.poll(ctx)
			if watchDir != "" {
				t.scanRaw(watchDir)
			}
		}
		line := t.status(now)
		switch {
		case t.quiet:
		case t.bar != nil:
			t.mu.Lock()
			t.bar.Describe(line)
			_ = t.bar.Add(1)
			t.mu.Unlock()
		case now.Sub(lastPlain) >= t.plainEvery:
			lastPlain = now
			t.printf("progress: %s", line)
		}
	}
}

// stopAndWait ends run, after a last read of the manifests.
func (t *tracker) stopAndWait() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	t.mu.Lock()
	if t.bar != nil {
		_ = t.bar.Finish()
	}
	t.mu.Unlock()
}

// poll reads the manifests of the unfinished objects and reports those that finished.
func (t *tracker) poll(ctx context.Context) {
	t.mu.Lock()
	var open []*trackedObject
	for _, mk := range t.order {
		if o := t.objs[mk]; !o.finished {
			open = append(open, o)
		}
	}
	t.mu.Unlock()
	for _, o := range open {
		out, err := t.cloud.Bucket.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.cloud.Bucket.Name()), Key: aws.String(o.manifest)})
		if err != nil {
			continue // not claimed yet
		}
		var m ingest.Manifest
		err = json.NewDecoder(out.Body).Decode(&m)
		out.Body.Close()
		if err != nil {
			continue
		}
		t.mu.Lock()
		o.m = m
		if o.size < 0 {
			o.size = m.Size
		}
		finished := m.Status != ingest.StatusRunning
		o.finished = finished
		t.rate.add(time.Now(), t.rowsLocked())
		t.mu.Unlock()
		if !finished {
			continue
		}
		secs := m.FinishedAt.Sub(m.StartedAt).Seconds()
		switch m.Status {
		case ingest.StatusDone:
			t.printf("done %s: %d rows, %d records, %d rejected, %.1f s", o.key, m.Counts.RowsRead, m.Counts.RecordsSent, m.Counts.Rejected, secs)
			for _, w := range m.Warnings {
				t.printf("warning: %s: %s", o.key, w)
			}
		case ingest.StatusFailed:
			t.printf("FAILED %s after %d rows: %s", o.key, m.Counts.RowsRead, m.Reason)
		}
	}
}

func (t *tracker) rowsLocked() int64 {
	var n int64
	for _, o := range t.objs {
		n += o.m.Counts.RowsRead
	}
	return n
}

// status is the progress line: rows, input MB, rows/s, percent and ETA (by input bytes), the shards'
// use of their write limit, the consumer and the archive.
func (t *tracker) status(now time.Time) string {
	t.mu.Lock()
	var rows, doneBytes, total int64
	known := true
	for _, o := range t.objs {
		rows += o.m.Counts.RowsRead
		if o.size < 0 {
			known = false
			continue
		}
		total += o.size
		switch {
		case o.finished:
			doneBytes += o.size
		case !o.gz && o.m.Checkpoint != nil: // a .gz offset counts uncompressed bytes
			doneBytes += min(o.m.Checkpoint.Offset, o.size)
		}
	}
	perSec := t.rate.perSecond()
	bytesPerSec := 0.0
	if el := now.Sub(t.started).Seconds(); el > 0 {
		bytesPerSec = float64(doneBytes) / el
	}
	t.mu.Unlock()
	parts := []string{fmt.Sprintf("%s rows", thousands(rows))}
	if known && total > 0 {
		pct := 100 * float64(doneBytes) / float64(total)
		p := fmt.Sprintf("%s of %s (%.0f%%)", mb(doneBytes), mb(total), pct)
		if bytesPerSec > 0 && doneBytes < total {
			eta := time.Duration(float64(total-doneBytes) / bytesPerSec * float64(time.Second)).Round(time.Second)
			p += ", ETA " + eta.String()
		}
		parts = append(parts, p)
	}
	parts = append(parts, fmt.Sprintf("%s rows/s", thousands(int64(perSec))))
	if use := t.cloud.Stream.WriteUse(); len(use) > 0 {
		var us []string
		for _, u := range use {
			us = append(us, fmt.Sprintf("%.0f%%", 100*u.Use))
		}
		parts = append(parts, "shards "+strings.Join(us, " "))
	}
	if t.cloud.ESM != nil {
		parts = append(parts, fmt.Sprintf("consumer %s Kinesis records", thousands(t.cloud.ESM.Stats().RecordsProcessed)))
	}
	if t.cloud.Firehose != nil {
		parts = append(parts, fmt.Sprintf("archive %d objects", t.cloud.Firehose.Stats().ObjectsWritten))
	}
	return strings.Join(parts, " | ")
}

// scanRaw reports, once each, entries under the watched raw/ folder that the bucket skips: named
// pipes, sockets, devices and symbolic links are not objects.
func (t *tracker) scanRaw(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		t.mu.Lock()
		seen := t.noted[p]
		t.noted[p] = true
		t.mu.Unlock()
		if !seen {
			kind := "not a regular file"
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				kind = "a symbolic link (the bucket never follows them: copy the file itself)"
			case d.Type()&fs.ModeNamedPipe != 0:
				kind = "a named pipe (FIFO), not a file"
			}
			t.printf("%s: skipped: %s", p, kind)
		}
		return nil
	})
}

// rateWindow measures rows per second over the last few seconds.
type rateWindow struct {
	at   []time.Time
	rows []int64
}

func (r *rateWindow) add(at time.Time, rows int64) {
	r.at = append(r.at, at)
	r.rows = append(r.rows, rows)
	for len(r.at) > 2 && at.Sub(r.at[0]) > 10*time.Second {
		r.at, r.rows = r.at[1:], r.rows[1:]
	}
}

func (r *rateWindow) perSecond() float64 {
	if len(r.at) < 2 {
		return 0
	}
	d := r.at[len(r.at)-1].Sub(r.at[0]).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.rows[len(r.rows)-1]-r.rows[0]) / d
}

func mb(n int64) string {
	if n < 0 {
		return "size unknown"
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// thousands formats n with commas: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/local/esm"
	locallambda "github.com/taxistream/taxistream/internal/local/lambda"
	"github.com/taxistream/taxistream/internal/local/stream"
)

// TimelineFile is the name of the timeline in the local cloud's folder (<Dir>/timeline.jsonl). The
// cloud writes it when it closes (and on SaveTimeline); `taxistream report DIR` reads it.
const TimelineFile = "timeline.jsonl"

// TimelineVersion is the format version in the timeline's meta line.
const TimelineVersion = 1

// The timeline is JSON lines, one object per line with a "kind":
//
//	meta       once, first: the run's settings (stream, shards, limits, functions)
//	second     per second and shard that saw writes: records and bytes stored, entries throttled,
//	           failed and retried (an entry whose data repeats one that failed earlier)
//	put        per PutRecord(s) request: its time, entries, entries stored and the stream's sequence
//	           counter after it (the arrival time of any sequence number is the first put whose
//	           counter reaches it)
//	aggregates once: Kinesis records stored by the number of user records inside (KPL aggregation)
//	invocation per handler execution: function, request id, start, end, error type, continuation
//	batch      per event source mapping invoke with records: shard, records, outcome, iterator age
//
// Times are Unix milliseconds (seconds for "second" lines).

// TimelineMeta is the first line of a timeline.
type TimelineMeta struct {
	Kind                  string            `json:"kind"` // "meta"
	Version               int               `json:"version"`
	Started               time.Time         `json:"started"`
	Ended                 time.Time         `json:"ended"`
	Stream                string            `json:"stream"`
	Shards                []string          `json:"shards"`
	LimitsOn              bool              `json:"limits_on"`
	ShardBytesPerSecond   int               `json:"shard_bytes_per_second"`
	ShardRecordsPerSecond int               `json:"shard_records_per_second"`
	Bucket                string            `json:"bucket"`
	Functions             map[string]string `json:"functions"` // deployed name → logical id
	Archive               bool              `json:"archive"`   // the template has the Firehose
	Consumer              bool              `json:"consumer"`  // ProcessFunction reads the stream
	FailureRecords        int               `json:"failure_records"`
}

// ShardSecond is what one shard was written in one second.
type ShardSecond struct {
	Kind           string `json:"kind"` // "second"
	T              int64  `json:"t"`    // Unix second
	Shard          string `json:"shard"`
	Records        int64  `json:"records"` // Kinesis records stored
	Bytes          int64  `json:"bytes"`   // data + partition key bytes stored
	Throttled      int64  `json:"throttled"`
	ThrottledBytes int64  `json:"throttled_bytes"`
	Failed         int64  `json:"failed"`  // InternalFailure entries
	Retried        int64  `json:"retried"` // entries that repeat an earlier failed (or timed-out) entry
}

// PutRequest is one answered PutRecord(s) request.
type PutRequest struct {
	Kind     string `json:"kind"` // "put"
	T        int64  `json:"t"`    // Unix ms
	Entries  int    `json:"entries"`
	Stored   int    `json:"stored"`
	Counter  uint64 `json:"counter"` // the stream's sequence counter after the request
	TimedOut bool   `json:"timed_out,omitempty"`
}

// AggregateSizes counts the Kinesis records stored by the number of user records they hold.
type AggregateSizes struct {
	Kind   string        `json:"kind"` // "aggregates"
	Counts map[int]int64 `json:"counts"`
}

// InvocationSpan is one handler execution.
type InvocationSpan struct {
	Kind         string `json:"kind"`     // "invocation"
	Function     string `json:"function"` // logical id (IngestFunction, ...) or the name when unknown
	RequestID    string `json:"request_id"`
	Start        int64  `json:"start"` // Unix ms
	End          int64  `json:"end"`
	Error        string `json:"error,omitempty"`        // error type; "Sandbox.Timedout" for a timeout
	Continuation bool   `json:"continuation,omitempty"` // IngestFunction's own continuation event
	Sweep        bool   `json:"sweep,omitempty"`        // IngestFunction's sweeper (the Sweep schedule, or a drain)
	Attempt      int    `json:"attempt"`                // 1, or 2.. for asynchronous retries (same request id)
}

// BatchSpan is one event source mapping invoke with records.
type BatchSpan struct {
	Kind          string `json:"kind"` // "batch"
	Shard         string `json:"shard"`
	Records       int    `json:"records"`
	Start         int64  `json:"start"` // Unix ms
	End           int64  `json:"end"`
	Outcome       string `json:"outcome"`
	Retry         bool   `json:"retry,omitempty"`
	IteratorAgeMS int64  `json:"iterator_age_ms"`
}

// TimelineData is a whole timeline.
type TimelineData struct {
	Meta        TimelineMeta
	Seconds     []ShardSecond // by time, then shard
	Puts        []PutRequest  // by time
	Aggregates  map[int]int64
	Invocations []InvocationSpan // by start
	Batches     []BatchSpan      // by start
}

// Timeline records what the local cloud did, cheaply: counters per second and shard, one small entry
// per PutRecords request, invocation and batch. It is safe for concurrent use.
type Timeline struct {
	mu          sync.Mutex
	meta        TimelineMeta
	seconds     map[secondKey]*ShardSecond
	puts        []PutRequest
	aggregates  map[int]int64
	pending     map[uint64]int // hashes of failed or timed-out entries whose resend is expected
	seed        maphash.Seed
	invocations []InvocationSpan
	attempts    map[string]int
	batches     []BatchSpan
	saved       bool // SaveTimeline ran (Close then leaves the file as the run saved it)
}

type secondKey struct {
	t     int64
	shard string
}

func newTimeline(meta TimelineMeta) *Timeline {
	meta.Kind, meta.Version = "meta", TimelineVersion
	return &Timeline{
		meta: meta, seconds: map[secondKey]*ShardSecond{}, aggregates: map[int]int64{},
		pending: map[uint64]int{}, seed: maphash.MakeSeed(), attempts: map[string]int{},
	}
}

// ObservePut records one PutRecord(s) request (stream.PutObserver).
func (t *Timeline) ObservePut(p stream.PutObservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sec := p.Time.Unix()
	req := PutRequest{Kind: "put", T: p.Time.UnixMilli(), Entries: len(p.Entries), TimedOut: p.TimedOut}
	var last *ShardSecond
	for i := range p.Entries {
		e := &p.Entries[i]
		if last == nil || last.Shard != e.Shard {
			k := secondKey{sec, e.Shard}
			if last = t.seconds[k]; last == nil {
				last = &ShardSecond{Kind: "second", T: sec, Shard: e.Shard}
				t.seconds[k] = last
			}
		}
		// A resend carries the same data as the entry that failed (the producer retries only the
		// failed entries, unchanged); hashing is needed only while a resend is expected.
		var h uint64
		hashed := false
		if len(t.pending) > 0 {
			h, hashed = maphash.Bytes(t.seed, e.Data), true
			if n := t.pending[h]; n > 0 {
				last.Retried++
				if n == 1 {
					delete(t.pending, h)
				} else {
					t.pending[h] = n - 1
				}
			}
		}
		expectResend := e.ErrorCode != "" || p.TimedOut
		if expectResend && !hashed {
			h = maphash.Bytes(t.seed, e.Data)
		}
		switch e.ErrorCode {
		case "":
			req.Stored++
			req.Counter = max(req.Counter, e.Counter)
			last.Records++
			last.Bytes += int64(e.Size)
			t.aggregates[userRecords(e.Data)]++
		case stream.ErrCodeThroughput:
			last.Throttled++
			last.ThrottledBytes += int64(e.Size)
		default:
			last.Failed++
		}
		if expectResend {
			t.pending[h]++
		}
	}
	t.puts = append(t.puts, req)
}

// userRecords is the number of user records in a Kinesis record: 1 unless it is a KPL aggregate, whose
// records (protobuf field 3 of AggregatedRecord) are counted without copying or checking the MD5 (the
// consumer checks it; a corrupt aggregate reaches it as one record).
func userRecords(data []byte) int {
	if !kpl.IsAggregated(data) {
		return 1
	}
	body := data[len(kpl.Magic) : len(data)-(kpl.Overhead-len(kpl.Magic))]
	n := 0
	for len(body) > 0 {
		num, typ, l := protowire.ConsumeTag(body)
		if l < 0 {
			return 1
		}
		body = body[l:]
		if num == aggregatedRecordRecords && typ == protowire.BytesType {
			n++
		}
		if l = protowire.ConsumeFieldValue(num, typ, body); l < 0 {
			return 1
		}
		body = body[l:]
	}
	return max(n, 1)
}

// aggregatedRecordRecords is the field number of AggregatedRecord.records (the KPL's aggregation format).
const aggregatedRecordRecords protowire.Number = 3

// observeInvocation records one handler execution (the Lambda runtime's Observer).
func (t *Timeline) observeInvocation(inv locallambda.Invocation) {
	continuation, sweep := eventKind(inv.Payload)
	t.mu.Lock()
	defer t.mu.Unlock()
	fn := inv.Function
	if id, ok := t.meta.Functions[fn]; ok {
		fn = id
	}
	t.attempts[inv.RequestID]++
	t.invocations = append(t.invocations, InvocationSpan{
		Kind: "invocation", Function: fn, RequestID: inv.RequestID, Start: inv.Start.UnixMilli(), End: inv.End.UnixMilli(),
		Error: inv.ErrorType, Attempt: t.attempts[inv.RequestID], Continuation: continuation, Sweep: sweep,
	})
}

// smallEventBytes bounds the events eventKind looks into. IngestFunction's continuation and sweep
// events and EventBridge's scheduled events are a few hundred bytes (a key is at most 1,024); the
// Kinesis batches of a run are megabytes, and scanning each of them (three times, under the
// timeline's lock) cost ~5 % of a demo run's CPU.
const smallEventBytes = 16 << 10

// eventKind tells IngestFunction's continuation events and the sweeper's events from the rest.
func eventKind(payload []byte) (continuation, sweep bool) {
	if len(payload) > smallEventBytes {
		return false, false
	}
	continuation = bytes.Contains(payload, []byte(`"taxistream":"continuation"`))
	sweep = bytes.Contains(payload, []byte(`"taxistream":"sweep"`)) || bytes.Contains(payload, []byte(`"Scheduled Event"`))
	return continuation, sweep
}

// observeBatch records one event source mapping invoke (the mapping's Observer).
func (t *Timeline) observeBatch(b esm.Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.batches = append(t.batches, BatchSpan{
		Kind: "batch", Shard: b.Shard, Records: b.Records, Start: b.Start.UnixMilli(), End: b.End.UnixMilli(),
		Outcome: b.Outcome, Retry: b.Retry, IteratorAgeMS: b.IteratorAge.Milliseconds(),
	})
}

// Snapshot returns a copy of what was recorded so far, sorted by time.
func (t *Timeline) Snapshot() *TimelineData {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := &TimelineData{
		Meta: t.meta, Puts: slices.Clone(t.puts), Aggregates: make(map[int]int64, len(t.aggregates)),
		Invocations: slices.Clone(t.invocations), Batches: slices.Clone(t.batches),
	}
	d.Meta.Shards = slices.Clone(t.meta.Shards)
	for _, s := range t.seconds {
		d.Seconds = append(d.Seconds, *s)
	}
	for k, v := range t.aggregates {
		d.Aggregates[k] = v
	}
	d.sort()
	return d
}

func (d *TimelineData) sort() {
	sort.Slice(d.Seconds, func(i, j int) bool {
		a, b := d.Seconds[i], d.Seconds[j]
		return a.T < b.T || (a.T == b.T && a.Shard < b.Shard)
	})
	sort.SliceStable(d.Puts, func(i, j int) bool { return d.Puts[i].T < d.Puts[j].T })
	sort.SliceStable(d.Invocations, func(i, j int) bool { return d.Invocations[i].Start < d.Invocations[j].Start })
	sort.SliceStable(d.Batches, func(i, j int) bool { return d.Batches[i].Start < d.Batches[j].Start })
}

// Write writes the timeline as JSON lines.
func (d *TimelineData) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var err error
	put := func(v any) {
		if err == nil {
			err = enc.Encode(v)
		}
	}
	put(d.Meta)
	for _, s := range d.Seconds {
		put(s)
	}
	for _, p := range d.Puts {
		put(p)
	}
	put(AggregateSizes{Kind: "aggregates", Counts: d.Aggregates})
	for _, i := range d.Invocations {
		put(i)
	}
	for _, b := range d.Batches {
		put(b)
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// ReadTimeline reads a timeline file written by Write.
func ReadTimeline(path string) (*TimelineData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &TimelineData{Aggregates: map[int]int64{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var k struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("reading %s line %d: %w", path, line, err)
		}
		var v any
		switch k.Kind {
		case "meta":
			v = &d.Meta
		case "second":
			d.Seconds = append(d.Seconds, ShardSecond{})
			v = &d.Seconds[len(d.Seconds)-1]
		case "put":
			d.Puts = append(d.Puts, PutRequest{})
			v = &d.Puts[len(d.Puts)-1]
		case "aggregates":
			var a AggregateSizes
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("reading %s line %d: %w", path, line, err)
			}
			for n, c := range a.Counts {
				d.Aggregates[n] += c
			}
			continue
		case "invocation":
			d.Invocations = append(d.Invocations, InvocationSpan{})
			v = &d.Invocations[len(d.Invocations)-1]
		case "batch":
			d.Batches = append(d.Batches, BatchSpan{})
			v = &d.Batches[len(d.Batches)-1]
		default:
			continue // a kind from a later version
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("reading %s line %d: %w", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if d.Meta.Kind != "meta" {
		return nil, fmt.Errorf("reading %s: no meta line: not a taxistream timeline", path)
	}
	if d.Meta.Version > TimelineVersion {
		return nil, fmt.Errorf("reading %s: timeline version %d is newer than this build's %d", path, d.Meta.Version, TimelineVersion)
	}
	d.sort()
	return d, nil
}

// startTimeline creates the cloud's timeline; open calls it before it creates the services.
func (c *Cloud) startTimeline(opts Options, shards int) {
	s := c.Settings
	meta := TimelineMeta{
		Started: time.Now().UTC(), Stream: s.Stream.Name, LimitsOn: !opts.LimitsOff,
		ShardBytesPerSecond: kinesislimit.ShardWriteBytesPerSecond, ShardRecordsPerSecond: kinesislimit.ShardWriteRecordsPerSecond,
		Bucket: s.Bucket.Name, Functions: map[string]string{}, Archive: s.Firehose != nil,
	}
	for i := range shards {
		meta.Shards = append(meta.Shards, stream.ShardID(i))
	}
	for id, fn := range s.Functions {
		meta.Functions[fn.Name] = id
		if id == ProcessFunction && len(fn.KinesisEvents) > 0 {
			meta.Consumer = true
		}
	}
	c.Timeline = newTimeline(meta)
}

// TimelinePath is where the timeline of the local cloud in dir lives.
func TimelinePath(dir string) string { return filepath.Join(dir, TimelineFile) }

// SaveTimeline writes what the timeline recorded so far to <Dir>/timeline.jsonl (replacing it), with
// the current time as the run's end. Close calls it when nothing else did.
func (c *Cloud) SaveTimeline() (string, error) {
	if c.Timeline == nil {
		return "", errors.New("saving the timeline: the cloud has none")
	}
	failures := len(c.Failures())
	c.Timeline.mu.Lock()
	c.Timeline.meta.Ended = time.Now().UTC()
	c.Timeline.meta.FailureRecords = failures
	c.Timeline.saved = true
	c.Timeline.mu.Unlock()
	d := c.Timeline.Snapshot()
	path := TimelinePath(c.dir)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("saving the timeline: %w", err)
	}
	if err := d.Write(f); err != nil {
		f.Close()
		return "", fmt.Errorf("saving the timeline: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("saving the timeline: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("saving the timeline: %w", err)
	}
	return path, nil
}

// saveTimelineOnClose is Close's part: it saves the timeline unless the run saved it already (at the
// end of its work, which is the run's end; Close comes later).
func (c *Cloud) saveTimelineOnClose() error {
	if c.Timeline == nil {
		return nil
	}
	c.Timeline.mu.Lock()
	saved := c.Timeline.saved
	c.Timeline.mu.Unlock()
	if saved {
		return nil
	}
	_, err := c.SaveTimeline()
	return err
}

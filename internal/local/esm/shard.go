package esm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/uuid"
)

// shardState is the poller of one shard. Its fields are used by the shard's goroutine only, except
// done and busyFlag, which are guarded by ESM.mu.
type shardState struct {
	e       *ESM
	id      string
	start   string
	parents []string

	iterator   *string
	acquired   bool
	readEnd    bool // NextShardIterator was nil: the shard is closed and fully read
	lastSeq    string
	pending    []types.Record
	frags      map[string][]byte // the event JSON of pending records, by sequence number (warm)
	firstRead  time.Time
	behind     bool
	gotRecords bool // the last GetRecords returned records (the shard may have more)
	readAheads int  // reads of this round beyond its first (Config.ReadAhead)

	attempts    int   // invokes of the batch at the head of pending
	splits      []int // sizes of the next batches after bisecting
	lastFuncErr bool
	requestID   string

	win     *window
	failure *failureDelivery

	// checkpoint is the last record done with (processed, or sent to the on-failure destination);
	// dirty says it or the window changed since the state file was written (state.go).
	checkpoint string
	dirty      bool

	done     bool
	busyFlag bool
}

type window struct {
	start, end time.Time
	state      map[string]string
}

type failureDelivery struct {
	payload   []byte
	n         int
	condition string
}

func (st *shardState) setBehind(b bool) { st.behind = b }

// busy must be called with ESM.mu held.
func (st *shardState) busy() bool { return st.busyFlag || !st.e.polled }

func (st *shardState) publish() {
	busy := len(st.pending) > 0 || st.behind || st.failure != nil || (!st.readEnd && !st.acquired)
	done := st.readEnd && len(st.pending) == 0 && st.failure == nil && st.win == nil
	st.e.mu.Lock()
	st.dirty = st.dirty || done != st.done
	st.busyFlag, st.done = busy, done
	st.e.mu.Unlock()
	st.e.persist(st)
}

// maxPayload is the limit on a batch's event JSON.
func (e *ESM) maxPayload() int {
	if e.cfg.MaxPayloadBytes > 0 {
		return e.cfg.MaxPayloadBytes
	}
	return MaxPayloadBytes
}

// maxReadAheads bounds the extra reads of a round (Config.ReadAhead), so that a shard written
// without pause still ends its rounds (the next one follows at once: Run's ticker has fired by then).
const maxReadAheads = 64

// process runs the shard's part of a round.
func (st *shardState) process(ctx context.Context, force bool) (progress bool, err error) {
	e := st.e
	defer st.publish()
	if st.failure != nil {
		if err := st.deliverFailure(ctx); err != nil {
			return false, err
		}
		progress = true
	}
	if len(st.pending) < e.cfg.BatchSize && !st.readEnd {
		n := len(st.pending)
		if err := st.fetch(ctx); err != nil {
			return progress, err
		}
		progress = progress || len(st.pending) > n
	}
	st.readAheads = 0
	for ctx.Err() == nil {
		if st.canReadAhead(len(st.pending)) {
			n := len(st.pending)
			st.readAheads++
			if err := st.fetch(ctx); err != nil {
				return progress, err
			}
			progress = progress || len(st.pending) > n
		}
		now := e.cfg.Now()
		if len(st.pending) == 0 {
			if st.win != nil && (st.readEnd || (!st.behind && !now.Before(st.win.end))) {
				if ok, err := st.closeWindow(ctx, false); !ok {
					return progress, err
				}
				progress = true
				continue
			}
			break
		}
		if e.maxAge > 0 {
			n := 0
			for n < len(st.pending) && n < e.cfg.BatchSize && now.Sub(aws.ToTime(st.pending[n].ApproximateArrivalTimestamp)) > e.maxAge {
				n++
			}
			if n > 0 {
				st.splits = nil
				if err := st.discard(ctx, st.pending[:n], "RecordAgeExceeded"); err != nil {
					return progress, err
				}
				progress = true
				continue
			}
		}
		if e.window > 0 {
			ws := e.windowStart(aws.ToTime(st.pending[0].ApproximateArrivalTimestamp))
			if st.win != nil && !st.win.start.Equal(ws) {
				if ok, err := st.closeWindow(ctx, false); !ok {
					return progress, err
				}
				progress = true
				continue
			}
			if st.win == nil {
				st.win = &window{start: ws, end: ws.Add(e.window), state: map[string]string{}}
			}
		}
		batch, payload := st.nextBatch(now, force)
		if batch == nil {
			break
		}
		progress = true
		ok, err := st.invoke(ctx, batch, payload)
		if err != nil || !ok {
			return progress, err
		}
	}
	return progress, ctx.Err()
}

func (e *ESM) windowStart(t time.Time) time.Time {
	size := int64(e.window / time.Second)
	u := t.Unix()
	return time.Unix(u-((u%size)+size)%size, 0).UTC()
}

// nextBatch returns the next batch and its event, or nil when the batching window says wait.
func (st *shardState) nextBatch(now time.Time, force bool) ([]types.Record, []byte) {
	e := st.e
	n := e.cfg.BatchSize
	if len(st.splits) > 0 {
		n = st.splits[0]
	}
	n = min(n, len(st.pending))
	cut := false
	if st.win != nil {
		for i := 0; i < n; i++ {
			if !e.windowStart(aws.ToTime(st.pending[i].ApproximateArrivalTimestamp)).Equal(st.win.start) {
				n, cut = i, true
				break
			}
		}
	}
	payload, k := st.event(st.pending[:n], false, false)
	wait := e.cfg.MaximumBatchingWindowInSeconds > 0 && !force && !cut && st.attempts == 0 && len(st.splits) == 0 &&
		!st.readEnd && k == n && n < e.cfg.BatchSize &&
		now.Sub(st.firstRead) < time.Duration(e.cfg.MaximumBatchingWindowInSeconds)*time.Second
	if wait {
		return nil, nil
	}
	return st.pending[:k], payload
}

// event builds the event JSON for recs, trimmed to fit Config.MaxPayloadBytes (at least one record). It
// returns the payload and the number of records in it. The event is the envelope (the event with no
// records, as json.Marshal writes it) with each record's own JSON spliced into its Records array:
// byte for byte what json.Marshal writes for the whole event, and each record's size is exact.
func (st *shardState) event(recs []types.Record, final, early bool) ([]byte, int) {
	e := st.e
	var v any = events.KinesisEvent{Records: []events.KinesisEventRecord{}}
	if st.win != nil {
		v = events.KinesisTimeWindowEvent{
			KinesisEvent: events.KinesisEvent{Records: []events.KinesisEventRecord{}},
			TimeWindowProperties: events.TimeWindowProperties{
				Window: events.Window{Start: events.RFC3339EpochTime{Time: st.win.start}, End: events.RFC3339EpochTime{Time: st.win.end}},
				State:  st.win.state, ShardID: st.id, EventSourceARN: e.cfg.StreamARN,
				IsFinalInvokeForWindow: final, IsWindowTerminatedEarly: early,
			},
		}
	}
	env, _ := json.Marshal(v)
	// Between the brackets of the empty Records array (the events package's first field, always there).
	at := bytes.Index(env, []byte(emptyRecords)) + len(emptyRecords) - 1
	frags := make([][]byte, 0, len(recs))
	total := len(env)
	for _, r := range recs {
		f := st.recordJSON(&r)
		add := len(f)
		if len(frags) > 0 {
			add++ // comma
		}
		if total+add > e.maxPayload() && len(frags) > 0 {
			break
		}
		total += add
		frags = append(frags, f)
	}
	out := make([]byte, 0, total)
	out = append(out, env[:at]...)
	for i, f := range frags {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, f...)
	}
	out = append(out, env[at:]...)
	return out, len(frags)
}

// emptyRecords is how an event with no records starts its JSON.
const emptyRecords = `"Records":[]`

// recordJSON returns the JSON of r as an event record: from the cache (warm), else marshalled.
func (st *shardState) recordJSON(r *types.Record) []byte {
	if f, ok := st.frags[aws.ToString(r.SequenceNumber)]; ok {
		return f
	}
	return st.marshalRecord(r)
}

// marshalRecord writes r's JSON as an event record. It reads only immutable configuration, so the
// read-ahead goroutine (warm) may call it.
func (st *shardState) marshalRecord(r *types.Record) []byte {
	e := st.e
	rec := events.KinesisEventRecord{
		AwsRegion: e.region, EventID: st.id + ":" + aws.ToString(r.SequenceNumber),
		EventName: "aws:kinesis:record", EventSource: "aws:kinesis", EventSourceArn: e.cfg.StreamARN,
		EventVersion: "1.0", InvokeIdentityArn: e.cfg.RoleARN,
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: aws.ToTime(r.ApproximateArrivalTimestamp)},
			Data:                        []byte{}, PartitionKey: aws.ToString(r.PartitionKey),
			SequenceNumber: aws.ToString(r.SequenceNumber), KinesisSchemaVersion: "1.0",
		},
	}
	// The record without its data, and the data's base64 written once into its place: json.Marshal
	// would encode it into a growing buffer and copy it out (a batch is megabytes). Outside strings
	// a quote is never escaped, inside one it always is: the first `"data":""` is the field. Base64
	// needs no JSON escaping.
	shell, _ := json.Marshal(rec)
	at := bytes.Index(shell, []byte(emptyData))
	if at < 0 || len(r.Data) == 0 {
		rec.Kinesis.Data = r.Data
		b, _ := json.Marshal(rec)
		return b
	}
	at += len(emptyData) - 1
	n := base64.StdEncoding.EncodedLen(len(r.Data))
	out := make([]byte, len(shell)+n)
	copy(out, shell[:at])
	base64.StdEncoding.Encode(out[at:at+n], r.Data)
	copy(out[at+n:], shell[at:])
	return out
}

// emptyData is a record's JSON data field with no data.
const emptyData = `"data":""`

// canReadAhead reports whether the shard should read again now (Config.ReadAhead), with have records
// in hand for the next batch.
func (st *shardState) canReadAhead(have int) bool {
	return st.e.cfg.ReadAhead && st.readAheads < maxReadAheads && have < st.e.cfg.BatchSize && st.gotRecords &&
		!st.readEnd && len(st.splits) == 0 && st.failure == nil
}

// warm prepares the next batch on another goroutine while batch is invoked (Config.ReadAhead: the local
// cloud with limits off, where it would otherwise wait for the invoke): it reads the shard if the
// records after batch do not fill a batch, and writes the JSON of up to one batch of them. The
// returned func, called after the invoke, waits for it and keeps the JSON for event; it returns the
// read's error. While the invoke runs the shard's goroutine is blocked in it, so the goroutine alone
// uses the shard's state; the read only appends to pending. Without ReadAhead it does nothing.
func (st *shardState) warm(ctx context.Context, batch []types.Record) func() error {
	e := st.e
	if !e.cfg.ReadAhead || len(batch) > len(st.pending) {
		return func() error { return nil }
	}
	read := st.canReadAhead(len(st.pending) - len(batch))
	if read {
		st.readAheads++
	}
	var (
		todo    []types.Record
		out     [][]byte
		readErr error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if read {
			readErr = st.fetch(ctx)
		}
		for _, r := range st.pending[len(batch):min(len(st.pending), len(batch)+e.cfg.BatchSize)] {
			if _, ok := st.frags[aws.ToString(r.SequenceNumber)]; !ok {
				todo = append(todo, r)
			}
		}
		out = make([][]byte, len(todo))
		for i := range todo {
			out[i] = st.marshalRecord(&todo[i])
		}
	}()
	return func() error {
		<-done
		if st.frags == nil {
			st.frags = map[string][]byte{}
		}
		for i, r := range todo {
			st.frags[aws.ToString(r.SequenceNumber)] = out[i]
		}
		return readErr
	}
}

// forget drops the cached JSON of records that leave pending.
func (st *shardState) forget(recs []types.Record) {
	if len(st.frags) == 0 {
		return
	}
	for _, r := range recs {
		delete(st.frags, aws.ToString(r.SequenceNumber))
	}
}

// invoke runs one batch. It reports whether the shard can go on with the next batch in this round.
func (st *shardState) invoke(ctx context.Context, batch []types.Record, payload []byte) (bool, error) {
	e := st.e
	st.attempts++
	st.requestID = uuid.NewString()
	retry := st.attempts > 1
	var outcome string // for the observer
	if obs := e.cfg.Observer; obs != nil && len(batch) > 0 {
		b := Batch{Shard: st.id, Records: len(batch), Start: e.cfg.Now(), Retry: retry}
		b.IteratorAge = b.Start.Sub(aws.ToTime(batch[0].ApproximateArrivalTimestamp))
		defer func() {
			if b.Outcome, b.End = outcome, e.cfg.Now(); outcome != "" {
				obs(b)
			}
		}()
	}
	e.count(func(s *Stats) {
		s.Invocations++
		s.RecordsInvoked += int64(len(batch))
		if retry {
			s.Retries++
		}
	})
	keep := st.warm(ctx, batch)
	resp, err := e.cfg.Invoke(ctx, payload)
	if rerr := keep(); rerr != nil && ctx.Err() == nil {
		e.cfg.Logger.WarnContext(ctx, "event source mapping read ahead", "function", e.cfg.FunctionName, "shard_id", st.id, "err", rerr)
	}
	if ctx.Err() != nil {
		st.attempts--
		return false, ctx.Err()
	}
	if err != nil {
		outcome = OutcomeFunctionError
		e.count(func(s *Stats) { s.FunctionErrors++ })
		e.cfg.Logger.InfoContext(ctx, "function error", "function", e.cfg.FunctionName, "shard_id", st.id, "records", len(batch), "err", err)
		return st.failed(ctx, batch, true)
	}
	r, ok := parseResponse(resp)
	if ok && st.win != nil && (!r.hasState || stateSize(r.state) >= MaxStateBytes) {
		ok = false
	}
	failedAt := -1
	if ok && e.reportFail && len(r.failures) > 0 {
		failedAt, ok = lowestFailure(batch, r.failures)
	}
	if !ok {
		outcome = OutcomeInvalidResponse
		e.count(func(s *Stats) { s.InvalidResponses++ })
		return st.failed(ctx, batch, false)
	}
	if st.win != nil {
		st.win.state = r.state
		st.dirty = true
	}
	if failedAt >= 0 {
		outcome = OutcomePartial
		e.count(func(s *Stats) { s.PartialFailures++; s.Batches++ })
		st.commit(failedAt)
		st.splits = nil
		if failedAt > 0 {
			st.attempts = 1 // the failed record and those after it were tried once
		}
		st.lastFuncErr = false
		if st.retriesExhausted() {
			rest := min(len(batch)-failedAt, len(st.pending))
			return false, st.discard(ctx, st.pending[:rest], "RetryAttemptsExhausted")
		}
		return false, nil
	}
	outcome = OutcomeOK
	e.count(func(s *Stats) { s.Batches++ })
	st.commit(len(batch))
	st.attempts = 0
	if len(st.splits) > 0 {
		st.splits = st.splits[1:]
	}
	return true, nil
}

// failed handles a batch that failed as a whole.
func (st *shardState) failed(ctx context.Context, batch []types.Record, funcErr bool) (bool, error) {
	e := st.e
	st.lastFuncErr = funcErr
	if e.cfg.BisectBatchOnFunctionError && len(batch) > 1 {
		n := len(batch)
		first := (n + 1) / 2
		rest := st.splits
		if len(rest) > 0 {
			rest = rest[1:]
		}
		st.splits = append([]int{first, n - first}, rest...)
		st.attempts = 0
		e.count(func(s *Stats) { s.Bisects++ })
		return false, nil
	}
	if st.retriesExhausted() {
		if err := st.discard(ctx, batch, "RetryAttemptsExhausted"); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

func (st *shardState) retriesExhausted() bool {
	m := st.e.cfg.MaximumRetryAttempts
	return m >= 0 && st.attempts-1 >= m
}

// commit drops n processed records from the head.
func (st *shardState) commit(n int) {
	st.forget(st.pending[:n])
	if n > 0 {
		st.checkpoint, st.dirty = aws.ToString(st.pending[n-1].SequenceNumber), true
	}
	st.pending = st.pending[n:]
	if len(st.pending) == 0 {
		st.pending = nil
	}
	st.e.count(func(s *Stats) { s.RecordsProcessed += int64(n) })
}

// FailureRecord is the on-failure invocation record Lambda sends for a discarded Kinesis batch.
type FailureRecord struct {
	RequestContext   FailureRequestContext  `json:"requestContext"`
	ResponseContext  FailureResponseContext `json:"responseContext"`
	Version          string                 `json:"version"`
	Timestamp        string                 `json:"timestamp"`
	KinesisBatchInfo KinesisBatchInfo       `json:"KinesisBatchInfo"`
}

// FailureRequestContext says which function and why.
type FailureRequestContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"` // RetryAttemptsExhausted or RecordAgeExceeded
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// FailureResponseContext is the last invoke's outcome.
type FailureResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"` // "Unhandled" after a function error
}

// KinesisBatchInfo locates the discarded records in the stream.
type KinesisBatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamArn                       string `json:"streamArn"`
}

const isoMillis = "2006-01-02T15:04:05.000Z"

// discard sends recs (the head of pending) to OnFailure and drops them once delivered.
func (st *shardState) discard(ctx context.Context, recs []types.Record, condition string) error {
	e := st.e
	first, last := recs[0], recs[len(recs)-1]
	rc := FailureResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"}
	if st.lastFuncErr && condition == "RetryAttemptsExhausted" {
		rc.FunctionError = "Unhandled"
	}
	reqID := st.requestID
	if reqID == "" {
		reqID = uuid.NewString()
	}
	payload, _ := json.Marshal(FailureRecord{
		RequestContext: FailureRequestContext{
			RequestID: reqID, FunctionArn: e.cfg.FunctionARN, Condition: condition, ApproximateInvokeCount: st.attempts,
		},
		ResponseContext: rc,
		Version:         "1.0",
		Timestamp:       e.cfg.Now().UTC().Format(isoMillis),
		KinesisBatchInfo: KinesisBatchInfo{
			ShardID: st.id, StartSequenceNumber: aws.ToString(first.SequenceNumber), EndSequenceNumber: aws.ToString(last.SequenceNumber),
			ApproximateArrivalOfFirstRecord: aws.ToTime(first.ApproximateArrivalTimestamp).UTC().Format(isoMillis),
			ApproximateArrivalOfLastRecord:  aws.ToTime(last.ApproximateArrivalTimestamp).UTC().Format(isoMillis),
			BatchSize:                       len(recs), StreamArn: e.cfg.StreamARN,
		},
	})
	st.failure = &failureDelivery{payload: payload, n: len(recs), condition: condition}
	e.cfg.Logger.WarnContext(ctx, "discarding batch", "function", e.cfg.FunctionName, "shard_id", st.id,
		"condition", condition, "records", len(recs), "seq", aws.ToString(first.SequenceNumber))
	return st.deliverFailure(ctx)
}

func (st *shardState) deliverFailure(ctx context.Context) error {
	e := st.e
	f := st.failure
	if e.cfg.OnFailure != nil {
		if err := e.cfg.OnFailure(ctx, f.payload); err != nil {
			e.count(func(s *Stats) { s.Errors++ })
			return err
		}
	}
	st.failure = nil
	st.forget(st.pending[:f.n])
	st.checkpoint, st.dirty = aws.ToString(st.pending[f.n-1].SequenceNumber), true
	st.pending = st.pending[f.n:]
	st.attempts = 0
	st.lastFuncErr = false
	st.requestID = ""
	if f.condition == "RetryAttemptsExhausted" && len(st.splits) > 0 {
		st.splits = st.splits[1:]
	}
	e.count(func(s *Stats) {
		s.RecordsDiscarded += int64(f.n)
		if f.condition == "RecordAgeExceeded" {
			s.AgeExpired++
		} else {
			s.Exhausted++
		}
	})
	return nil
}

// closeWindow makes the final invoke of the open window. It reports whether it succeeded.
func (st *shardState) closeWindow(ctx context.Context, early bool) (bool, error) {
	e := st.e
	payload, _ := st.event(nil, true, early)
	e.count(func(s *Stats) { s.Invocations++ })
	if _, err := e.cfg.Invoke(ctx, payload); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		e.count(func(s *Stats) { s.FunctionErrors++ })
		return false, nil
	}
	e.count(func(s *Stats) { s.WindowsClosed++ })
	st.win = nil
	st.dirty = true
	st.publish()
	return true, nil
}

type response struct {
	hasState bool
	state    map[string]string
	failures []*string
}

// parseResponse reads a function response. ok is false when batchItemFailures or state is malformed.
// An empty, null or non-object response has no failures and no state.
func parseResponse(b []byte) (r response, ok bool) {
	r.state = map[string]string{}
	t := bytes.TrimSpace(b)
	var top map[string]json.RawMessage
	if len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &top) != nil {
		return r, true
	}
	if raw, has := top["state"]; has {
		r.hasState = true
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &r.state); err != nil {
				return r, false
			}
			if r.state == nil {
				r.state = map[string]string{}
			}
		}
	}
	if raw, has := top["batchItemFailures"]; has && string(raw) != "null" {
		var items []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		}
		if err := json.Unmarshal(raw, &items); err != nil {
			return r, false
		}
		for _, it := range items {
			r.failures = append(r.failures, it.ItemIdentifier)
		}
	}
	return r, true
}

// lowestFailure returns the index of the lowest failed sequence number in batch; ok is false when an
// identifier is empty, null or not a sequence number of the batch.
func lowestFailure(batch []types.Record, failures []*string) (int, bool) {
	idx := map[string]int{}
	for i, r := range batch {
		idx[aws.ToString(r.SequenceNumber)] = i
	}
	lowest := len(batch)
	for _, f := range failures {
		if f == nil || *f == "" {
			return 0, false
		}
		i, ok := idx[*f]
		if !ok {
			return 0, false
		}
		lowest = min(lowest, i)
	}
	return lowest, true
}

func stateSize(m map[string]string) int {
	b, _ := json.Marshal(m)
	return len(b)
}

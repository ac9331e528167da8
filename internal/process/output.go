package process

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/obs"
)

type fileKind uint8

const (
	kindTrips fileKind = iota
	kindQuarantine
)

// Output key prefixes.
const (
	TripsPrefix      = "processed/trips/"
	QuarantinePrefix = "quarantine/"
	ZoneStatsPrefix  = "processed/zone_stats/"
)

// outFile is one output object of a batch and what is known about its content in S3.
type outFile struct {
	kind  fileKind
	date  string
	key   string
	units []int // indices into batch.units, in batch order

	touched bool // a PutObject was attempted
	unknown bool // the last PutObject failed: the object may hold any earlier content or none
	upto    int  // when touched && !unknown: the object holds exactly the file's units with k < upto
	gaveUp  bool // could not be emptied (a residual: the ledger names it, and the next invocation empties it)

	// An earlier attempt's object of the same key, per the ledger: the sequence numbers it may hold
	// until this invocation overwrites it.
	staleFirst, staleLast string
}

// seq is the sequence number of unit i's Kinesis record.
func (b *batch) seq(i int) string { return b.ev.Records[b.units[i].k].Kinesis.SequenceNumber }

func (f *outFile) minK(b *batch) int { return b.units[f.units[0]].k }

// hasUnitsIn reports whether the file has a unit whose Kinesis index is in [lo, hi).
func (f *outFile) hasUnitsIn(b *batch, lo, hi int) bool {
	for _, i := range f.units {
		if k := b.units[i].k; k >= lo && k < hi {
			return true
		}
	}
	return false
}

// TripsKey is the object key of the valid trips of one pickup date of a batch.
func TripsKey(date, shard, firstSeq string) string {
	return TripsPrefix + "pickup_date=" + date + "/" + shard + "-" + firstSeq + ".parquet"
}

// QuarantineKey is the object key of the invalid records of one pickup date ("unknown" when the date
// is missing or implausible) of a batch.
func QuarantineKey(date, shard, firstSeq string) string {
	return QuarantinePrefix + date + "/" + shard + "-" + firstSeq + ".jsonl.gz"
}

// ZoneStatsKey is the object key of a window's per-zone aggregates; part is "" except when Lambda
// ended the window early (then the first sequence number counted in that part of the window).
func ZoneStatsKey(windowStart time.Time, shard, part string) string {
	name := shard
	if part != "" {
		name += "-" + part
	}
	return ZoneStatsPrefix + "window_start=" + windowStart.UTC().Format(time.RFC3339) + "/" + name + ".parquet"
}

// plan groups the batch's valid and invalid units into output files, ordered by their first record.
func (h *Handler) plan(b *batch) []*outFile {
	type fk struct {
		kind fileKind
		date string
	}
	byKey := map[fk]*outFile{}
	var files []*outFile
	for i := range b.units {
		u := &b.units[i]
		var kind fileKind
		switch u.status {
		case statusValid:
			kind = kindTrips
		case statusInvalid:
			kind = kindQuarantine
		default:
			continue
		}
		key := fk{kind, u.date}
		f := byKey[key]
		if f == nil {
			f = &outFile{kind: kind, date: u.date}
			if kind == kindTrips {
				f.key = TripsKey(u.date, b.shard, b.firstSeq)
			} else {
				f.key = QuarantineKey(u.date, b.shard, b.firstSeq)
			}
			byKey[key] = f
			files = append(files, f) // in order of first unit, hence of first Kinesis record
		}
		f.units = append(f.units, i)
	}
	return files
}

type commitResult struct {
	cut      int // Kinesis records [0, cut) are committed; cut == len(records) when all are
	bytes    int64
	objects  int
	parquet  int // of objects, Parquet files under processed/trips/
	failures int
	residual int
	errs     []error
	ledger   *ledgerState
}

// writeReserve is kept back from the invocation deadline for the clean-up writes after a failure.
const writeReserve = 3 * time.Second

// writeContexts returns the context of the writes, which ends writeReserve (at most a quarter of the
// time left) before the invocation, and the context of the clean-up after a failure, which ends just
// before the invocation does: Lambda discards a partial batch response that comes too late, and the
// whole batch fails.
func writeContexts(ctx context.Context) (wctx, fctx context.Context, cancel context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, ctx, func() {}
	}
	reserve := max(0, min(writeReserve, time.Until(dl)/4))
	wctx, c1 := context.WithDeadline(ctx, dl.Add(-reserve))
	fctx, c2 := context.WithDeadline(ctx, dl.Add(-min(250*time.Millisecond, reserve/2)))
	return wctx, fctx, func() { c1(); c2() }
}

// commit writes the batch's files and returns the committed prefix of Kinesis records. Records
// before b.from are below the ledger's high-water mark: done before, not written again.
//
// First the ledger (ledger.go): the objects earlier attempts may have left rows of this batch in are
// emptied or trimmed, or marked for overwriting, and the ledger is stored with the planned files. If
// any of that fails, nothing is written and cut is b.from.
//
// Invariant at return: every object this batch touched holds exactly its units with k < cut (a
// prefix of the batch in Kinesis order), so reporting record cut as the batch item failure is
// correct: Lambda checkpoints before cut and retries from cut, and the retry — named after cut's
// sequence number, a different name — writes units with k ≥ cut only. Every unit with k < cut is in
// exactly one object of this batch; every unit with k ≥ cut is in none and is retried. Hence no row
// is lost or written twice.
//
// How: files are written in order of their first record. On the first failure of file F, cut becomes
// F's first record, and every touched file that may hold a unit ≥ cut is rewritten with its units
// < cut (possibly none: an empty file), including F itself, whose failed PUT may or may not have
// stored it, and any file an earlier attempt wrote under the same key. If such a rewrite fails, that
// object's content is unknown, so cut moves to its first record and the loop repeats; cut only
// decreases, so it ends. An object that cannot be emptied (its rewrite fails and it has no unit
// < cut) is a residual (ResidualObjects metric): the ledger names it, so the invocation that retries
// from cut empties it before writing. The same holds when the invocation dies (a timeout, a crash)
// in the middle: the ledger stored before the first write names every object it may have written.
func (h *Handler) commit(ctx context.Context, b *batch, files []*outFile, ls *ledgerState) commitResult {
	n := len(b.ev.Records)
	res := commitResult{cut: n, ledger: ls}
	if b.from >= n {
		return res
	}
	wctx, fctx, cancel := writeContexts(ctx)
	defer cancel()
	enc := h.encoders.Get().(*parquetEncoder)
	defer h.encoders.Put(enc)

	if err := h.resolveLedger(wctx, b, files, ls, enc); err != nil {
		res.cut = b.from
		res.failures++
		res.errs = append(res.errs, err)
		return res
	}
	defer func() {
		if err := h.finishLedger(fctx, b, files, ls); err != nil {
			h.log.WarnContext(ctx, "storing the ledger after writing (the next invocation reads the objects it names)",
				"shard_id", b.shard, "error", err.Error())
		}
	}()

	// The first write of every file holds all its units: they are encoded ahead, on every CPU, and
	// written maxConcurrentWrites at a time.
	pre := h.preEncode(wctx, b, files)
	defer pre.stop()
	h.writeFiles(wctx, b, files, pre, enc, &res)
	pre.stop()
	if res.cut == n {
		return res
	}
	for changed := true; changed; {
		changed = false
		for _, f := range files {
			if !f.touched || f.gaveUp {
				continue
			}
			if !f.unknown && (f.upto == res.cut || !f.hasUnitsIn(b, res.cut, f.upto)) {
				f.upto = res.cut
				continue
			}
			if err := h.put(fctx, b, f, res.cut, enc, &res); err != nil {
				if f.minK(b) < res.cut {
					res.cut = f.minK(b)
					changed = true
					break
				}
				f.gaveUp = true
				res.residual++
			}
		}
	}
	return res
}

// maxConcurrentWrites bounds the PutObject calls of one batch in flight at once. A batch writes one
// object per pickup date it holds (a month's file: ~31, the demo's four files: ~60, late or replayed
// data: more); one at a time, each waited for S3's latency (tens of milliseconds) in turn.
const maxConcurrentWrites = 8

// writeFiles writes every file whole (its units with k < len(records)), in order of their first record
// and up to maxConcurrentWrites at once, and stops starting writes at the first failure. res.cut is then
// the least first record of the files whose write failed (len(records) when none did).
//
// Why that is commit's starting point as much as it was for one write at a time: files are started in
// order of their first record, so every file started after a failed file F holds only units with
// k ≥ minK(F) ≥ cut, and every file not started too; every file started before F has either been
// written whole (touched, upto = len(records)) or failed, and then cut ≤ its first record. Whatever of
// it lies at or after cut, commit's repair loop rewrites, as it did for the files an earlier attempt
// wrote: written files and failed ones are marked in each file by its own goroutine (write), and read
// by commit only after every write returned.
func (h *Handler) writeFiles(ctx context.Context, b *batch, files []*outFile, pre *preEncoder, enc *parquetEncoder, res *commitResult) {
	n := len(b.ev.Records)
	var (
		mu     sync.Mutex // guards res
		wg     sync.WaitGroup
		writes = make(chan struct{}, maxConcurrentWrites)
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return res.cut < n
	}
	for i, f := range files {
		if failed() {
			break
		}
		var (
			body        []byte
			contentType string
			encErr      error
		)
		if pre == nil {
			body, contentType, encErr = h.encodeFile(b, f.kind, f.units, enc)
			body = bytes.Clone(body) // the encoder's buffer is reused for the next file
		} else if e, ok := pre.get(ctx, i); ok {
			body, contentType, encErr = e.body, e.contentType, e.err
		} else {
			encErr = fmt.Errorf("encoding %s: %w", f.key, context.Cause(ctx))
		}
		writes <- struct{}{}
		wg.Go(func() {
			defer func() { <-writes }()
			var r commitResult
			err := h.write(ctx, f, n, body, contentType, encErr, &r)
			mu.Lock()
			defer mu.Unlock()
			res.bytes += r.bytes
			res.objects += r.objects
			res.parquet += r.parquet
			res.failures += r.failures
			res.errs = append(res.errs, r.errs...)
			if err != nil {
				res.cut = min(res.cut, f.minK(b))
			}
		})
	}
	wg.Wait()
}

// put writes f's units with k < upto.
func (h *Handler) put(ctx context.Context, b *batch, f *outFile, upto int, enc *parquetEncoder, res *commitResult) error {
	units := f.units
	for len(units) > 0 && b.units[units[len(units)-1]].k >= upto {
		units = units[:len(units)-1]
	}
	body, contentType, err := h.encodeFile(b, f.kind, units, enc)
	return h.write(ctx, f, upto, body, contentType, err, res)
}

// write stores f's encoding (of its units with k < upto), or records encErr, the encoding's failure.
func (h *Handler) write(ctx context.Context, f *outFile, upto int, body []byte, contentType string, encErr error, res *commitResult) error {
	if encErr != nil {
		// Encoding does not fail on valid rows; treat it like a failed write so nothing is lost.
		res.failures++
		res.errs = append(res.errs, encErr)
		f.touched, f.unknown = true, true
		return encErr
	}
	f.touched = true
	_, err := h.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(h.cfg.Bucket),
		Key:           aws.String(f.key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	})
	if err != nil {
		f.unknown = true
		res.failures++
		res.errs = append(res.errs, fmt.Errorf("putting s3://%s/%s: %w", h.cfg.Bucket, f.key, err))
		return err
	}
	f.unknown, f.upto = false, upto
	res.bytes += int64(len(body))
	res.objects++
	if f.kind == kindTrips {
		res.parquet++
	}
	return nil
}

func (h *Handler) encodeFile(b *batch, kind fileKind, units []int, enc *parquetEncoder) ([]byte, string, error) {
	if kind == kindTrips {
		enc.rows = slices.Grow(enc.rows[:0], len(units))[:len(units)]
		for j, i := range units {
			u := &b.units[i]
			fillRow(&enc.rows[j], u, h.zones, b.ev.Records[u.k].Kinesis.SequenceNumber)
		}
		body, err := enc.encode(enc.rows)
		clear(enc.rows) // drop the pointers into the batch
		return body, "application/vnd.apache.parquet", err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	var line []byte
	for _, i := range units {
		line = h.quarantineLine(line[:0], b, &b.units[i])
		if _, err := zw.Write(line); err != nil {
			return nil, "", fmt.Errorf("compressing quarantine: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("compressing quarantine: %w", err)
	}
	return buf.Bytes(), "application/gzip", nil
}

// kinesisMeta is the "_kinesis" member of a quarantine line.
type kinesisMeta struct {
	ShardID           string    `json:"shard_id"`
	SequenceNumber    string    `json:"sequence_number"`
	SubSequenceNumber int       `json:"sub_sequence_number"`
	PartitionKey      string    `json:"partition_key"`
	ArrivalTimestamp  time.Time `json:"approximate_arrival_timestamp"`
}

// quarantineLine appends one JSON line: the original record with "_rejections" and "_kinesis" added.
// A record that is not a JSON object (or a corrupt aggregate) is kept as "_raw" (valid UTF-8 text) or
// "_raw_base64" instead.
func (h *Handler) quarantineLine(dst []byte, b *batch, u *unit) []byte {
	kr := &b.ev.Records[u.k].Kinesis
	rej, _ := json.Marshal(u.rej)
	meta, _ := json.Marshal(kinesisMeta{ShardID: b.shard, SequenceNumber: kr.SequenceNumber, SubSequenceNumber: u.sub,
		PartitionKey: kr.PartitionKey, ArrivalTimestamp: kr.ApproximateArrivalTimestamp.UTC()})
	// The trip parser reads only the fields it knows and tolerates text that is not valid JSON
	// elsewhere; a quarantine line must stay valid JSON, so such a record is kept as _raw.
	if u.parsed && json.Valid(u.data) {
		obj := bytes.TrimRight(u.data, " \t\r\n")
		obj = obj[:len(obj)-1] // the closing '}'
		dst = append(dst, obj...)
		if len(bytes.TrimSpace(obj)) > 1 {
			dst = append(dst, ',')
		}
	} else if !u.aggregate && utf8.Valid(u.data) {
		raw, _ := json.Marshal(string(u.data))
		dst = append(dst, `{"_raw":`...)
		dst = append(dst, raw...)
		dst = append(dst, ',')
	} else {
		dst = append(dst, `{"_raw_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, u.data)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"_rejections":`...)
	dst = append(dst, rej...)
	dst = append(dst, `,"_kinesis":`...)
	dst = append(dst, meta...)
	return append(dst, '}', '\n')
}

// window adds the committed valid trips to the window state and, on the final invoke (or when Lambda
// ends the window early), writes the zone stats and returns an empty state.
func (h *Handler) window(ctx context.Context, b *batch, cut int, m *obs.Metrics, attrs *[]any) (map[string]string, error) {
	ev := b.ev
	ws, bad := decodeState(ev.State)
	if bad > 0 {
		m.Add("WindowStateBadEntries", obs.Count, float64(bad))
	}
	for i := range b.units {
		u := &b.units[i]
		if u.k >= cut {
			break
		}
		if u.status == statusValid {
			ws.add(u, ev.Records[u.k].Kinesis.SequenceNumber)
		}
	}
	state, size := ws.encode()
	if size > h.stateBudget && !ws.collapsed {
		ws.collapse()
		state, size = ws.encode()
		m.Add("WindowStateCollapsed", obs.Count, 1)
	}
	m.Set("WindowStateBytes", obs.Bytes, float64(size))
	*attrs = append(*attrs, "window_start", ev.Window.Start.UTC().Format(time.RFC3339), "state_bytes", size, "zones", len(ws.zones))

	final := ev.IsFinalInvokeForWindow || ev.IsWindowTerminatedEarly
	if !final || cut < len(ev.Records) {
		return state, nil
	}
	if len(ws.zones) > 0 {
		part := ""
		if ev.IsWindowTerminatedEarly {
			part = ws.firstSeq
			if part == "" {
				part = "empty"
			}
		}
		body, _, err := ws.zoneStats(ev.Window.Start.Time, ev.Window.End.Time, b.shard, h.zones)
		if err != nil {
			return nil, err
		}
		key := ZoneStatsKey(ev.Window.Start.Time, b.shard, part)
		_, err = h.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(h.cfg.Bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentType:   aws.String("application/vnd.apache.parquet"),
		})
		if err != nil {
			m.Add("WriteFailures", obs.Count, 1)
			return nil, fmt.Errorf("putting s3://%s/%s: %w", h.cfg.Bucket, key, err)
		}
		m.Add("BytesWritten", obs.Bytes, float64(len(body)))
		m.Add("ObjectsWritten", obs.Count, 1)
		m.Add("WindowsWritten", obs.Count, 1)
		*attrs = append(*attrs, "zone_stats", key)
	}
	return map[string]string{}, nil
}

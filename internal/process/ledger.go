package process

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/s3object"
)

// The ledger: how a retried, bisected or redelivered batch writes no row twice.
//
// The event source mapping delivers a shard's records at least once and in order, one batch at a
// time (ParallelizationFactor 1), and only ever invokes a batch that starts at its checkpoint: when
// an invocation starts at sequence number s, every record before s is done (written, or sent to the
// failure destination) and every record from s on will be delivered again until it is. An earlier
// attempt may still have left rows at or after s in objects: a function error or timeout after some
// writes (Lambda then retries or bisects the batch), or a clean-up rewrite that failed after a
// partial failure. Those rows would be written a second time by this invocation or a later one.
//
// So before writing anything, an invocation reads its shard's ledger (state/process/<shardId>.json),
// which lists every object an earlier invocation may have written rows into that are not known to be
// done, each with the range of sequence numbers it may hold [first, last]:
//
//   - last < s: all its rows are done; it is dropped from the ledger.
//   - first ≥ s: none of its rows is done; all will come again. If this invocation writes the same key
//     it overwrites it (and its clean-up empties it on a failure); otherwise the object is emptied now.
//   - first < s ≤ last: the rows before s are done, the others are not: the object is read and
//     rewritten with the rows before s only (rare: a clean-up that failed, or a lost ledger update).
//
// Then it stores the ledger with the objects it plans to write (key and sequence range) before
// writing any of them, so that whatever happens next — a failure, a timeout, a crash — the next
// invocation knows every object that may hold its rows. After a partial failure it stores the ledger
// again with what the objects really hold, sparing the next invocation the reads. A ledger that
// cannot be read, stored or acted on fails the batch at its first record (a partial batch response):
// nothing is written without it.
//
// The ledger also keeps the high-water mark: the largest first sequence number of an invocation
// seen. A batch that starts below it is a redelivery of records already done (the mapping's
// at-least-once delivery); those records are skipped. To process a shard's records again on
// purpose, delete processed/ and state/process/ together.
//
// Each ledger write is conditional (If-Match the version read, If-None-Match for the first), so two
// invocations on one shard at once — which the mapping never does — fail instead of losing an entry.

// LedgerPrefix is where the ledgers are.
const LedgerPrefix = "state/process/"

// LedgerKey is the key of a shard's ledger.
func LedgerKey(shard string) string { return LedgerPrefix + shard + ".json" }

// Ledger is the stored state of one shard.
type Ledger struct {
	ShardID string `json:"shard_id"`
	// HighWater is the largest first sequence number of a batch seen on the shard: the mapping had
	// checkpointed every record before it.
	HighWater string `json:"high_water"`
	// Objects may hold rows that are not yet done.
	Objects   []LedgerEntry `json:"objects"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// LedgerEntry is an object and the sequence numbers its rows may have.
type LedgerEntry struct {
	Key   string `json:"key"`
	First string `json:"first_seq"`
	Last  string `json:"last_seq"`
}

// ledgerState is one invocation's view of its shard's ledger.
type ledgerState struct {
	key     string
	etag    string // of the stored version; "" when there is none
	read    Ledger
	written Ledger // what this invocation stored before writing objects
	stored  bool
	emptied int // objects emptied or trimmed before writing
	trimmed int
	closed  int // entries dropped as done
}

// readLedger reads the shard's ledger and sets b.from past the records below its high-water mark.
func (h *Handler) readLedger(ctx context.Context, b *batch) (*ledgerState, error) {
	ls := &ledgerState{key: LedgerKey(b.shard)}
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(ls.key)})
	switch {
	case s3object.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("getting the ledger s3://%s/%s: %w", h.cfg.Bucket, ls.key, err)
	default:
		body, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the ledger s3://%s/%s: %w", h.cfg.Bucket, ls.key, err)
		}
		if err := json.Unmarshal(body, &ls.read); err != nil {
			return nil, fmt.Errorf("decoding the ledger s3://%s/%s: %w", h.cfg.Bucket, ls.key, err)
		}
		ls.etag = aws.ToString(out.ETag)
		if ls.etag == "" {
			return nil, fmt.Errorf("getting the ledger s3://%s/%s: no ETag (conditional writes need it)", h.cfg.Bucket, ls.key)
		}
	}
	recs := b.ev.Records
	for b.from < len(recs) && seqLess(recs[b.from].Kinesis.SequenceNumber, ls.read.HighWater) {
		b.from++
	}
	if b.from < len(recs) {
		b.firstSeq = recs[b.from].Kinesis.SequenceNumber
	}
	return ls, nil
}

// resolveLedger acts on the entries read (see the package comment above) and stores the ledger with
// the planned files, before any of them is written. Files this invocation overwrites are marked as
// touched with unknown content, so that commit's clean-up covers them.
func (h *Handler) resolveLedger(ctx context.Context, b *batch, files []*outFile, ls *ledgerState, enc *parquetEncoder) error {
	s := b.firstSeq
	ours := make(map[string]*outFile, len(files))
	for _, f := range files {
		ours[f.key] = f
	}
	for _, e := range ls.read.Objects {
		switch {
		case seqLess(e.Last, s):
			ls.closed++
		case !seqLess(e.First, s):
			if f := ours[e.Key]; f != nil {
				f.touched, f.unknown = true, true
				f.staleFirst, f.staleLast = e.First, e.Last
				continue
			}
			if err := h.trimObject(ctx, e.Key, "", enc); err != nil {
				return err
			}
			ls.emptied++
		default:
			if err := h.trimObject(ctx, e.Key, s, enc); err != nil {
				return err
			}
			ls.trimmed++
		}
	}
	hw := ls.read.HighWater
	if seqLess(hw, s) {
		hw = s
	}
	ls.written = Ledger{ShardID: b.shard, HighWater: hw, Objects: plannedEntries(b, files), UpdatedAt: h.now().UTC()}
	return h.storeLedger(ctx, ls, ls.written)
}

// finishLedger stores what the objects really hold after a partial failure or a resolved entry, when
// that differs from what was stored before writing. A failure is only logged: the stored ledger still
// names every object that may hold rows (the next invocation then reads a few objects it need not).
func (h *Handler) finishLedger(ctx context.Context, b *batch, files []*outFile, ls *ledgerState) error {
	if !ls.stored {
		return nil
	}
	l := ls.written
	l.Objects = heldEntries(b, files)
	if slices.Equal(l.Objects, ls.written.Objects) {
		return nil
	}
	l.UpdatedAt = h.now().UTC()
	return h.storeLedger(ctx, ls, l)
}

func (h *Handler) storeLedger(ctx context.Context, ls *ledgerState, l Ledger) error {
	if l.Objects == nil {
		l.Objects = []LedgerEntry{}
	}
	body, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding the ledger: %w", err)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(h.cfg.Bucket), Key: aws.String(ls.key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"),
	}
	if ls.etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ls.etag)
	}
	out, err := h.s3.PutObject(ctx, in)
	if err != nil {
		// Whether it was stored is unknown: the next write must read the ledger again.
		ls.stored = false
		return fmt.Errorf("putting the ledger s3://%s/%s: %w", h.cfg.Bucket, ls.key, err)
	}
	ls.etag = aws.ToString(out.ETag)
	ls.stored = ls.etag != ""
	return nil
}

// plannedEntries are the ledger entries of the files about to be written: each may hold its units and,
// until it is overwritten, what an earlier attempt left in it.
func plannedEntries(b *batch, files []*outFile) []LedgerEntry {
	es := make([]LedgerEntry, 0, len(files))
	for _, f := range files {
		es = append(es, plannedEntry(b, f))
	}
	return es
}

func plannedEntry(b *batch, f *outFile) LedgerEntry {
	e := LedgerEntry{Key: f.key, First: b.seq(f.units[0]), Last: b.seq(f.units[len(f.units)-1])}
	if f.staleFirst != "" && seqLess(f.staleFirst, e.First) {
		e.First = f.staleFirst
	}
	if f.staleLast != "" && seqLess(e.Last, f.staleLast) {
		e.Last = f.staleLast
	}
	return e
}

// heldEntries are the ledger entries of the files after commit: what each object may hold now.
func heldEntries(b *batch, files []*outFile) []LedgerEntry {
	var es []LedgerEntry
	for _, f := range files {
		switch {
		case !f.touched:
			// Never written.
		case f.unknown || f.gaveUp:
			es = append(es, plannedEntry(b, f))
		default:
			last := -1
			for _, i := range f.units {
				if b.units[i].k < f.upto {
					last = i
				}
			}
			if last >= 0 { // else it was written empty
				es = append(es, LedgerEntry{Key: f.key, First: b.seq(f.units[0]), Last: b.seq(last)})
			}
		}
	}
	if es == nil {
		es = []LedgerEntry{}
	}
	return es
}

// trimObject rewrites an output object with only its rows whose sequence number is below before
// ("" keeps none: the object is emptied). An object that does not exist is left so.
func (h *Handler) trimObject(ctx context.Context, key, before string, enc *parquetEncoder) error {
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(key)})
	if s3object.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting s3://%s/%s to remove rows an earlier attempt wrote: %w", h.cfg.Bucket, key, err)
	}
	old, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	var body []byte
	var contentType string
	switch {
	case strings.HasPrefix(key, TripsPrefix):
		contentType = "application/vnd.apache.parquet"
		if before == "" {
			body, err = enc.encode(nil)
		} else {
			body, err = trimParquet(old, before)
		}
	case strings.HasPrefix(key, QuarantinePrefix):
		contentType = "application/gzip"
		body, err = trimQuarantine(old, before)
	default:
		err = errors.New("not an output object")
	}
	if err != nil {
		return fmt.Errorf("removing rows from s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	_, err = h.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(h.cfg.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("putting s3://%s/%s without the rows an earlier attempt wrote: %w", h.cfg.Bucket, key, err)
	}
	return nil
}

// seqColumn is the Parquet column the trim filters on.
const seqColumn = "kinesis_sequence_number"

// trimParquet returns the file with only the rows whose sequence number is below before, in the
// file's own schema (whatever version of the function wrote it).
func trimParquet(body []byte, before string) ([]byte, error) {
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, err
	}
	col, ok := f.Schema().Lookup(seqColumn)
	if !ok {
		return nil, fmt.Errorf("no %s column", seqColumn)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, f.Schema(), parquet.Compression(&snappyFast), &parquet.WriterConfig{CreatedBy: CreatedBy()})
	rows := make([]parquet.Row, 64)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(rows)
			for _, r := range rows[:n] {
				keep := false
				for _, v := range r {
					if v.Column() == col.ColumnIndex {
						keep = seqLess(v.String(), before)
						break
					}
				}
				if keep {
					if _, err := w.WriteRows([]parquet.Row{r}); err != nil {
						rr.Close()
						return nil, err
					}
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, err
			}
		}
		if err := rr.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// trimQuarantine returns the gzip'd JSON lines whose _kinesis.sequence_number is below before.
func trimQuarantine(body []byte, before string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if before != "" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var line struct {
				Kinesis struct {
					Seq string `json:"sequence_number"`
				} `json:"_kinesis"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				return nil, fmt.Errorf("a quarantine line without _kinesis.sequence_number: %w", err)
			}
			if seqLess(line.Kinesis.Seq, before) {
				zw.Write(sc.Bytes())
				zw.Write([]byte{'\n'})
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// seqLess orders Kinesis sequence numbers (decimal strings of up to 128 bits) numerically; "" is
// below every sequence number.
func seqLess(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

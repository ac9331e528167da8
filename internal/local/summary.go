package local

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/local/esm"
)

// Summary is what a local run did, read back from the bucket (not from counters), so that it shows what
// a user would find. Its JSON form is what `taxistream local --summary-json` writes; docs/local-cloud.md
// documents every field.
type Summary struct {
	Objects          int      `json:"objects"`          // ingest manifests (object versions)
	ObjectsDone      int      `json:"objects_done"`     // manifests with status done
	ObjectsFailed    int      `json:"objects_failed"`   // manifests with status failed
	FailedReasons    []string `json:"failed_reasons"`   // key: reason, per failed object
	RowsRead         int64    `json:"rows_read"`        // data rows read, all objects
	RecordsSent      int64    `json:"records_sent"`     // records acknowledged by the stream
	Rejected         int64    `json:"rejected"`         // rows not converted (under rejected/)
	Failed           int64    `json:"failed"`           // rows whose fate is unknown (aborted objects)
	Throttled        int64    `json:"throttled"`        // entries the stream throttled (all retried)
	Retries          int64    `json:"retries"`          // PutRecords retries
	KinesisRecords   int64    `json:"kinesis_records"`  // Kinesis records (aggregates count once)
	Continuations    int      `json:"continuations"`    // ingest hand-overs to a continuation
	ArchiveObjects   int      `json:"archive_objects"`  // Firehose objects under archive/
	ArchiveRecords   int64    `json:"archive_records"`  // lines in them
	ArchiveDistinct  int64    `json:"archive_distinct"` // distinct record_id in them
	ArchiveErrors    int      `json:"archive_error_objects"`
	TripObjects      int      `json:"trip_objects"`      // Parquet objects under processed/trips/
	TripsProcessed   int64    `json:"trips_processed"`   // rows in them
	TripsDistinct    int64    `json:"trips_distinct"`    // distinct record_id in them
	Quarantined      int64    `json:"quarantined"`       // lines under quarantine/
	ConsumerDistinct int64    `json:"consumer_distinct"` // distinct record_id in processed ∪ quarantine
	// ProcessedDuplicates is rows in processed/trips minus distinct record ids in them: what
	// count(*) − count(DISTINCT record_id) gives in any engine. ProcessedRewritten is the part of it
	// that repeats one stream record (the same sequence and sub-sequence number: written twice by the
	// consumer, which must never happen); the rest repeats a record the stream itself holds twice (a
	// producer resent it after a timeout).
	ProcessedDuplicates int64 `json:"processed_duplicates"`
	ProcessedRewritten  int64 `json:"processed_rewritten"`
	// Record ids in one of archive and consumer outputs but not the other (0 and 0 when both hold
	// exactly the same records).
	ArchivedNotConsumed int64          `json:"archived_not_consumed"`
	ConsumerNotArchived int64          `json:"consumer_not_archived"`
	Windows             int            `json:"windows_written"`    // Parquet objects under processed/zone_stats/
	ZoneStatsRows       int64          `json:"zone_stats_rows"`    // rows in them (from their footers)
	FailureRecords      int            `json:"failure_records"`    // on-failure destination records
	RejectedByReason    map[string]int `json:"rejected_by_reason"` // from rejected/ lines
	// FailureNamedRecords is the distinct record ids of the stream records that ProcessFunction's
	// on-failure records name (read back from the stream); FailureUnresolved counts on-failure
	// records whose stream records could not be read back (no longer retained).
	FailureNamedRecords int64 `json:"failure_named_records"`
	FailureUnresolved   int   `json:"failure_unresolved"`
	// Unaccounted is records sent (distinct ids in the archive) that are neither in processed/trips,
	// nor in quarantine/, nor named by an on-failure record.
	Unaccounted int64 `json:"unaccounted"`
	// Compaction is set by the caller when it compacted (taxistream local, once the pipeline is idle).
	Compaction     *CompactionSummary `json:"compaction,omitempty"`
	Reconciled     bool               `json:"reconciled"`
	Reconciliation []string           `json:"reconciliation"` // one line per check, "ok: ..." or "MISMATCH: ..."
	// The counts above are the folder's, every run in it; ThisRun is what this run worked on, InFlight
	// the objects not finished, Warnings what is surprising about finished ones (summary_run.go).
	ThisRun  RunCounts     `json:"this_run"`
	InFlight []ObjectState `json:"in_flight"`
	Warnings []string      `json:"warnings"`
	// PeakRSSBytes is the process's resident high-water mark when the summary was made (Linux; 0
	// elsewhere), set by `taxistream local`.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

type lister interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Summarize reads the bucket, the failure records and the stream records they name, and reconciles
// them: every row read is a record sent or a rejected row; every record sent is in the archive
// (Firehose is at least once: distinct record ids are compared); every record sent reached the
// consumer's outputs (processed or quarantined, distinct record ids) and none is twice in
// processed/trips; no batch or event went to a failure destination.
func (c *Cloud) Summarize(ctx context.Context) (Summary, error) {
	named, unresolved, err := c.failureNamedIDs(ctx)
	if err != nil {
		return Summary{}, err
	}
	s, err := summarize(ctx, c.Bucket, c.Bucket.Name(), c.dir, c.Firehose != nil, c.ESM != nil, named)
	if err != nil {
		return s, err
	}
	if err := c.summarizeRun(ctx, &s); err != nil {
		return s, err
	}
	s.FailureRecords = len(c.Failures())
	s.FailureUnresolved = unresolved
	s.reconcile(c.Firehose != nil, c.ESM != nil)
	return s, nil
}

// Where a record id was seen (idState.seen bits).
const (
	inArchive uint8 = 1 << iota
	inTrips
	inQuarantine
	inFailure
)

// idState is what the summary knows of one record id: where it was seen.
type idState struct {
	seen uint8
}

// summarize reads the bucket. Objects are streamed: NDJSON line by line, Parquet by ranged reads of
// the footer and the record_id and sequence-number column chunks only. The record ids go into an
// idSet (idset.go): sorted runs spilled to tmpDir, merged, so memory stays bounded whatever the rows.
func summarize(ctx context.Context, b lister, bucketName, tmpDir string, archive, consumer bool, failureNamed []string) (Summary, error) {
	s := Summary{RejectedByReason: map[string]int{}}
	ids := newIDSet(tmpDir)
	defer ids.close()
	var addErr error
	mark := func(id string, bit uint8, aux uint64) {
		if err := ids.add(id, bit, aux); err != nil && addErr == nil {
			addErr = err
		}
	}
	err := each(ctx, b, bucketName, "state/ingest/", func(key string, body []byte) error {
		var m ingest.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("reading manifest %s: %w", key, err)
		}
		s.Objects++
		switch m.Status {
		case ingest.StatusDone:
			s.ObjectsDone++
		case ingest.StatusFailed:
			s.ObjectsFailed++
			s.FailedReasons = append(s.FailedReasons, m.Key+": "+m.Reason)
		}
		s.RowsRead += m.Counts.RowsRead
		s.RecordsSent += m.Counts.RecordsSent
		s.Rejected += m.Counts.Rejected
		s.Failed += m.Counts.Failed
		s.Throttled += m.Counts.Throttled
		s.Retries += m.Counts.Retries
		s.KinesisRecords += m.Counts.KinesisRecords
		s.Continuations += m.Continuations
		return nil
	})
	if err != nil {
		return s, err
	}
	err = eachLine(ctx, b, bucketName, "rejected/", nil, func(_ string, line []byte) {
		var r struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(line, &r) == nil && r.Reason != "" {
			s.RejectedByReason[r.Reason]++
		}
	})
	if err != nil {
		return s, err
	}
	err = eachLine(ctx, b, bucketName, "archive/", func(string) { s.ArchiveObjects++ }, func(_ string, line []byte) {
		s.ArchiveRecords++
		if id := recordID(line); id != "" {
			mark(id, inArchive, 0)
		}
	})
	if err != nil {
		return s, err
	}
	err = eachObject(ctx, b, bucketName, "archive-errors/", func(string, int64) error { s.ArchiveErrors++; return nil })
	if err != nil {
		return s, err
	}
	err = eachObject(ctx, b, bucketName, "processed/trips/", func(key string, size int64) error {
		if !strings.HasSuffix(key, ".parquet") {
			return nil
		}
		s.TripObjects++
		return readTripIDs(ctx, b, bucketName, key, size, func(id string, stream uint64) {
			s.TripsProcessed++
			mark(id, inTrips, stream)
		})
	})
	if err != nil {
		return s, err
	}
	err = eachLine(ctx, b, bucketName, "quarantine/", nil, func(_ string, line []byte) {
		s.Quarantined++
		if id := recordID(line); id != "" {
			mark(id, inQuarantine, 0)
		}
	})
	if err != nil {
		return s, err
	}
	for _, id := range failureNamed {
		mark(id, inFailure, 0)
	}
	if addErr != nil {
		return s, addErr
	}
	err = ids.groups(func(g []idEntry) {
		var st idState
		trips := 0
		for i, e := range g {
			st.seen |= e.kind
			if e.kind == inTrips {
				// Entries are sorted by stream record: a repeat of the previous one is the same
				// stream record written twice.
				if trips > 0 && g[i-1].aux == e.aux {
					s.ProcessedRewritten++
				}
				trips++
			}
		}
		if trips > 0 {
			s.TripsDistinct++
		}
		consumed := st.seen&(inTrips|inQuarantine) != 0
		if consumed {
			s.ConsumerDistinct++
		}
		if st.seen&inArchive != 0 {
			s.ArchiveDistinct++
		}
		if st.seen&inFailure != 0 {
			s.FailureNamedRecords++
		}
		// The same ids, not just as many: a lost record plus a stray one must not look reconciled.
		if archive && consumer {
			switch {
			case consumed && st.seen&inArchive == 0:
				s.ConsumerNotArchived++
			case !consumed && st.seen&inArchive != 0:
				s.ArchivedNotConsumed++
				if st.seen&inFailure == 0 {
					s.Unaccounted++
				}
			}
		}
	})
	if err != nil {
		return s, err
	}
	s.ProcessedDuplicates = s.TripsProcessed - s.TripsDistinct
	err = eachObject(ctx, b, bucketName, "processed/zone_stats/", func(key string, size int64) error {
		if !strings.HasSuffix(key, ".parquet") {
			return nil
		}
		s.Windows++
		ra := &rangeReader{ctx: ctx, b: b, bucket: bucketName, key: key, size: size}
		f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		if err != nil {
			return fmt.Errorf("reading the footer of %s: %w", key, err)
		}
		s.ZoneStatsRows += f.NumRows()
		return nil
	})
	return s, err
}

func (s *Summary) reconcile(archive, consumer bool) {
	check := func(ok bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if ok {
			s.Reconciliation = append(s.Reconciliation, "ok: "+line)
		} else {
			s.Reconciliation = append(s.Reconciliation, "MISMATCH: "+line)
		}
	}
	check(s.Objects > 0 && s.ObjectsDone == s.Objects, "%d of %d objects done (%d failed)", s.ObjectsDone, s.Objects, s.ObjectsFailed)
	check(s.RowsRead == s.RecordsSent+s.Rejected && s.Failed == 0,
		"rows read %d = records sent %d + rejected %d (unknown fate: %d)", s.RowsRead, s.RecordsSent, s.Rejected, s.Failed)
	if archive {
		check(s.ArchiveDistinct == s.RecordsSent, "archive holds %d distinct records of %d sent (%d lines, %d duplicates: resends after timeouts and at-least-once delivery, dropped by record_id)",
			s.ArchiveDistinct, s.RecordsSent, s.ArchiveRecords, s.ArchiveRecords-s.ArchiveDistinct)
	}
	if consumer {
		check(s.ConsumerDistinct == s.RecordsSent, "consumer wrote %d distinct records of %d sent (%d trips processed + %d quarantined)",
			s.ConsumerDistinct, s.RecordsSent, s.TripsProcessed, s.Quarantined)
		switch {
		case s.ProcessedDuplicates == 0:
			check(true, "no record twice in processed/trips (%d rows, %d distinct record ids)", s.TripsProcessed, s.TripsDistinct)
		case s.ProcessedRewritten > 0:
			check(false, "processed/trips holds %d rows of %d distinct records: %d rows written twice from the same stream record",
				s.TripsProcessed, s.TripsDistinct, s.ProcessedRewritten)
		default:
			// The stream holds these records twice (a producer resent them after a timeout), in
			// batches of their own: the consumer wrote each stream record once.
			check(true, "processed/trips holds %d rows of %d distinct records: %d repeat a record the stream holds twice (resent by the producer after a timeout); drop them by record_id",
				s.TripsProcessed, s.TripsDistinct, s.ProcessedDuplicates)
		}
	}
	if archive && consumer {
		check(s.ArchivedNotConsumed == 0 && s.ConsumerNotArchived == 0,
			"archive and consumer outputs hold the same record ids (%d archived but not consumed, %d consumed but not archived)",
			s.ArchivedNotConsumed, s.ConsumerNotArchived)
		if s.FailureNamedRecords > 0 || s.FailureUnresolved > 0 {
			check(s.Unaccounted == 0 && s.FailureUnresolved == 0,
				"every record sent is processed, quarantined or named by an on-failure record (%d named, %d only there; %d unaccounted; %d on-failure records not read back)",
				s.FailureNamedRecords, s.ArchivedNotConsumed-s.Unaccounted, s.Unaccounted, s.FailureUnresolved)
		}
	}
	check(s.FailureRecords == 0, "%d batches or events in the failure destinations", s.FailureRecords)
	s.Reconciled = true
	for _, l := range s.Reconciliation {
		if strings.HasPrefix(l, "MISMATCH") {
			s.Reconciled = false
		}
	}
}

// failureNamedIDs reads ProcessFunction's on-failure records (the local failure queue) and the
// stream records each names (shard, start and end sequence number), and returns their record ids.
// A record no longer in the stream counts its on-failure record as unresolved.
func (c *Cloud) failureNamedIDs(ctx context.Context) (ids []string, unresolved int, err error) {
	for _, name := range c.Failures() {
		if !strings.Contains(name, "failures/esm/") && !strings.Contains(name, `failures\esm\`) {
			continue
		}
		body, err := os.ReadFile(name)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the on-failure record %s: %w", name, err)
		}
		var fr esm.FailureRecord
		if err := json.Unmarshal(body, &fr); err != nil {
			return nil, 0, fmt.Errorf("decoding the on-failure record %s: %w", name, err)
		}
		got, err := c.streamRecordIDs(ctx, fr.KinesisBatchInfo)
		if err != nil {
			return nil, 0, err
		}
		if len(got) == 0 {
			unresolved++
		}
		ids = append(ids, got...)
	}
	return ids, unresolved, nil
}

// streamRecordIDs reads the records of one discarded batch back from the local stream and returns
// the record ids of their user records (de-aggregated).
func (c *Cloud) streamRecordIDs(ctx context.Context, bi esm.KinesisBatchInfo) ([]string, error) {
	it, err := c.Stream.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamARN: aws.String(c.Stream.ARN()), ShardId: aws.String(bi.ShardID),
		ShardIteratorType: kinesistypes.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(bi.StartSequenceNumber),
	})
	if err != nil {
		return nil, nil //nolint:nilerr // trimmed or unknown: reported as unresolved
	}
	var ids []string
	iter := it.ShardIterator
	for iter != nil {
		out, err := c.Stream.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, StreamARN: aws.String(c.Stream.ARN())})
		var te *kinesistypes.ProvisionedThroughputExceededException
		if errors.As(err, &te) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading shard %s back for an on-failure record: %w", bi.ShardID, err)
		}
		for _, r := range out.Records {
			if seqAfter(aws.ToString(r.SequenceNumber), bi.EndSequenceNumber) {
				return ids, nil
			}
			if !kpl.IsAggregated(r.Data) {
				if id := recordID(r.Data); id != "" {
					ids = append(ids, id)
				}
				continue
			}
			urs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey), "")
			if err != nil {
				continue // a corrupt aggregate has no record ids
			}
			for _, u := range urs {
				if id := recordID(u.Data); id != "" {
					ids = append(ids, id)
				}
			}
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return ids, nil
		}
		iter = out.NextShardIterator
	}
	return ids, nil
}

// seqAfter reports whether sequence number a is after b (decimal strings, compared numerically).
func seqAfter(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// eachObject calls fn with the key and size of every object under prefix.
func eachObject(ctx context.Context, b lister, bucketName, prefix string, fn func(key string, size int64) error) error {
	pages := s3.NewListObjectsV2Paginator(b, &s3.ListObjectsV2Input{Bucket: aws.String(bucketName), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key), aws.ToInt64(o.Size)); err != nil {
				return err
			}
		}
	}
	return nil
}

// openObject returns an object's body, gunzipped when it is gzip (by its magic bytes).
func openObject(ctx context.Context, b lister, bucketName, key string) (io.ReadCloser, error) {
	out, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", key, err)
	}
	br := bufio.NewReaderSize(out.Body, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			out.Body.Close()
			return nil, fmt.Errorf("gunzipping %s: %w", key, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, out.Body}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, out.Body}, nil
}

func readAll(ctx context.Context, b lister, bucketName, key string) ([]byte, error) {
	r, err := openObject(ctx, b, bucketName, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return body, nil
}

// each calls fn with the whole (gunzipped when gzip) body of every object under prefix: for small
// objects such as manifests.
func each(ctx context.Context, b lister, bucketName, prefix string, fn func(key string, body []byte) error) error {
	return eachObject(ctx, b, bucketName, prefix, func(key string, _ int64) error {
		body, err := readAll(ctx, b, bucketName, key)
		if err != nil {
			return err
		}
		return fn(key, body)
	})
}

// maxLine bounds one NDJSON line (a Kinesis record is at most 1 MiB; quarantine lines add a little).
const maxLine = 16 << 20

// eachLine streams the non-blank lines of every object under prefix (gunzipped when gzip); object,
// when set, is called once per object first.
func eachLine(ctx context.Context, b lister, bucketName, prefix string, object func(key string), fn func(key string, line []byte)) error {
	return eachObject(ctx, b, bucketName, prefix, func(key string, _ int64) error {
		if object != nil {
			object(key)
		}
		r, err := openObject(ctx, b, bucketName, key)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := lines(r, func(line []byte) { fn(key, line) }); err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		return nil
	})
}

func lines(r io.Reader, fn func(line []byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			fn(sc.Bytes())
		}
	}
	return sc.Err()
}

var recordIDKey = []byte(`"record_id":"`)

// recordID finds the record_id of a JSON line without decoding the whole record.
func recordID(line []byte) string {
	i := bytes.Index(line, recordIDKey)
	if i < 0 {
		return ""
	}
	rest := line[i+len(recordIDKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// Columns of processed/trips the summary reads.
const (
	colRecordID = "record_id"
	colSeq      = "kinesis_sequence_number"
	colSubSeq   = "kinesis_sub_sequence"
)

// readTripIDs calls fn with the record id and a hash of the stream record (sequence and sub-sequence
// number) of every row of a processed/trips object. It reads the footer and those three column
// chunks with ranged GETs, page by page, and nothing else.
func readTripIDs(ctx context.Context, b lister, bucketName, key string, size int64, fn func(id string, stream uint64)) error {
	ra := &rangeReader{ctx: ctx, b: b, bucket: bucketName, key: key, size: size}
	f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("reading the footer of %s: %w", key, err)
	}
	var idx [3]int
	for i, name := range []string{colRecordID, colSeq, colSubSeq} {
		c, ok := f.Schema().Lookup(name)
		if !ok {
			return fmt.Errorf("%s: no %s column", key, name)
		}
		idx[i] = c.ColumnIndex
	}
	const chunk = 1024
	var vals [3][]parquet.Value
	for i := range vals {
		vals[i] = make([]parquet.Value, chunk)
	}
	h := fnv.New64a()
	var num []byte
	for _, rg := range f.RowGroups() {
		ccs := rg.ColumnChunks()
		var cols [3]*columnValues
		for i := range cols {
			cols[i] = &columnValues{pages: ccs[idx[i]].Pages()}
		}
		for left := rg.NumRows(); left > 0; {
			n := int(min(left, chunk))
			for i, c := range cols {
				if err := c.read(vals[i][:n]); err != nil {
					closeAll(cols[:])
					return fmt.Errorf("reading %s of %s: %w", []string{colRecordID, colSeq, colSubSeq}[i], key, err)
				}
			}
			for j := range n {
				h.Reset()
				h.Write(vals[1][j].ByteArray())
				h.Write([]byte{'/'})
				num = strconv.AppendInt(num[:0], int64(vals[2][j].Int32()), 10)
				h.Write(num)
				fn(string(vals[0][j].ByteArray()), h.Sum64())
			}
			for _, c := range cols {
				c.releaseSpent()
			}
			left -= int64(n)
		}
		closeAll(cols[:])
	}
	return nil
}

// columnValues reads one column chunk's values page by page.
type columnValues struct {
	pages parquet.Pages
	page  parquet.Page
	vr    parquet.ValueReader
	spent []parquet.Page // pages read to their end whose values may still be in use
}

// read fills dst. Byte-array values point into their page's buffers, so a page read to its end is
// kept (spent) until the caller has used the values and calls releaseSpent: releasing it at once
// lets the next page's buffers overwrite ids already read (a compacted object has many pages per
// column chunk; TestReadTripIDsReadsItsColumnsOnly).
func (c *columnValues) read(dst []parquet.Value) error {
	for len(dst) > 0 {
		if c.vr == nil {
			p, err := c.pages.ReadPage()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
				return err
			}
			c.page, c.vr = p, p.Values()
		}
		n, err := c.vr.ReadValues(dst)
		dst = dst[n:]
		if errors.Is(err, io.EOF) {
			c.spent = append(c.spent, c.page)
			c.page, c.vr = nil, nil
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// releaseSpent returns the pages read to their end to parquet-go's pool.
func (c *columnValues) releaseSpent() {
	for _, p := range c.spent {
		parquet.Release(p)
	}
	c.spent = c.spent[:0]
}

func closeAll(cols []*columnValues) {
	for _, c := range cols {
		if c != nil {
			c.releaseSpent()
			if c.page != nil {
				parquet.Release(c.page)
				c.page, c.vr = nil, nil
			}
			c.pages.Close()
		}
	}
}

// rangeReader is an io.ReaderAt over ranged GETs of one object, with read-ahead windows so that a
// footer or a column chunk is usually one request. It keeps a few windows, one per column being read
// in step (their pages interleave), so that reading three column chunks page by page does not fetch
// each window again for every page.
type rangeReader struct {
	ctx         context.Context
	b           lister
	bucket, key string
	size        int64
	wins        [rangeWindows]rangeWindow
	tick        uint64
}

// rangeWindow is one fetched byte range.
type rangeWindow struct {
	off  int64
	buf  []byte
	used uint64 // r.tick at its last use
}

const (
	// readAhead is the least a ranged GET fetches.
	readAhead = 256 << 10
	// rangeWindows is how many windows a rangeReader keeps (the summary reads 3 columns in step).
	rangeWindows = 4
)

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	r.tick++
	var w *rangeWindow
	for i := range r.wins {
		c := &r.wins[i]
		if c.buf != nil && off >= c.off && end <= c.off+int64(len(c.buf)) {
			w = c
			break
		}
		if w == nil || c.used < w.used {
			w = c // the least recently used, if none holds the range
		}
	}
	if w.buf == nil || off < w.off || end > w.off+int64(len(w.buf)) {
		fetchEnd := min(r.size, off+max(int64(len(p)), readAhead))
		out, err := r.b.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket: aws.String(r.bucket), Key: aws.String(r.key),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, fetchEnd-1)),
		})
		if err != nil {
			return 0, fmt.Errorf("getting bytes %d-%d of %s: %w", off, fetchEnd-1, r.key, err)
		}
		buf, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("reading bytes %d-%d of %s: %w", off, fetchEnd-1, r.key, err)
		}
		w.off, w.buf = off, buf
	}
	w.used = r.tick
	n := copy(p, w.buf[off-w.off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

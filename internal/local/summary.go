package local

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/ingest"
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
	Quarantined      int64    `json:"quarantined"`       // lines under quarantine/
	ConsumerDistinct int64    `json:"consumer_distinct"` // distinct record_id in processed ∪ quarantine
	// Record ids in one of archive and consumer outputs but not the other (0 and 0 when both hold
	// exactly the same records).
	ArchivedNotConsumed int64              `json:"archived_not_consumed"`
	ConsumerNotArchived int64              `json:"consumer_not_archived"`
	Windows             int                `json:"windows_written"`      // objects under processed/zone_stats/
	FailureRecords      int                `json:"failure_records"`      // on-failure destination records
	RejectedByReason    map[string]int     `json:"rejected_by_reason"`   // from rejected/ lines
	Compaction          *CompactionSummary `json:"compaction,omitempty"` // set by the caller when it compacted
	Reconciled          bool               `json:"reconciled"`
	Reconciliation      []string           `json:"reconciliation"` // one line per check, "ok: ..." or "MISMATCH: ..."
}

type lister interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Summarize reads the bucket and the failure records and reconciles them:
// every row read is a record sent or a rejected row; every record sent is in the archive (Firehose is
// at least once: distinct record ids are compared); every record sent reached the consumer's outputs
// (processed or quarantined, distinct record ids); no batch or event went to a failure destination.
func (c *Cloud) Summarize(ctx context.Context) (Summary, error) {
	s, err := summarize(ctx, c.Bucket, c.Bucket.Name(), c.Firehose != nil, c.ESM != nil)
	if err != nil {
		return s, err
	}
	s.FailureRecords = len(c.Failures())
	s.reconcile(c.Firehose != nil, c.ESM != nil)
	return s, nil
}

func summarize(ctx context.Context, b lister, bucketName string, archive, consumer bool) (Summary, error) {
	s := Summary{RejectedByReason: map[string]int{}}
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
	err = each(ctx, b, bucketName, "rejected/", func(key string, body []byte) error {
		return lines(body, func(line []byte) {
			var r struct {
				Reason string `json:"reason"`
			}
			if json.Unmarshal(line, &r) == nil && r.Reason != "" {
				s.RejectedByReason[r.Reason]++
			}
		})
	})
	if err != nil {
		return s, err
	}
	archived := map[string]struct{}{}
	err = each(ctx, b, bucketName, "archive/", func(key string, body []byte) error {
		s.ArchiveObjects++
		return lines(body, func(line []byte) {
			s.ArchiveRecords++
			if id := recordID(line); id != "" {
				archived[id] = struct{}{}
			}
		})
	})
	if err != nil {
		return s, err
	}
	s.ArchiveDistinct = int64(len(archived))
	err = each(ctx, b, bucketName, "archive-errors/", func(string, []byte) error { s.ArchiveErrors++; return nil })
	if err != nil {
		return s, err
	}
	consumed := map[string]struct{}{}
	err = each(ctx, b, bucketName, "processed/trips/", func(key string, body []byte) error {
		if !strings.HasSuffix(key, ".parquet") {
			return nil
		}
		s.TripObjects++
		rows, err := parquet.Read[struct {
			RecordID string `parquet:"record_id"`
		}](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		s.TripsProcessed += int64(len(rows))
		for _, r := range rows {
			consumed[r.RecordID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	err = each(ctx, b, bucketName, "quarantine/", func(key string, body []byte) error {
		return lines(body, func(line []byte) {
			s.Quarantined++
			if id := recordID(line); id != "" {
				consumed[id] = struct{}{}
			}
		})
	})
	if err != nil {
		return s, err
	}
	s.ConsumerDistinct = int64(len(consumed))
	// The same ids, not just as many: a lost record plus a stray one must not look reconciled.
	if archive && consumer {
		for id := range consumed {
			if _, ok := archived[id]; !ok {
				s.ConsumerNotArchived++
			}
		}
		for id := range archived {
			if _, ok := consumed[id]; !ok {
				s.ArchivedNotConsumed++
			}
		}
	}
	err = each(ctx, b, bucketName, "processed/zone_stats/", func(string, []byte) error { s.Windows++; return nil })
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
	}
	if archive && consumer {
		check(s.ArchivedNotConsumed == 0 && s.ConsumerNotArchived == 0,
			"archive and consumer outputs hold the same record ids (%d archived but not consumed, %d consumed but not archived)",
			s.ArchivedNotConsumed, s.ConsumerNotArchived)
	}
	check(s.FailureRecords == 0, "%d batches or events in the failure destinations", s.FailureRecords)
	s.Reconciled = true
	for _, l := range s.Reconciliation {
		if strings.HasPrefix(l, "MISMATCH") {
			s.Reconciled = false
		}
	}
}

// each calls fn with the (gunzipped when *.gz) body of every object under prefix.
func each(ctx context.Context, b lister, bucketName, prefix string, fn func(key string, body []byte) error) error {
	pages := s3.NewListObjectsV2Paginator(b, &s3.ListObjectsV2Input{Bucket: aws.String(bucketName), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			out, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)})
			if err != nil {
				return fmt.Errorf("getting %s: %w", key, err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", key, err)
			}
			if strings.HasSuffix(key, ".gz") || (len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b) {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					return fmt.Errorf("gunzipping %s: %w", key, err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					return fmt.Errorf("gunzipping %s: %w", key, err)
				}
			}
			if err := fn(key, body); err != nil {
				return err
			}
		}
	}
	return nil
}

func lines(body []byte, fn func(line []byte)) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
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

package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/process"
)

// TestReconcile: each way a run can lose or add a record makes the reconciliation fail, including a
// lost record hidden by a stray one (equal distinct counts, different ids).
func TestReconcile(t *testing.T) {
	good := Summary{Objects: 2, ObjectsDone: 2, RowsRead: 100, RecordsSent: 98, Rejected: 2,
		ArchiveDistinct: 98, ArchiveRecords: 99, ConsumerDistinct: 98}
	tests := []struct {
		name string
		mod  func(s *Summary)
		want string // a word of the failing line, "" for reconciled
	}{
		{"reconciled", func(*Summary) {}, ""},
		{"row lost before the stream", func(s *Summary) { s.RecordsSent = 97 }, "rows read"},
		{"object failed", func(s *Summary) { s.ObjectsDone = 1; s.ObjectsFailed = 1 }, "objects done"},
		{"record missing from the archive", func(s *Summary) { s.ArchiveDistinct = 97 }, "archive holds"},
		{"record missing from the consumer", func(s *Summary) { s.ConsumerDistinct = 97 }, "consumer wrote"},
		{"lost record hidden by a stray one", func(s *Summary) { s.ArchivedNotConsumed, s.ConsumerNotArchived = 1, 1 }, "same record ids"},
		{"batch in the failure destination", func(s *Summary) { s.FailureRecords = 1 }, "failure destinations"},
		{"a stream record written twice", func(s *Summary) {
			s.TripsProcessed, s.TripsDistinct, s.ProcessedDuplicates, s.ProcessedRewritten = 51, 50, 1, 1
		}, "written twice"},
		{"a record named by an on-failure record is nowhere else, another is lost", func(s *Summary) {
			s.FailureRecords, s.FailureNamedRecords, s.ArchivedNotConsumed, s.Unaccounted = 1, 1, 2, 1
		}, "named by an on-failure record"},
		{"on-failure records not read back", func(s *Summary) { s.FailureRecords, s.FailureUnresolved = 1, 1 }, "not read back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.mod(&s)
			s.reconcile(true, true)
			if tt.want == "" {
				if !s.Reconciled {
					t.Fatalf("not reconciled: %v", s.Reconciliation)
				}
				return
			}
			if s.Reconciled {
				t.Fatalf("reconciled, want a mismatch on %q: %v", tt.want, s.Reconciliation)
			}
			found := false
			for _, l := range s.Reconciliation {
				found = found || strings.HasPrefix(l, "MISMATCH") && strings.Contains(l, tt.want)
			}
			if !found {
				t.Errorf("no MISMATCH line about %q: %v", tt.want, s.Reconciliation)
			}
		})
	}
}

// TestReconcileStreamDuplicates: a record the stream holds twice, written once from each copy, is
// reported but reconciled; the same record written twice from one stream record is not.
func TestReconcileStreamDuplicates(t *testing.T) {
	s := Summary{Objects: 1, ObjectsDone: 1, RowsRead: 10, RecordsSent: 10, ArchiveDistinct: 10, ConsumerDistinct: 10,
		TripsProcessed: 11, TripsDistinct: 10, ProcessedDuplicates: 1}
	s.reconcile(true, true)
	if !s.Reconciled || !strings.Contains(strings.Join(s.Reconciliation, "\n"), "the stream holds twice") {
		t.Errorf("stream duplicate: reconciled %v, %v", s.Reconciled, s.Reconciliation)
	}
}

// rangeStore is an in-memory lister that serves ranged GETs and counts the bytes it sends.
type rangeStore struct {
	objects map[string][]byte
	sent    int64
	gets    int
}

func (r *rangeStore) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out := &s3.ListObjectsV2Output{}
	for k, b := range r.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(b)))})
		}
	}
	return out, nil
}

func (r *rangeStore) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	b, ok := r.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	if rg := aws.ToString(in.Range); rg != "" {
		var from, to int
		if _, err := fmt.Sscanf(rg, "bytes=%d-%d", &from, &to); err != nil {
			return nil, fmt.Errorf("range %q: %w", rg, err)
		}
		b = b[from:min(to+1, len(b))]
	}
	r.gets++
	r.sent += int64(len(b))
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ContentLength: aws.Int64(int64(len(b)))}, nil
}

// TestReadTripIDsReadsItsColumnsOnly: the summary reads the record ids and stream positions of a
// trips object with ranged GETs of its footer and three column chunks, not the whole object, and
// gets every value right across page boundaries (a compacted object has many pages per column chunk:
// the values read from one page must not be overwritten by the next).
func TestReadTripIDsReadsItsColumnsOnly(t *testing.T) {
	const n = 20000
	rows := make([]process.TripRow, n)
	zone := strings.Repeat("a long zone name that other columns repeat ", 4)
	for i := range rows {
		z := fmt.Sprintf("%s%d", zone, i)
		f := float64(i) / 7
		rows[i] = process.TripRow{RecordID: fmt.Sprintf("rec-%08d", i), TaxiType: "yellow", PickupDatetime: time.Unix(int64(i), 0),
			PUZone: &z, DOZone: &z, FareAmount: &f, TotalAmount: &f, KinesisSequenceNumber: fmt.Sprintf("%056d", i/10), KinesisSubSequence: int32(i % 10)}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[process.TripRow](&buf, parquet.PageBufferSize(8<<10), parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if np := countPages(t, buf.Bytes(), "record_id"); np < 10 {
		t.Fatalf("record_id has %d pages; the test needs many", np)
	}
	key := "processed/trips/pickup_date=2019-01-15/x.parquet"
	store := &rangeStore{objects: map[string][]byte{key: buf.Bytes()}}
	var got []string
	streams := map[uint64]bool{}
	err := readTripIDs(context.Background(), store, "b", key, int64(buf.Len()), func(id string, stream uint64) {
		got = append(got, id)
		streams[stream] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || len(streams) != n {
		t.Errorf("%d ids, %d distinct stream positions; want %d of each", len(got), len(streams), n)
	}
	wrong := 0
	for i, id := range got {
		if want := fmt.Sprintf("rec-%08d", i); id != want {
			if wrong++; wrong <= 3 {
				t.Errorf("id %d is %q, want %q", i, id, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d ids wrong", wrong, n)
	}
	if size := int64(buf.Len()); store.sent*2 > size {
		t.Errorf("read %d bytes in %d GETs of a %d-byte object: more than half of it", store.sent, store.gets, size)
	}
	t.Logf("read %d of %d bytes in %d ranged GETs", store.sent, buf.Len(), store.gets)
}

// countPages returns how many pages the column holds in the first row group of a Parquet file.
func countPages(t *testing.T, file []byte, column string) int {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := pf.Schema().Lookup(column)
	if !ok {
		t.Fatalf("no column %s", column)
	}
	pages := pf.RowGroups()[0].ColumnChunks()[c.ColumnIndex].Pages()
	defer pages.Close()
	n := 0
	for {
		_, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

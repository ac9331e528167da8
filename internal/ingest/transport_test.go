package ingest

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// resettingS3 cuts the body of the first GET of a raw/ object after cutAfter bytes with a connection
// reset, as a dropped connection to S3 would.
type resettingS3 struct {
	*fakeS3
	cutAfter int64
	resets   int
}

func (r *resettingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := r.fakeS3.GetObject(ctx, in, optFns...)
	if err != nil || !strings.HasPrefix(aws.ToString(in.Key), "raw/") || r.resets > 0 {
		return out, err
	}
	r.resets++
	out.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(out.Body, r.cutAfter), errReader{syscall.ECONNRESET}), out.Body}
	return out, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestConnectionResetReleases: a connection reset while streaming the object is not the object's
// fault: what was sent is kept, the object is released at that checkpoint (not failed), and the retry
// of the event sends the rest — every row exactly once.
func TestConnectionResetReleases(t *testing.T) {
	for _, tt := range []struct {
		name     string
		key      string
		cutAfter int64
	}{
		{"mid-file", "raw/yellow.csv", 3000},
		{"in the header", "raw/yellow.csv", 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rs := &resettingS3{fakeS3: e.s3, cutAfter: tt.cutAfter}
			e.h.s3 = rs
			ev := e.putObject(tt.key, tlcCSV(200))
			res, err := e.handle(context.Background(), ev)
			if err == nil || !errors.Is(err, syscall.ECONNRESET) || res.Objects[0].Outcome != OutcomeReleased {
				t.Fatalf("first invocation: %v %+v, want released with the reset as the error (so Lambda retries)", err, res)
			}
			if m := e.manifest("state/ingest/"); m.Status != StatusRunning {
				t.Fatalf("manifest %s (%s), want running (released), not failed", m.Status, m.Reason)
			}
			if res, err = e.handle(context.Background(), ev); err != nil || res.Objects[0].Outcome != OutcomeDone {
				t.Fatalf("retry: %v %+v, want done", err, res)
			}
			m := e.manifest("state/ingest/")
			checkReconciles(t, m)
			if m.Counts.RowsRead != 200 || m.Counts.Failed != 0 {
				t.Errorf("manifest counts %+v: want 200 rows, none failed", m.Counts)
			}
			if got := e.sink.data(); len(got) != 200 || len(uniq(got)) != 200 {
				t.Errorf("stream holds %d records (%d distinct), want 200 once each", len(got), len(uniq(got)))
			}
		})
	}
}

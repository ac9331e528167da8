package local

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/ingest"
)

// TestDemo runs a small `taxistream local --demo` (PutDemo, as the CLI does): every demo file is
// ingested and reconciled, the bad rows the generator plants are under rejected/ with their
// positions, and each rejected row's raw text is found at its byte offset in the source object.
func TestDemo(t *testing.T) {
	t.Parallel()
	c := startCloud(t, Options{LimitsOff: true})
	ctx := context.Background()
	const rows = 4000
	keys, err := PutDemo(ctx, c, rows)
	if err != nil {
		t.Fatal(err)
	}
	s := drainAndSummarize(t, c, 2*time.Minute)
	if !s.Reconciled {
		t.Fatalf("not reconciled:\n%s", strings.Join(s.Reconciliation, "\n"))
	}
	if s.Objects != len(DemoFiles) || len(keys) != len(DemoFiles) || s.RowsRead != rows {
		t.Errorf("%d objects (%d keys), %d rows read; want %d, %d", s.Objects, len(keys), s.RowsRead, len(DemoFiles), rows)
	}
	if s.Rejected == 0 || len(s.RejectedByReason) == 0 {
		t.Fatalf("no rejected rows (BadRowRate): %+v", s)
	}
	if s.ArchiveObjects == 0 || s.TripObjects == 0 || s.Windows == 0 {
		t.Errorf("missing outputs: %d archive objects, %d trip objects, %d windows", s.ArchiveObjects, s.TripObjects, s.Windows)
	}

	// Every rejected row has a position; in the plain CSVs its raw text is at its byte offset.
	var n int64
	err = eachLine(ctx, c.Bucket, c.Bucket.Name(), "rejected/", nil, func(key string, line []byte) {
		src := ""
		for _, k := range keys {
			if strings.HasPrefix(key, "rejected/"+k+"/") {
				src = k
			}
		}
		if src == "" {
			t.Errorf("%s: not under rejected/<demo key>/", key)
			return
		}
		{
			n++
			var r ingest.RejectedRow
			if err := json.Unmarshal(line, &r); err != nil {
				t.Errorf("%s: %s: %v", key, line, err)
				return
			}
			if r.Line < 2 || r.Row < 1 || r.Column < 1 || r.Field == "" || r.Reason == "" || r.Raw == "" {
				t.Errorf("%s: rejected row without a full position (line ≥ 2, row, column, field, reason, raw): %s", key, line)
			}
			if strings.HasSuffix(src, ".gz") {
				return // offsets count uncompressed bytes
			}
			out, err := c.Bucket.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(src), Range: aws.String("bytes=" + strconv.FormatInt(r.Offset, 10) + "-")})
			if err != nil {
				t.Errorf("%s: offset %d: %v", src, r.Offset, err)
				return
			}
			got, _ := bufio.NewReader(io.LimitReader(out.Body, int64(len(r.Raw))+2)).ReadString('\n')
			out.Body.Close()
			if strings.TrimRight(got, "\r\n") != r.Raw {
				t.Errorf("%s at offset %d: %q, want the rejected row's raw text %q", src, r.Offset, got, r.Raw)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != s.Rejected {
		t.Errorf("%d lines under rejected/, manifests say %d rejected", n, s.Rejected)
	}
}

package ingest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/producer"
)

var benchSize = flag.Int64("ingest.size", 64<<20, "bytes of CSV per BenchmarkHandleLargeObject op (e.g. 1073741824 for 1 GiB)")

// genObjectS3 serves raw/big.csv as a generated CSV stream of size bytes (never held in memory) and
// keeps the small state/ and rejected/ objects in a fakeS3.
type genObjectS3 struct {
	*fakeS3
	size int64
}

func (g *genObjectS3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if aws.ToString(in.Key) != "raw/big.csv" {
		return g.fakeS3.GetObject(ctx, in, o...)
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(&csvGen{left: g.size}), ETag: aws.String(`"big"`)}, nil
}

// csvGen generates yellow-taxi CSV rows until left bytes have been produced (the last row is whole).
type csvGen struct {
	left int64
	buf  bytes.Buffer
	i    int
}

func (c *csvGen) Read(p []byte) (int, error) {
	for c.buf.Len() < len(p) && c.left > 0 {
		if c.i == 0 {
			c.buf.WriteString(string(tlcCSV(0)))
		}
		c.i++
		n := c.buf.Len()
		fmt.Fprintf(&c.buf, "2,2019-01-%02d %02d:%02d:07,2019-01-%02d %02d:%02d:51,1,%d.37,1,N,%d,%d,1,12.5,0.5,0.5,2.65,0,0.3,16.45,2.5\n",
			1+c.i%28, c.i%24, c.i%60, 1+c.i%28, c.i%24, c.i%60, c.i%17, 1+c.i%265, 1+(c.i*7)%265)
		c.left -= int64(c.buf.Len() - n)
	}
	if c.buf.Len() == 0 {
		return 0, io.EOF
	}
	return c.buf.Read(p)
}

type discardProducer struct{ stats producer.Stats }

func (d *discardProducer) Put(ctx context.Context, e producer.Entry) error {
	d.stats.UserRecords++
	d.stats.Bytes += int64(len(e.Data))
	return nil
}
func (d *discardProducer) Flush(ctx context.Context) ([]producer.Failure, error) { return nil, nil }
func (d *discardProducer) Stats() producer.Stats                                 { return d.stats }

// BenchmarkHandleLargeObject streams a generated object through the handler (converter included,
// producer discarded) and reports the peak heap: it stays flat whatever -ingest.size is. For the 1 GiB
// check of the issue: GOMEMLIMIT=200MiB go test -run '^$' -bench HandleLargeObject -ingest.size=1073741824 ./internal/ingest/
func BenchmarkHandleLargeObject(b *testing.B) {
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		store := &genObjectS3{fakeS3: newFakeS3(), size: *benchSize}
		h, err := New(context.Background(), config.Config{Bucket: testBucket, Stream: "trips", PartitionKeyField: "pu_location_id", MetricsNamespace: "taxistream"},
			Deps{S3: store, Lambda: &fakeInvoker{}, NewProducer: func(context.Context, producer.Client, producer.Config) (RecordProducer, error) {
				return &discardProducer{}, nil
			}})
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); peak = max(peak, samplePeakHeap(stop)) }()
		res, err := h.Handle(context.Background(), s3Event(testBucket, "raw/big.csv", "big", int(*benchSize)))
		close(stop)
		wg.Wait()
		if err != nil || res.Objects[0].Outcome != OutcomeDone {
			b.Fatalf("%+v %v", res, err)
		}
		if res.Objects[0].RowsRead == 0 || strings.Contains(res.Objects[0].Reason, "fail") {
			b.Fatalf("%+v", res)
		}
	}
	b.SetBytes(*benchSize)
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// samplePeakHeap samples the live heap until stop is closed and returns the largest value seen.
func samplePeakHeap(stop <-chan struct{}) uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		peak = max(peak, s[0].Value.Uint64())
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

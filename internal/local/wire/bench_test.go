package wire

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local/stream"
)

// BenchmarkPutRecords measures what the wire costs a producer: the same PutRecords of 500 records of
// 200 bytes (limits off) called in process and with the Go SDK over loopback, side by side.
func BenchmarkPutRecords(b *testing.B) {
	entries := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: bytes.Repeat([]byte{'x'}, 200)}
	}
	for _, mode := range []string{"in-process", "wire"} {
		b.Run(mode, func(b *testing.B) {
			st, err := stream.New(stream.Config{Name: "bench", ShardCount: 4, LimitsOff: true, MaxBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			var put func(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) = st.PutRecords
			if mode == "wire" {
				s := serveOver(b, newBucket(b), st)
				put = kinesis.NewFromConfig(sdkConfig(s)).PutRecords
			}
			in := &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: entries}
			b.SetBytes(500 * 200)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out, err := put(context.Background(), in)
				if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
					b.Fatalf("PutRecords: %v", err)
				}
			}
		})
	}
}

// BenchmarkPutObject measures an S3 PutObject of 8 MiB through the wire (gofakes3, checksums, the
// bucket's spool and rename) against the bucket's own PutObject, side by side.
func BenchmarkPutObject(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), (8<<20)/16)
	for _, mode := range []string{"in-process", "wire"} {
		b.Run(mode, func(b *testing.B) {
			st, _ := stream.New(stream.Config{Name: "bench"})
			s := serveOver(b, newBucket(b), st)
			var put func(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) = s.bucket.PutObject
			if mode == "wire" {
				put = s3.NewFromConfig(sdkConfig(s), func(o *s3.Options) { o.UsePathStyle = true }).PutObject
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := put(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("bench/object"), Body: bytes.NewReader(body)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

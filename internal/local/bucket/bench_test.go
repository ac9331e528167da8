package bucket

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// BenchmarkPutObject writes objects of 20 KB under partition-style keys, as ProcessFunction does
// (processed/trips/pickup_date=.../<shard>-<seq>.parquet): the per-object cost of the local bucket.
func BenchmarkPutObject(b *testing.B) {
	bk, err := Open(filepath.Join(b.TempDir(), "bucket"), testBucket)
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	body := bytes.Repeat([]byte("parquet!"), 20_000/8)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("processed/trips/pickup_date=2019-01-%02d/shardId-000000000000-%08d.parquet", i%31+1, i)
		if _, err := bk.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetObject reads objects back whole, as the summary does.
func BenchmarkGetObject(b *testing.B) {
	bk, err := Open(filepath.Join(b.TempDir(), "bucket"), testBucket)
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	body := bytes.Repeat([]byte("parquet!"), 20_000/8)
	const n = 500
	for i := range n {
		key := fmt.Sprintf("processed/trips/pickup_date=2019-01-%02d/shardId-000000000000-%08d.parquet", i%31+1, i)
		if _, err := bk.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("processed/trips/pickup_date=2019-01-%02d/shardId-000000000000-%08d.parquet", i%n%31+1, i%n)
		out, err := bk.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, out.Body); err != nil {
			b.Fatal(err)
		}
		out.Body.Close()
		i++
	}
}

package local

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/gen"
)

// DemoFile is one file `taxistream local --demo` generates.
type DemoFile struct {
	Key  string
	Opts gen.Options // Rows is set by PutDemo
}

// DemoFiles are what the demo generates: several TLC layouts (2009, 2015, 2019, 2025), one gzip'd, two
// with CRLF line ends, and a few unparseable values (BadRowRate) in two of them to show rejected rows.
var DemoFiles = []DemoFile{
	{"raw/demo/yellow_tripdata_2019-01.csv", gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Seed: 1, BadRowRate: 0.001}},
	{"raw/demo/yellow_tripdata_2025-01.csv.gz", gen.Options{Taxi: "yellow", Layout: 2025, Month: 1, Seed: 2, Gzip: true, BadRowRate: 0.001}},
	{"raw/demo/green_tripdata_2015-06.csv", gen.Options{Taxi: "green", Layout: 2015, Month: 6, Seed: 3, CRLF: true}},
	{"raw/demo/yellow_tripdata_2009-03.csv", gen.Options{Taxi: "yellow", Layout: 2009, Month: 3, Seed: 4, CRLF: true}},
}

// PutDemo generates the demo files with rows data rows in all (split evenly) and puts them into raw/,
// which triggers their ingestion. It returns the keys written.
func PutDemo(ctx context.Context, c *Cloud, rows int64) ([]string, error) {
	per := max(rows/int64(len(DemoFiles)), 1)
	keys := make([]string, 0, len(DemoFiles))
	for _, f := range DemoFiles {
		o := f.Opts
		o.Rows = per
		if err := PutGenerated(ctx, c, f.Key, o); err != nil {
			return keys, err
		}
		keys = append(keys, f.Key)
	}
	return keys, nil
}

// PutGenerated streams a generated file into the bucket under key (which triggers ingestion when the
// key matches the template's S3 event filters).
func PutGenerated(ctx context.Context, c *Cloud, key string, o gen.Options) error {
	pr, pw := io.Pipe()
	go func() {
		_, err := gen.Write(pw, o)
		pw.CloseWithError(err)
	}()
	_, err := c.Bucket.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(key), Body: pr})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	return nil
}

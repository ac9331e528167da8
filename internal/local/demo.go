package local

import (
	"context"
	"fmt"
	"io"
	"path"

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
// which triggers their ingestion. It returns the keys written. The folder keeps what earlier runs
// did, so a second demo in it adds new files next to the first one's: raw/demo/run-2/..., with other
// seeds (other trips), and never replaces an object an earlier run ingested.
func PutDemo(ctx context.Context, c *Cloud, rows int64) ([]string, error) {
	run, err := demoRun(ctx, c)
	if err != nil {
		return nil, err
	}
	per := max(rows/int64(len(DemoFiles)), 1)
	keys := make([]string, 0, len(DemoFiles))
	for _, f := range DemoFiles {
		o := f.Opts
		o.Rows = per
		key := f.Key
		if run > 1 {
			key = path.Join(path.Dir(f.Key), fmt.Sprintf("run-%d", run), path.Base(f.Key))
			o.Seed += uint64(run-1) * 1000
		}
		if err := PutGenerated(ctx, c, key, o); err != nil {
			return keys, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// demoRun is the number of this demo run in the folder: 1 when raw/demo/ holds no demo file yet, else
// one more than the runs there.
func demoRun(ctx context.Context, c *Cloud) (int, error) {
	dir := path.Dir(DemoFiles[0].Key) + "/"
	out, err := c.Bucket.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String(dir), Delimiter: aws.String("/")})
	if err != nil {
		return 0, fmt.Errorf("looking for earlier demo runs: %w", err)
	}
	if len(out.Contents) == 0 && len(out.CommonPrefixes) == 0 {
		return 1, nil
	}
	run := 1
	for _, p := range out.CommonPrefixes {
		var n int
		if _, err := fmt.Sscanf(path.Base(aws.ToString(p.Prefix)), "run-%d", &n); err == nil {
			run = max(run, n)
		}
	}
	return run + 1, nil
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

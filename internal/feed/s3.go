package feed

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
)

// ParseS3URI splits "s3://bucket/prefix" into bucket and prefix.
func ParseS3URI(uri string) (bucket, prefix string, err error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix URI", uri)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// S3Inputs lists the trip files (.csv, .csv.gz, .parquet) under an s3://bucket/prefix. CSV objects are
// streamed with GetObject; Parquet objects, which need random access, are downloaded to a temporary
// file with the SDK's transfer manager first.
func S3Inputs(ctx context.Context, client transfermanager.S3APIClient, uri string) ([]Input, error) {
	bucket, prefix, err := ParseS3URI(uri)
	if err != nil {
		return nil, err
	}
	var inputs []Input
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if convert.FormatOf(key) == convert.FormatUnknown {
				continue
			}
			etag := strings.Trim(aws.ToString(obj.ETag), `"`)
			size := aws.ToInt64(obj.Size)
			inputs = append(inputs, Input{
				Name:   "s3://" + bucket + "/" + key,
				Size:   size,
				Source: convert.Source{Bucket: bucket, Key: key, Version: etag},
				Open: func(ctx context.Context) (io.ReadCloser, error) {
					out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), IfMatch: aws.String(`"` + etag + `"`)})
					if err != nil {
						return nil, fmt.Errorf("getting s3://%s/%s: %w", bucket, key, err)
					}
					return out.Body, nil
				},
				OpenAt: func(ctx context.Context) (io.ReaderAt, int64, io.Closer, error) {
					f, err := os.CreateTemp("", "taxistream-*.parquet")
					if err != nil {
						return nil, 0, nil, err
					}
					rm := closerFunc(func() error { f.Close(); return os.Remove(f.Name()) })
					tm := transfermanager.New(client)
					if _, err := tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), WriterAt: f}); err != nil {
						rm.Close()
						return nil, 0, nil, fmt.Errorf("downloading s3://%s/%s: %w", bucket, key, err)
					}
					return f, size, rm, nil
				},
			})
		}
	}
	return inputs, nil
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

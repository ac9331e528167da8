package feed

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/s3object"
)

// ParseS3URI splits "s3://bucket/prefix" into bucket and prefix.
func ParseS3URI(uri string) (bucket, prefix string, err error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix URI", uri)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// S3Client is the part of *s3.Client S3Inputs uses.
type S3Client interface {
	s3.ListObjectsV2APIClient
	s3object.Getter
}

var _ S3Client = (*s3.Client)(nil)

// S3Inputs lists the trip files (.csv, .csv.gz, .parquet) under an s3://bucket/prefix. Each is read the
// way IngestFunction reads it (internal/s3object), pinned to the ETag of the listing so that an object
// replaced meanwhile is an error, never a mix of two versions: CSV objects are streamed with one GET,
// Parquet objects, which need random access, through ranged GETs with a bounded block cache.
func S3Inputs(ctx context.Context, client S3Client, uri string) ([]Input, error) {
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
			ref := s3object.Ref{Bucket: bucket, Key: key, ETag: etag}
			inputs = append(inputs, Input{
				Name:   "s3://" + bucket + "/" + key,
				Size:   size,
				Source: convert.Source{Bucket: bucket, Key: key, Version: etag},
				Open: func(ctx context.Context) (io.ReadCloser, error) {
					return s3object.Open(ctx, client, ref, 0)
				},
				OpenAt: func(ctx context.Context) (io.ReaderAt, int64, io.Closer, error) {
					return s3object.NewReaderAt(ctx, client, ref, size), size, nopCloser{}, nil
				},
			})
		}
	}
	return inputs, nil
}

// nopCloser closes nothing: a ReaderAt holds no connection between its GETs.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }

package compact

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ObjectStore is the part of the S3 API the compactor uses, with the SDK's own signatures: the real
// client, the local cloud's bucket and the tests' fault-injecting bucket all fit.
type ObjectStore interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ ObjectStore = (*s3.Client)(nil)

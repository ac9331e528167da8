package ingest

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/producer"
)

// ObjectStore is the part of *s3.Client the handler uses: the source object (ranged GETs), the manifests
// under state/ (conditional PUTs), the rejected rows under rejected/ and the in-flight markers.
type ObjectStore interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	// ListObjectsV2 and DeleteObject serve the sweeper's in-flight markers under state/inflight/ (sweep.go).
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Invoker is the part of *lambda.Client the handler uses: the asynchronous self-invocation that carries
// a continuation.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// RecordProducer is what the handler uses of *producer.Producer.
type RecordProducer interface {
	Put(ctx context.Context, e producer.Entry) error
	Flush(ctx context.Context) ([]producer.Failure, error)
	Stats() producer.Stats
}

var (
	_ ObjectStore    = (*s3.Client)(nil)
	_ Invoker        = (*lambda.Client)(nil)
	_ RecordProducer = (*producer.Producer)(nil)
)

// Deps are the handler's collaborators, built once per execution environment.
type Deps struct {
	S3      ObjectStore
	Kinesis producer.Client
	Lambda  Invoker
	Log     *slog.Logger // nil = discard
	Metrics io.Writer    // one EMF line per invocation; nil = discard
	Now     func() time.Time
	// NewProducer builds the producer of one object; nil = producer.New.
	NewProducer func(ctx context.Context, c producer.Client, cfg producer.Config) (RecordProducer, error)
}

package compact

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/s3object"
)

// rangeReader reads one object version with ranged GETs (If-Match its ETag): the compactor reads the
// two key columns of a compacted file without downloading the rest.
type rangeReader struct {
	ctx    context.Context
	store  ObjectStore
	bucket string
	obj    Object
	bytes  int64 // read so far
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.obj.Size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.obj.Size) - 1
	out, err := r.store.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: aws.String(r.bucket), Key: aws.String(r.obj.Key), IfMatch: aws.String(r.obj.ETag),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
	})
	if s3object.IsNotFound(err) || s3object.IsPreconditionFailed(err) {
		return 0, fmt.Errorf("%w: s3://%s/%s: %v", errSourceGone, r.bucket, r.obj.Key, err)
	}
	if err != nil {
		return 0, fmt.Errorf("getting s3://%s/%s (%d-%d): %w", r.bucket, r.obj.Key, off, end, err)
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p[:end-off+1])
	r.bytes += int64(n)
	if err != nil {
		return n, fmt.Errorf("reading s3://%s/%s (%d-%d): %w", r.bucket, r.obj.Key, off, end, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

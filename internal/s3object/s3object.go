// Package s3object reads one version of an S3 object, pinned so that a read never mixes two versions
// of a key: to its version id when the bucket is versioned, otherwise to its ETag (If-Match). It is the
// one way the project reads trip files from S3 — IngestFunction (a ranged GET from a checkpoint for
// CSV, an io.ReaderAt for Parquet) and `taxistream produce` from an S3 prefix alike.
package s3object

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Getter is the part of *s3.Client a read uses.
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ Getter = (*s3.Client)(nil)

// Ref names one version of an object: VersionID when the bucket is versioned ("" or "null" when not),
// else ETag (quoted or not).
type Ref struct {
	Bucket, Key, VersionID, ETag string
}

// ErrChanged reports that the pinned version is gone: the object was replaced or deleted.
var ErrChanged = errors.New("object changed or deleted since it was listed or notified")

// ReadError is a failure to read the object over the network (a reset connection, a timeout, a 5xx):
// not a problem of the object, worth retrying.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Pin sets the version or the If-Match condition of in.
func (r Ref) Pin(in *s3.GetObjectInput) {
	if r.VersionID != "" && r.VersionID != "null" {
		in.VersionId = aws.String(r.VersionID)
		return
	}
	if r.ETag != "" {
		in.IfMatch = aws.String(QuoteETag(r.ETag))
	}
}

func (r Ref) input() *s3.GetObjectInput {
	in := &s3.GetObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(r.Key)}
	r.Pin(in)
	return in
}

// Open GETs the object from byte offset on (all of it when offset is 0). An offset at or past the end
// gives an empty body. A replaced or deleted object is ErrChanged; the body's read errors are ReadErrors.
func Open(ctx context.Context, c Getter, r Ref, offset int64) (io.ReadCloser, error) {
	in := r.input()
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		switch {
		case offset > 0 && IsInvalidRange(err):
			return io.NopCloser(strings.NewReader("")), nil
		case IsPreconditionFailed(err) || IsNotFound(err):
			return nil, fmt.Errorf("getting s3://%s/%s: %w: %w", r.Bucket, r.Key, ErrChanged, err)
		}
		return nil, fmt.Errorf("getting s3://%s/%s: %w", r.Bucket, r.Key, err)
	}
	return readErrorBody{out.Body}, nil
}

// readErrorBody makes the read errors of a response body ReadErrors.
type readErrorBody struct{ io.ReadCloser }

func (b readErrorBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &ReadError{err}
	}
	return n, err
}

// The ReaderAt's cache: ranged GETs of ReadAheadBlocks blocks, at most CacheBlocks blocks kept.
const (
	BlockSize       = 1 << 20
	ReadAheadBlocks = 4
	CacheBlocks     = 16
)

// ReaderAt is an io.ReaderAt over ranged GETs of one pinned version, with a small LRU block cache (for
// Parquet, which reads its footer and then column chunks): it never holds more than
// CacheBlocks*BlockSize bytes of the object, whatever its size. Safe for concurrent use.
type ReaderAt struct {
	ctx  context.Context
	c    Getter
	r    Ref
	size int64

	mu     sync.Mutex
	blocks map[int64]*list.Element // block index → element of lru (value *cacheBlock)
	lru    *list.List              // front = most recently used
	gets   int
}

type cacheBlock struct {
	idx  int64
	data []byte
}

// NewReaderAt returns a ReaderAt of the size bytes of r; its GETs run with ctx.
func NewReaderAt(ctx context.Context, c Getter, r Ref, size int64) *ReaderAt {
	return &ReaderAt{ctx: ctx, c: c, r: r, size: size, blocks: map[int64]*list.Element{}, lru: list.New()}
}

// Size returns the size given to NewReaderAt.
func (ra *ReaderAt) Size() int64 { return ra.size }

// Gets returns the number of ranged GETs issued so far.
func (ra *ReaderAt) Gets() int {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.gets
}

// ReadAt implements io.ReaderAt.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("s3 reader: negative offset")
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= ra.size {
			return n, io.EOF
		}
		b, err := ra.block(pos / BlockSize)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[pos-(pos/BlockSize)*BlockSize:])
	}
	return n, nil
}

// block returns block idx, fetching it and the following uncached blocks (up to ReadAheadBlocks) in one GET.
func (ra *ReaderAt) block(idx int64) ([]byte, error) {
	if e, ok := ra.blocks[idx]; ok {
		ra.lru.MoveToFront(e)
		return e.Value.(*cacheBlock).data, nil
	}
	last := idx
	for last+1 < idx+ReadAheadBlocks && (last+1)*BlockSize < ra.size {
		if _, ok := ra.blocks[last+1]; ok {
			break
		}
		last++
	}
	start, end := idx*BlockSize, min((last+1)*BlockSize, ra.size) // [start, end)
	in := ra.r.input()
	in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", start, end-1))
	out, err := ra.c.GetObject(ra.ctx, in)
	ra.gets++
	if err != nil {
		if IsPreconditionFailed(err) || IsNotFound(err) {
			return nil, fmt.Errorf("getting s3://%s/%s: %w: %w", ra.r.Bucket, ra.r.Key, ErrChanged, err)
		}
		return nil, &ReadError{fmt.Errorf("getting s3://%s/%s bytes %d-%d: %w", ra.r.Bucket, ra.r.Key, start, end-1, err)}
	}
	defer out.Body.Close()
	var first []byte
	for i := idx; i <= last; i++ {
		bs, be := i*BlockSize, min((i+1)*BlockSize, ra.size)
		data := make([]byte, be-bs)
		if _, err := io.ReadFull(out.Body, data); err != nil {
			return nil, &ReadError{fmt.Errorf("reading s3://%s/%s bytes %d-%d: %w", ra.r.Bucket, ra.r.Key, start, end-1, err)}
		}
		ra.blocks[i] = ra.lru.PushFront(&cacheBlock{idx: i, data: data})
		if i == idx {
			first = data
		}
		for ra.lru.Len() > CacheBlocks {
			old := ra.lru.Back()
			ra.lru.Remove(old)
			delete(ra.blocks, old.Value.(*cacheBlock).idx)
		}
	}
	// Keep the requested block most recent.
	if e, ok := ra.blocks[idx]; ok {
		ra.lru.MoveToFront(e)
	}
	return first, nil
}

// IsNotFound reports a missing key (404, NoSuchKey, NotFound).
func IsNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return httpStatus(err) == http.StatusNotFound
}

// IsPreconditionFailed reports a failed If-Match / If-None-Match (412, or 409 for a conditional write
// that raced another).
func IsPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	s := httpStatus(err)
	return s == http.StatusPreconditionFailed || s == http.StatusConflict
}

// IsInvalidRange reports a ranged GET that starts at or after the end of the object (416).
func IsInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	return httpStatus(err) == http.StatusRequestedRangeNotSatisfiable
}

func httpStatus(err error) int {
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		return hs.HTTPStatusCode()
	}
	return 0
}

// QuoteETag returns etag in the quoted form S3 compares in If-Match.
func QuoteETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

package ingest

import (
	"bufio"
	"compress/gzip"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
)

// readers are the converter's constructors; tests replace them.
type readers struct {
	formatOf   func(name string) convert.Format
	newCSV     func(r io.Reader, opts convert.Options) (convert.RowReader, error)
	newParquet func(r io.ReaderAt, size int64, opts convert.Options) (convert.RowReader, error)
}

var defaultReaders = readers{
	formatOf:   convert.FormatOf,
	newCSV:     convert.NewCSVReader,
	newParquet: convert.NewParquetReader,
}

// csvBufferSize is the read buffer between the S3 body (or the gzip reader) and the converter.
const csvBufferSize = 256 << 10

// source is an open object: the converter's reader and what must be closed after it.
type source struct {
	rows  convert.RowReader
	close func() error
	gets  func() int // ranged GETs issued (Parquet)
}

// transportError is a failure to read the object from S3 (a reset connection, a timeout, a 5xx on
// a ranged GET): not the object's fault. The object is released at its last checkpoint for the retry,
// never failed for it.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// transportBody tags the read errors of an S3 response body as transport errors.
type transportBody struct{ io.ReadCloser }

func (b transportBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &transportError{err}
	}
	return n, err
}

// sourceOrTransport keeps a transport error as it is (to be retried) and makes any other a
// sourceError (a problem of the object itself).
func sourceOrTransport(err error) error {
	var te *transportError
	if errors.As(err, &te) {
		return err
	}
	return &sourceError{err}
}

// sourceError wraps problems of the object itself (corrupt gzip, not a Parquet file, object changed):
// they fail the object with a reason instead of being retried.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// openSource opens the object at the checkpoint cp (nil = from the start) for format f.
func (h *Handler) openSource(ctx context.Context, o objectRef, f convert.Format, cp *convert.Checkpoint) (*source, error) {
	opts := convert.Options{
		Source:   convert.Source{Bucket: o.Bucket, Key: o.Key, Version: o.version()},
		FileName: o.Key,
		Resume:   cp,
	}
	var offset int64
	if cp != nil {
		offset = cp.Offset
	}
	switch f {
	case convert.FormatCSV:
		body, err := h.getRange(ctx, o, offset)
		if err != nil {
			return nil, err
		}
		rr, err := h.readers.newCSV(bufio.NewReaderSize(body, csvBufferSize), opts)
		if err != nil {
			body.Close()
			return nil, sourceOrTransport(fmt.Errorf("reading CSV: %w", err))
		}
		return &source{rows: rr, close: body.Close}, nil
	case convert.FormatGzipCSV:
		// A gzip stream cannot be entered in the middle: read it from the start and discard the
		// decompressed bytes before the checkpoint.
		body, err := h.getRange(ctx, o, 0)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bufio.NewReaderSize(body, csvBufferSize))
		var in io.Reader = zr
		switch {
		case errors.Is(err, io.EOF): // a zero-byte .csv.gz: an empty file
			in = eofReader{}
		case err != nil:
			body.Close()
			return nil, sourceOrTransport(fmt.Errorf("reading gzip: %w", err))
		}
		if offset > 0 {
			if _, err := io.CopyN(io.Discard, in, offset); err != nil {
				body.Close()
				return nil, sourceOrTransport(fmt.Errorf("skipping %d decompressed bytes to the checkpoint: %w", offset, err))
			}
		}
		rr, err := h.readers.newCSV(bufio.NewReaderSize(in, csvBufferSize), opts)
		if err != nil {
			body.Close()
			return nil, sourceOrTransport(fmt.Errorf("reading CSV: %w", err))
		}
		return &source{rows: rr, close: body.Close}, nil
	case convert.FormatParquet:
		size := o.Size
		if size <= 0 {
			hd, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{
				Bucket: aws.String(o.Bucket), Key: aws.String(o.Key), VersionId: versionParam(o), IfMatch: etagParam(o),
			})
			if err != nil {
				if isPreconditionFailed(err) || isNotFound(err) {
					return nil, &sourceError{fmt.Errorf("heading s3://%s/%s: object changed or deleted since the notification: %w", o.Bucket, o.Key, err)}
				}
				return nil, fmt.Errorf("heading s3://%s/%s: %w", o.Bucket, o.Key, err)
			}
			size = aws.ToInt64(hd.ContentLength)
		}
		ra := newS3ReaderAt(ctx, h.s3, o, size)
		rr, err := h.readers.newParquet(ra, size, opts)
		if err != nil {
			return nil, sourceOrTransport(fmt.Errorf("reading Parquet: %w", err))
		}
		return &source{rows: rr, close: func() error { return nil }, gets: ra.getCount}, nil
	}
	return nil, &sourceError{fmt.Errorf("unsupported format of %q: want .csv, .csv.gz or .parquet", o.Key)}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func versionParam(o objectRef) *string {
	if o.VersionID != "" && o.VersionID != "null" {
		return aws.String(o.VersionID)
	}
	return nil
}

// etagParam pins an unversioned object to the ETag of the notification, so a continuation never mixes
// two versions of one key.
func etagParam(o objectRef) *string {
	if versionParam(o) == nil && o.ETag != "" {
		return aws.String(quoteETag(o.ETag))
	}
	return nil
}

// getRange GETs the object from byte offset on (the whole object when offset is 0).
func (h *Handler) getRange(ctx context.Context, o objectRef, offset int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key), VersionId: versionParam(o), IfMatch: etagParam(o)}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := h.s3.GetObject(ctx, in)
	if err != nil {
		switch {
		case offset > 0 && isInvalidRange(err):
			return io.NopCloser(eofReader{}), nil
		case isPreconditionFailed(err) || isNotFound(err):
			return nil, &sourceError{fmt.Errorf("getting s3://%s/%s: object changed or deleted since the notification: %w", o.Bucket, o.Key, err)}
		}
		return nil, fmt.Errorf("getting s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return transportBody{out.Body}, nil
}

// Parquet read cache: ranged GETs of readAheadBlocks blocks, at most cacheBlocks blocks kept.
const (
	blockSize       = 1 << 20
	readAheadBlocks = 4
	cacheBlocks     = 16
)

// s3ReaderAt is an io.ReaderAt over ranged GETs with a small LRU block cache, for Parquet: it never
// holds more than cacheBlocks*blockSize bytes of the object.
type s3ReaderAt struct {
	ctx  context.Context
	s3   ObjectStore
	o    objectRef
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

func newS3ReaderAt(ctx context.Context, c ObjectStore, o objectRef, size int64) *s3ReaderAt {
	return &s3ReaderAt{ctx: ctx, s3: c, o: o, size: size, blocks: map[int64]*list.Element{}, lru: list.New()}
}

func (r *s3ReaderAt) getCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets
}

// ReadAt implements io.ReaderAt.
func (r *s3ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("s3 reader: negative offset")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.size {
			return n, io.EOF
		}
		b, err := r.block(pos / blockSize)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[pos-(pos/blockSize)*blockSize:])
	}
	return n, nil
}

// block returns block idx, fetching it and the following uncached blocks (up to readAheadBlocks) in one GET.
func (r *s3ReaderAt) block(idx int64) ([]byte, error) {
	if e, ok := r.blocks[idx]; ok {
		r.lru.MoveToFront(e)
		return e.Value.(*cacheBlock).data, nil
	}
	last := idx
	for last+1 < idx+readAheadBlocks && (last+1)*blockSize < r.size {
		if _, ok := r.blocks[last+1]; ok {
			break
		}
		last++
	}
	start, end := idx*blockSize, min((last+1)*blockSize, r.size) // [start, end)
	out, err := r.s3.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: aws.String(r.o.Bucket), Key: aws.String(r.o.Key), VersionId: versionParam(r.o), IfMatch: etagParam(r.o),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", start, end-1)),
	})
	r.gets++
	if err != nil {
		if isPreconditionFailed(err) || isNotFound(err) {
			return nil, fmt.Errorf("getting s3://%s/%s: object changed or deleted since the notification: %w", r.o.Bucket, r.o.Key, err)
		}
		return nil, &transportError{fmt.Errorf("getting s3://%s/%s bytes %d-%d: %w", r.o.Bucket, r.o.Key, start, end-1, err)}
	}
	defer out.Body.Close()
	var first []byte
	for i := idx; i <= last; i++ {
		bs, be := i*blockSize, min((i+1)*blockSize, r.size)
		data := make([]byte, be-bs)
		if _, err := io.ReadFull(out.Body, data); err != nil {
			return nil, &transportError{fmt.Errorf("reading s3://%s/%s bytes %d-%d: %w", r.o.Bucket, r.o.Key, start, end-1, err)}
		}
		r.blocks[i] = r.lru.PushFront(&cacheBlock{idx: i, data: data})
		if i == idx {
			first = data
		}
		for r.lru.Len() > cacheBlocks {
			old := r.lru.Back()
			r.lru.Remove(old)
			delete(r.blocks, old.Value.(*cacheBlock).idx)
		}
	}
	// Keep the requested block most recent.
	if e, ok := r.blocks[idx]; ok {
		r.lru.MoveToFront(e)
	}
	return first, nil
}

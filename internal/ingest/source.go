package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/s3object"
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

// isTransport reports a failure to read the object from S3 (s3object.ReadError: a reset connection, a
// timeout, a 5xx on a ranged GET): not the object's fault. The object is released at its last
// checkpoint for the retry, never failed for it.
func isTransport(err error) bool {
	var re *s3object.ReadError
	return errors.As(err, &re)
}

// sourceOrTransport keeps a transport error as it is (to be retried) and makes any other a
// sourceError (a problem of the object itself).
func sourceOrTransport(err error) error {
	if isTransport(err) {
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
				if s3object.IsPreconditionFailed(err) || s3object.IsNotFound(err) {
					return nil, &sourceError{fmt.Errorf("heading s3://%s/%s: object changed or deleted since the notification: %w", o.Bucket, o.Key, err)}
				}
				return nil, fmt.Errorf("heading s3://%s/%s: %w", o.Bucket, o.Key, err)
			}
			size = aws.ToInt64(hd.ContentLength)
		}
		ra := s3object.NewReaderAt(ctx, h.s3, o.s3Ref(), size)
		rr, err := h.readers.newParquet(ra, size, opts)
		if err != nil {
			return nil, sourceOrTransport(fmt.Errorf("reading Parquet: %w", err))
		}
		return &source{rows: rr, close: func() error { return nil }, gets: ra.Gets}, nil
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
		return aws.String(s3object.QuoteETag(o.ETag))
	}
	return nil
}

// getRange GETs the object from byte offset on (the whole object when offset is 0), pinned to the
// notification's version or ETag.
func (h *Handler) getRange(ctx context.Context, o objectRef, offset int64) (io.ReadCloser, error) {
	body, err := s3object.Open(ctx, h.s3, o.s3Ref(), offset)
	if errors.Is(err, s3object.ErrChanged) {
		return nil, &sourceError{err}
	}
	return body, err
}

// s3Ref is the pinned S3 version of the object.
func (o objectRef) s3Ref() s3object.Ref {
	return s3object.Ref{Bucket: o.Bucket, Key: o.Key, VersionID: o.VersionID, ETag: o.ETag}
}

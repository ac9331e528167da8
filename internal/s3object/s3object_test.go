package s3object

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// fakeS3 holds one object and answers GETs with Range and If-Match like S3 (412 on a changed ETag,
// 416 on a range past the end). failNext fails the next GET with a 503.
type fakeS3 struct {
	data     []byte
	etag     string
	gets     []*s3.GetObjectInput
	failNext bool
}

func (f *fakeS3) put(data []byte) string {
	sum := md5.Sum(data)
	f.data, f.etag = data, `"`+hex.EncodeToString(sum[:])+`"`
	return f.etag
}

type statusErr struct {
	smithy.GenericAPIError
	status int
}

func (e *statusErr) HTTPStatusCode() int { return e.status }

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.gets = append(f.gets, in)
	if f.failNext {
		f.failNext = false
		return nil, &statusErr{smithy.GenericAPIError{Code: "ServiceUnavailable"}, http.StatusServiceUnavailable}
	}
	if in.IfMatch != nil && *in.IfMatch != f.etag {
		return nil, &statusErr{smithy.GenericAPIError{Code: "PreconditionFailed"}, http.StatusPreconditionFailed}
	}
	start, end := int64(0), int64(len(f.data))-1
	if in.Range != nil {
		if n, _ := fmt.Sscanf(*in.Range, "bytes=%d-%d", &start, &end); n == 0 {
			return nil, fmt.Errorf("bad range %q", *in.Range)
		}
		if start >= int64(len(f.data)) {
			return nil, &statusErr{smithy.GenericAPIError{Code: "InvalidRange"}, http.StatusRequestedRangeNotSatisfiable}
		}
		end = min(end, int64(len(f.data))-1)
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(f.data[start : end+1])), ETag: aws.String(f.etag)}, nil
}

func TestReaderAtMatchesBytesReader(t *testing.T) {
	f := &fakeS3{}
	data := make([]byte, 9*BlockSize+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	ref := Ref{Bucket: "b", Key: "raw/x.parquet", ETag: f.put(data)[1:33]} // unquoted, as S3 events carry it
	ra := NewReaderAt(context.Background(), f, ref, int64(len(data)))
	want := bytes.NewReader(data)
	reads := 0
	check := func(off int64, n int) {
		t.Helper()
		reads++
		got, wantBuf := make([]byte, n), make([]byte, n)
		gn, gerr := ra.ReadAt(got, off)
		wn, werr := want.ReadAt(wantBuf, off)
		if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(got[:gn], wantBuf[:wn]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
		}
	}
	check(int64(len(data))-8, 8)    // a footer
	check(int64(len(data))-4, 100)  // past the end: io.EOF
	check(0, 4)                     // the magic
	check(BlockSize-10, 20)         // across a block boundary
	check(2*BlockSize, 3*BlockSize) // larger than one block
	check(int64(len(data)), 1)      // at the end
	for range 200 {
		off := rng.Int64N(int64(len(data)))
		check(off, 1+rng.IntN(64<<10))
	}
	if g := ra.Gets(); g > reads {
		t.Errorf("%d GETs for %d reads: the cache does not work", g, reads)
	}
	ra.mu.Lock()
	cached := ra.lru.Len()
	ra.mu.Unlock()
	if cached > CacheBlocks {
		t.Errorf("%d blocks cached, limit %d", cached, CacheBlocks)
	}
	for _, in := range f.gets {
		if aws.ToString(in.IfMatch) != f.etag || in.Range == nil {
			t.Fatalf("GET with If-Match %q range %v, want every GET ranged and pinned to %s", aws.ToString(in.IfMatch), in.Range, f.etag)
		}
	}

	// A network failure is a ReadError (worth a retry); a replaced object is ErrChanged, not garbage.
	ra = NewReaderAt(context.Background(), f, ref, int64(len(data)))
	f.failNext = true
	var re *ReadError
	if _, err := ra.ReadAt(make([]byte, 10), 0); !errors.As(err, &re) {
		t.Errorf("ReadAt after a 503: %v, want a ReadError", err)
	}
	f.put(data[:100])
	if _, err := ra.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrChanged) {
		t.Errorf("ReadAt of a replaced object: %v, want ErrChanged", err)
	}
}

func TestOpenPinsAndResumes(t *testing.T) {
	f := &fakeS3{}
	etag := f.put([]byte("header\nrow 1\nrow 2\n"))
	versioned := Ref{Bucket: "b", Key: "k", VersionID: "v1", ETag: etag}
	tests := []struct {
		name      string
		ref       Ref
		offset    int64
		want      string
		wantRange string
		wantErr   error
	}{
		{"whole object pinned to the ETag", Ref{Bucket: "b", Key: "k", ETag: etag}, 0, "header\nrow 1\nrow 2\n", "", nil},
		{"from a checkpoint", Ref{Bucket: "b", Key: "k", ETag: etag}, 7, "row 1\nrow 2\n", "bytes=7-", nil},
		{"at the end", Ref{Bucket: "b", Key: "k", ETag: etag}, 19, "", "bytes=19-", nil},
		{"changed", Ref{Bucket: "b", Key: "k", ETag: "0123"}, 0, "", "", ErrChanged},
		{"versioned: the version id, no If-Match", versioned, 0, "header\nrow 1\nrow 2\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.gets = nil
			body, err := Open(context.Background(), f, tt.ref, tt.offset)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			if err != nil || string(got) != tt.want {
				t.Errorf("read %q, %v; want %q", got, err, tt.want)
			}
			in := f.gets[0]
			if aws.ToString(in.Range) != tt.wantRange {
				t.Errorf("Range %q, want %q", aws.ToString(in.Range), tt.wantRange)
			}
			if tt.ref.VersionID != "" {
				if aws.ToString(in.VersionId) != "v1" || in.IfMatch != nil {
					t.Errorf("versioned GET: VersionId %q If-Match %q, want v1 and none", aws.ToString(in.VersionId), aws.ToString(in.IfMatch))
				}
			} else if aws.ToString(in.IfMatch) != etag {
				t.Errorf("If-Match %q, want %s", aws.ToString(in.IfMatch), etag)
			}
		})
	}
}

package testpeers

// gofakes3 (github.com/johannesboyne/gofakes3 v1.2.0, in-memory s3mem backend) served over HTTP on a
// loopback port, so tests exercise the real SDK S3 client path (signing, XML, paginators, ranges).
//
// What v1.2.0 does and does not do (read from its source; pinned by s3fake_test.go):
//   - ListObjectsV2: prefix, delimiter, max-keys, continuation-token and start-after (the SDK
//     paginator works).
//   - GetObject/HeadObject Range: one range ("bytes=a-b", "bytes=a-", "bytes=-n") → 206 with
//     Content-Range; several ranges → 501 NotImplemented; a start past the end → 416 InvalidRange.
//   - PutObject conditional writes ARE supported, atomically (under the backend's lock):
//     If-None-Match: "*" → 412 PreconditionFailed when the key exists; If-Match: <etag> → 412 when the
//     key is missing or its ETag differs. If-None-Match with anything but "*" is ignored (real S3 rejects it).
//   - NOT supported (silently ignored, the write or read happens):
//     conditions on CompleteMultipartUpload, CopyObject and DeleteObject (If-Match); If-Match and
//     If-Unmodified-Since on GetObject/HeadObject (real S3 answers 412); conditions on browser POST uploads.
//     GetObject If-None-Match: <etag> → 304 works. Real S3's 409 ConditionalRequestConflict never happens.
//   - ETags are the hex MD5 of the body in quotes, also for multipart uploads (real S3 appends "-N").

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 credentials and region of the fake: any static pair works, these are what Env hands out.
const (
	FakeAccessKeyID     = "test"
	FakeSecretAccessKey = "test"
	FakeRegion          = "us-east-1"
)

// S3 is a gofakes3 server on a loopback port with an SDK client pointed at it.
type S3 struct {
	// Endpoint is the base URL, http://127.0.0.1:PORT; clients must use path-style addressing.
	Endpoint string
	// Client is an SDK client for Endpoint: BaseEndpoint, UsePathStyle, static credentials, us-east-1.
	Client *s3.Client

	mu       sync.Mutex
	requests []S3Request
}

// S3Request is one HTTP request the fake received (for assertions such as "a ranged GET was made").
type S3Request struct {
	Method string
	Path   string     // unescaped, e.g. /bucket/raw/a b.csv
	Query  url.Values // e.g. list-type=2, start-after
	Header http.Header
}

// StartS3 starts gofakes3 (in memory) over HTTP on 127.0.0.1 and closes it in t.Cleanup.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	s := &S3{}
	inner := faker.Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, S3Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
		s.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	s.Client = s.NewClient()
	return s
}

// NewClient returns another SDK client for the fake, with optional changes to its options.
func (s *S3) NewClient(optFns ...func(*s3.Options)) *s3.Client {
	opts := []func(*s3.Options){func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	}}
	return s3.New(s3.Options{
		Region:      FakeRegion,
		Credentials: credentials.NewStaticCredentialsProvider(FakeAccessKeyID, FakeSecretAccessKey, ""),
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
	}, append(opts, optFns...)...)
}

// Env returns the environment that points a function's default SDK config at the fake:
// AWS_ENDPOINT_URL_S3, static credentials and the region.
func (s *S3) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
		"AWS_ACCESS_KEY_ID":     FakeAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": FakeSecretAccessKey,
		"AWS_REGION":            FakeRegion,
	}
}

// CreateBucket creates a bucket or fails the test.
func (s *S3) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, err)
	}
}

// Put stores body under bucket/key and returns the object's ETag (quoted), or fails the test.
func (s *S3) Put(t testing.TB, bucket, key string, body []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("putting s3://%s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag)
}

// Get returns the body of bucket/key, or fails the test.
func (s *S3) Get(t testing.TB, bucket, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("getting s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatalf("reading s3://%s/%s: %v", bucket, key, err)
	}
	return b.Bytes()
}

// Requests returns the requests received so far whose path starts with pathPrefix ("" for all).
func (s *S3) Requests(pathPrefix string) []S3Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []S3Request
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

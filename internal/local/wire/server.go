// Package wire serves the local cloud's bucket and stream over the AWS wire protocols, so that the AWS
// CLI, boto3, the SDKs and any Kinesis consumer use them as they would use S3 and Kinesis, with one
// endpoint (AWS_ENDPOINT_URL=http://127.0.0.1:4566):
//
//   - S3's REST API through github.com/johannesboyne/gofakes3 (routing, XML, multipart protocol, ranges),
//     with the local bucket (internal/local/bucket) as its Backend and this package's on-disk
//     MultipartBackend. What gofakes3 does not do is done here, in front of it: SigV4 header checks,
//     virtual-host-style addressing, aws-chunked bodies, x-amz-checksum-* and x-amz-content-sha256
//     verification, and the GET/HEAD conditional headers. A PutObject, CopyObject or
//     CompleteMultipartUpload under raw/ fires the bucket's ObjectCreated hooks, so the local cloud's S3
//     trigger invokes IngestFunction exactly as for a file copied into the folder.
//   - Kinesis's JSON 1.1 protocol (X-Amz-Target: Kinesis_20131202.<Operation>): ListStreams, ListShards,
//     DescribeStreamSummary, DescribeStream, GetShardIterator, GetRecords, PutRecord and PutRecords, each a
//     call of the local stream (internal/local/stream) with the SDK's own input and output types, so the
//     stream's per-shard limits, sequence numbers, iterators and errors are the ones clients see.
//
// Requests must be signed with SigV4 (an Authorization header or a presigned URL); any access key and
// signature are accepted, but an unsigned or malformed request gets S3's or Kinesis's error. Which
// service a request is for is told by X-Amz-Target (Kinesis) or by the credential scope of its signature.
package wire

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
)

// DefaultAddr is where `taxistream local --serve` listens: LocalStack's port, on loopback only.
const DefaultAddr = "127.0.0.1:4566"

// Config configures a Server.
type Config struct {
	// Bucket is the local cloud's bucket (required).
	Bucket objectStore
	// Stream is the local cloud's stream (required).
	Stream localStream
	// UploadDir holds the parts of multipart uploads until they are completed or aborted; a new
	// temporary folder when empty. It is emptied by Shutdown.
	UploadDir string
	// Logger receives one line per request; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock of request signatures and S3 timestamps; time.Now when nil. The stream keeps its
	// own clock.
	Now func() time.Time
}

// Server is an http.Handler for S3 and Kinesis requests. Listen serves it on an address.
type Server struct {
	bucket  objectStore
	stream  localStream
	log     *slog.Logger
	now     func() time.Time
	s3      http.Handler
	uploads *multipart
	tmpDir  bool // UploadDir was created by New

	http     *http.Server
	served   chan error
	requests atomic.Int64
}

// New returns a server for the bucket and stream of cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Bucket == nil || cfg.Stream == nil {
		return nil, errors.New("creating the wire server: a bucket and a stream are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{bucket: cfg.Bucket, stream: cfg.Stream, log: cfg.Logger, now: cfg.Now}
	dir := cfg.UploadDir
	if dir == "" {
		d, err := os.MkdirTemp("", "taxistream-uploads-")
		if err != nil {
			return nil, fmt.Errorf("creating the multipart upload folder: %w", err)
		}
		dir, s.tmpDir = d, true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the multipart upload folder: %w", err)
	}
	s.uploads = newMultipart(dir, cfg.Bucket, cfg.Now)
	be := &backend{store: cfg.Bucket, name: cfg.Bucket.Name(), created: cfg.Now().UTC()}
	// gofakes3 finds the multipart backend by a type assertion on the Backend.
	fake := gofakes3.New(s3Backend{be, s.uploads},
		gofakes3.WithTimeSource(clock{cfg.Now}),
		gofakes3.WithTimeSkewLimit(0), // parseAuth checks the request time, for both services
		gofakes3.WithLogger(gofakesLog{cfg.Logger}),
	)
	s.s3 = fake.Server()
	return s, nil
}

// ServeHTTP dispatches a request to Kinesis or S3 after checking its signature.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	s.requests.Add(1)
	cred, authErr := parseAuth(r, s.now())
	target := r.Header.Get("X-Amz-Target")
	service := cred.service
	switch {
	case target != "" || service == "kinesis":
		service = "kinesis"
		s.serveKinesis(rw, r, target, cred, authErr)
	case service == "" || service == "s3":
		service = "s3"
		s.serveS3(rw, r, authErr)
	default:
		writeUnsupportedService(rw, r, service)
	}
	op := target
	if service == "s3" {
		op = r.Method + " " + r.URL.Path
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "wire request",
		slog.String("service", service), slog.String("op", op), slog.Int("status", rw.status),
		slog.Int64("bytes_out", rw.bytes), slog.String("remote", r.RemoteAddr),
		slog.Int64("ms", time.Since(start).Milliseconds()))
}

// Requests returns how many requests the server has handled.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Listen binds addr (host:port; port 0 picks a free one) and serves in the background until Shutdown.
// It returns the address bound.
func (s *Server) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.served = make(chan error, 1)
	go func() { s.served <- s.http.Serve(ln) }()
	return ln.Addr().String(), nil
}

// Shutdown stops accepting requests, waits for those in flight (until ctx ends) and drops the parts
// of multipart uploads that were not completed.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.http != nil {
		err = s.http.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = errors.Join(err, s.http.Close())
		}
		if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		s.http = nil
	}
	return errors.Join(err, s.uploads.close(s.tmpDir))
}

// IsLoopback reports whether addr (host:port) only accepts connections from this machine.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// recorder remembers the status and size of a response for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// requestID returns a request id in the shape S3 uses (16 upper-case hex digits).
func requestID() string {
	id := uuid.New()
	return strings.ToUpper(hex.EncodeToString(id[:8]))
}

// s3Backend is gofakes3's Backend (the bucket) and MultipartBackend (parts on disk) in one value.
type s3Backend struct {
	*backend
	*multipart
}

var (
	_ gofakes3.Backend          = s3Backend{}
	_ gofakes3.MultipartBackend = s3Backend{}
)

// clock adapts Config.Now to gofakes3's TimeSource.
type clock struct{ now func() time.Time }

func (c clock) Now() time.Time                  { return c.now() }
func (c clock) Since(t time.Time) time.Duration { return c.now().Sub(t) }

// gofakesLog sends gofakes3's own messages (errors only) to the server's logger.
type gofakesLog struct{ log *slog.Logger }

func (g gofakesLog) Print(level gofakes3.LogLevel, v ...any) {
	if level == gofakes3.LogErr {
		g.log.Error("gofakes3", "message", fmt.Sprint(v...))
	}
}

func writeUnsupportedService(w http.ResponseWriter, r *http.Request, service string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotImplemented)
	fmt.Fprintf(w, "taxistream's local cloud serves S3 and Kinesis on this address, not %q (request %s %s)\n", service, r.Method, r.URL.Path)
}

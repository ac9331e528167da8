package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/testenv"
)

const testBucket = "taxistream-000000000000-us-east-1"

// served is a wire server on a loopback port over a fresh bucket and stream.
type served struct {
	url    string
	addr   string
	bucket *bucket.Bucket
	stream *stream.Stream
	srv    *Server
	logs   *bytes.Buffer
}

// serve starts a server on 127.0.0.1:0 over a new bucket and a stream made from cfg (Name defaults to
// "taxistream-stream"), stopped when the test ends.
func serve(t testing.TB, cfg stream.Config) *served {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "taxistream-stream"
	}
	st, err := stream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveOver(t, newBucket(t), st)
}

// newBucket opens a bucket in a temporary folder.
func newBucket(t testing.TB) *bucket.Bucket {
	t.Helper()
	b, err := bucket.Open(filepath.Join(t.TempDir(), "bucket"), testBucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func serveOver(t testing.TB, b *bucket.Bucket, st *stream.Stream) *served {
	t.Helper()
	logs := &bytes.Buffer{}
	srv, err := New(Config{Bucket: b, Stream: st, UploadDir: filepath.Join(t.TempDir(), "uploads"),
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutting the server down: %v", err)
		}
	})
	return &served{url: "http://" + addr, addr: addr, bucket: b, stream: st, srv: srv, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// awsEnv is the environment of an AWS CLI or boto3 process pointed at endpoint: fixed test
// credentials, no shared config or credentials files, no instance metadata lookups, no proxies, no
// pager; retries in standard mode (they retry throttling).
func awsEnv(t *testing.T, endpoint string) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C.UTF-8",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_RETRY_MODE=standard",
		"AWS_MAX_ATTEMPTS=8",
		"AWS_PAGER=",
		"NO_PROXY=*",
		"PYTHONDONTWRITEBYTECODE=1",
	}
	for _, k := range []string{"PYENV_ROOT", "PYENV_VERSION", "PYTHONPATH", "VIRTUAL_ENV"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// awsCLI returns the AWS CLI, or skips (fails under CI).
func awsCLI(t *testing.T) string {
	t.Helper()
	return testenv.AWSCLI(t)
}

// runCmd runs name with args in env, bounded by timeout, and returns stdout; stderr goes into the error.
func runCmd(t *testing.T, env []string, timeout time.Duration, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// mustRun is runCmd that fails the test on an error.
func mustRun(t *testing.T, env []string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, env, timeout, nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Package testpeers starts the real peers the integration tests talk to, on free loopback ports,
// and stops them when the test ends.
package testpeers

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// kinesisMockStartTimeout bounds the wait for kinesis-mock to answer (it is a large Scala.js bundle,
// and on a 2-core machine whose other core is busy it starts and answers slowly).
const kinesisMockStartTimeout = 2 * time.Minute

// kinesisMockProbeTimeout bounds one readiness probe. Generous: a starved kinesis-mock answers its
// first requests in seconds, and a probe cut short before the answer never sees it ready (seen with
// a 2 s bound under load: it answered every probe, each too late).
const kinesisMockProbeTimeout = 20 * time.Second

// StartKinesisMock starts kinesis-mock (npm kinesis-local, installed by `make tools`) with plain HTTP
// on a free loopback port and returns its endpoint ("http://127.0.0.1:PORT"). It creates no streams.
// The process is killed in t.Cleanup. Without node or the package the test is skipped (fails under
// CI=true).
//
// kinesis-mock checks the wire protocol, not limits: it does not throttle and accepts more than 500
// entries per request.
func StartKinesisMock(t testing.TB) string {
	t.Helper()
	node := testenv.Node(t)
	dir := filepath.Join(testenv.NodeModules(t), "kinesis-local")
	if _, err := os.Stat(filepath.Join(dir, "main.js")); err != nil {
		if testenv.CI() {
			t.Fatalf("kinesis-mock not installed at %s (run `make tools`)", dir)
		}
		t.Skipf("skipped: kinesis-mock not installed at %s (run `make tools`)", dir)
	}
	plain, tls := freePort(t), freePort(t)
	cmd := exec.Command(node, "main.js")
	// From its package folder, so it finds its TLS certificate (server.json).
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"KINESIS_MOCK_PLAIN_PORT="+fmt.Sprint(plain),
		"KINESIS_MOCK_TLS_PORT="+fmt.Sprint(tls),
		"KINESIS_MOCK_CERT_PATH="+filepath.Join(dir, "server.json"),
		"LOG_LEVEL=WARN",
		"SHOULD_PERSIST_DATA=false",
		"CREATE_STREAM_DURATION=50ms",
		"DELETE_STREAM_DURATION=50ms",
		"SPLIT_SHARD_DURATION=50ms",
		"MERGE_SHARDS_DURATION=50ms",
		"UPDATE_SHARD_COUNT_DURATION=50ms",
	)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kinesis-mock: %v", err)
	}
	exited := make(chan struct{})
	// Its exit status says nothing the test needs (the clean-up kills it): only that it is gone.
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails only when it has exited already; the wait below checks that it is gone
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("kinesis-mock (pid %d) did not exit", cmd.Process.Pid)
		}
	})

	endpoint := fmt.Sprintf("http://127.0.0.1:%d", plain)
	ctx, cancel := context.WithTimeout(context.Background(), kinesisMockStartTimeout)
	defer cancel()
	for {
		if ready(ctx, endpoint) {
			return endpoint
		}
		select {
		case <-exited:
			t.Fatalf("kinesis-mock exited before it was ready:\n%s", out.String())
		case <-ctx.Done():
			t.Fatalf("kinesis-mock not ready on %s after %v:\n%s", endpoint, kinesisMockStartTimeout, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ready reports whether something answers HTTP on endpoint (any status will do).
func ready(ctx context.Context, endpoint string) bool {
	ctx, cancel := context.WithTimeout(ctx, kinesisMockProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader("{}"))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil // keep the first MiB of output for diagnostics
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package samtemplate

// The tools AWS SAM itself uses, run on template.yaml through tools/python/samcheck.py: cfn-lint (what
// `sam validate --lint` runs), the SAM translator (the AWS::Serverless transform of `sam deploy`) and
// moto_server's CloudFormation. Each skips with the reason where python3 or a module is missing, and
// fails instead under CI=true (internal/testenv).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// toolTimeout bounds one run of samcheck.py (cfn-lint over the mutation table is the longest); it is a
// guard against a hung tool, never reached by a passing run.
const toolTimeout = 8 * time.Minute

// The modules each check needs.
var (
	lintModules      = []string{"cfnlint"}
	translateModules = []string{"cfnlint", "samtranslator"}
	motoModules      = []string{"cfnlint", "samtranslator", "moto.server", "boto3", "flask"}
)

// samcheck runs tools/python/samcheck.py with args and decodes the JSON it prints into v.
func samcheck(t *testing.T, py string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	script := filepath.Join(testenv.Root(t), "tools", "python", "samcheck.py")
	cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("samcheck.py %s: %v\n%s", args[0], err, tail(stderr.String(), 4000))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		t.Fatalf("samcheck.py %s printed no JSON (%v):\n%s\n%s", args[0], err, tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// writeJSON writes a template document (long form) as a JSON template, which every tool reads.
func writeJSON(t *testing.T, path string, doc any) string {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lintMatch is one finding of cfn-lint.
type lintMatch struct {
	Rule    string   `json:"rule"`
	Level   string   `json:"level"`
	Message string   `json:"message"`
	Path    []string `json:"path"`
	Line    int      `json:"line"`
}

func (m lintMatch) String() string {
	return fmt.Sprintf("%s %s (line %d, %s): %s", m.Level, m.Rule, m.Line, strings.Join(m.Path, "/"), m.Message)
}

// translation is the SAM translator's answer for one template.
type translation struct {
	Template map[string]any `json:"template"`
	Error    string         `json:"error"`
}

// codeURI is what `sam package` writes into every function's CodeUri (samcheck.py's default).
const (
	codeBucket = "taxistream-artifacts-123456789012"
	codeKey    = "taxistream/0f343b0931126a20f133d67c2b018a3b"
	codeURI    = "s3://" + codeBucket + "/" + codeKey
)

var translated struct {
	once sync.Once
	doc  map[string]any
	err  string
	skip string
}

// translatedStack returns template.yaml as the SAM translator transforms it (once per test binary).
func translatedStack(t *testing.T) map[string]any {
	t.Helper()
	py := testenv.Python(t, translateModules...)
	translated.once.Do(func() {
		path := filepath.Join(testenv.Root(t), "template.yaml")
		var out map[string]translation
		samcheck(t, py, &out, "translate", "--code-uri", codeURI, path)
		tr, ok := out[path]
		switch {
		case !ok:
			translated.err = fmt.Sprintf("no translation of %s in %v", path, out)
		case tr.Error != "":
			translated.err = "the SAM translator rejects template.yaml: " + tr.Error
		default:
			translated.doc = tr.Template
		}
	})
	if translated.err != "" {
		t.Fatal(translated.err)
	}
	if translated.doc == nil {
		t.Fatal("template.yaml was not translated (an earlier test failed while translating it)")
	}
	return deepCopy(translated.doc).(map[string]any)
}

var motoListening = regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)

// startMoto starts moto_server on a loopback port it picks itself (-p 0) and stops it when the test ends.
func startMoto(t *testing.T, py string) string {
	t.Helper()
	cmd := exec.Command(py, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0")
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_DEFAULT_REGION=us-east-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting moto_server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	var log strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			if log.Len() < 1<<16 {
				log.WriteString(line + "\n")
			}
			logMu.Unlock()
			if m := motoListening.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		close(found)
	}()
	// A bound on start-up, never reached when moto starts: it prints its address once it listens.
	select {
	case url, ok := <-found:
		if ok {
			return url
		}
	case <-time.After(3 * time.Minute):
	}
	logMu.Lock()
	defer logMu.Unlock()
	t.Fatalf("moto_server did not say where it listens:\n%s", log.String())
	return ""
}

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
	translateModules = []string{"cfnlint", "samtranslator"}
	motoModules      = []string{"cfnlint", "samtranslator", "moto.server", "boto3", "flask"}
)

// runSamcheck runs tools/python/samcheck.py with args and decodes the JSON it prints into v.
func runSamcheck(py, root string, v any, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join(root, "tools", "python", "samcheck.py")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("samcheck.py %s: %v\n%s", args[0], err, tail(stderr.String(), 4000))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("samcheck.py %s printed no JSON (%v):\n%s\n%s", args[0], err, tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
	return nil
}

// samcheck is runSamcheck failing t.
func samcheck(t *testing.T, py string, v any, args ...string) {
	t.Helper()
	if err := runSamcheck(py, testenv.Root(t), v, args...); err != nil {
		t.Fatal(err)
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

// toolBatch is one run of a samcheck.py subcommand over template.yaml and the mutations of the table
// its tool must catch, made once per test binary (each tool pays its start-up once; the cfn-lint and
// translator batches run side by side when the tests that need them do).
type toolBatch struct {
	once    sync.Once
	results map[string]json.RawMessage // by "template.yaml" or the mutation's name
	err     error
}

var lintBatch, translateBatch toolBatch

// mutated returns template.yaml with one mutation applied.
func mutated(base *Template, m mutation) *Template {
	broken := base.Clone()
	m.change(broken.Doc)
	return broken
}

// get runs the batch once and returns its results (skipping, or failing under CI, where python or a
// module is missing).
func (b *toolBatch) get(t *testing.T, by catcher, args ...string) map[string]json.RawMessage {
	t.Helper()
	py := testenv.Python(t, translateModules...)
	b.once.Do(func() {
		root := testenv.Root(t)
		dir, err := os.MkdirTemp("", "samtemplate-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		tpl := filepath.Join(root, "template.yaml")
		label := map[string]string{tpl: "template.yaml"}
		files := []string{tpl}
		base := loadStack(t)
		for i, m := range mutations {
			if m.by != by {
				continue
			}
			f := writeJSON(t, filepath.Join(dir, fmt.Sprintf("mutation-%02d.json", i)), mutated(base, m).Doc)
			files = append(files, f)
			label[f] = m.name
		}
		var out map[string]json.RawMessage
		if b.err = runSamcheck(py, root, &out, append(args, files...)...); b.err != nil {
			return
		}
		b.results = map[string]json.RawMessage{}
		for f, v := range out {
			b.results[label[f]] = v
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	if b.results == nil {
		t.Fatal("the tool did not run (an earlier test failed while preparing it)")
	}
	return b.results
}

// lintResult is cfn-lint's findings for template.yaml or a mutation of it.
func lintResult(t *testing.T, label string) []lintMatch {
	t.Helper()
	raw, ok := lintBatch.get(t, byCfnLint, "lint")[label]
	if !ok {
		t.Fatalf("cfn-lint did not report on %s", label)
	}
	var ms []lintMatch
	if err := json.Unmarshal(raw, &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// translationOf is the SAM translator's answer for template.yaml or a mutation of it.
func translationOf(t *testing.T, label string) translation {
	t.Helper()
	raw, ok := translateBatch.get(t, byTranslator, "translate", "--code-uri", codeURI)[label]
	if !ok {
		t.Fatalf("the translator did not report on %s", label)
	}
	var tr translation
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// translatedStack returns template.yaml as the SAM translator transforms it.
func translatedStack(t *testing.T) map[string]any {
	t.Helper()
	tr := translationOf(t, "template.yaml")
	if tr.Error != "" {
		t.Fatalf("the SAM translator rejects template.yaml: %s", tr.Error)
	}
	return tr.Template
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

// Package testenv finds what tests need outside the module: the shared TLC samples and the real peers
// (Runtime Interface Emulator, kinesis-mock, Node modules) that `make test` installs. When something is
// missing a test is skipped with the reason, except under CI=true, where it fails: CI must run everything.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Root returns the module root (the folder holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// CI reports whether the tests run under CI (CI=true), where nothing may be skipped for a missing peer.
func CI() bool { return os.Getenv("CI") == "true" }

// missing skips the test, or fails it under CI. how says how to get what is missing.
func missing(t testing.TB, what, how string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (required when CI=true; %s)", what, how)
	}
	t.Skipf("skipped: %s (%s)", what, how)
}

const sharedHow = "../shared sits beside the project root in the developers' and CI's checkouts"

// TLCDir returns ../shared/data/tlc (relative to the module root), or skips (fails under CI) when absent.
func TLCDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), "..", "shared", "data", "tlc")
	if _, err := os.Stat(dir); err != nil {
		missing(t, "the shared TLC samples are absent ("+dir+")", sharedHow)
	}
	return dir
}

// SharedFile returns a file under ../shared (e.g. "schemas/sam.schema.json"), or skips (fails under CI).
func SharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Root(t), "..", "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		missing(t, "../shared/"+rel+" is absent", sharedHow)
	}
	return p
}

// Tool returns the path of an executable named by the environment variable env (set by the Makefile),
// falling back to def under the module root; it skips (fails under CI) when neither exists.
func Tool(t testing.TB, env, def string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join(Root(t), filepath.FromSlash(def))
	}
	if _, err := os.Stat(p); err != nil {
		missing(t, env+" not found at "+p, "`make test` builds and installs it: make tools build-native")
	}
	return p
}

// Node returns the node executable, or skips (fails under CI).
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH", "install Node.js 20 or later")
	}
	return p
}

// NodeModules returns the folder of the project's Node peers (tools/node/node_modules).
func NodeModules(t testing.TB) string {
	t.Helper()
	return Tool(t, "TAXISTREAM_NODE_MODULES", "tools/node/node_modules")
}

// Bootstrap returns a function's bootstrap built for this machine (bin/native/<fn>/bootstrap, built by
// `make build-native`), for the Runtime Interface Emulator tests.
func Bootstrap(t testing.TB, fn string) string {
	t.Helper()
	return Tool(t, "TAXISTREAM_BOOTSTRAP_"+fn, "bin/native/"+fn+"/bootstrap")
}

// RIE returns the aws-lambda-rie binary (.tools/bin/aws-lambda-rie).
func RIE(t testing.TB) string {
	t.Helper()
	return Tool(t, "TAXISTREAM_RIE", ".tools/bin/aws-lambda-rie")
}

// AWSCLI returns the AWS CLI (`aws` on PATH), or skips (fails under CI).
func AWSCLI(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("aws")
	if err != nil {
		missing(t, "the AWS CLI (aws) is not on PATH", "pip install awscli, or apt-get install awscli")
	}
	return p
}

// pythonChecks caches, per module list, what python3 lacks ("" for nothing).
var pythonChecks sync.Map

// Python returns a python3 that can import every module named (e.g. "boto3", "cfnlint", "samtranslator",
// "moto.server"), or skips (fails under CI). The template tests run the tools SAM itself uses through it.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		missing(t, "python3 is not on PATH", "install Python 3.11 (the template tests also need cfn-lint, aws-sam-translator, moto and boto3)")
	}
	if len(modules) == 0 {
		return p
	}
	key := p + "\x00" + strings.Join(modules, ",")
	lack, ok := pythonChecks.Load(key)
	if !ok {
		// find_spec locates a module without running it (importing moto whole takes seconds).
		src := "import importlib.util, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n        ok = importlib.util.find_spec(m) is not None\n    except Exception:\n        ok = False\n    if not ok:\n        bad.append(m)\nprint(', '.join(bad))\n"
		out, err := exec.Command(p, append([]string{"-c", src}, modules...)...).Output()
		if err != nil {
			missing(t, "python3 could not check its modules: "+err.Error(), "install Python 3.11")
		}
		lack, _ = pythonChecks.LoadOrStore(key, strings.TrimSpace(string(out)))
	}
	if msg := lack.(string); msg != "" {
		missing(t, "python3 lacks "+msg, "pip install the packages providing them (cfnlint: cfn-lint, samtranslator: aws-sam-translator, moto.server: moto[server], boto3)")
	}
	return p
}

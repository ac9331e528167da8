package testpeers

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// duckDBTimeout bounds one run of tools/node/duckdb-sql.js (DuckDB starts in well under a second;
// the bound is for a loaded machine).
const duckDBTimeout = 2 * time.Minute

// DuckDBSQL runs statements in one in-memory DuckDB (npm @duckdb/node-api, installed by `make tools`)
// through tools/node/duckdb-sql.js and returns the rows of each statement, as DuckDB renders them in
// JSON (BIGINT, HUGEINT and DECIMAL as strings). An SQL error fails the test. Without node or the
// package the test is skipped (fails under CI=true).
func DuckDBSQL(t testing.TB, statements ...string) [][]map[string]any {
	t.Helper()
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	if _, err := os.Stat(filepath.Join(modules, "@duckdb", "node-api")); err != nil {
		if testenv.CI() {
			t.Fatalf("@duckdb/node-api not installed under %s (run `make tools`)", modules)
		}
		t.Skipf("skipped: @duckdb/node-api not installed under %s (run `make tools`)", modules)
	}
	body, err := json.Marshal(map[string]any{"statements": statements})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), duckDBTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testenv.Root(t), "tools", "node", "duckdb-sql.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s\nstatements:\n%s", err, stderr.String(), bytes.Join(toBytes(statements), []byte(";\n")))
	}
	var res struct {
		Results [][]map[string]any `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("decoding DuckDB's output: %v\n%s", err, out)
	}
	return res.Results
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

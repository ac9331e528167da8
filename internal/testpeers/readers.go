package testpeers

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// The independent readers of our outputs, written by others: DuckDB (npm @duckdb/node-api, native
// bindings) and hyparquet (npm hyparquet, pure JavaScript), run by tools/node/duckdb-query.mjs and
// tools/node/hyparquet-read.mjs. Without node or the packages a test is skipped (fails under CI=true).

// readerTimeout bounds one run of a reader script.
const readerTimeout = 3 * time.Minute

// DuckDBResult is the result of one statement.
type DuckDBResult struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	// Rows hold DuckDB's JSON form of the values: BIGINT and DECIMAL as strings, TIMESTAMP WITH
	// TIME ZONE as "YYYY-MM-DD HH:MM:SS[.ffffff]+00" (the session time zone is UTC), NULL as nil.
	Rows [][]any `json:"rows"`
}

// DuckDB runs the statements in one in-memory DuckDB session and returns their results; a failed
// statement fails the test with DuckDB's message.
func DuckDB(t testing.TB, queries ...string) []DuckDBResult {
	t.Helper()
	var out struct {
		Results []DuckDBResult `json:"results"`
		Error   string         `json:"error"`
		Query   string         `json:"query"`
	}
	runReader(t, "duckdb-query.mjs", "@duckdb/node-api", map[string]any{"queries": queries}, &out)
	if out.Error != "" {
		t.Fatalf("DuckDB: %s\nin: %s", out.Error, out.Query)
	}
	if len(out.Results) != len(queries) {
		t.Fatalf("DuckDB returned %d results for %d statements", len(out.Results), len(queries))
	}
	return out.Results
}

// DuckDBScalar runs one statement that returns one value and gives it as a string.
func DuckDBScalar(t testing.TB, query string) string {
	t.Helper()
	r := DuckDB(t, query)[0]
	if len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		t.Fatalf("DuckDB: %s returned %v, want one value", query, r.Rows)
	}
	return jsonString(r.Rows[0][0])
}

func jsonString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// HyparquetColumn is a schema leaf as hyparquet decodes it from the footer.
type HyparquetColumn struct {
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	RepetitionType string         `json:"repetition_type"`
	LogicalType    map[string]any `json:"logical_type"`
	ConvertedType  string         `json:"converted_type"`
}

// HyparquetFile is what hyparquet read from one file.
type HyparquetFile struct {
	Path          string   `json:"path"`
	NumRows       int64    `json:"num_rows"`
	RowsRead      int64    `json:"rows_read"`
	CreatedBy     string   `json:"created_by"`
	ChunkProblems []string `json:"chunk_problems"`
}

// HyparquetResult is what hyparquet read from a set of files.
type HyparquetResult struct {
	Files   []HyparquetFile `json:"files"`
	Schemas []struct {
		Columns []HyparquetColumn `json:"columns"`
		Files   int               `json:"files"`
	} `json:"schemas"`
	// Types counts, per column, the JavaScript types of the values read (Date, number, bigint,
	// string, boolean, null).
	Types map[string]map[string]int64 `json:"types"`
	// Rows are the rows whose id column holds one of the ids asked for; Dates as ISO 8601 UTC,
	// bigints as strings.
	Rows []map[string]any `json:"rows"`
}

// Hyparquet reads every row of files (in batches, to bound each process) and returns the rows whose
// idColumn holds one of ids.
func Hyparquet(t testing.TB, files []string, idColumn string, ids []string) HyparquetResult {
	t.Helper()
	var res HyparquetResult
	res.Types = map[string]map[string]int64{}
	const perRun = 2000
	for len(files) > 0 {
		n := min(perRun, len(files))
		var out struct {
			HyparquetResult
			Error string `json:"error"`
			Path  string `json:"path"`
		}
		runReader(t, "hyparquet-read.mjs", "hyparquet", map[string]any{"files": files[:n], "idColumn": idColumn, "ids": ids}, &out)
		if out.Error != "" {
			t.Fatalf("hyparquet: %s: %s", out.Path, out.Error)
		}
		res.Files = append(res.Files, out.Files...)
		res.Rows = append(res.Rows, out.Rows...)
	schemas:
		for _, s := range out.Schemas {
			for i := range res.Schemas {
				if equalColumns(res.Schemas[i].Columns, s.Columns) {
					res.Schemas[i].Files += s.Files
					continue schemas
				}
			}
			res.Schemas = append(res.Schemas, s)
		}
		for col, types := range out.Types {
			if res.Types[col] == nil {
				res.Types[col] = map[string]int64{}
			}
			for ty, c := range types {
				res.Types[col][ty] += c
			}
		}
		files = files[n:]
	}
	return res
}

func equalColumns(a, b []HyparquetColumn) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// RequireReaders skips the test (fails it under CI=true) when node or the reader packages are not
// installed: call it before expensive set-up.
func RequireReaders(t testing.TB) {
	t.Helper()
	testenv.Node(t)
	modules := testenv.NodeModules(t)
	for _, pkg := range []string{"@duckdb/node-api", "hyparquet"} {
		requirePackage(t, modules, pkg)
	}
}

func requirePackage(t testing.TB, modules, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(modules, filepath.FromSlash(pkg), "package.json")); err != nil {
		if testenv.CI() {
			t.Fatalf("%s is not installed in %s (required when CI=true; run `make tools`)", pkg, modules)
		}
		t.Skipf("skipped: %s is not installed in %s (run `make tools`)", pkg, modules)
	}
}

// runReader runs a tools/node script with the JSON of in on stdin and decodes its stdout into out.
// The script reports its own errors as JSON (with exit status 1); anything else fails the test.
func runReader(t testing.TB, script, pkg string, in, out any) {
	t.Helper()
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	requirePackage(t, modules, pkg)
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testenv.Root(t), "tools", "node", script))
	cmd.Env = append(os.Environ(), "TAXISTREAM_NODE_MODULES="+modules)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("node %s: %v (%v)\nstdout: %.2000s\nstderr: %.2000s", script, runErr, err, stdout.String(), stderr.String())
	}
	if runErr != nil && !strings.Contains(stdout.String(), `"error"`) {
		t.Fatalf("node %s: %v\nstderr: %.2000s", script, runErr, stderr.String())
	}
}

// SQLString quotes s as a SQL string literal.
func SQLString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

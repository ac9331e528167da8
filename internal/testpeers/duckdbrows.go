package testpeers

import "testing"

// DuckDBRows is DuckDB with each statement's rows as maps keyed by column name (values as DuckDB's
// JSON form: BIGINT and DECIMAL as strings, other numbers float64, NULL nil).
func DuckDBRows(t testing.TB, queries ...string) [][]map[string]any {
	t.Helper()
	var out [][]map[string]any
	for _, r := range DuckDB(t, queries...) {
		rows := make([]map[string]any, 0, len(r.Rows))
		for _, row := range r.Rows {
			m := make(map[string]any, len(r.Columns))
			for i, c := range r.Columns {
				if i < len(row) {
					m[c] = row[i]
				}
			}
			rows = append(rows, m)
		}
		out = append(out, rows)
	}
	return out
}

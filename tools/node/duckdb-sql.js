#!/usr/bin/env node
// duckdb-sql.js: runs SQL statements in an in-memory DuckDB (npm @duckdb/node-api) and prints the rows
// of each statement that returns some, as JSON.
// stdin:  {"statements": ["CREATE VIEW ...", "SELECT ..."]}
// stdout: {"results": [[{"col": value, ...}, ...], ...]}  (one entry per statement; values as DuckDB's
//          JSON rendering: BIGINT and DECIMAL as strings, timestamps as text)
// On an SQL error: exit status 1 and the message on stderr. Used by the Go tests of internal/compact
// and internal/glue as an independent reader of what the pipeline writes.
'use strict';
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const instance = await DuckDBInstance.create(':memory:');
  const con = await instance.connect();
  const results = [];
  for (const sql of input.statements) {
    const reader = await con.runAndReadAll(sql);
    results.push(reader.getRowObjectsJson());
  }
  process.stdout.write(JSON.stringify({ results }));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});

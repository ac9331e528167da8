#!/usr/bin/env node
// duckdb-query.mjs: runs SQL statements with DuckDB (npm @duckdb/node-api), an independent reader of
// our Parquet and NDJSON outputs.
// stdin:  {"queries": ["SELECT ...", ...]}
// stdout: {"results": [{"columns": ["name", ...], "types": ["BIGINT", ...], "rows": [[...], ...]}, ...]}
//         values as DuckDB's JSON form: BIGINT and DECIMAL as strings, TIMESTAMP WITH TIME ZONE as
//         "YYYY-MM-DD HH:MM:SS[.ffffff]+00" (the session time zone is UTC), NULL as null.
// On an error: {"error": "...", "query": "..."} and exit status 1.
// Modules are looked up in TAXISTREAM_NODE_MODULES (set by the Makefile), else beside this script.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.TAXISTREAM_NODE_MODULES || path.join(here, 'node_modules');
const require = createRequire(path.join(modules, 'resolve.js'));
const { DuckDBInstance } = await import(pathToFileURL(require.resolve('@duckdb/node-api')).href);

const input = JSON.parse(readFileSync(0, 'utf8'));
// No network: the extensions DuckDB needs here (parquet, json, icu) are built in.
const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false' });
const connection = await instance.connect();
await connection.run("SET TimeZone = 'UTC'");
const results = [];
for (const query of input.queries) {
  try {
    const reader = await connection.runAndReadAll(query);
    results.push({
      columns: reader.columnNames(),
      types: reader.columnTypes().map((t) => t.toString()),
      rows: reader.getRowsJson(),
    });
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err), query }) + '\n');
    process.exit(1);
  }
}
connection.closeSync();
process.stdout.write(JSON.stringify({ results }) + '\n');

#!/usr/bin/env node
// hyparquet-read.mjs: reads Parquet files with hyparquet (npm hyparquet, pure JavaScript), an
// independent reader of our Parquet outputs: every row of every file, and the footer's metadata.
// stdin:  {"files": ["/path/a.parquet", ...], "idColumn": "record_id", "ids": ["...", ...]}
// stdout: {
//   "files":   [{"path", "num_rows", "rows_read", "created_by", "chunk_problems": ["..."]}],
//   "schemas": [{"columns": [{"name", "type", "repetition_type", "logical_type", "converted_type"}], "files": n}],
//   "types":   {"<column>": {"<JS type of the values read: Date, number, bigint, string, boolean, null>": count}},
//   "rows":    [{"<column>": value, ...}]   rows whose idColumn is in ids; Date as ISO 8601 UTC, bigint as string
// }
// A chunk problem is a column chunk whose footer path_in_schema is not the schema leaf at its position
// (parquet-mr, Spark and Trino find chunks by it), or whose type differs from that leaf's.
// On an error: {"error": "...", "path": "..."} and exit status 1.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.TAXISTREAM_NODE_MODULES || path.join(here, 'node_modules');
const require = createRequire(path.join(modules, 'resolve.js'));
const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import(
  pathToFileURL(require.resolve('hyparquet')).href
);

const input = JSON.parse(readFileSync(0, 'utf8'));
const wanted = new Set(input.ids || []);
const idColumn = input.idColumn || 'record_id';
const out = { files: [], schemas: [], types: {}, rows: [] };
const schemas = new Map();

function plain(v) {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function jsType(v) {
  if (v === null || v === undefined) return 'null';
  if (v instanceof Date) return 'Date';
  return typeof v;
}

for (const file of input.files) {
  try {
    const buf = await asyncBufferFromFile(file);
    const md = await parquetMetadataAsync(buf);
    // A flat schema: the root, then one leaf per column.
    const leaves = md.schema.slice(1).filter((e) => !e.num_children);
    const columns = leaves.map((e) => ({
      name: e.name,
      type: e.type,
      repetition_type: e.repetition_type,
      logical_type: e.logical_type || null,
      converted_type: e.converted_type || null,
    }));
    const sig = JSON.stringify(columns);
    if (!schemas.has(sig)) schemas.set(sig, { columns, files: 0 });
    schemas.get(sig).files++;

    const problems = [];
    md.row_groups.forEach((rg, g) => {
      if (rg.columns.length !== leaves.length) {
        problems.push(`row group ${g}: ${rg.columns.length} column chunks for ${leaves.length} columns`);
      }
      rg.columns.forEach((cc, i) => {
        const m = cc.meta_data;
        const want = leaves[i] ? leaves[i].name : '(none)';
        const got = (m.path_in_schema || []).join('.');
        if (got !== want) problems.push(`row group ${g}, column chunk ${i}: path_in_schema "${got}", want "${want}"`);
        if (leaves[i] && m.type !== leaves[i].type) problems.push(`row group ${g}, column chunk ${i} (${want}): type ${m.type}, schema ${leaves[i].type}`);
      });
    });

    const rows = await parquetReadObjects({ file: buf, metadata: md });
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) {
        const t = (out.types[k] ||= {});
        const jt = jsType(v);
        t[jt] = (t[jt] || 0) + 1;
      }
      if (wanted.has(row[idColumn])) {
        const o = {};
        for (const [k, v] of Object.entries(row)) o[k] = plain(v);
        out.rows.push(o);
      }
    }
    out.files.push({
      path: file,
      num_rows: Number(md.num_rows),
      rows_read: rows.length,
      created_by: md.created_by || null,
      chunk_problems: problems,
    });
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err), path: file }) + '\n');
    process.exit(1);
  }
}
out.schemas = [...schemas.values()];
process.stdout.write(JSON.stringify(out) + '\n');

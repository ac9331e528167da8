#!/usr/bin/env node
// agg.js: aggregates user records with the official KPL module for Node (aws-kinesis-agg).
// stdin:  {"records": [{"partitionKey": "k", "explicitHashKey": "123" (optional), "data": "<base64>"}]}
// stdout: {"records": [{"partitionKey": "k", "explicitHashKey": "..." (when set), "data": "<base64>"}]}
// Used by the Go tests of internal/kpl to cross-check the aggregated format both ways.
'use strict';
const { RecordAggregator } = require('aws-kinesis-agg');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = [];
let failed = null;
const agg = new RecordAggregator();
agg.aggregateRecords(
  input.records.map((r) => {
    const rec = { partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') };
    if (r.explicitHashKey) rec.explicitHashKey = r.explicitHashKey;
    return rec;
  }),
  true,
  (err, encoded) => {
    if (err) {
      failed = err;
      return;
    }
    const o = { partitionKey: encoded.partitionKey, data: encoded.data.toString('base64') };
    if (encoded.ExplicitHashKey) o.explicitHashKey = encoded.ExplicitHashKey;
    out.push(o);
  },
);
if (failed) {
  process.stderr.write(String(failed) + '\n');
  process.exit(1);
}
process.stdout.write(JSON.stringify({ records: out }));

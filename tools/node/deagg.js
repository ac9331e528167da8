#!/usr/bin/env node
// deagg.js: de-aggregates Kinesis records with the official KPL module for Node (aws-kinesis-agg),
// checksums verified.
// stdin:  {"records": [{"partitionKey": "k", "sequenceNumber": "1", "data": "<base64>"}]}
// stdout: {"records": [{"error": "..."} | {"userRecords": [{"partitionKey", "explicitHashKey",
//          "subSequenceNumber", "data": "<base64>"}]}]}  (one entry per input record)
// Used by the Go tests of internal/kpl to cross-check the aggregated format both ways.
'use strict';
const { deaggregateSync } = require('aws-kinesis-agg');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = input.records.map((r) => {
  let result;
  deaggregateSync(
    { partitionKey: r.partitionKey, sequenceNumber: r.sequenceNumber || '0', data: r.data },
    true,
    (err, userRecords) => {
      if (err) {
        result = { error: String(err) };
        return;
      }
      result = {
        userRecords: userRecords.map((u) => ({
          partitionKey: u.partitionKey,
          explicitHashKey: u.explicitPartitionKey || '',
          subSequenceNumber: u.subSequenceNumber === undefined ? -1 : u.subSequenceNumber,
          data: u.data,
        })),
      };
    },
  );
  return result;
});
process.stdout.write(JSON.stringify({ records: out }));

#!/usr/bin/env node
// duckdb-bench.mjs: DuckDB (an independent Parquet reader and writer) for `taxistream bench`.
//
//   node duckdb-bench.mjs rewrite IN.csv OUT.parquet
//       rewrites a yellow 2019 CSV as Parquet with the column types TLC publishes (INT32 ids, local
//       microsecond TIMESTAMPs, DOUBLE amounts and counts, VARCHAR flag, BIGINT payment_type), Snappy,
//       DuckDB's own encodings and row groups.
//   node duckdb-bench.mjs json N FILE.parquet
//       single-threaded: read_parquet of FILE listed N times, every row written as JSON to /dev/null;
//       prints {"rows", "wall_s", "cpu_s"} (the query alone: not Node's start-up).
'use strict';
import { DuckDBInstance } from '@duckdb/node-api';

const quote = (s) => "'" + s.replaceAll("'", "''") + "'";

const [mode, ...args] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:', { threads: '1' });
const con = await inst.connect();

if (mode === 'rewrite') {
  const [csv, out] = args;
  await con.run(`COPY (SELECT
      VendorID::INTEGER AS VendorID,
      tpep_pickup_datetime::TIMESTAMP AS tpep_pickup_datetime,
      tpep_dropoff_datetime::TIMESTAMP AS tpep_dropoff_datetime,
      passenger_count::DOUBLE AS passenger_count, trip_distance::DOUBLE AS trip_distance,
      RatecodeID::DOUBLE AS RatecodeID, store_and_fwd_flag::VARCHAR AS store_and_fwd_flag,
      PULocationID::INTEGER AS PULocationID, DOLocationID::INTEGER AS DOLocationID,
      payment_type::BIGINT AS payment_type, fare_amount::DOUBLE AS fare_amount, extra::DOUBLE AS extra,
      mta_tax::DOUBLE AS mta_tax, tip_amount::DOUBLE AS tip_amount, tolls_amount::DOUBLE AS tolls_amount,
      improvement_surcharge::DOUBLE AS improvement_surcharge, total_amount::DOUBLE AS total_amount,
      congestion_surcharge::DOUBLE AS congestion_surcharge
    FROM read_csv(${quote(csv)}, header = true, all_varchar = true))
    TO ${quote(out)} (FORMAT parquet, COMPRESSION snappy)`);
  const r = await con.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet(${quote(out)})`);
  console.log(JSON.stringify({ rows: Number(r.getRows()[0][0]) }));
} else if (mode === 'json') {
  const [n, file] = args;
  const list = '[' + Array(Number(n)).fill(quote(file)).join(',') + ']';
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await con.run(`COPY (SELECT * FROM read_parquet(${list})) TO '/dev/null' (FORMAT json)`);
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const r = await con.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet(${list})`);
  console.log(JSON.stringify({ rows: Number(r.getRows()[0][0]), wall_s: wall, cpu_s: (c.user + c.system) / 1e6 }));
} else {
  console.error('usage: duckdb-bench.mjs rewrite IN.csv OUT.parquet | json N FILE.parquet');
  process.exit(2);
}

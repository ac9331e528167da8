// Package compact is CompactFunction: it merges the small Parquet objects ProcessFunction writes into
// each processed/trips/pickup_date=YYYY-MM-DD/ partition into files of about 128 MiB, sorted by
// (pickup_datetime, record_id), with every record_id once, and deletes the merged objects.
//
// # Plans
//
// A run lists processed/trips/ once and visits the partitions in order. In a partition the sources are
// every Parquet object except the compacted files of at least half the target size, which are final and
// serve as exclusions (their key columns are merged in, so that a source row they already hold is
// dropped). Sources are merged by plans of at most Options.MaxPlanBytes. A plan's manifest,
// state/compact/trips/pickup_date=D.json, exists only while the plan is unfinished:
//
//	put manifest (status planned, If-None-Match: *)   the lock of the partition, with a lease
//	put targets  compacted-<plan id>-NNNN.parquet     sources read If-Match their listed ETag
//	put manifest (status written, If-Match)           the commit point
//	delete sources (each If-Match its ETag)           a rewritten source is kept (412)
//	delete manifest (If-Match)
//
// Recovery of a manifest whose lease has expired rolls a planned plan back (whatever is under its target
// prefix is deleted) and a written one forward (its sources are deleted). So a crash at any step loses no
// row and leaves none twice once recovered; between the first target and the last source deletion a
// reader may see rows twice, and docs/query.md gives the queries that deduplicate by record_id.
//
// # Bounds
//
// Time: a plan starts only if it fits before the deadline minus Options.DeadlineMargin; the Lambda
// handler continues the run in a new invocation from the next partition. Memory: the merge is an
// external sort (merge.go) whose buffers do not grow with the partition. Disk: the sorted runs of one
// plan and one output file at a time.
package compact

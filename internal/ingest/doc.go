// Decisions of IngestFunction (DESIGN.md, ingest contract), for operators and the other packages.
//
// State layout (all in Config.Bucket):
//
//	state/ingest/<key>/<version>.json                      manifest of one object version
//	state/replay/<replay_id>/<key>/<version>.json          manifest of a replay of it
//	rejected/<key>/<version>/part-NNNNNN.jsonl             rejected rows (RejectedRow per line)
//	rejected/<key>/<version>/replay-<replay_id>/part-NNNNNN.jsonl
//
// <version> is the object's version id, or its ETag (unquoted) in an unversioned bucket; the same value
// is convert.Source.Version and so part of every record_id. Every GET of the object is pinned to it
// (VersionId, or If-Match on the ETag), so a continuation never mixes two uploads of one key: an object
// replaced mid-way fails with "object changed or deleted since the notification". A replay event names
// the object by the ETag its listing gave; ingest learns the version id with a HEAD pinned to it, so in a
// versioned bucket a replay names the same version (manifest, record_id) as the notification did.
//
// Ownership: the manifest is created with If-None-Match: * and every later write uses If-Match on the
// owner's last ETag, so two invocations never both own a version (a 412 or 409 on a write means "someone
// else owns it": the loser logs it and stops, without error). The owner's lease ends at its context
// deadline plus leaseGrace (2 min), or 15 min after its last write when there is no deadline. A
// "running" manifest whose lease is valid makes any other notification a duplicate (logged, counted in
// DuplicateNotifications, nothing else). A released or expired lease (hand-over, error to be retried,
// dead owner) is taken over by the next event for that version, which resumes at the checkpoint.
//
// Checkpoints: the producer is flushed every flushRecords records or flushBytes bytes; only after a
// successful flush are the rejected rows written and the checkpoint (convert.Checkpoint: byte offset of
// the next row, line, row, header) stored in the manifest. A crash between a flush and its checkpoint
// resends those rows on takeover: duplicates (record_id identifies them), never a loss. Counts in the
// manifest are committed with the checkpoint, so rows_read == records_sent + rejected (+ failed) holds.
//
// Hand-over: when ctx.Deadline() minus DeadlineMargin is reached, the handler stops reading, commits,
// releases the lease with continuations+1 and invokes itself (InvocationType Event) with an Event of kind
// continuation. If that invoke fails, Handle returns the error: Lambda retries the event and the retry
// takes over from the checkpoint. The chain is bounded by MaxContinuations (then status failed, with the
// checkpoint kept). An invocation that reads no row before its margin fails the object instead of looping.
// .csv continuations use a ranged GET (bytes=<offset>-); .csv.gz ones re-read and discard <offset>
// decompressed bytes; .parquet ones resume at the row index through an io.ReaderAt over ranged GETs
// (1 MiB blocks, 4 blocks of read-ahead, at most 16 blocks cached).
//
// Errors: problems of the object (unknown suffix, corrupt gzip, not Parquet, replaced object, a terminal
// producer error) end in a failed manifest with a reason and no error (no retry loop). Infrastructure
// errors (S3 state reads or writes, the producer's set-up, the context ending mid-write) release the lease
// and are returned, so Lambda's async retries resume from the checkpoint.
//
// Outputs: one "ingest summary" slog line per invocation and one EMF line per invocation (RowsRead,
// RecordsSent, RowsRejected, RowsFailed, KinesisRecords, Bytes, Retries, Throttled, PossibleDuplicates,
// Continuations, DuplicateNotifications, Duration) to Deps.Metrics.

package ingest

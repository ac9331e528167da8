#!/usr/bin/env python3
"""Checks taxistream's local Kinesis endpoint (`taxistream local --serve`) with boto3, a client nobody on
the project wrote.

usage:
  wire_kinesis_check.py --endpoint URL --stream NAME api
      every served operation (ListStreams, ListShards, DescribeStreamSummary, DescribeStream,
      GetShardIterator of all five types, GetRecords, PutRecord, PutRecords), MD5 routing of partition
      keys to shards, and the error shapes (ResourceNotFoundException, InvalidArgumentException,
      ValidationException). The stream should start empty and have two shards or more.
  wire_kinesis_check.py --endpoint URL --stream NAME produce --records N [--partition-key K]
      a producer that writes N records to one shard as fast as it can, in PutRecords of 500, never
      retrying, and reports per entry what the stream said: {"accepted", "throttled", "other_errors",
      "throttle_messages", "put_record_error"}. Over 1,000 records in one second on one shard, Kinesis
      throttles: ProvisionedThroughputExceededException per entry.

Credentials and region come from the environment. The api mode prints {"checks": [...], "failed": N}
and exits 1 when a check failed.
"""
import argparse
import base64
import hashlib
import json
import sys
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

results = []
CHECKS = []


def check(name):
    def wrap(fn):
        def run():
            try:
                detail = fn()
                results.append({"name": name, "ok": True, "detail": detail or ""})
            except AssertionError as e:
                results.append({"name": name, "ok": False, "detail": "assertion: %s" % e})
            except Exception as e:
                results.append({"name": name, "ok": False, "detail": "%s: %s" % (type(e).__name__, e)})
        CHECKS.append(run)
        return run
    return wrap


def eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def error_of(fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Message", "")
    raise AssertionError("%s did not fail" % fn.__name__)


def shard_for(key, shards):
    """The shard whose hash key range holds MD5(key), as Kinesis routes a partition key."""
    h = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)
    for s in shards:
        r = s["HashKeyRange"]
        if int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"]):
            return s["ShardId"]
    raise AssertionError("no shard holds the hash of %r" % key)


def read_all(kin, name, iterator, limit=None):
    """GetRecords from iterator until the shard is caught up; returns the records."""
    out = []
    while iterator:
        kw = {"ShardIterator": iterator}
        if limit:
            kw["Limit"] = limit
        r = kin.get_records(**kw)
        out.extend(r["Records"])
        iterator = r.get("NextShardIterator")
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            break
    return out


def api(kin, name):
    shards = []

    @check("ListStreams")
    def _():
        out = kin.list_streams()
        assert name in out["StreamNames"], out["StreamNames"]
        eq(out["HasMoreStreams"], False, "HasMoreStreams")
        eq([s["StreamName"] for s in out["StreamSummaries"]], [name], "StreamSummaries")

    @check("DescribeStreamSummary, DescribeStream, ListShards with paging")
    def _():
        d = kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        eq((d["StreamName"], d["StreamStatus"]), (name, "ACTIVE"), "summary")
        assert d["StreamARN"].endswith(":stream/" + name), d["StreamARN"]
        assert isinstance(d["StreamCreationTimestamp"], datetime), d["StreamCreationTimestamp"]
        n = d["OpenShardCount"]
        assert n >= 2, "the api check needs a stream of two shards or more, it has %d" % n
        ds = kin.describe_stream(StreamName=name)["StreamDescription"]
        eq((len(ds["Shards"]), ds["HasMoreShards"]), (n, False), "DescribeStream shards")
        page = kin.list_shards(StreamName=name, MaxResults=1)
        got = list(page["Shards"])
        while page.get("NextToken"):
            page = kin.list_shards(NextToken=page["NextToken"], MaxResults=1)
            got.extend(page["Shards"])
        eq([s["ShardId"] for s in got], [s["ShardId"] for s in ds["Shards"]], "ListShards pages")
        shards.extend(got)
        # The hash ranges cover the 128-bit space without a gap.
        eq(int(got[0]["HashKeyRange"]["StartingHashKey"]), 0, "first range start")
        eq(int(got[-1]["HashKeyRange"]["EndingHashKey"]), 2 ** 128 - 1, "last range end")

    written = {}

    @check("PutRecord and PutRecords route by MD5 of the partition key; sequence numbers increase per shard")
    def _():
        for i in range(3):
            key = "pk-%d" % i
            r = kin.put_record(StreamName=name, PartitionKey=key, Data=("record %d" % i).encode())
            eq(r["ShardId"], shard_for(key, shards), "PutRecord shard of " + key)
            written.setdefault(r["ShardId"], []).append((r["SequenceNumber"], key, ("record %d" % i).encode()))
        entries = [{"PartitionKey": "batch-%d" % i, "Data": b"\x00\xffbinary %d" % i} for i in range(20)]
        r = kin.put_records(StreamName=name, Records=entries)
        eq(r["FailedRecordCount"], 0, "FailedRecordCount")
        for e, res in zip(entries, r["Records"]):
            eq(res["ShardId"], shard_for(e["PartitionKey"], shards), "PutRecords shard of " + e["PartitionKey"])
            written.setdefault(res["ShardId"], []).append((res["SequenceNumber"], e["PartitionKey"], e["Data"]))
        for sid, recs in written.items():
            seqs = [int(s) for s, _, _ in recs]
            eq(seqs, sorted(seqs), "sequence numbers of " + sid)
        return "%d records on %d shards" % (sum(len(v) for v in written.values()), len(written))

    @check("GetShardIterator TRIM_HORIZON and GetRecords with Limit read back every record, in order, bytes intact")
    def _():
        for sid, recs in written.items():
            it = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            got = read_all(kin, name, it, limit=2)
            eq([(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got], recs, "records of " + sid)
            assert all(isinstance(r["ApproximateArrivalTimestamp"], datetime) for r in got), "arrival timestamps"

    @check("GetShardIterator AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP, LATEST")
    def _():
        sid, recs = max(written.items(), key=lambda kv: len(kv[1]))
        assert len(recs) >= 3, "need three records on one shard"
        second = recs[1][0]
        it = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=second)["ShardIterator"]
        eq([r["SequenceNumber"] for r in read_all(kin, name, it)], [s for s, _, _ in recs[1:]], "AT_SEQUENCE_NUMBER")
        it = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=second)["ShardIterator"]
        eq([r["SequenceNumber"] for r in read_all(kin, name, it)], [s for s, _, _ in recs[2:]], "AFTER_SEQUENCE_NUMBER")
        it = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="AT_TIMESTAMP", Timestamp=datetime(2000, 1, 1, tzinfo=timezone.utc))["ShardIterator"]
        eq(len(read_all(kin, name, it)), len(recs), "AT_TIMESTAMP in the past reads everything")
        it = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="AT_TIMESTAMP", Timestamp=datetime(2100, 1, 1, tzinfo=timezone.utc))["ShardIterator"]
        eq(read_all(kin, name, it), [], "AT_TIMESTAMP in the future reads nothing yet")
        latest = kin.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="LATEST")["ShardIterator"]
        r = kin.get_records(ShardIterator=latest)
        eq(r["Records"], [], "LATEST before a new record")
        key = next(k for _, k, _ in recs)
        put = kin.put_record(StreamName=name, PartitionKey=key, Data=b"after latest")
        r = kin.get_records(ShardIterator=r["NextShardIterator"])
        eq([x["SequenceNumber"] for x in r["Records"]], [put["SequenceNumber"]], "LATEST sees the new record")

    @check("error shapes")
    def _():
        code, status, msg = error_of(kin.describe_stream_summary, StreamName="no-such-stream")
        eq((code, status), ("ResourceNotFoundException", 400), "unknown stream")
        assert "no-such-stream" in msg, msg
        eq(error_of(kin.put_record, StreamName="no-such-stream", PartitionKey="k", Data=b"x")[:2], ("ResourceNotFoundException", 400), "PutRecord to an unknown stream")
        eq(error_of(kin.get_shard_iterator, StreamName=name, ShardId="shardId-000000000099", ShardIteratorType="TRIM_HORIZON")[:2],
           ("ResourceNotFoundException", 400), "unknown shard")
        other = shards[1]["ShardId"] if shards[0]["ShardId"] in written else shards[0]["ShardId"]
        seq = next(iter(written.values()))[0][0]
        if other not in written or written[other][0][0] != seq:
            eq(error_of(kin.get_shard_iterator, StreamName=name, ShardId=other, ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq)[:2],
               ("InvalidArgumentException", 400), "a sequence number of another shard")
        eq(error_of(kin.get_records, ShardIterator="bm90IGFuIGl0ZXJhdG9y")[:2], ("InvalidArgumentException", 400), "a forged iterator")
        eq(error_of(kin.put_records, StreamName=name, Records=[{"PartitionKey": "k", "Data": b"x"}] * 501)[:2],
           ("ValidationException", 400), "501 entries")
        eq(error_of(kin.put_record, StreamName=name, PartitionKey="k", Data=b"x" * (1024 * 1024))[:2],
           ("ValidationException", 400), "a record over 1 MiB with its key")
        eq(error_of(kin.get_records, ShardIterator=kin.get_shard_iterator(StreamName=name, ShardId=shards[0]["ShardId"], ShardIteratorType="LATEST")["ShardIterator"], Limit=10001)[0],
           "InvalidArgumentException", "GetRecords Limit over 10,000")

    for c in CHECKS:
        c()
    failed = sum(1 for r in results if not r["ok"])
    json.dump({"checks": results, "failed": failed}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if failed else 0


def produce(kin, name, n, key):
    accepted = throttled = 0
    other = {}
    messages = set()
    sent = 0
    while sent < n:
        batch = min(500, n - sent)
        r = kin.put_records(StreamName=name, Records=[{"PartitionKey": key, "Data": b"r%d" % (sent + i)} for i in range(batch)])
        for e in r["Records"]:
            code = e.get("ErrorCode")
            if not code:
                accepted += 1
            elif code == "ProvisionedThroughputExceededException":
                throttled += 1
                messages.add(e.get("ErrorMessage", ""))
            else:
                other[code] = other.get(code, 0) + 1
        sent += batch
    put_record_error = None
    try:
        kin.put_record(StreamName=name, PartitionKey=key, Data=b"one more")
    except ClientError as e:
        put_record_error = e.response["Error"]["Code"]
    json.dump({"accepted": accepted, "throttled": throttled, "other_errors": other,
               "throttle_messages": sorted(messages), "put_record_error": put_record_error}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", required=True)
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("api")
    p = sub.add_parser("produce")
    p.add_argument("--records", type=int, default=1500)
    p.add_argument("--partition-key", default="one-shard")
    args = ap.parse_args()
    if args.mode == "api":
        kin = boto3.client("kinesis", endpoint_url=args.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 8}))
        return api(kin, args.stream)
    # The producer must see every throttle: no retries at all.
    kin = boto3.client("kinesis", endpoint_url=args.endpoint, config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    return produce(kin, args.stream, args.records, args.partition_key)


if __name__ == "__main__":
    sys.exit(main())

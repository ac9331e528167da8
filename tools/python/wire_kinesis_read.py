#!/usr/bin/env python3
"""Reads a whole Kinesis stream with boto3, every shard from TRIM_HORIZON until it is caught up, and
prints the Kinesis records as JSON for the official KPL de-aggregation module (tools/node/deagg.js):

  {"records": [{"shardId", "partitionKey", "sequenceNumber", "data": "<base64>"}]}

usage: wire_kinesis_read.py --endpoint URL --stream NAME

Credentials and region come from the environment. GetRecords is limited to 5 calls per second per
shard, shared with the local cloud's own consumers: botocore's standard retry mode backs off on
ProvisionedThroughputExceededException.
"""
import argparse
import base64
import json
import sys

import boto3
from botocore.config import Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", required=True)
    args = ap.parse_args()
    kin = boto3.client("kinesis", endpoint_url=args.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 20}))
    shards = []
    kw = {"StreamName": args.stream}
    while True:
        page = kin.list_shards(**kw)
        shards.extend(page["Shards"])
        if not page.get("NextToken"):
            break
        kw = {"NextToken": page["NextToken"]}
    out = []
    for s in shards:
        it = kin.get_shard_iterator(StreamName=args.stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kin.get_records(ShardIterator=it, Limit=10000)
            for rec in r["Records"]:
                out.append({"shardId": s["ShardId"], "partitionKey": rec["PartitionKey"],
                            "sequenceNumber": rec["SequenceNumber"], "data": base64.b64encode(rec["Data"]).decode()})
            it = r.get("NextShardIterator")
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
    json.dump({"records": out}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

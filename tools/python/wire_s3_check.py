#!/usr/bin/env python3
"""Checks taxistream's local S3 endpoint (`taxistream local --serve`) with boto3, a client nobody on the
project wrote: objects, ranges, conditional requests, listing, copy, delete, multipart uploads,
checksums, error shapes, unsigned and presigned requests.

usage: wire_s3_check.py --endpoint http://127.0.0.1:4566 --bucket NAME [--prefix wire-check/]

Credentials, region and retries come from the environment (AWS_ACCESS_KEY_ID=test ...). Prints one JSON
document {"checks": [{"name", "ok", "detail"}], "failed": N} and exits 1 when a check failed.
"""
import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from datetime import datetime, timedelta, timezone

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
results = []


def check(name):
    def wrap(fn):
        def run():
            try:
                detail = fn()
                results.append({"name": name, "ok": True, "detail": detail or ""})
            except AssertionError as e:
                results.append({"name": name, "ok": False, "detail": "assertion: %s" % e})
            except Exception as e:  # a check must not stop the others
                results.append({"name": name, "ok": False, "detail": "%s: %s" % (type(e).__name__, e)})
        run.__name__ = fn.__name__
        CHECKS.append(run)
        return run
    return wrap


CHECKS = []


def error_of(fn, *args, **kwargs):
    """Calls fn and returns (code, HTTP status) of the ClientError it must raise."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response.get("Error", {}).get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("%s did not fail" % getattr(fn, "__name__", fn))


def eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", default="wire-check/")
    args = ap.parse_args()
    cfg = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3})
    s3 = boto3.client("s3", endpoint_url=args.endpoint, config=cfg)
    b, p = args.bucket, args.prefix
    body = b"0123456789"
    md5 = hashlib.md5(body).hexdigest()

    @check("put, head and get an object with metadata")
    def _():
        out = s3.put_object(Bucket=b, Key=p + "obj.txt", Body=body, ContentType="text/plain", Metadata={"Origin": "check"})
        eq(out["ETag"], '"%s"' % md5, "PutObject ETag")
        h = s3.head_object(Bucket=b, Key=p + "obj.txt")
        eq(h["ContentLength"], 10, "ContentLength")
        eq(h["ETag"], '"%s"' % md5, "HeadObject ETag")
        eq(h["ContentType"], "text/plain", "ContentType")
        eq(h["Metadata"], {"origin": "check"}, "Metadata")
        g = s3.get_object(Bucket=b, Key=p + "obj.txt", ChecksumMode="ENABLED")
        eq(g["Body"].read(), body, "body")  # botocore verifies the CRC32 as it reads
        eq(g.get("ChecksumCRC32"), base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(), "ChecksumCRC32 of a whole GET")

    @check("ranged GETs")
    def _():
        for rng, want, content_range in [
            ("bytes=2-5", b"2345", "bytes 2-5/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
        ]:
            g = s3.get_object(Bucket=b, Key=p + "obj.txt", Range=rng)
            eq(g["ResponseMetadata"]["HTTPStatusCode"], 206, rng + " status")
            eq(g["Body"].read(), want, rng + " body")
            eq(g["ContentRange"], content_range, rng + " Content-Range")
        eq(error_of(s3.get_object, Bucket=b, Key=p + "obj.txt", Range="bytes=10-"), ("InvalidRange", 416), "range past the end")
        g = s3.get_object(Bucket=b, Key=p + "obj.txt", Range="bytes=abc")
        eq((g["ResponseMetadata"]["HTTPStatusCode"], g["Body"].read()), (200, body), "malformed range is ignored")

    @check("conditional GET and HEAD")
    def _():
        k = p + "obj.txt"
        eq(s3.get_object(Bucket=b, Key=k, IfMatch='"%s"' % md5)["Body"].read(), body, "If-Match that holds")
        eq(error_of(s3.get_object, Bucket=b, Key=k, IfMatch='"0000"'), ("PreconditionFailed", 412), "If-Match that fails")
        eq(error_of(s3.get_object, Bucket=b, Key=k, IfNoneMatch='"%s"' % md5), ("304", 304), "If-None-Match that matches")
        eq(error_of(s3.head_object, Bucket=b, Key=k, IfNoneMatch="*"), ("304", 304), "HEAD If-None-Match *")
        future = datetime.now(timezone.utc) + timedelta(days=1)
        past = datetime.now(timezone.utc) - timedelta(days=1)
        eq(error_of(s3.get_object, Bucket=b, Key=k, IfModifiedSince=future), ("304", 304), "If-Modified-Since in the future")
        eq(s3.get_object(Bucket=b, Key=k, IfModifiedSince=past)["Body"].read(), body, "If-Modified-Since in the past")
        eq(error_of(s3.get_object, Bucket=b, Key=k, IfUnmodifiedSince=past), ("PreconditionFailed", 412), "If-Unmodified-Since in the past")
        # If-Match that holds wins over If-Unmodified-Since that fails (RFC 7232, as S3 documents).
        eq(s3.get_object(Bucket=b, Key=k, IfMatch='"%s"' % md5, IfUnmodifiedSince=past)["Body"].read(), body, "If-Match over If-Unmodified-Since")

    @check("conditional PUT (If-None-Match, If-Match)")
    def _():
        k = p + "cond.txt"
        s3.put_object(Bucket=b, Key=k, Body=b"v1", IfNoneMatch="*")
        eq(error_of(s3.put_object, Bucket=b, Key=k, Body=b"v2", IfNoneMatch="*"), ("PreconditionFailed", 412), "If-None-Match * on an existing key")
        etag = s3.head_object(Bucket=b, Key=k)["ETag"]
        eq(error_of(s3.put_object, Bucket=b, Key=k, Body=b"v2", IfMatch='"ffff"'), ("PreconditionFailed", 412), "If-Match with another ETag")
        s3.put_object(Bucket=b, Key=k, Body=b"v2", IfMatch=etag)
        eq(s3.get_object(Bucket=b, Key=k)["Body"].read(), b"v2", "after If-Match write")
        eq(error_of(s3.put_object, Bucket=b, Key=p + "never-there", Body=b"x", IfMatch=etag), ("NoSuchKey", 404), "If-Match on a missing key")

    @check("ListObjectsV2: prefix, delimiter, pagination, start-after")
    def _():
        lp = p + "list/"
        keys = [lp + k for k in ["a/1", "a/2", "b/1", "c", "d/e/f", "e"]]
        for k in keys:
            s3.put_object(Bucket=b, Key=k, Body=b"x")
        pag = s3.get_paginator("list_objects_v2")
        got = [o["Key"] for page in pag.paginate(Bucket=b, Prefix=lp, PaginationConfig={"PageSize": 2}) for o in page.get("Contents", [])]
        eq(got, keys, "keys, two per page")
        pages = list(pag.paginate(Bucket=b, Prefix=lp, Delimiter="/", PaginationConfig={"PageSize": 1}))
        prefixes = [cp["Prefix"] for pg in pages for cp in pg.get("CommonPrefixes", [])]
        top = [o["Key"] for pg in pages for o in pg.get("Contents", [])]
        eq(prefixes, [lp + "a/", lp + "b/", lp + "d/"], "common prefixes, one per page")
        eq(top, [lp + "c", lp + "e"], "keys beside the common prefixes")
        eq(len(pages), 5, "pages")
        out = s3.list_objects_v2(Bucket=b, Prefix=lp, StartAfter=lp + "b/1")
        eq([o["Key"] for o in out["Contents"]], keys[3:], "StartAfter")
        eq(out["KeyCount"], 3, "KeyCount")
        eq(s3.list_objects_v2(Bucket=b, Prefix=p + "nothing-here/").get("KeyCount"), 0, "empty listing")
        v1 = s3.list_objects(Bucket=b, Prefix=lp, Delimiter="/", MaxKeys=2)
        eq(v1["IsTruncated"], True, "V1 truncated")
        v1b = s3.list_objects(Bucket=b, Prefix=lp, Delimiter="/", Marker=v1["NextMarker"])
        eq([cp["Prefix"] for cp in v1b.get("CommonPrefixes", [])] + [o["Key"] for o in v1b.get("Contents", [])],
           [lp + "d/", lp + "c", lp + "e"], "V1 second page after NextMarker")

    @check("error shapes: NoSuchKey, NoSuchBucket, 404 on HEAD")
    def _():
        eq(error_of(s3.get_object, Bucket=b, Key=p + "missing"), ("NoSuchKey", 404), "GetObject of a missing key")
        eq(error_of(s3.head_object, Bucket=b, Key=p + "missing"), ("404", 404), "HeadObject of a missing key")
        eq(error_of(s3.get_object, Bucket="no-such-bucket-here", Key="x"), ("NoSuchBucket", 404), "another bucket")
        eq(error_of(s3.list_objects_v2, Bucket="no-such-bucket-here"), ("NoSuchBucket", 404), "listing another bucket")
        eq(error_of(s3.put_object, Bucket=b, Key=p + "../escape", Body=b"x")[1], 400, "a key that would leave the folder")

    @check("CopyObject (metadata copied or replaced, x-amz-copy-source-if-match)")
    def _():
        src = p + "obj.txt"
        out = s3.copy_object(Bucket=b, Key=p + "copy.txt", CopySource={"Bucket": b, "Key": src})
        eq(out["CopyObjectResult"]["ETag"], '"%s"' % md5, "copy ETag")
        h = s3.head_object(Bucket=b, Key=p + "copy.txt")
        eq((h["Metadata"], h["ContentType"]), ({"origin": "check"}, "text/plain"), "copied metadata")
        s3.copy_object(Bucket=b, Key=p + "copy 2.txt", CopySource={"Bucket": b, "Key": src},
                       MetadataDirective="REPLACE", Metadata={"origin": "replaced"}, ContentType="text/csv")
        h = s3.head_object(Bucket=b, Key=p + "copy 2.txt")
        eq((h["Metadata"]["origin"], h["ContentType"]), ("replaced", "text/csv"), "replaced metadata")
        eq(error_of(s3.copy_object, Bucket=b, Key=p + "copy3.txt", CopySource={"Bucket": b, "Key": src}, CopySourceIfMatch='"abc"'),
           ("PreconditionFailed", 412), "x-amz-copy-source-if-match that fails")
        eq(error_of(s3.copy_object, Bucket=b, Key=p + "copy3.txt", CopySource={"Bucket": b, "Key": p + "missing"})[0], "NoSuchKey", "copy of a missing key")

    @check("DeleteObject and DeleteObjects")
    def _():
        for k in ["del/1", "del/2"]:
            s3.put_object(Bucket=b, Key=p + k, Body=b"x")
        s3.delete_object(Bucket=b, Key=p + "del/1")
        s3.delete_object(Bucket=b, Key=p + "del/never")  # deleting a missing key succeeds
        out = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": p + "del/2"}, {"Key": p + "del/never"}]})
        eq(sorted(d["Key"] for d in out.get("Deleted", [])), [p + "del/2", p + "del/never"], "Deleted")
        eq(out.get("Errors", []), [], "Errors")
        eq(s3.list_objects_v2(Bucket=b, Prefix=p + "del/")["KeyCount"], 0, "nothing left")

    @check("multipart upload API: parts, ListParts, ListMultipartUploads, completion, order and size rules, abort")
    def _():
        k = p + "mp.bin"
        part1 = os.urandom(5 * MIB)
        part2 = b"tail of the object"
        up = s3.create_multipart_upload(Bucket=b, Key=k, ContentType="application/x-test", Metadata={"kind": "mp"})
        uid = up["UploadId"]
        e2 = s3.upload_part(Bucket=b, Key=k, UploadId=uid, PartNumber=2, Body=part2)["ETag"]
        e1 = s3.upload_part(Bucket=b, Key=k, UploadId=uid, PartNumber=1, Body=part1)["ETag"]
        eq(e1, '"%s"' % hashlib.md5(part1).hexdigest(), "part ETag")
        parts = s3.list_parts(Bucket=b, Key=k, UploadId=uid)["Parts"]
        eq([(x["PartNumber"], x["Size"]) for x in parts], [(1, 5 * MIB), (2, len(part2))], "ListParts")
        ups = s3.list_multipart_uploads(Bucket=b, Prefix=p)["Uploads"]
        eq([u["UploadId"] for u in ups], [uid], "ListMultipartUploads")
        eq(error_of(s3.complete_multipart_upload, Bucket=b, Key=k, UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})[0],
           "InvalidPartOrder", "parts out of order")
        eq(error_of(s3.complete_multipart_upload, Bucket=b, Key=k, UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}, {"PartNumber": 2, "ETag": e2}]})[0],
           "InvalidPart", "a part with another ETag")
        out = s3.complete_multipart_upload(Bucket=b, Key=k, UploadId=uid,
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        whole = part1 + part2
        eq(out["ETag"], '"%s"' % hashlib.md5(whole).hexdigest(), "object ETag (MD5 of the bytes)")
        g = s3.get_object(Bucket=b, Key=k)
        eq(hashlib.sha256(g["Body"].read()).hexdigest(), hashlib.sha256(whole).hexdigest(), "object bytes")
        eq((g["ContentType"], g["Metadata"]), ("application/x-test", {"kind": "mp"}), "metadata of the upload")
        eq(error_of(s3.upload_part, Bucket=b, Key=k, UploadId=uid, PartNumber=3, Body=b"x")[0], "NoSuchUpload", "a completed upload")
        # Every part but the last must be at least 5 MiB.
        small = s3.create_multipart_upload(Bucket=b, Key=p + "small.bin")["UploadId"]
        s1 = s3.upload_part(Bucket=b, Key=p + "small.bin", UploadId=small, PartNumber=1, Body=b"a" * MIB)["ETag"]
        s2 = s3.upload_part(Bucket=b, Key=p + "small.bin", UploadId=small, PartNumber=2, Body=b"b")["ETag"]
        code, status = error_of(s3.complete_multipart_upload, Bucket=b, Key=p + "small.bin", UploadId=small,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]})
        eq((code, status), ("InvalidPart", 400), "a 1 MiB first part (EntityTooSmall)")
        s3.abort_multipart_upload(Bucket=b, Key=p + "small.bin", UploadId=small)
        eq(s3.list_multipart_uploads(Bucket=b, Prefix=p).get("Uploads", []), [], "no upload left after abort")
        eq(error_of(s3.head_object, Bucket=b, Key=p + "small.bin")[1], 404, "an aborted upload leaves no object")

    @check("upload_file and download_file through s3transfer (multipart upload, ranged parallel download)")
    def _():
        data = os.urandom(11 * MIB + 123)
        tc = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "up.bin"), os.path.join(d, "down.bin")
            with open(src, "wb") as f:
                f.write(data)
            s3.upload_file(src, b, p + "transfer.bin", Config=tc)
            s3.download_file(b, p + "transfer.bin", dst, Config=tc)
            with open(dst, "rb") as f:
                eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest(), "downloaded bytes")

    @check("integrity checks: x-amz-checksum-*, Content-MD5")
    def _():
        for alg in ["CRC32", "SHA1", "SHA256"]:  # CRC32C needs botocore[crt]; the Go tests cover it
            s3.put_object(Bucket=b, Key=p + "sum-" + alg, Body=b"checked body", ChecksumAlgorithm=alg)
        eq(error_of(s3.put_object, Bucket=b, Key=p + "bad-crc", Body=b"checked body", ChecksumCRC32="AAAAAA=="),
           ("BadDigest", 400), "a wrong CRC32")
        eq(error_of(s3.put_object, Bucket=b, Key=p + "bad-md5", Body=b"checked body", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="),
           ("BadDigest", 400), "a wrong Content-MD5")
        eq(error_of(s3.head_object, Bucket=b, Key=p + "bad-crc")[1], 404, "a body that failed its checksum is not stored")

    @check("unsigned, malformed and presigned requests")
    def _():
        url = "%s/%s/%sobj.txt" % (args.endpoint.rstrip("/"), b, p)
        try:
            urllib.request.urlopen(url, timeout=30)
            raise AssertionError("an unsigned GET succeeded")
        except urllib.error.HTTPError as e:
            eq(e.code, 403, "unsigned GET status")
            assert b"<Code>AccessDenied</Code>" in e.read(), "unsigned GET: AccessDenied"
        req = urllib.request.Request(url, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=broken", "X-Amz-Date": "20240101T000000Z"})
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError("a malformed Authorization succeeded")
        except urllib.error.HTTPError as e:
            eq(e.code, 400, "malformed Authorization status")
            assert b"AuthorizationHeaderMalformed" in e.read(), "malformed Authorization: AuthorizationHeaderMalformed"
        v4 = boto3.client("s3", endpoint_url=args.endpoint, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        for client, what in [(s3, "presigned GET (boto3's default, SigV2 query)"), (v4, "presigned GET (SigV4 query)")]:
            signed = client.generate_presigned_url("get_object", Params={"Bucket": b, "Key": p + "obj.txt"}, ExpiresIn=300)
            with urllib.request.urlopen(signed, timeout=30) as r:
                eq(r.read(), body, what)

    for c in CHECKS:
        c()
    failed = sum(1 for r in results if not r["ok"])
    json.dump({"checks": results, "failed": failed}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

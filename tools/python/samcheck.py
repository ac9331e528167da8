#!/usr/bin/env python3
"""Run the tools AWS SAM itself uses on template.yaml, for the Go tests in internal/samtemplate.

Subcommands (each prints one JSON document on stdout; exit status 0 unless the tool itself broke):

  versions                      the versions of cfn-lint, aws-sam-translator, moto and boto3
  lint FILE...                  cfn-lint (what `sam validate --lint` runs) over many templates in one
                                process: {"FILE": [{"rule", "level", "message", "path"}, ...], ...}
  translate [--code-uri URI] FILE...
                                the SAM translator (what `sam deploy` runs through CloudFormation's
                                AWS::Serverless transform), after setting every function's CodeUri the
                                way `sam package` does (s3://bucket/prefix/md5): {"FILE": {"template":
                                {...}} or {"error": "..."}, ...}
  deploy --endpoint URL --stack NAME [--code-uri URI] [--parameter K=V]... FILE
                                creates the stack of the transformed template FILE on moto_server's
                                CloudFormation at URL (the code object is uploaded first) and reports
                                the stack status, outputs, resources, and what moto did not create

Nothing here calls AWS: the translator gets a region from the environment and a managed-policy loader
that knows no policies, and deploy talks to the endpoint given only, with fake credentials.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import sys
import zipfile

REGION = "us-east-1"
# What `sam package` writes into CodeUri: the artifact bucket, the s3_prefix of samconfig.toml and the
# artifact's MD5. The translator turns it into Code: {S3Bucket, S3Key}.
DEFAULT_CODE_URI = "s3://taxistream-artifacts-123456789012/taxistream/0f343b0931126a20f133d67c2b018a3b"


def _fake_credentials() -> None:
    # boto3 and the translator read these; nothing here may reach AWS with real ones.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def cmd_versions(_args: argparse.Namespace) -> object:
    from importlib.metadata import version

    return {p: version(p) for p in ("cfn-lint", "aws-sam-translator", "moto", "boto3")}


def _lint_one(path: str) -> tuple[str, list[dict]]:
    from cfnlint import api

    with open(path, encoding="utf-8") as f:
        src = f.read()
    out = []
    for m in api.lint(src, regions=[REGION]):
        out.append(
            {
                "rule": m.rule.id,
                "level": m.rule.severity,
                "message": m.message,
                "path": [str(p) for p in (m.path or [])],
                "line": m.linenumber,
            }
        )
    return path, out


def cmd_lint(args: argparse.Namespace) -> object:
    # cfn-lint takes about a second per template: spread many over the machine's cores, in one command.
    workers = max(1, min(len(args.files), os.cpu_count() or 1))
    if workers == 1:
        return dict(_lint_one(p) for p in args.files)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(_lint_one, args.files))


def _set_code_uri(template: dict, code_uri: str) -> None:
    # `sam package` replaces every local CodeUri (ours is "." in Globals) with the uploaded artifact.
    for res in (template.get("Resources") or {}).values():
        if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = code_uri
    glob = (template.get("Globals") or {}).get("Function")
    if isinstance(glob, dict):
        glob.pop("CodeUri", None)


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only when a function lists one by name; the
    template must not (it uses inline least-privilege statements), so the loader knows none."""

    def load(self) -> dict:
        return {}


def _translate(path: str, code_uri: str) -> dict:
    from cfnlint.decode import decode_str
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    with open(path, encoding="utf-8") as f:
        src = f.read()
    tpl, errors = decode_str(src)
    if errors or tpl is None:
        return {"error": "; ".join(str(e) for e in errors) or "empty template"}
    # cfn-lint's decoder keeps line numbers in dict subclasses; the translator wants plain JSON.
    tpl = json.loads(json.dumps(tpl))
    _set_code_uri(tpl, code_uri)
    try:
        return {"template": transform(tpl, {}, _NoManagedPolicies())}
    except InvalidDocumentException as e:
        return {"error": "; ".join(sorted(getattr(c, "message", str(c)) for c in e.causes)) or str(e)}
    except Exception as e:  # the translator's other errors name the problem in their text
        return {"error": f"{type(e).__name__}: {e}"}


def cmd_translate(args: argparse.Namespace) -> object:
    _fake_credentials()
    return {p: _translate(p, args.code_uri) for p in args.files}


def _bootstrap_zip() -> bytes:
    # moto stores the code object and never runs it; a bootstrap that says so is enough.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'placeholder uploaded by tools/python/samcheck.py' >&2\nexit 1\n")
    return buf.getvalue()


def _describe(client, typ: str, physical_id: str) -> dict:
    """What moto made of one resource, through the service's own API (the values CloudFormation
    resolved: parameters, Refs, GetAtts)."""
    if typ == "AWS::Lambda::Function":
        c = client("lambda").get_function_configuration(FunctionName=physical_id)
        return {
            "arn": c["FunctionArn"],
            "runtime": c.get("Runtime"),
            "handler": c.get("Handler"),
            "timeout": c.get("Timeout"),
            "memory_size": c.get("MemorySize"),
            "architectures": c.get("Architectures"),
            "role": c.get("Role"),
            "environment": (c.get("Environment") or {}).get("Variables") or {},
        }
    if typ == "AWS::Lambda::EventSourceMapping":
        c = client("lambda").get_event_source_mapping(UUID=physical_id)
        c.pop("ResponseMetadata", None)
        return c
    if typ == "AWS::Kinesis::Stream":
        c = client("kinesis").describe_stream_summary(StreamName=physical_id)["StreamDescriptionSummary"]
        return {
            "arn": c["StreamARN"],
            "name": c["StreamName"],
            "shards": c.get("OpenShardCount"),
            "retention_hours": c.get("RetentionPeriodHours"),
            "encryption": c.get("EncryptionType"),
            "key_id": c.get("KeyId"),
            "mode": (c.get("StreamModeDetails") or {}).get("StreamMode"),
        }
    if typ == "AWS::SQS::Queue":
        a = client("sqs").get_queue_attributes(QueueUrl=physical_id, AttributeNames=["All"])["Attributes"]
        return {"arn": a.get("QueueArn"), "url": physical_id, "attributes": a}
    if typ == "AWS::S3::Bucket":
        s3 = client("s3")
        enc = s3.get_bucket_encryption(Bucket=physical_id)["ServerSideEncryptionConfiguration"]
        return {"arn": "arn:aws:s3:::" + physical_id, "name": physical_id, "encryption": enc}
    if typ == "AWS::IAM::Role":
        r = client("iam").get_role(RoleName=physical_id)["Role"]
        return {"arn": r["Arn"], "name": r["RoleName"]}
    return {}


def cmd_deploy(args: argparse.Namespace) -> object:
    _fake_credentials()
    import boto3
    from botocore.config import Config
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    cfg = Config(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=120)

    def client(service: str):
        return boto3.client(service, endpoint_url=args.endpoint, region_name=REGION, config=cfg)

    with open(args.file, encoding="utf-8") as f:
        template = json.load(f)
    bucket, _, key = args.code_uri.removeprefix("s3://").partition("/")
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=_bootstrap_zip())

    cfn = client("cloudformation")
    params = []
    for kv in args.parameter or []:
        k, _, v = kv.partition("=")
        params.append({"ParameterKey": k, "ParameterValue": v})
    cfn.create_stack(
        StackName=args.stack,
        TemplateBody=json.dumps(template),
        Parameters=params,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    # moto creates a stack synchronously; the waiter polls a bounded number of times all the same.
    waiter = cfn.get_waiter("stack_create_complete")
    wait_error = ""
    try:
        waiter.wait(StackName=args.stack, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    except Exception as e:
        wait_error = str(e)
    stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
    resources = [
        r for page in cfn.get_paginator("list_stack_resources").paginate(StackName=args.stack) for r in page["StackResourceSummaries"]
    ]
    events = [e for page in cfn.get_paginator("describe_stack_events").paginate(StackName=args.stack) for e in page["StackEvents"]]
    created = {r["LogicalResourceId"] for r in resources}
    supported = set(get_model_map())
    not_created = []
    for logical_id, res in sorted((template.get("Resources") or {}).items()):
        if logical_id in created:
            continue
        typ = res.get("Type", "")
        not_created.append(
            {
                "logical_id": logical_id,
                "type": typ,
                "condition": res.get("Condition", ""),
                "supported_by_moto": typ in supported or typ.startswith("Custom::"),
                "null_model": typ in NULL_MODELS,
            }
        )

    described = {}
    for r in resources:
        if r.get("LogicalResourceId"):
            try:
                described[r["LogicalResourceId"]] = _describe(client, r["ResourceType"], r.get("PhysicalResourceId", ""))
            except Exception as e:  # a describe call moto lacks: report it, the Go test decides
                described[r["LogicalResourceId"]] = {"describe_error": f"{type(e).__name__}: {e}"}

    return {
        "status": stack["StackStatus"],
        "status_reason": stack.get("StackStatusReason", ""),
        "wait_error": wait_error,
        "outputs": {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs") or []},
        "resources": [
            {
                "logical_id": r["LogicalResourceId"],
                "type": r["ResourceType"],
                "physical_id": r.get("PhysicalResourceId", ""),
                "status": r.get("ResourceStatus", ""),
                "described": described.get(r["LogicalResourceId"], {}),
            }
            # moto lists a blank summary for each resource it skipped (not_created says which).
            for r in resources
            if r.get("LogicalResourceId")
        ],
        "not_created": not_created,
        "failed_events": [
            {"logical_id": e.get("LogicalResourceId"), "status": e.get("ResourceStatus"), "reason": e.get("ResourceStatusReason")}
            for e in events
            if "FAILED" in (e.get("ResourceStatus") or "")
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("versions").set_defaults(run=cmd_versions)
    lint = sub.add_parser("lint")
    lint.add_argument("files", nargs="+")
    lint.set_defaults(run=cmd_lint)
    tr = sub.add_parser("translate")
    tr.add_argument("--code-uri", default=DEFAULT_CODE_URI)
    tr.add_argument("files", nargs="+")
    tr.set_defaults(run=cmd_translate)
    dp = sub.add_parser("deploy")
    dp.add_argument("--endpoint", required=True)
    dp.add_argument("--stack", required=True)
    dp.add_argument("--code-uri", default=DEFAULT_CODE_URI)
    dp.add_argument("--parameter", action="append")
    dp.add_argument("file")
    dp.set_defaults(run=cmd_deploy)
    args = p.parse_args()
    json.dump(args.run(args), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Short-lived S3 credentials for a node, scoped to one bucket prefix of its job.

A VM that keeps a bucket in step (MOUNT, MOUNT_CACHED) needs S3 credentials, and whatever
it holds the job's program can read (both run as the VM's login user). So the worker never
ships its own keys: it asks STS for temporary credentials whose inline session policy
allows only object reads, writes and deletes under the mount's prefix of its bucket, and
listing that prefix. The effective rights are the intersection of that policy and the
issuer's own, so they can never reach another job's bucket, and they expire on their own.

Two issuers, by `aws.node_role_arn`:
- unset: GetFederationToken with the worker's credentials (an IAM user's long-term keys; STS
  refuses it to temporary credentials such as SSO's or an instance role's);
- a role ARN: AssumeRole of that role (which must trust the worker's identity and may read
  and write the job buckets), works from any credentials. AWS caps a role chained from
  temporary credentials at one hour, which `aws.node_credentials_ttl_s` defaults to.

Credentials are cached per (issuer, bucket, prefix) while more than half their life is left,
so every node of a cluster and every renewal shares one STS call. Two jobs of the same
bucket prefix may share a credential: its reach is exactly that prefix either way.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from spotctl.clouds.aws_clients import aws_client, on_forget
from spotctl.config import Settings

ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
           "s3:ListMultipartUploadParts"]
"""Object calls bucket_sync and mount-s3 make (mount-s3 uploads big files in parts)."""
STS_REGION = "us-east-1"
POLICY_MAX = 2048
"""STS's limit on a session policy's plain text."""
CACHE_MAX = 1024
"""Scoped credentials kept at most (one per bucket prefix in use); expired ones go first."""

_lock = threading.Lock()
_cache: dict[tuple[str, str, str, str], dict[str, str]] = {}


class NodeCredentialsRefused(Exception):
    """STS will not issue node credentials with the worker's identity; the message says what
    to configure. Retrying cannot help."""


def partition(region: str) -> str:
    """The ARN partition of a region (aws, aws-cn, aws-us-gov)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def session_policy(bucket: str, prefix: str, region: str = STS_REGION) -> dict[str, Any]:
    """Object calls under `prefix/` of `bucket` (the whole bucket for ''), and ListBucket of
    that prefix only; nothing else. `prefix` is a clean key (no leading or trailing '/')."""
    arn = f"arn:{partition(region)}:s3:::{bucket}"
    objects = f"{arn}/{prefix}/*" if prefix else f"{arn}/*"
    listing: dict[str, Any] = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn}
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(ACTIONS), "Resource": objects}, listing]}


def _session_name(bucket: str, prefix: str) -> str:
    """A name CloudTrail shows for the issued session: `spotctl-<bucket>` cut to STS's 32
    characters (federated user names: [\\w+=,.@-]{2,32})."""
    return f"spotctl-{bucket}"[:32]


def _issue(settings: Settings, bucket: str, prefix: str, region: str) -> dict[str, str]:
    policy = json.dumps(session_policy(bucket, prefix, region), separators=(",", ":"))
    if len(policy) > POLICY_MAX:  # a prefix of many hundred characters: this bucket, all of it
        policy = json.dumps(session_policy(bucket, "", region), separators=(",", ":"))
    ttl = settings.aws.node_credentials_ttl_s
    sts = aws_client(settings, "sts", region if partition(region) != "aws" else STS_REGION)
    try:
        if settings.aws.node_role_arn:
            answer = sts.assume_role(RoleArn=settings.aws.node_role_arn, RoleSessionName=_session_name(bucket, prefix),
                                     Policy=policy, DurationSeconds=ttl)
        else:
            answer = sts.get_federation_token(Name=_session_name(bucket, prefix), Policy=policy, DurationSeconds=ttl)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status in (400, 403) and code not in ("Throttling", "ThrottlingException", "RequestExpired"):
            how = (f"AssumeRole of {settings.aws.node_role_arn}" if settings.aws.node_role_arn
                   else "GetFederationToken (it needs an IAM user's long-term keys)")
            msg = exc.response.get("Error", {}).get("Message") or code
            raise NodeCredentialsRefused(
                f"cannot get scoped credentials for a node ({how}): {msg}; set aws.node_role_arn to a role "
                "the worker may assume, or aws.instance_profile to let the VMs use their own role") from None
        raise
    c = answer["Credentials"]
    expiry = c["Expiration"]
    if isinstance(expiry, datetime.datetime):
        expiry = expiry.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
            "session_token": c["SessionToken"], "expiration": str(expiry)}


def expires_at(creds: dict[str, str]) -> float:
    """The credentials' expiry in epoch seconds."""
    when = datetime.datetime.fromisoformat(creds["expiration"].replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()


def scoped_credentials(settings: Settings, bucket: str, prefix: str, region: str) -> dict[str, str]:
    """{"access_key", "secret_key", "session_token", "expiration" (ISO 8601, UTC)} that may
    use only `prefix` of `bucket`, with more than half of their life left. Raises
    NodeCredentialsRefused when STS refuses, botocore's errors for transient faults."""
    key = (settings.aws.node_role_arn or "", settings.aws.endpoint_url or "", bucket, prefix)
    now = time.time()
    with _lock:
        cached = _cache.get(key)
    if cached and expires_at(cached) - now > settings.aws.node_credentials_ttl_s / 2:
        return dict(cached)
    creds = _issue(settings, bucket, prefix, region)
    with _lock:
        for k in [k for k, v in _cache.items() if expires_at(v) <= now]:
            del _cache[k]
        while len(_cache) >= CACHE_MAX:
            del _cache[min(_cache, key=lambda k: expires_at(_cache[k]))]
        _cache[key] = creds
    return dict(creds)


def forget() -> None:
    """Drop cached credentials (tests that reset the emulator)."""
    with _lock:
        _cache.clear()


on_forget(forget)  # aws_clients.forget_clients drops these with the clients that issued them

"""S3 without AWS: moto's server in this process, reached over real HTTP.

`s3_lab` (a pytest fixture; import it into a test module with `from s3_lab import s3_lab`)
yields an `S3Lab`: `settings` whose aws.endpoint_url points at moto, the endpoint, and a raw
boto3 client for checking outcomes behind the code under test. Dummy credentials are set in
the environment for the test and the previous values restored after it. At the end of each
test the lab asserts that no bucket is left behind, then wipes moto (`POST /moto-api/reset`),
so one test's leftovers never reach the next.

One server per test session (started on first use, on a free loopback port).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto_lab import shared_moto

from spotctl.clouds.aws_clients import forget_clients
from spotctl.config import Settings

ACCESS_KEY = "AKIASPOTCTLLAB000000"
SECRET_KEY = "spotctl-lab-secret-key"
LAB_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SESSION_TOKEN": None,
    "AWS_SECURITY_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_REGION": None,
    "AWS_CONFIG_FILE": "/nonexistent/spotctl-lab-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/spotctl-lab-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
"""None = unset for the test."""


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> str:
    """The lab's one moto server (moto_lab.shared_moto)."""
    return shared_moto()


def moto_api(endpoint: str, path: str, body: bytes = b"") -> dict:
    req = urllib.request.Request(f"{endpoint}/moto-api/{path}", data=body, method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


@dataclass
class S3Lab:
    settings: Settings
    endpoint: str

    def client(self, region: str = "us-east-1") -> Any:
        """A plain boto3 S3 client on moto, independent of spotctl's cached clients."""
        return boto3.client("s3", region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1}))

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.client().list_buckets().get("Buckets", []))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def body(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, bucket: str, key: str) -> None:
        self.client().delete_object(Bucket=bucket, Key=key)

    def iam_user(self, name: str, allow_s3: bool = True) -> tuple[str, str]:
        """A moto IAM user (allowed s3:* or nothing); returns its access key pair. Make users
        before `enable_auth`: afterwards the IAM calls themselves need rights."""
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=self.endpoint,
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        iam.create_user(UserName=name)
        if allow_s3:
            iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def enable_auth(self) -> None:
        """From now on moto checks every request's SigV4 signature against its IAM users'
        keys, and their permissions (undone at the end of the test, or by disable_auth)."""
        moto_api(self.endpoint, "reset-auth", b"0")

    def disable_auth(self) -> None:
        moto_api(self.endpoint, "reset-auth", b"inf")


@pytest.fixture
def s3_lab(moto_s3_endpoint: str, tmp_path: Path) -> Iterator[S3Lab]:
    saved = {k: os.environ.get(k) for k in LAB_ENV}
    for k, v in LAB_ENV.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    forget_clients()
    moto_api(moto_s3_endpoint, "reset")
    settings = Settings(home=tmp_path / "spotctl-home")
    settings.aws.endpoint_url = moto_s3_endpoint
    lab = S3Lab(settings=settings, endpoint=moto_s3_endpoint)
    try:
        yield lab
        moto_api(moto_s3_endpoint, "reset-auth", b"inf")  # the check below must not need auth
        left = lab.buckets()
        assert left == [], f"the test left buckets behind: {left}"
    finally:
        moto_api(moto_s3_endpoint, "reset-auth", b"inf")
        moto_api(moto_s3_endpoint, "reset")
        forget_clients()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

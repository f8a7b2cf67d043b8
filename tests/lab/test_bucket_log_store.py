"""BucketLogStore on S3 (moto over HTTP): what `spotctl logs` would print is what the workers
shipped, once, whoever re-sent it; the objects are checked with a plain boto3 client."""

from __future__ import annotations

import s3_lab as lab
from log_store_contract import check_logs_are_read_back_once
from s3_lab import S3Lab

from spotctl.config import Settings
from spotctl.storage.s3 import S3Store

s3_lab = lab.s3_lab  # the fixtures, shared by module attribute
moto_s3_endpoint = lab.moto_s3_endpoint


def test_logs_on_s3_are_read_back_once(s3_lab: S3Lab) -> None:
    check_logs_are_read_back_once(s3_lab, "s3", S3Store, Settings(home=s3_lab.settings.home, aws=s3_lab.settings.aws))

"""S3Store against moto over HTTP: outcomes are checked in the bucket (with a plain boto3
client) and on disk, never on S3Store's own word. What every bucket store does (life cycle,
missing buckets and objects, keys escaping the download dir) is test_store_contract.py's."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import s3_lab as lab
from botocore.exceptions import BotoCoreError
from s3_lab import S3Lab
from trees import read_tree

from spotctl.clouds.aws_clients import forget_clients
from spotctl.storage.base import StorageError
from spotctl.storage.s3 import S3Store

s3_lab = lab.s3_lab  # the fixtures, shared by module attribute
moto_s3_endpoint = lab.moto_s3_endpoint


def test_many_objects_versions_and_paging(s3_lab: S3Lab, tmp_path: Path) -> None:
    """> 1000 objects (list pages of 1000), plus versions and delete markers: delete_bucket
    must remove them all in pages, or S3 refuses to delete the bucket."""
    src = tmp_path / "many"
    for i in range(1010):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}").write_bytes(str(i).encode())
    store = S3Store(s3_lab.settings)
    store.create_bucket("many-bucket")
    raw = s3_lab.client()
    raw.put_bucket_versioning(Bucket="many-bucket", VersioningConfiguration={"Status": "Enabled"})
    store.upload_dir(str(src), "many-bucket", "p")
    keys = store.list("many-bucket", "p")
    assert len(keys) == 1010 and keys == s3_lab.keys("many-bucket")

    out = tmp_path / "out"
    store.download_dir("many-bucket", "p", str(out))
    assert read_tree(out) == read_tree(src)

    with ThreadPoolExecutor(8) as pool:  # more versions, and delete markers
        list(pool.map(lambda k: raw.put_object(Bucket="many-bucket", Key=k, Body=b"v2"), keys[:30]))
        list(pool.map(lambda k: raw.delete_object(Bucket="many-bucket", Key=k), keys[30:60]))
    versions = raw.list_object_versions(Bucket="many-bucket")
    assert versions["IsTruncated"] and versions.get("DeleteMarkers")
    mpu = raw.create_multipart_upload(Bucket="many-bucket", Key="unfinished")
    raw.upload_part(Bucket="many-bucket", Key="unfinished", UploadId=mpu["UploadId"], PartNumber=1, Body=b"x")

    store.delete_bucket("many-bucket")
    assert s3_lab.buckets() == []


def test_region_placement(s3_lab: S3Lab, tmp_path: Path) -> None:
    eu = S3Store(s3_lab.settings, region="eu-west-1")
    eu.create_bucket("eu-bucket")
    us = S3Store(s3_lab.settings, region="us-east-1")
    us.create_bucket("us-bucket")
    raw = s3_lab.client()
    assert raw.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"
    assert raw.get_bucket_location(Bucket="us-bucket")["LocationConstraint"] is None

    # a store of another region finds the bucket's own region and works there
    assert us.bucket_region("eu-bucket") == "eu-west-1" and us.bucket_region("us-bucket") == "us-east-1"
    (tmp_path / "f").write_bytes(b"data")
    us.upload_file(str(tmp_path / "f"), "eu-bucket", "k")
    assert s3_lab.client("eu-west-1").get_object(Bucket="eu-bucket", Key="k")["Body"].read() == b"data"
    eu.create_bucket("us-bucket")  # ours already (elsewhere): no-op
    for name in ("eu-bucket", "us-bucket"):
        us.delete_bucket(name)
    assert s3_lab.buckets() == []


@pytest.mark.parametrize("name", ["Bad_Name", "ab", "a..b", "a.-b", "192.168.1.10", "xn--abc", "x-s3alias",
                                  "-start", "a" * 64])
def test_invalid_bucket_names_refused_before_any_call(s3_lab: S3Lab, name: str) -> None:
    store = S3Store(s3_lab.settings)
    for call in (store.create_bucket, store.bucket_exists, store.delete_bucket, store.list):
        with pytest.raises(StorageError, match=f"invalid bucket name '{name}'"):
            call(name)
    assert s3_lab.buckets() == []


def test_access_denied_is_a_clear_error(s3_lab: S3Lab) -> None:
    """A bucket that exists but is not ours (moto with IAM auth on, a user with no rights)."""
    S3Store(s3_lab.settings).create_bucket("someone-elses")
    s3_lab.iam_user("admin", allow_s3=True)
    nobody = s3_lab.iam_user("nobody", allow_s3=False)
    s3_lab.enable_auth()
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = nobody
    forget_clients()
    store = S3Store(s3_lab.settings)
    with pytest.raises(StorageError, match=r"S3 bucket 'someone-elses' exists but is not yours"):
        store.bucket_exists("someone-elses")
    with pytest.raises(StorageError, match=r"S3 bucket 'someone-elses'.*access denied"):
        store.list("someone-elses")
    s3_lab.disable_auth()
    store.delete_bucket("someone-elses")


def test_unreachable_endpoint_is_transient_not_storage_error(s3_lab: S3Lab) -> None:
    """Connection trouble must reach the caller's retry policy, not look like a bad bucket."""
    s3_lab.settings.aws.endpoint_url = "http://127.0.0.1:9"  # discard port: connection refused
    with pytest.raises(BotoCoreError):
        S3Store(s3_lab.settings).bucket_exists("any-bucket")


def test_big_files_go_multipart(s3_lab: S3Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold, uploads are multipart and downloads ranged (5 MiB parts here)."""
    import boto3.s3.transfer

    import spotctl.storage.s3 as s3_module

    part = 5 * 1024 * 1024
    monkeypatch.setattr(s3_module, "MULTIPART_CHUNK", part)
    monkeypatch.setattr(s3_module, "TRANSFER", boto3.s3.transfer.TransferConfig(
        multipart_threshold=part, multipart_chunksize=part, max_concurrency=2))
    data = os.urandom(2 * part + 123)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(data)
    store = S3Store(s3_lab.settings)
    store.create_bucket("big-bucket")
    store.upload_dir(str(tmp_path / "src"), "big-bucket", "b")
    etag = s3_lab.client().head_object(Bucket="big-bucket", Key="b/big.bin")["ETag"]
    assert etag.endswith('-3"')  # a multipart upload of 3 parts
    store.download_dir("big-bucket", "b", str(tmp_path / "out"))
    store.download_file("big-bucket", "b/big.bin", str(tmp_path / "one.bin"))
    assert (tmp_path / "out" / "big.bin").read_bytes() == data == (tmp_path / "one.bin").read_bytes()
    store.delete_bucket("big-bucket")


def test_staging_makes_new_buckets_in_the_jobs_region(s3_lab: S3Lab, tmp_path: Path) -> None:
    """A launch's new `store: s3` bucket goes to the region of the job's first AWS candidate
    (where it will most likely run), not boto3's default region."""
    from spotctl.launch import bucket_regions, delete_buckets, stage
    from spotctl.models import Candidate
    from spotctl.task import load_task_file

    (tmp_path / "task.yaml").write_text("file_mounts:\n  /ckpt: {name: ckpt-in-job-region, store: s3, persistent: false}\n"
                                        "run: echo\n")
    task = load_task_file(tmp_path / "task.yaml").tasks[0]
    candidates = [Candidate(cloud=c, region=r, zone=f"{r}a", instance_type="t", use_spot=True, price=p)
                  for c, r, p in (("gcp", "us-east1", 0.01), ("aws", "eu-west-1", 0.02), ("aws", "us-east-1", 0.03))]
    staged = stage(task, 21, s3_lab.settings, bucket_regions(candidates))
    location = s3_lab.client().get_bucket_location(Bucket="ckpt-in-job-region")["LocationConstraint"]
    assert location == "eu-west-1"
    delete_buckets(staged.ephemeral_buckets, s3_lab.settings)
    assert s3_lab.buckets() == []

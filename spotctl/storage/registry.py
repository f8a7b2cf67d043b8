"""Which Store serves a bucket, and how bucket URLs (`s3://b/p`, `gs://b/p`, `local://b/p`) are read
and written."""

from __future__ import annotations

import re

from spotctl.config import Settings
from spotctl.storage.base import StorageError, Store
from spotctl.storage.local import LocalStore, clean_key

SCHEMES = {"local": "local", "s3": "s3", "gs": "gcs", "gcs": "gcs", "r2": "r2", "cos": "ibm",
           "oci": "oci", "azure": "azure", "https": "azure"}
"""URL scheme -> store kind (SkyPilot's schemes). `local`, `s3` and `gcs` are implemented today."""
SUPPORTED = ("local", "s3", "gcs")
URL_SCHEME = {"gcs": "gs"}
"""Store kind -> the scheme its bucket URLs are written with, where the two differ."""

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)/?(.*)$")


def get_store(settings: Settings, store: str | None = None, region: str | None = None) -> Store:
    """The store named `store` (case-insensitive, as task YAML writes it); None = local.
    New buckets are created in `region` (the job's, see launch/staging.py); without one, `s3` ones
    in the default AWS region of boto3's chain (AWS_REGION / AWS_DEFAULT_REGION, else
    us-east-1), `gcs` ones in the first of `gcp.regions`, else US-CENTRAL1. Existing buckets
    are used where they are."""
    kind = (store or "local").lower()
    if kind == "local":
        return LocalStore(settings.home / "local_buckets")
    if kind == "s3":
        from spotctl.storage.s3 import S3Store  # boto3 is only imported when S3 is used

        return S3Store(settings, region)
    if kind == "gcs":
        from spotctl.storage.gcs import GcsStore  # google-cloud-storage is only imported when GCS is used

        return GcsStore(settings, region)
    if kind in SCHEMES.values():
        raise StorageError(f"{kind} buckets are not supported yet (supported: {', '.join(SUPPORTED)})")
    raise StorageError(f"unknown store {store!r} (supported: {', '.join(SUPPORTED)})")


STORE_CLOUDS = {"s3": "aws", "gcs": "gcp"}
"""The cloud whose regions a store's buckets live in."""


def bucket_url(kind: str, bucket: str, prefix: str = "") -> str:
    """The URL of a bucket of store `kind`: ('gcs', 'b', 'p') -> 'gs://b/p' (parse_bucket_url's
    inverse)."""
    url = f"{URL_SCHEME.get(kind, kind)}://{bucket}"
    return f"{url}/{clean_key(prefix)}" if clean_key(prefix) else url


def parse_bucket_url(url: str) -> tuple[str, str, str]:
    """'s3://bucket/a/b' -> ('s3', 'bucket', 'a/b'); 'gs://' gives 'gcs'. Raises StorageError
    for a URL that is not a bucket URL."""
    m = _URL.match(url.strip())
    if not m:
        raise StorageError(f"{url!r} is not a bucket URL (like s3://bucket/path, gs://bucket/path or local://bucket)")
    scheme, bucket, prefix = m.group(1).lower(), m.group(2), m.group(3)
    if scheme not in SCHEMES:
        raise StorageError(f"{scheme}:// sources are not supported (use a bucket URL like s3://bucket/path)")
    if not bucket:
        raise StorageError(f"{url!r} names no bucket")
    return SCHEMES[scheme], bucket, clean_key(prefix)


def delete_buckets(names: list[str], settings: Settings, store: str | None = None) -> None:
    """Delete the job's ephemeral buckets at its end. Idempotent (gone buckets are skipped),
    so the teardown activity can be retried. Here, not in launch/, so the worker's teardown
    needs no CLI-side module (launch/ pulls in the task parser)."""
    for name in names:
        if "://" in name:  # a bucket of another store than the default, e.g. s3://b or gs://b
            kind, bucket, _ = parse_bucket_url(name)
            get_store(settings, kind).delete_bucket(bucket)
        else:
            get_store(settings, store).delete_bucket(name)

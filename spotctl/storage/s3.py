"""S3Store: the Store protocol on Amazon S3 (or anything speaking its API, e.g. the lab's moto).

Every call goes through `aws_clients.aws_client`, so it is bounded by spotctl's connect/read
time-outs and honours `Settings.aws.endpoint_url`. Buckets are created in the store's region;
object calls on an existing bucket use a client of *the bucket's* region (looked up once with
GetBucketLocation and cached), so a bucket made elsewhere works without redirects.

Errors: what retrying cannot fix (no such bucket or key, access denied, invalid or taken
name, a key that would escape the target directory) raises StorageError with a message that
names the bucket and says why. Transient trouble (time-outs, connection errors, throttling,
5xx) is re-raised as botocore's own exception, so the caller's retry policy can retry it.

S3 has no directories, symlinks or modes: `upload_dir` stores each regular file (symlinks are
followed, dangling ones skipped, empty directories are lost) as `prefix/relpath`, and
`download_dir` recreates the tree from the keys.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from spotctl.clouds.aws_clients import aws_client, has_credentials
from spotctl.config import Settings
from spotctl.storage.base import StorageError
from spotctl.storage.local import check_bucket_name, clean_key
from spotctl.storage.tree import download_plan, keys_under, replacing, run_parallel, upload_plan, upload_source

DEFAULT_REGION = "us-east-1"
MULTIPART_CHUNK = 64 * 1024 * 1024
TRANSFER = TransferConfig(multipart_threshold=MULTIPART_CHUNK, multipart_chunksize=MULTIPART_CHUNK,
                          max_concurrency=4, use_threads=True)
"""Files above 64 MiB go up in 64 MiB parts, 4 at a time (10,000 parts: files up to 640 GiB)."""
DELETE_BATCH = 1000
"""DeleteObjects takes at most 1000 keys per call."""

_NOT_FOUND = {"NoSuchBucket", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "AccountProblem"}
_PERMANENT = _NOT_FOUND | _DENIED | {"NoSuchKey", "InvalidBucketName", "BucketAlreadyExists",
                                     "IllegalLocationConstraintException", "InvalidLocationConstraint",
                                     "InvalidObjectState", "BucketNotEmpty", "MethodNotAllowed"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _why(exc: ClientError) -> str:
    code = _code(exc)
    if code in _NOT_FOUND:
        return "no such bucket"
    if code in _DENIED:
        return f"access denied ({code}): it exists but is not yours, or the credentials may not use it"
    if code == "NoSuchKey":
        return "no such object"
    if code == "InvalidBucketName":
        return "invalid bucket name"
    if code == "BucketAlreadyExists":
        return "the name is taken by another AWS account (bucket names are global)"
    msg = exc.response.get("Error", {}).get("Message") or ""
    return f"{code}: {msg}".strip(": ")


def _fail(exc: ClientError, bucket: str, doing: str) -> Exception:
    """StorageError for what retrying cannot fix; the ClientError itself otherwise."""
    if _code(exc) in _PERMANENT or _status(exc) in (403, 404):
        return StorageError(f"S3 bucket {bucket!r}: cannot {doing}: {_why(exc)}")
    return exc


class S3Store:
    """Implements the Store protocol on S3; see the module docstring."""

    name = "s3"

    def __init__(self, settings: Settings, region: str | None = None) -> None:
        self.settings = settings
        self.region = (region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                       or DEFAULT_REGION)
        self._regions: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(region={self.region!r}, endpoint={self.settings.aws.endpoint_url!r})"

    def check_name(self, name: str) -> str:
        return check_bucket_name(name)

    # -- clients and regions -------------------------------------------------------------

    def _client(self, region: str | None = None) -> Any:
        if not has_credentials(self.settings):  # not a fault of the moment: say it, once
            raise StorageError("S3: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                               "or AWS_PROFILE, or run `aws configure`)")
        return aws_client(self.settings, "s3", region or self.region)

    def bucket_region(self, bucket: str) -> str:
        """The region the bucket lives in (cached). StorageError if it is missing or not ours."""
        check_bucket_name(bucket)
        with self._lock:
            if bucket in self._regions:
                return self._regions[bucket]
        try:
            loc = self._client().get_bucket_location(Bucket=bucket).get("LocationConstraint")
            region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(loc, loc)
        except ClientError as exc:
            # GetBucketLocation needs the owner's permission; HeadBucket's error still says where.
            region = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
            if _code(exc) not in _DENIED or not region:
                raise _fail(exc, bucket, "use it") from None
        with self._lock:
            self._regions[bucket] = region
        return region

    def _bucket_client(self, bucket: str) -> Any:
        return self._client(self.bucket_region(bucket))

    def _forget(self, bucket: str) -> None:
        with self._lock:
            self._regions.pop(bucket, None)

    # -- buckets ---------------------------------------------------------------------------

    def list_buckets(self) -> list[str]:
        """Every bucket of the account, sorted (for the orphan sweeper)."""
        return sorted(b["Name"] for b in self._client().list_buckets().get("Buckets", []))

    def last_changed(self, name: str) -> float:
        """Newest LastModified of any object (or the bucket's creation), epoch seconds."""
        newest = 0.0
        for b in self._client().list_buckets().get("Buckets", []):
            if b["Name"] == name:
                newest = b["CreationDate"].timestamp()
        for obj in self._objects(name, ""):
            newest = max(newest, obj["LastModified"].timestamp())
        if not newest:
            raise StorageError(f"S3 bucket {name!r} not found")
        return newest

    def create_bucket(self, name: str) -> None:
        check_bucket_name(name)
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client().create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise _fail(exc, name, f"create the bucket in {self.region}") from None
            return  # ours already, wherever it is: bucket_region finds out when needed
        with self._lock:
            self._regions[name] = self.region

    def bucket_exists(self, name: str) -> bool:
        check_bucket_name(name)
        try:
            self._client().head_bucket(Bucket=name)
            return True
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                self._forget(name)
                return False
            if _status(exc) == 403:
                raise StorageError(f"S3 bucket {name!r} exists but is not yours (access denied)") from None
            raise _fail(exc, name, "check the bucket") from None

    def delete_bucket(self, name: str) -> None:
        """Deletes every object version, delete marker and unfinished multipart upload, in
        pages, then the bucket. A bucket that is (or becomes) gone is a no-op."""
        check_bucket_name(name)
        try:
            client = self._bucket_client(name)
        except StorageError:
            if not self.bucket_exists(name):
                return
            raise
        try:
            for _ in range(3):  # a writer racing with us can refill it; try a few rounds
                self._empty(client, name)
                try:
                    client.delete_bucket(Bucket=name)
                    break
                except ClientError as exc:
                    if _code(exc) != "BucketNotEmpty":
                        raise
            else:
                raise StorageError(f"cannot delete S3 bucket {name!r}: something keeps writing to it")
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise _fail(exc, name, "delete the bucket") from None
        self._forget(name)

    def _empty(self, client: Any, name: str) -> None:
        batch: list[dict[str, str]] = []

        def flush() -> None:
            if batch:
                out = client.delete_objects(Bucket=name, Delete={"Objects": list(batch), "Quiet": True})
                errors = [e for e in out.get("Errors", []) if e.get("Code") != "NoSuchKey"]
                if errors:
                    e = errors[0]
                    raise StorageError(f"cannot delete {e.get('Key')!r} in S3 bucket {name!r}: "
                                       f"{e.get('Code')}: {e.get('Message')} ({len(errors)} errors)")
                batch.clear()

        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                batch.append({"Key": v["Key"], "VersionId": v["VersionId"]})
                if len(batch) == DELETE_BATCH:
                    flush()
        flush()
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for up in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])

    # -- objects ---------------------------------------------------------------------------

    def _objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object whose key starts with `prefix` (raw string prefix), in pages."""
        client = self._bucket_client(bucket)
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except ClientError as exc:
            raise _fail(exc, bucket, "list objects") from None

    def upload_dir(self, local_dir: str, bucket: str, prefix: str = "") -> None:
        jobs = upload_plan(local_dir, prefix, "S3", bucket)
        client = self._bucket_client(bucket)
        run_parallel(lambda job: self._put(client, job[0], bucket, job[1]), jobs, "s3")

    def upload_file(self, local_file: str, bucket: str, key: str) -> None:
        path, key = upload_source(local_file, key, "S3", bucket)
        self._put(self._bucket_client(bucket), path, bucket, key)

    def _put(self, client: Any, path: str, bucket: str, key: str) -> None:
        """One PutObject for a small file (a transfer manager per file costs more than the
        upload), boto3's managed (multipart, parallel) upload for a big one."""
        try:
            if os.path.getsize(path) < MULTIPART_CHUNK:
                with open(path, "rb") as f:
                    client.put_object(Bucket=bucket, Key=key, Body=f)
            else:
                client.upload_file(path, bucket, key, Config=TRANSFER)
        except ClientError as exc:
            raise _fail(exc, bucket, f"upload {key!r}") from None
        except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise _fail(cause, bucket, f"upload {key!r}") from None
            raise

    def download_dir(self, bucket: str, prefix: str, local_dir: str) -> None:
        """Every object under `prefix/` into local_dir. Keys that would land outside local_dir
        are refused before anything is written; keys ending in '/' (folder markers) only make
        directories. StorageError when a non-empty prefix holds nothing."""
        base = clean_key(prefix)
        objects = ((o["Key"], o.get("Size")) for o in self._objects(bucket, f"{base}/" if base else ""))
        jobs = download_plan(objects, base, local_dir, "S3", bucket)
        client = self._bucket_client(bucket)
        run_parallel(lambda job: self._get(client, bucket, *job), jobs, "s3")

    def download_file(self, bucket: str, key: str, local_file: str) -> None:
        key = clean_key(key)
        if not key:
            raise StorageError(f"cannot download from S3 bucket {bucket!r}: empty key")
        self._get(self._bucket_client(bucket), bucket, key, Path(local_file).expanduser())

    def _get(self, client: Any, bucket: str, key: str, dest: Path, size: int | None = None) -> None:
        """One streamed GetObject when the object is known to be small, else boto3's managed
        (ranged, parallel) download. Either writes a temporary file and renames it."""
        try:
            with replacing(dest, "s3") as tmp:
                if size is not None and size < MULTIPART_CHUNK:
                    body = client.get_object(Bucket=bucket, Key=key)["Body"]
                    with open(tmp, "wb") as f:
                        for chunk in iter(lambda: body.read(1 << 20), b""):
                            f.write(chunk)
                else:
                    client.download_file(bucket, key, str(tmp), Config=TRANSFER)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise StorageError(f"S3 bucket {bucket!r} has no object {key!r}") from None
            raise _fail(exc, bucket, f"download {key!r}") from None

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        return keys_under((o["Key"] for o in self._objects(bucket, clean_key(prefix))), prefix)

    def node_sync(self, bucket: str, prefix: str = "", *, credentials: bool = True) -> dict | None:
        """The bucket's region and endpoint for the node agent's bucket_sync, and with
        `credentials` short-lived ones that may use only this prefix of this bucket (STS; see
        clouds/aws_node_creds.py), never the worker's own keys. Without (the VM has an
        instance role), the agent uses the VM's role."""
        from spotctl.clouds.aws_node_creds import NodeCredentialsRefused, scoped_credentials

        key_prefix, region = clean_key(prefix), self.bucket_region(bucket)
        sync: dict[str, Any] = {"kind": "s3", "bucket": bucket, "prefix": key_prefix, "region": region,
                                "endpoint": self.settings.aws.endpoint_url}
        if credentials:
            try:
                sync.update(scoped_credentials(self.settings, bucket, key_prefix, region))
            except NodeCredentialsRefused as exc:
                raise StorageError(f"S3 bucket {bucket!r}: {exc}") from None
        return sync

    def local_path(self, bucket: str, prefix: str = "") -> str | None:
        return None

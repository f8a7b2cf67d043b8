"""The Store protocol: buckets of objects that outlive every instance of a job.

A job's checkpoints, its staged workdir and its local file mounts live in buckets, never on
a VM, because a spot VM can vanish at any moment. The protocol is cloud-neutral: the local
cloud's `LocalStore` keeps a bucket as a directory on the host; `S3Store` and `GcsStore`
implement the same methods with object APIs. Keys are '/'-separated paths inside a bucket;
a prefix is a key "directory" ('' = the whole bucket).
"""

from __future__ import annotations

from typing import Protocol


class StorageError(Exception):
    """A bucket operation that cannot succeed as asked (bad name, missing bucket, bad key,
    unsupported store); the message names the bucket and says why."""


class Store(Protocol):
    name: str
    """The store's kind as written in task YAML (`local`, `s3`, `gcs`)."""

    def check_name(self, name: str) -> str:
        """The bucket name if this store accepts it, else StorageError saying why (no call:
        staging checks names before it creates anything)."""
        ...

    def create_bucket(self, name: str) -> None:
        """Create the bucket; a no-op when it already exists."""
        ...

    def bucket_exists(self, name: str) -> bool:
        ...

    def delete_bucket(self, name: str) -> None:
        """Delete the bucket and everything in it; a no-op when it is already gone."""
        ...

    def upload_dir(self, local_dir: str, bucket: str, prefix: str = "") -> None:
        """Copy a local directory tree under `prefix` (existing objects are overwritten)."""
        ...

    def upload_file(self, local_file: str, bucket: str, key: str) -> None:
        ...

    def download_dir(self, bucket: str, prefix: str, local_dir: str) -> None:
        """Copy every object under `prefix` into local_dir (created if missing)."""
        ...

    def download_file(self, bucket: str, key: str, local_file: str) -> None:
        ...

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under `prefix`, relative to the bucket, sorted."""
        ...

    def node_sync(self, bucket: str, prefix: str = "", *, credentials: bool = True) -> dict | None:
        """What a node agent needs to keep a directory of a VM in step with the bucket (MOUNT
        and MOUNT_CACHED on a real VM; see node_agent/bucket_sync.py): a JSON-able dict with
        "kind", "bucket", "prefix" and the store's endpoint and region, and with `credentials`
        short-lived ones that reach only this prefix of this bucket (never the worker's own;
        without, the VM's own identity is used). None when the store cannot be reached from a
        node that way."""
        ...

    def local_path(self, bucket: str, prefix: str = "") -> str | None:
        """The host directory holding `prefix` when the store is directory-backed (so the local
        cloud can link or bind-mount it and writes land in the bucket at once), else None."""
        ...

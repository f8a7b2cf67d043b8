"""LocalStore: the local cloud's bucket store, one directory per bucket on this host.

`$SPOTCTL_HOME/local_buckets/<bucket>/<key>`: the CLI (which stages files at launch) and the
workers (which put them on nodes) must share `$SPOTCTL_HOME`, as they already do for logs.
Because a bucket is a plain directory, `local_path` lets the local cloud show it live inside
an instance, so a job's checkpoint writes land in the bucket and survive the instance.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from spotctl.files import copy_tree
from spotctl.storage.base import StorageError

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> str:
    """S3's rules (the strictest of the clouds), so a name that works here works there too."""
    if not isinstance(name, str) or not _BUCKET_NAME.match(name) or any(s in name for s in ("..", ".-", "-.")):
        raise StorageError(
            f"invalid bucket name {name!r}: use 3-63 characters, lowercase letters, digits, '-' "
            "and '.', starting and ending with a letter or digit"
        )
    if _IP_ADDRESS.match(name):
        raise StorageError(f"invalid bucket name {name!r}: S3 forbids names that look like an IP address")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        raise StorageError(f"invalid bucket name {name!r}: S3 reserves the prefixes {', '.join(_RESERVED_PREFIXES)} "
                           f"and the suffixes {', '.join(_RESERVED_SUFFIXES)}")
    return name


def clean_key(key: str) -> str:
    """A key or prefix as a relative '/'-path; refuses anything that would leave the bucket."""
    parts = [p for p in str(key).replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StorageError(f"invalid key {key!r}: '..' is not allowed")
    return "/".join(parts)


class LocalStore:
    """Implements the Store protocol with directories; see the module docstring."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({self.root})"

    def check_name(self, name: str) -> str:
        return check_bucket_name(name)

    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / check_bucket_name(bucket)

    def _existing(self, bucket: str) -> Path:
        path = self._bucket_dir(bucket)
        if not path.is_dir():
            raise StorageError(f"bucket {bucket!r} not found (local store {self.root})")
        return path

    def _object(self, bucket: str, key: str) -> Path:
        key = clean_key(key)
        base = self._existing(bucket)
        return base / key if key else base

    def list_buckets(self) -> list[str]:
        """Every bucket's name, sorted (for the orphan sweeper; hidden leftovers of a delete
        are not buckets)."""
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))

    def last_changed(self, name: str) -> float:
        """When the bucket or anything in it last changed here (newest ctime, epoch seconds;
        ctime, because uploads keep the source files' mtimes): a bucket still being filled (a
        launch staging a big workdir) looks young, so the orphan sweeper spares it."""
        newest = self._existing(name).stat().st_ctime
        for dirpath, dirnames, filenames in os.walk(self._bucket_dir(name)):
            for entry in dirnames + filenames:
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, entry)).st_ctime)
                except FileNotFoundError:
                    continue
        return newest

    def create_bucket(self, name: str) -> None:
        self._bucket_dir(name).mkdir(parents=True, exist_ok=True)

    def bucket_exists(self, name: str) -> bool:
        return self._bucket_dir(name).is_dir()

    def delete_bucket(self, name: str) -> None:
        """Renamed away first, so a crash half-way never leaves a half-empty bucket under the
        bucket's name (the leftover is a hidden directory, removed on the next delete)."""
        path = self._bucket_dir(name)
        if not path.exists() and not path.is_symlink():
            return
        trash = self.root / f".deleting-{name}-{secrets.token_hex(4)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return  # a concurrent delete won
        shutil.rmtree(trash)
        for stale in self.root.glob(f".deleting-{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def upload_dir(self, local_dir: str, bucket: str, prefix: str = "") -> None:
        src = Path(local_dir).expanduser()
        if not src.is_dir():
            raise StorageError(f"cannot upload {src} to bucket {bucket!r}: not a directory")
        copy_tree(src, self._object(bucket, prefix))

    def upload_file(self, local_file: str, bucket: str, key: str) -> None:
        src = Path(local_file).expanduser()
        if not src.is_file():
            raise StorageError(f"cannot upload {src} to bucket {bucket!r}: not a file")
        if not clean_key(key):
            raise StorageError(f"cannot upload {src} to bucket {bucket!r}: empty key")
        _copy_file(src, self._object(bucket, key))

    def download_dir(self, bucket: str, prefix: str, local_dir: str) -> None:
        src = self._object(bucket, prefix)
        if not src.is_dir():
            raise StorageError(f"bucket {bucket!r} has nothing under {clean_key(prefix)!r}")
        copy_tree(src, Path(local_dir))

    def download_file(self, bucket: str, key: str, local_file: str) -> None:
        src = self._object(bucket, key)
        if not src.is_file():
            raise StorageError(f"bucket {bucket!r} has no object {clean_key(key)!r}")
        _copy_file(src, Path(local_file))

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        base = self._existing(bucket)
        start = self._object(bucket, prefix)
        if start.is_file() or start.is_symlink():
            return [clean_key(prefix)]
        keys: list[str] = []
        if start.is_dir():
            for dirpath, dirnames, filenames in os.walk(start):
                rel = Path(dirpath).relative_to(base)
                keys += [(rel / n).as_posix() for n in filenames]
                keys += [(rel / n).as_posix() for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        return sorted(keys)

    def node_sync(self, bucket: str, prefix: str = "", *, credentials: bool = True) -> dict | None:
        """A directory of this host cannot be reached from a VM's agent."""
        return None

    def local_path(self, bucket: str, prefix: str = "") -> str | None:
        return str(self._object(bucket, prefix))


def _copy_file(src: Path, dest: Path) -> None:
    """Overwrite dest with src's bytes, never writing through an existing symlink."""
    if dest.is_dir() and not dest.is_symlink():
        raise StorageError(f"cannot write {dest}: a directory is in the way")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        dest.unlink()
    shutil.copy2(src, dest)

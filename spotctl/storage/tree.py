"""The local-directory half of a bucket transfer, shared by the object stores (s3.py, gcs.py).

Object stores have no directories, symlinks or modes, so every store maps a tree the same way:
`upload_plan` lists each regular file (symlinks followed, each real directory once so a link
loop ends, dangling links skipped with a warning; empty directories are lost) with its key
`prefix/relpath`; `download_plan` turns keys back into paths, refusing any key that would land
outside the target directory before anything is written; `replacing` writes each file under
a temporary name and renames it, so a reader never sees half a file and a download never
writes through an old symlink; `run_parallel` moves many small files at once.

`label` ("S3", "GCS") only names the store in error messages.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spotctl.storage.base import StorageError
from spotctl.storage.local import clean_key

log = logging.getLogger(__name__)

PARALLEL_FILES = 8
"""Small files are sent/fetched this many at a time (the stores' clients are thread-safe)."""


def walk_files(src: Path) -> Iterator[tuple[str, str]]:
    """(path, '/'-relpath) of every file under src, following symlinks (each real directory
    once, so a link loop ends); dangling links are skipped with a warning."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        rel_dir = os.path.relpath(dirpath, src)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path):
                log.warning("not uploading %s: a dangling link or not a regular file", path)
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            yield path, rel.replace(os.sep, "/")


def upload_plan(local_dir: str, prefix: str, label: str, bucket: str) -> list[tuple[str, str]]:
    """(path, key) of every file to upload from local_dir under `prefix`."""
    src = Path(local_dir).expanduser()
    if not src.is_dir():
        raise StorageError(f"cannot upload {src} to {label} bucket {bucket!r}: not a directory")
    base = clean_key(prefix)
    return [(path, f"{base}/{rel}" if base else rel) for path, rel in walk_files(src)]


def upload_source(local_file: str, key: str, label: str, bucket: str) -> tuple[str, str]:
    """(path, clean key) of one file to upload; StorageError for a non-file or an empty key."""
    src = Path(local_file).expanduser()
    if not src.is_file():
        raise StorageError(f"cannot upload {src} to {label} bucket {bucket!r}: not a file")
    if not clean_key(key):
        raise StorageError(f"cannot upload {src} to {label} bucket {bucket!r}: empty key")
    return str(src), clean_key(key)


def keys_under(keys: Iterable[str], prefix: str) -> list[str]:
    """The object keys (not folder markers) under the directory `prefix`, or `prefix` itself,
    sorted; `keys` are listed by the raw string prefix."""
    base = clean_key(prefix)
    return sorted(k for k in keys
                  if not k.endswith("/") and (not base or k == base or k.startswith(base + "/")))


def download_plan(objects: Iterable[tuple[str, int | None]], prefix: str, local_dir: str, label: str,
                  bucket: str) -> list[tuple[str, Path, int | None]]:
    """(key, target, size) of every object to fetch from (key, size) pairs listed under
    `prefix/`. Every key is checked before local_dir and the folders of folder markers (keys
    ending in '/') are made. StorageError when a non-empty prefix holds nothing."""
    base = clean_key(prefix)
    start = f"{base}/" if base else ""
    dest_root = Path(local_dir).expanduser()
    root = os.path.realpath(dest_root)
    jobs: list[tuple[str, Path, int | None]] = []
    dirs: list[Path] = []
    for key, size in objects:
        target = safe_target(dest_root, root, key[len(start):], label, bucket, key)
        if key.endswith("/"):
            dirs.append(target)
        else:
            jobs.append((key, target, size))
    if base and not jobs and not dirs:
        raise StorageError(f"{label} bucket {bucket!r} has nothing under {base!r}")
    dest_root.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return jobs


def safe_target(dest_root: Path, root: str, rel: str, label: str, bucket: str, key: str) -> Path:
    """dest_root/rel, refusing a key whose relative part is absolute, has '..', or leads
    outside local_dir (also through a symlink already inside it)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts or (not parts and not key.endswith("/")):
        raise StorageError(f"refusing {label} object {key!r} of bucket {bucket!r}: it would be written outside "
                           f"{dest_root}")
    target = dest_root.joinpath(*parts)
    real = os.path.realpath(target.parent)
    if real != root and not real.startswith(root + os.sep):
        raise StorageError(f"refusing {label} object {key!r} of bucket {bucket!r}: {target.parent} leads outside "
                           f"{dest_root}")
    return target


@contextmanager
def replacing(dest: Path, tag: str) -> Iterator[Path]:
    """A temporary path beside `dest` to write; renamed over `dest` (replacing a file or an old
    symlink, never writing through it) when the block ends without error, removed otherwise."""
    if dest.is_dir() and not dest.is_symlink():
        raise StorageError(f"cannot write {dest}: a directory is in the way")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{tag}-{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def run_parallel(fn: Callable[[Any], None], jobs: list[Any], name: str) -> None:
    """fn(job) for every job, PARALLEL_FILES at a time; the first failure is raised (the
    others still finish first)."""
    if len(jobs) <= 1:
        for job in jobs:
            fn(job)
        return
    with ThreadPoolExecutor(max_workers=min(PARALLEL_FILES, len(jobs)), thread_name_prefix=name) as pool:
        for f in [pool.submit(fn, job) for job in jobs]:
            f.result()

"""Buckets and launch-time staging, on real directories (the local cloud's store)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from spotctl.config import Settings
from spotctl.launch import delete_buckets, ephemeral_bucket, stage
from spotctl.storage.base import StorageError
from spotctl.storage.local import LocalStore
from spotctl.storage.registry import get_store, parse_bucket_url
from spotctl.task import Task, TaskError, load_task_file


@pytest.fixture
def store(settings: Settings) -> LocalStore:
    s = get_store(settings)
    assert isinstance(s, LocalStore) and s.root == settings.home / "local_buckets"
    return s


def buckets(settings: Settings) -> list[str]:
    root = settings.home / "local_buckets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def task_from(tmp_path: Path, text: str) -> Task:
    """The task, loaded from tmp_path: relative paths are taken from the cwd, as in SkyPilot."""
    path = tmp_path / "task.yaml"
    path.write_text(text)
    with contextlib.chdir(tmp_path):
        return load_task_file(path).tasks[0]


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("A")
    (root / "sub" / "b.txt").write_text("B")
    os.symlink("a.txt", root / "link")
    return root


# -- LocalStore -----------------------------------------------------------------------------


def test_bucket_crud(store: LocalStore, tmp_path: Path) -> None:
    assert not store.bucket_exists("my-bucket")
    store.create_bucket("my-bucket")
    store.create_bucket("my-bucket")  # idempotent
    assert store.bucket_exists("my-bucket") and store.list("my-bucket") == []

    src = make_tree(tmp_path / "src")
    store.upload_dir(str(src), "my-bucket", "data/")
    store.upload_dir(str(src), "my-bucket", "data")  # overwrite, symlinks included
    single = tmp_path / "one.bin"
    single.write_bytes(b"\x00\x01")
    store.upload_file(str(single), "my-bucket", "files/one.bin")
    assert store.list("my-bucket") == ["data/a.txt", "data/link", "data/sub/b.txt", "files/one.bin"]
    assert store.list("my-bucket", "data/sub") == ["data/sub/b.txt"]
    assert store.list("my-bucket", "nothing") == []

    local = Path(store.local_path("my-bucket", "data"))
    assert local == store.root / "my-bucket" / "data" and os.readlink(local / "link") == "a.txt"

    out = tmp_path / "out"
    store.download_dir("my-bucket", "data", str(out))
    assert (out / "sub" / "b.txt").read_text() == "B" and os.readlink(out / "link") == "a.txt"
    store.download_file("my-bucket", "files/one.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"\x00\x01"

    store.delete_bucket("my-bucket")
    store.delete_bucket("my-bucket")  # already gone: no-op
    assert not store.bucket_exists("my-bucket") and list(store.root.iterdir()) == []
    assert src.is_dir() and (src / "a.txt").read_text() == "A"  # the source is untouched


def test_errors_name_the_bucket(store: LocalStore, tmp_path: Path) -> None:
    for bad in ("ab", "My-Bucket", "under_score", "-lead", "trail-", "a..b", "x" * 64, "a/b", ""):
        with pytest.raises(StorageError, match="invalid bucket name"):
            store.create_bucket(bad)
    store.create_bucket("a.b-1")
    with pytest.raises(StorageError, match="bucket 'missing-bucket' not found"):
        store.list("missing-bucket")
    with pytest.raises(StorageError, match="not found"):
        store.upload_file(__file__, "missing-bucket", "x")
    with pytest.raises(StorageError, match="'..' is not allowed"):
        store.upload_file(__file__, "a.b-1", "../escape")
    with pytest.raises(StorageError, match="not a directory"):
        store.upload_dir(str(tmp_path / "nope"), "a.b-1")
    with pytest.raises(StorageError, match="has nothing under"):
        store.download_dir("a.b-1", "nope", str(tmp_path / "out"))
    assert [p.name for p in store.root.iterdir()] == ["a.b-1"]


def test_registry(settings: Settings) -> None:
    assert parse_bucket_url("s3://my-bucket/a/b/") == ("s3", "my-bucket", "a/b")
    assert parse_bucket_url("gs://data") == ("gcs", "data", "")
    assert parse_bucket_url("local://ckpt/run-1") == ("local", "ckpt", "run-1")
    with pytest.raises(StorageError, match="not a bucket URL"):
        parse_bucket_url("/just/a/path")
    with pytest.raises(StorageError, match="ftp:// sources are not supported"):
        parse_bucket_url("ftp://host/x")
    assert get_store(settings, "LOCAL").name == "local"
    assert get_store(settings, "S3").name == "s3"
    assert get_store(settings, "GCS").name == "gcs"


# -- staging --------------------------------------------------------------------------------


def test_stage_workdir_local_mounts_and_buckets(settings: Settings, store: LocalStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "wd")
    make_tree(tmp_path / "data")
    (tmp_path / "conf.yaml").write_text("lr: 0.1\n")
    store.create_bucket("shared-input")
    (store.root / "shared-input" / "part").mkdir()
    (store.root / "shared-input" / "part" / "x").write_text("X")
    task = task_from(tmp_path, """
workdir: wd
file_mounts:
  ~/data: ./data
  /etc/conf.yaml: conf.yaml
  /checkpoint:
    name: ckpt-bucket
    mode: MOUNT
  ~/scratch:
    name: scratch-bucket
    source: ./data
    persistent: false
  /input: local://shared-input/part
run: echo hi
""")
    staged = stage(task, 7, settings)
    eph = ephemeral_bucket(7)
    assert eph == "spotctl-job-7-files"
    assert staged.ephemeral_buckets == [eph, "scratch-bucket"]
    assert buckets(settings) == ["ckpt-bucket", "scratch-bucket", "shared-input", eph]

    wd = staged.workdir_mount
    assert (wd.target, wd.bucket, wd.bucket_path, wd.mode) == ("~/sky_workdir", eph, "workdir", "COPY")
    assert store.list(eph, "workdir") == ["workdir/a.txt", "workdir/link", "workdir/sub/b.txt"]

    data, conf, ckpt, scratch, inp = staged.file_mounts
    assert (data.bucket, data.bucket_path, data.mode, data.is_file) == (eph, "mounts/0", "COPY", False)
    assert (conf.bucket, conf.bucket_path, conf.is_file, conf.target) == (eph, "mounts/1/conf.yaml", True, "/etc/conf.yaml")
    assert store.list(eph, "mounts") == ["mounts/0/a.txt", "mounts/0/link", "mounts/0/sub/b.txt", "mounts/1/conf.yaml"]
    assert (ckpt.bucket, ckpt.bucket_path, ckpt.mode, ckpt.store) == ("ckpt-bucket", "", "MOUNT", "local")
    assert store.list("ckpt-bucket") == []
    assert (scratch.bucket, scratch.mode) == ("scratch-bucket", "MOUNT")
    assert store.list("scratch-bucket") == ["a.txt", "link", "sub/b.txt"]
    assert (inp.bucket, inp.bucket_path, inp.store, inp.mode) == ("shared-input", "part", "local", "COPY")

    delete_buckets(staged.ephemeral_buckets, settings)
    delete_buckets(staged.ephemeral_buckets, settings)  # idempotent (a retried teardown)
    assert buckets(settings) == ["ckpt-bucket", "shared-input"]  # persistent ones outlive the job


def test_stage_without_local_files_makes_no_ephemeral_bucket(settings: Settings, tmp_path: Path) -> None:
    task = task_from(tmp_path, "file_mounts:\n  ~/ckpt:\n    name: ckpt-bucket\nrun: echo\n")
    staged = stage(task, 1, settings)
    assert staged.workdir_mount is None and staged.ephemeral_buckets == []
    assert buckets(settings) == ["ckpt-bucket"]
    again = stage(task, 2, settings)  # an existing persistent bucket is reused as is
    assert again.file_mounts == staged.file_mounts


def test_failed_staging_leaves_no_bucket(settings: Settings, store: LocalStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "wd")
    store.create_bucket("existing-bucket")
    task = task_from(tmp_path, """
workdir: wd
file_mounts:
  ~/a: {name: new-bucket, source: ./wd}
  ~/b: {name: existing-bucket}
  /data: s3://some-bucket/path
run: echo
""")
    with pytest.raises(TaskError) as info:
        stage(task, 3, settings)
    assert "file_mounts./data: S3: no AWS credentials found" in str(info.value)
    assert "task.yaml" in str(info.value)
    assert buckets(settings) == ["existing-bucket"]  # what staging created is gone, the rest kept

    bad_name = task_from(tmp_path, "workdir: wd\nfile_mounts:\n  /c: {name: Bad_Name}\nrun: echo\n")
    with pytest.raises(TaskError, match=r"file_mounts\./c: invalid bucket name 'Bad_Name'"):
        stage(bad_name, 4, settings)
    with pytest.raises(TaskError, match="bucket 'nope-bucket' does not exist"):
        stage(task_from(tmp_path, "file_mounts:\n  /c: local://nope-bucket\nrun: echo\n"), 5, settings)
    with pytest.raises(TaskError, match=r"file_mounts\./c: GCS: no GCP credentials found"):
        stage(task_from(tmp_path, "file_mounts:\n  /c: {name: gbucket, store: gcs}\nrun: echo\n"), 6, settings)
    assert buckets(settings) == ["existing-bucket"]


def test_pre_existing_bucket_is_never_deleted_by_persistent_false(settings: Settings, store: LocalStore, tmp_path: Path) -> None:
    """As in SkyPilot, persistent: false deletes only buckets the job created."""
    store.create_bucket("users-bucket")
    task = task_from(tmp_path, "file_mounts:\n  /c: {name: users-bucket, persistent: false}\nrun: echo\n")
    assert stage(task, 8, settings).ephemeral_buckets == []

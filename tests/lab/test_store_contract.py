"""The bucket store's contract, the same checks for S3Store against moto and GcsStore against
fake-gcs-server, both over HTTP: outcomes are checked in the bucket (with the cloud's plain
client) and on disk, never on the store's own word. What one store alone does (S3's versions
and multipart, GCS's tokens and resumable uploads) stays in test_s3_store.py and
test_gcs_store.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gcs_lab as gcs
import pytest
import s3_lab as s3
from gcs_lab import GcsLab
from s3_lab import S3Lab
from trees import make_tree, read_tree

from spotctl.storage.base import StorageError, Store
from spotctl.storage.gcs import GcsStore
from spotctl.storage.registry import SUPPORTED, get_store
from spotctl.storage.s3 import S3Store

s3_lab = s3.s3_lab  # the fixtures, shared by module attribute
moto_s3_endpoint = s3.moto_s3_endpoint
gcs_lab = gcs.gcs_lab
fake_gcs_endpoint = gcs.fake_gcs_endpoint


@dataclass
class Lab:
    """One store in its lab: the lab's plain client (buckets, keys, body, put, delete) and the
    store under test."""

    lab: S3Lab | GcsLab
    store: Store
    kind: str
    """The store's name in task YAML ('s3', 'gcs')."""
    label: str
    """How its messages name it ('S3', 'GCS')."""
    store_type: type


@pytest.fixture(params=["s3", "gcs"])
def bucket_lab(request: pytest.FixtureRequest) -> Lab:
    kind = request.param
    lab = request.getfixturevalue(f"{kind}_lab")
    store_type = S3Store if kind == "s3" else GcsStore
    return Lab(lab, store_type(lab.settings), kind, kind.upper(), store_type)


def test_registry_knows_the_store(bucket_lab: Lab) -> None:
    assert bucket_lab.kind in SUPPORTED
    store = get_store(bucket_lab.lab.settings, bucket_lab.label)  # case-insensitive, as task YAML writes it
    assert isinstance(store, bucket_lab.store_type) and store.name == bucket_lab.kind
    assert store.local_path("any-bucket", "x") is None


def test_bucket_life_cycle(bucket_lab: Lab, tmp_path: Path) -> None:
    lab, store = bucket_lab.lab, bucket_lab.store
    assert not store.bucket_exists("life-bucket")
    store.create_bucket("life-bucket")
    store.create_bucket("life-bucket")  # already ours: no-op
    assert store.bucket_exists("life-bucket") and lab.buckets() == ["life-bucket"]

    src = tmp_path / "src"
    expected = make_tree(src)
    store.upload_dir(str(src), "life-bucket", "/jobs/./7/")
    assert lab.keys("life-bucket") == sorted(f"jobs/7/{rel}" for rel in expected)
    assert lab.body("life-bucket", "jobs/7/a/b/deep.bin") == expected["a/b/deep.bin"]
    assert lab.body("life-bucket", "jobs/7/a/with space+plus.txt") == b"odd name"
    assert lab.body("life-bucket", "jobs/7/empty") == b""

    store.upload_file(str(src / "top.txt"), "life-bucket", "single/file.txt")
    assert store.list("life-bucket", "single") == ["single/file.txt"]
    assert store.list("life-bucket", "single/file.txt") == ["single/file.txt"]
    assert store.list("life-bucket", "sing") == []  # a prefix is a directory, not a string prefix
    assert store.list("life-bucket", "jobs/7/a") == ["jobs/7/a/b/deep.bin", "jobs/7/a/with space+plus.txt"]
    assert store.list("life-bucket") == lab.keys("life-bucket")

    out = tmp_path / "out"
    (out / "stale").mkdir(parents=True)
    (out / "top.txt").symlink_to(tmp_path / "must-not-be-written")
    store.download_dir("life-bucket", "jobs/7", str(out))
    assert not (tmp_path / "must-not-be-written").exists()
    assert not (out / "top.txt").is_symlink()
    assert read_tree(out) == expected
    assert not [p for p in out.rglob(".*gcs-*")]  # no temporary file left
    store.download_file("life-bucket", "single/file.txt", str(tmp_path / "one" / "f.txt"))
    assert (tmp_path / "one" / "f.txt").read_bytes() == b"top"

    store.upload_dir(str(src), "life-bucket", "jobs/7")  # overwrite: same keys, no error
    assert len(lab.keys("life-bucket", "jobs/7/")) == len(expected)
    assert store.last_changed("life-bucket") > 0 and store.list_buckets() == ["life-bucket"]

    store.delete_bucket("life-bucket")
    assert lab.buckets() == [] and not store.bucket_exists("life-bucket")
    store.delete_bucket("life-bucket")  # gone: no-op


def test_missing_bucket_and_object_errors(bucket_lab: Lab, tmp_path: Path) -> None:
    store, label = bucket_lab.store, bucket_lab.label
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "g").write_bytes(b"y")
    calls = [
        lambda: store.list("no-such-bucket"),
        lambda: store.upload_file(str(tmp_path / "f"), "no-such-bucket", "k"),
        lambda: store.upload_dir(str(tmp_path / "full"), "no-such-bucket", "p"),
        lambda: store.download_dir("no-such-bucket", "p", str(tmp_path / "out")),
        lambda: store.download_file("no-such-bucket", "k", str(tmp_path / "out2")),
    ]
    if bucket_lab.kind == "s3":  # S3Store asks for the bucket first; GCS uploads nothing of an empty dir
        calls.append(lambda: store.upload_dir(str(tmp_path / "d"), "no-such-bucket", "p"))
    for call in calls:
        with pytest.raises(StorageError, match=rf"^{label} bucket 'no-such-bucket'.*no such bucket$"):
            call()
    assert not store.bucket_exists("no-such-bucket")
    store.delete_bucket("no-such-bucket")
    assert not (tmp_path / "out2").exists()

    store.create_bucket("half-empty")
    with pytest.raises(StorageError, match=r"'half-empty' has no object 'missing/key'"):
        store.download_file("half-empty", "missing/key", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
    with pytest.raises(StorageError, match=r"'half-empty' has nothing under 'missing'"):
        store.download_dir("half-empty", "missing", str(tmp_path / "o2"))
    store.download_dir("half-empty", "", str(tmp_path / "o3"))  # the whole (empty) bucket is fine
    assert (tmp_path / "o3").is_dir() and not any((tmp_path / "o3").iterdir())
    with pytest.raises(StorageError, match="not a directory"):
        store.upload_dir(str(tmp_path / "f"), "half-empty")
    with pytest.raises(StorageError, match="empty key"):
        store.upload_file(str(tmp_path / "f"), "half-empty", "/./")
    store.delete_bucket("half-empty")


def test_keys_escaping_local_dir_are_refused(bucket_lab: Lab, tmp_path: Path) -> None:
    lab, store, label = bucket_lab.lab, bucket_lab.store, bucket_lab.label
    store.create_bucket("evil-bucket")
    lab.put("evil-bucket", "p/fine.txt", b"ok")
    lab.put("evil-bucket", "p/../../escaped.txt", b"evil")
    assert "p/../../escaped.txt" in lab.keys("evil-bucket")  # the emulators, as the clouds, keep such keys
    out = tmp_path / "deep" / "out"
    with pytest.raises(StorageError, match=rf"refusing {label} object 'p/\.\./\.\./escaped\.txt' of bucket 'evil-bucket'"):
        store.download_dir("evil-bucket", "p", str(out))
    assert not out.exists() and not (tmp_path / "escaped.txt").exists()  # refused before any write
    lab.delete("evil-bucket", "p/../../escaped.txt")

    # a symlink already in local_dir must not lead a download outside it
    lab.put("evil-bucket", "p/link/x.txt", b"evil")
    outside = tmp_path / "outside"
    outside.mkdir()
    out.mkdir(parents=True)
    (out / "link").symlink_to(outside)
    with pytest.raises(StorageError, match="leads outside"):
        store.download_dir("evil-bucket", "p", str(out))
    assert not any(outside.iterdir())
    store.delete_bucket("evil-bucket")

"""The log store adds each byte once, whoever re-ships it: the directory store and the bucket
store (on a directory bucket) behave alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spotctl.config import Settings, load_settings
from spotctl.storage.bucket_log_store import BucketLogStore
from spotctl.storage.local import LocalStore
from spotctl.storage.log_store import DirLogStore, LogStore, open_log_store
from spotctl.storage.log_store_base import LogStore as LogStoreProtocol


def dir_store(root: Path) -> DirLogStore:
    return DirLogStore(root)


def bucket_store(root: Path) -> BucketLogStore:
    return BucketLogStore(LocalStore(root), "spotctl-logs", "team/logs")


@pytest.fixture(params=[dir_store, bucket_store], ids=["dir", "bucket"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], LogStoreProtocol]:
    """Makes a store; each call is a new instance (a new process) over the same place."""
    return lambda: request.param(tmp_path)


def test_positional_appends_skip_what_is_stored(make: Callable[[], LogStoreProtocol]) -> None:
    store = make()
    assert store.size(1, 1, 0) == 0 and store.read(1, 1, 0) == b""
    assert store.append_at(1, 1, 0, 0, b"line 1\n") == 7
    assert store.append_at(1, 1, 0, 0, b"line 1\nline 2\n") == 14  # a re-attached monitor re-reads
    assert store.append_at(1, 1, 0, 7, b"line 2\nline 3\n") == 21
    assert store.append_at(1, 1, 0, 3, b"e 1\n") == 21  # nothing new
    assert store.read(1, 1, 0) == b"line 1\nline 2\nline 3\n"
    assert store.read(1, 1, 0, 10) == b"e 2\nline 3\n"
    assert store.read(1, 1, 0, 21) == b"" and store.read(1, 1, 0, 50) == b""
    assert store.size(1, 1, 0) == 21
    with pytest.raises(ValueError, match="gap"):
        store.append_at(1, 1, 0, 100, b"x")
    assert store.read(1, 1, 0) == b"line 1\nline 2\nline 3\n" and store.size(1, 1, 0) == 21


def test_a_second_writer_that_knows_less_adds_no_duplicate(make: Callable[[], LogStoreProtocol]) -> None:
    """Two monitors of one node (a worker thought dead, and its replacement), each in its own
    process: whatever order their re-sends land in, each byte is stored once."""
    log = b"".join(f"line {i}\n".encode() for i in range(100))
    a, b = make(), make()
    assert a.append_at(2, 1, 0, 0, log[:50]) == 50
    assert b.size(2, 1, 0) == 50  # b starts after a's first piece
    assert a.append_at(2, 1, 0, 50, log[50:300]) == 300
    b.append_at(2, 1, 0, 50, log[50:400])  # b does not know of a's second piece
    a.append_at(2, 1, 0, 300, log[300:350])  # a does not know of b's
    b.append_at(2, 1, 0, 0, log)  # b re-sends everything
    a.append_at(2, 1, 0, 0, log)
    for store in (a, b, make()):
        assert store.read(2, 1, 0) == log
        assert store.read(2, 1, 0, 123) == log[123:]
        assert store.size(2, 1, 0) == len(log)
    c = make()
    with pytest.raises(ValueError, match="gap"):
        c.append_at(2, 1, 0, len(log) + 1, b"x")
    assert c.append_at(2, 1, 0, len(log), b"end\n") == len(log) + 4  # a new process continues
    assert make().read(2, 1, 0) == log + b"end\n"


def test_a_follower_reads_each_byte_once(make: Callable[[], LogStoreProtocol]) -> None:
    writer, reader = make(), make()
    got = b""
    sent = b""
    for i in range(20):
        chunk = f"step {i}\n".encode() * (i % 3)
        writer.append_at(3, 1, 0, len(sent), chunk)
        sent += chunk
        got += reader.read(3, 1, 0, len(got))
    assert got == sent


def test_attempts_and_ranks_in_order(make: Callable[[], LogStoreProtocol]) -> None:
    store = make()
    for attempt in (10, 2, 1):
        store.append_at(5, attempt, 0, 0, b"x")
    store.append_at(5, 2, 1, 0, b"y")
    store.append_at(5, 2, 11, 0, b"z")
    store.append_at(5, 2, 1, 1, b"y")
    other = make()
    assert other.attempts(5) == [1, 2, 10]
    assert other.ranks(5, 2) == [0, 1, 11] and other.ranks(5, 3) == []
    assert other.read(5, 2, 1) == b"yy" and other.read(5, 2, 11) == b"z"
    assert other.attempts(6) == [] and other.read(6, 1) == b"" and other.ranks(6, 1) == []


def test_binary_and_large_pieces(make: Callable[[], LogStoreProtocol]) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB, every byte value
    store = make()
    store.append_at(7, 1, 0, 0, data[:1 << 20])
    store.append_at(7, 1, 0, 1 << 20, data[1 << 20:])
    assert make().read(7, 1, 0) == data


def test_bucket_store_keeps_one_object_per_piece(tmp_path: Path) -> None:
    store = bucket_store(tmp_path)
    store.append_at(1, 1, 0, 0, b"abc")
    store.append_at(1, 1, 0, 0, b"abcdef")
    store.append_at(1, 1, 0, 0, b"abcdef")
    keys = LocalStore(tmp_path).list("spotctl-logs")
    assert keys == ["team/logs/job-1/attempt-1/node-0/0000000000000000-0000000000000003",
                    "team/logs/job-1/attempt-1/node-0/0000000000000003-0000000000000006",
                    "team/logs/job-1/index/attempt-1.node-0"]


def test_bucket_store_polls_without_listing(tmp_path: Path) -> None:
    """The monitor asks size() every poll: the writer's own pieces answer it, no LIST."""

    class Counting(LocalStore):
        lists = 0

        def list(self, bucket: str, prefix: str = "") -> list[str]:
            Counting.lists += 1
            return super().list(bucket, prefix)

    store = BucketLogStore(Counting(tmp_path), "spotctl-logs", "")
    for _ in range(50):
        store.append_at(1, 1, 0, store.size(1, 1, 0), b"x")
    assert store.size(1, 1, 0) == 50 and Counting.lists == 1


def test_open_log_store_follows_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTCTL_LOG_STORE", raising=False)
    settings = load_settings(tmp_path)
    assert settings.log_store is None
    store = open_log_store(settings)
    assert isinstance(store, DirLogStore) and store.root == tmp_path.resolve() / "logs"
    assert LogStore is DirLogStore  # the old name still builds the directory store

    monkeypatch.setenv("SPOTCTL_LOG_STORE", "local://job-logs/spotctl")
    settings = load_settings(tmp_path)
    assert settings.log_store == "local://job-logs/spotctl"
    store = open_log_store(settings)
    assert isinstance(store, BucketLogStore) and open_log_store(settings) is store  # one per process
    store.append_at(4, 1, 0, 0, b"hello\n")
    assert (tmp_path / "local_buckets" / "job-logs" / "spotctl" / "job-4").is_dir()
    assert open_log_store(Settings(home=tmp_path.resolve(), log_store="local://job-logs/spotctl")).read(4, 1) == \
        b"hello\n"

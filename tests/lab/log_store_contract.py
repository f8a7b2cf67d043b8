"""The log store's contract on a bucket store (S3, GCS): the same checks for each, run by
test_bucket_log_store.py and test_gcs_log_store.py against their emulators."""

from __future__ import annotations

from typing import Any

import pytest

from spotctl.config import Settings
from spotctl.storage.bucket_log_store import BucketLogStore
from spotctl.storage.log_store import open_log_store

BUCKET = "spotctl-lab-logs"


def check_logs_are_read_back_once(lab: Any, scheme: str, store_type: type, cli_settings: Settings) -> None:
    """What `spotctl logs` prints is what the workers shipped, once, whoever re-sent it.
    `lab` is the store's lab (settings, buckets(), keys(), body()); `cli_settings` are the
    CLI's own (another process: no state shared with the workers)."""
    settings = lab.settings.model_copy(update={"log_store": f"{scheme}://{BUCKET}/team/logs"})
    writer = open_log_store(settings)
    assert isinstance(writer, BucketLogStore) and isinstance(writer.store, store_type)
    try:
        assert writer.attempts(1) == [] and writer.read(1, 1, 0) == b""  # no bucket yet: no logs
        log = b"".join(f"epoch {i} loss {1 / (i + 1):.4f}\n".encode() for i in range(200))
        shipped = 0
        for cut in (0, 100, 1000, 1000, 2500, len(log)):  # a monitor's polls
            assert writer.size(1, 1, 0) == shipped
            writer.append_at(1, 1, 0, shipped, log[shipped:cut])
            shipped = cut
        assert lab.buckets() == [BUCKET]

        # A monitor retried on another worker re-reads the node from an old offset; a third
        # one, which looked before the second shipped more, re-sends an overlapping piece.
        other = BucketLogStore(store_type(lab.settings), BUCKET, "team/logs")
        stale = BucketLogStore(store_type(lab.settings), BUCKET, "team/logs")
        assert other.size(1, 1, 0) == len(log) and stale.size(1, 1, 0) == len(log)
        assert other.append_at(1, 1, 0, 100, log[100:]) == len(log)
        assert other.append_at(1, 1, 0, 100, log[100:] + b"done\n") == len(log) + 5
        assert stale.append_at(1, 1, 0, 2500, log[2500:] + b"done\nbye\n") == len(log) + 9
        with pytest.raises(ValueError, match="gap"):
            stale.append_at(1, 1, 0, len(log) + 100, b"x")
        log += b"done\nbye\n"

        # Another node and a second attempt.
        writer.append_at(1, 1, 3, 0, b"node 3\n")
        writer.append_at(1, 2, 0, 0, b"attempt 2\n")

        # The CLI: its own process, its own instance.
        cli = BucketLogStore(store_type(cli_settings), BUCKET, "/team/logs/")
        assert cli.attempts(1) == [1, 2]
        assert cli.ranks(1, 1) == [0, 3] and cli.ranks(1, 2) == [0]
        assert cli.read(1, 1, 0) == log
        assert cli.read(1, 1, 0, 777) == log[777:]
        assert cli.read(1, 1, 3) == b"node 3\n" and cli.read(1, 2, 0) == b"attempt 2\n"

        keys = lab.keys(BUCKET)
        assert all(k.startswith("team/logs/job-1/") for k in keys)
        pieces = [k for k in keys if k.startswith("team/logs/job-1/attempt-1/node-0/")]
        assert pieces[0] == "team/logs/job-1/attempt-1/node-0/0000000000000000-0000000000000100"
        assert lab.body(BUCKET, pieces[0]) == log[:100]
        assert "team/logs/job-1/index/attempt-2.node-0" in keys
    finally:
        writer.store.delete_bucket(BUCKET)

"""BucketLogStore on GCS (fake-gcs-server over HTTP), selected by SPOTCTL_LOG_STORE=gs://...:
what `spotctl logs` would print is what the workers shipped, once, whoever re-sent it; the
objects are checked with a plain google-cloud-storage client."""

from __future__ import annotations

import gcs_lab as lab
import pytest
from gcs_lab import GcsLab

from spotctl.config import Settings, load_settings
from spotctl.storage.bucket_log_store import BucketLogStore
from spotctl.storage.gcs import GcsStore
from spotctl.storage.log_store import open_log_store

gcs_lab = lab.gcs_lab  # the fixtures, shared by module attribute
fake_gcs_endpoint = lab.fake_gcs_endpoint

BUCKET = "spotctl-lab-logs"


def test_log_store_url_from_the_environment(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCTL_HOME", str(gcs_lab.settings.home))
    monkeypatch.setenv("SPOTCTL_LOG_STORE", f"gs://{BUCKET}/team/logs")
    monkeypatch.setenv("SPOTCTL_GCS_ENDPOINT", gcs_lab.endpoint)
    store = open_log_store(load_settings())
    assert isinstance(store, BucketLogStore) and isinstance(store.store, GcsStore)
    assert (store.bucket, store.prefix) == (BUCKET, "team/logs")
    assert store.attempts(1) == [] and gcs_lab.buckets() == []  # reading makes no bucket


def test_logs_on_gcs_are_read_back_once(gcs_lab: GcsLab) -> None:
    settings = gcs_lab.settings.model_copy(update={"log_store": f"gs://{BUCKET}/team/logs"})
    writer = open_log_store(settings)
    assert isinstance(writer, BucketLogStore) and isinstance(writer.store, GcsStore)
    try:
        assert writer.attempts(1) == [] and writer.read(1, 1, 0) == b""  # no bucket yet: no logs
        log = b"".join(f"epoch {i} loss {1 / (i + 1):.4f}\n".encode() for i in range(200))
        shipped = 0
        for cut in (0, 100, 1000, 1000, 2500, len(log)):  # a monitor's polls
            assert writer.size(1, 1, 0) == shipped
            writer.append_at(1, 1, 0, shipped, log[shipped:cut])
            shipped = cut
        assert gcs_lab.buckets() == [BUCKET]

        # A monitor retried on another worker re-reads the node from an old offset; a third
        # one, which looked before the second shipped more, re-sends an overlapping piece.
        other = BucketLogStore(GcsStore(gcs_lab.settings), BUCKET, "team/logs")
        stale = BucketLogStore(GcsStore(gcs_lab.settings), BUCKET, "team/logs")
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
        cli = BucketLogStore(GcsStore(Settings(home=gcs_lab.settings.home, gcp=gcs_lab.settings.gcp)), BUCKET,
                             "/team/logs/")
        assert cli.attempts(1) == [1, 2]
        assert cli.ranks(1, 1) == [0, 3] and cli.ranks(1, 2) == [0]
        assert cli.read(1, 1, 0) == log
        assert cli.read(1, 1, 0, 777) == log[777:]
        assert cli.read(1, 1, 3) == b"node 3\n" and cli.read(1, 2, 0) == b"attempt 2\n"

        keys = gcs_lab.keys(BUCKET)
        assert all(k.startswith("team/logs/job-1/") for k in keys)
        pieces = [k for k in keys if k.startswith("team/logs/job-1/attempt-1/node-0/")]
        assert pieces[0] == "team/logs/job-1/attempt-1/node-0/0000000000000000-0000000000000100"
        assert gcs_lab.body(BUCKET, pieces[0]) == log[:100]
        assert "team/logs/job-1/index/attempt-2.node-0" in keys
    finally:
        writer.store.delete_bucket(BUCKET)

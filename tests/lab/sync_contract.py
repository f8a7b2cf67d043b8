"""MOUNT_CACHED's contract on any bucket (node_agent/bucket_sync.CachedMount), the same checks
for S3 and GCS: run by test_bucket_sync.py (moto) and test_gcs_sync.py (fake-gcs-server) with
their own lab and node-side client. `lab` has put(bucket, key, body) and keys(bucket)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from spotctl.node_agent.bucket_sync import CachedMount


def check_pull_refuses_keys_escaping_local_dir(lab: Any, bucket: str, client: Any, tmp_path: Path,
                                               match: str) -> None:
    """A key with `..` that would land outside the mount is refused before anything is written;
    `match`: the error's words (the bucket's URL, its scheme the store's)."""
    lab.put(bucket, "p/ok", b"ok")
    lab.put(bucket, "p/../../evil", b"evil")
    m = CachedMount(bucket, "p", str(tmp_path / "deep" / "mnt"), client)
    with pytest.raises(ValueError, match=match):
        m.pull()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "mnt" / "ok").exists()


def check_run_until_pushes_periodically_and_at_stop(lab: Any, bucket: str, client: Any, tmp_path: Path) -> None:
    """run_until pushes every interval, and once more at stop, without waiting for the next
    interval."""
    local = tmp_path / "mnt"
    m = CachedMount(bucket, "live", str(local), client)
    assert m.pull() == 0 and local.is_dir()
    stop = threading.Event()
    t = threading.Thread(target=m.run_until, args=(stop, 0.1), daemon=True)
    t.start()
    (local / "a").write_bytes(b"a")
    deadline = time.monotonic() + 10
    while "live/a" not in lab.keys(bucket) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "live/a" in lab.keys(bucket)
    stop.set()
    t.join(10)
    assert not t.is_alive()

    # a long interval: only the push at stop can send b, and stopping does not wait for it
    stop = threading.Event()
    t = threading.Thread(target=m.run_until, args=(stop, 3600), daemon=True)
    t.start()
    (local / "b").write_bytes(b"b")
    t0 = time.monotonic()
    stop.set()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert lab.keys(bucket) == ["live/a", "live/b"]

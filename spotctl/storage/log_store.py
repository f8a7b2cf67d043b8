"""The log store: one append-only object per job attempt and node, outliving every VM.

`open_log_store(settings)` gives the store `Settings.log_store` names (see log_store_base.py
for the LogStore protocol):
- None (the default): `DirLogStore`, a directory,
  `$SPOTCTL_HOME/logs/job-<id>/attempt-<n>/node-<rank>.log`; the CLI and the workers must
  then share `$SPOTCTL_HOME`.
- a bucket URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `local://bucket/prefix`):
  `BucketLogStore` on that Store (bucket_log_store.py), so CLI and workers only share the bucket.

Appends are positional: the writer says at which offset its bytes start, so a monitor that
re-attaches after a worker crash (and re-reads from the node what was already shipped) adds no
duplicate, and two racing writers add each byte once.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spotctl.config import Settings
    from spotctl.storage.log_store_base import LogStore as LogStoreProtocol

_ATTEMPT_DIR = re.compile(r"^attempt-(\d+)$")
_NODE_FILE = re.compile(r"^node-(\d+)\.log$")


class DirLogStore:
    """The LogStore protocol on a directory; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def job_dir(self, job_id: int) -> Path:
        return self.root / f"job-{job_id}"

    def path(self, job_id: int, attempt: int, rank: int = 0) -> Path:
        return self.job_dir(job_id) / f"attempt-{attempt}" / f"node-{rank}.log"

    def size(self, job_id: int, attempt: int, rank: int = 0) -> int:
        try:
            return self.path(job_id, attempt, rank).stat().st_size
        except FileNotFoundError:
            return 0

    def append_at(self, job_id: int, attempt: int, rank: int, offset: int, data: bytes) -> int:
        """Write `data`, which starts at byte `offset` of the node's log. Bytes the store
        already has are skipped. Returns the store's size afterwards."""
        path = self.path(job_id, attempt, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            have = os.fstat(fd).st_size
            if offset > have:
                raise ValueError(f"log gap: store has {have} bytes, data starts at {offset}")
            new = data[have - offset :]
            if new:
                os.write(fd, new)
            return have + len(new)
        finally:
            os.close(fd)

    def attempts(self, job_id: int) -> list[int]:
        """Attempt numbers with logs, in order."""
        try:
            names = os.listdir(self.job_dir(job_id))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _ATTEMPT_DIR.match(n)))

    def ranks(self, job_id: int, attempt: int) -> list[int]:
        try:
            names = os.listdir(self.job_dir(job_id) / f"attempt-{attempt}")
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _NODE_FILE.match(n)))

    def read(self, job_id: int, attempt: int, rank: int = 0, offset: int = 0) -> bytes:
        try:
            with open(self.path(job_id, attempt, rank), "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""


LogStore = DirLogStore
"""The old name of DirLogStore (tests/chaos builds it by this name). The protocol is
`spotctl.storage.log_store_base.LogStore`."""

_OPEN: dict[tuple[str, str, str | None, str | None], LogStoreProtocol] = {}
_OPEN_LOCK = threading.Lock()


def open_log_store(settings: Settings) -> LogStoreProtocol:
    """The log store `settings.log_store` names: None = the directory `settings.logs_dir`;
    a bucket URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `local://bucket/prefix`) = a
    BucketLogStore there.

    A bucket store is made once per process and URL and then handed out again, so what this
    process wrote (its cache of chunk keys) outlives each `Deps.logs` access and a monitor's
    polls need no listing. StorageError for a URL that is not a supported bucket URL."""
    if not settings.log_store:
        return DirLogStore(settings.logs_dir)
    key = (settings.log_store, str(settings.home), settings.aws.endpoint_url, settings.gcp.storage_endpoint)
    with _OPEN_LOCK:
        if key not in _OPEN:
            from spotctl.storage.bucket_log_store import BucketLogStore
            from spotctl.storage.registry import get_store, parse_bucket_url

            kind, bucket, prefix = parse_bucket_url(settings.log_store)
            _OPEN[key] = BucketLogStore(get_store(settings, kind), bucket, prefix)
        return _OPEN[key]

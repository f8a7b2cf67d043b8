"""The log store: one append-only object per job attempt and node, outliving every VM.

A directory by default (`$SPOTCTL_HOME/logs/job-<id>/attempt-<n>/node-<rank>.log`). Appends
are positional: the writer says at which offset its bytes start, so a monitor that re-attaches
after a worker crash (and re-reads from the node what was already shipped) adds no duplicate,
and two racing writers add each byte once.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

_ATTEMPT_DIR = re.compile(r"^attempt-(\d+)$")
_NODE_FILE = re.compile(r"^node-(\d+)\.log$")


class LogStore:
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

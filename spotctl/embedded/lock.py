"""An exclusive lock on a file (fcntl.flock), held by the embedded default's starters.

Two commands that start the embedded server at the same moment used to race: both saw no
server, both started `temporal server start-dev` on the same SQLite file, and one died of
SQLITE_BUSY. Holding `$SPOTCTL_HOME/server/start.lock` across check-and-start makes the second
command wait and then find the first one's server. flock (not a pid file or O_EXCL) because the
kernel drops it when its holder dies, even by SIGKILL: a crashed starter never leaves a stale
lock behind. The descriptor is close-on-exec, so processes we spawn never inherit the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.05


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the caller would wait."""


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the `with` block.

    Waits up to `timeout` seconds (0: one try) for another holder, then raises LockTimeout."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} is held by another process") from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock

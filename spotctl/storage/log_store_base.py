"""The LogStore protocol: where workers ship each job attempt's output and the CLI reads it.

One append-only byte stream per (job, attempt, node rank), outliving every VM. Appends are
positional: the writer says at which offset its bytes start, so a monitor that re-attaches
after a worker crash (and re-reads from the node what was already shipped) adds no duplicate,
and two racing writers add each byte once. Implementations: `DirLogStore` (a directory,
log_store.py) and `BucketLogStore` (chunks in a bucket of any Store, bucket_log_store.py);
`open_log_store(settings)` picks one from `Settings.log_store`.
"""

from __future__ import annotations

from typing import Protocol


class LogStore(Protocol):
    def size(self, job_id: int, attempt: int, rank: int = 0) -> int:
        """How many bytes of the node's log the store holds (0 when none)."""
        ...

    def append_at(self, job_id: int, attempt: int, rank: int, offset: int, data: bytes) -> int:
        """Store `data`, which starts at byte `offset` of the node's log. Bytes the store
        already has are skipped; ValueError ("log gap") when offset is beyond what it holds.
        Returns the store's size afterwards."""
        ...

    def attempts(self, job_id: int) -> list[int]:
        """Attempt numbers with logs, in order."""
        ...

    def ranks(self, job_id: int, attempt: int) -> list[int]:
        """Node ranks with logs in that attempt, in order."""
        ...

    def read(self, job_id: int, attempt: int, rank: int = 0, offset: int = 0) -> bytes:
        """The node's log from `offset` to the end of what is stored (b"" when none)."""
        ...

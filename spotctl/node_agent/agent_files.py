"""The node agent's one way to write a small state file (stdlib only; copied next to agent.py on
every node): readers (the worker over SSH, a restarted agent) must never see a half-written
pid, exit code or notice deadline."""

from __future__ import annotations

import os


def write_atomic(path: str, text: str) -> None:
    """Write to a temporary file next to `path`, flush it to disk, and rename it over `path`."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


RESERVED = 64
"""Bytes of a file made ahead of time for a value written later in place (a beat counter, an
exit code): overwriting bytes a file already has needs no free space, so a full disk cannot
stop the value from being written."""


def reserve(path: str) -> None:
    """Make `path` hold RESERVED spaces (a reader strips them: no value yet)."""
    write_atomic(path, " " * RESERVED)


def write_in_place(path: str, text: str, sync: bool = True) -> None:
    """Overwrite the start of a reserved file with `text`, padded with spaces to what the file
    already holds: no new block is needed. Raises OSError (e.g. the file was never reserved)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        data = text.ljust(size).encode() if size >= len(text) else text.encode()
        os.pwrite(fd, data, 0)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def publish_reserved(reserved: str, path: str, text: str) -> None:
    """Write `text` into the reserved file and rename it to `path`, so `path` appears whole
    and at once; without a reserved file (reserving failed), an ordinary atomic write."""
    try:
        write_in_place(reserved, text)
    except FileNotFoundError:
        write_atomic(path, text)
        return
    os.replace(reserved, path)

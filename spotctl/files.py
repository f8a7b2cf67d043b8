"""Small file-system steps several rooms need, done the one safe way."""

from __future__ import annotations

import os
from pathlib import Path


def create_once(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` with `data` unless it exists, atomically and without ever overwriting:
    of several processes racing (a CLI and a worker starting at once), one file wins and every
    process then reads the same content. Written to a private temporary name first, then
    hard-linked into place, so nobody ever reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)

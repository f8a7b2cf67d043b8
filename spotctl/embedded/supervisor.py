"""The embedded default's supervisor: keeps the Temporal dev server and one worker running.

`python -m spotctl.embedded.supervisor` (started in the background by `EmbeddedServer.ensure_running`,
one per state dir) starts `temporal server start-dev` and `python -m spotctl.worker`, restarts
either when it dies, and on SIGTERM stops the worker, then the server, then itself.

Why a supervisor, and not only "every command starts what is missing": a job's controller is
its worker, and a job's program keeps running (and ends) whether or not anyone types a command.
With start-on-demand alone, a crashed worker stayed dead until the next command, so a job that
ended meanwhile showed RUNNING and a cancel was only recorded. The supervisor brings the worker
back within a second, with no user around. Start-on-demand stays as the second layer
(embedded/server.py): every command that needs the server (launch, status, logs, cancel) calls
`ensure_running` when the state dir has been used before, which also covers the supervisor
itself being killed (nothing supervises the supervisor; the next command replaces it).

Restarts back off (0.5 s doubling to 30 s; reset once a process ran 30 s) so a process that
cannot start does not spin a core. A process this supervisor started that dies before it was
ever ready on its *first* start (a process it adopted excepted) is not restarted: the
supervisor stops the other one and exits with code 1, so the command that started it reports the
failure (with the log's last lines) instead of waiting out a crash loop. Processes found running when the supervisor starts (left
by a supervisor killed with SIGKILL) are adopted, not started twice. Children run in their own
sessions, so a SIGKILL of the supervisor leaves them running; the next supervisor adopts them.
The worker is not restarted when Temporal restarts: it rides out the outage.

Log: `$SPOTCTL_HOME/server/supervisor.log` (the children log to temporal.log and worker.log).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spotctl.config import ConfigError, Settings, load_settings
from spotctl.embedded import port_guard
from spotctl.embedded.lock import LockTimeout, file_lock
from spotctl.embedded.procs import (
    ManagedProcess,
    Processes,
    port_open,
    stop_pid,
    temporal_argv,
    worker_env,
    write_pid_file,
)
from spotctl.node_agent.agent_procs import pid_alive  # on purpose: the node agent's own stdlib check

POLL_S = 0.2
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0
"""A process that ran this long had a real crash, not a failing start: its backoff starts over."""
WORKER_STOP_TIMEOUT_S = 10.0
EXIT_BAD_SETTINGS = 2
"""How a worker (worker/main.py) exits on a bad setting or codec key, after logging the one line why."""
EXIT_UNREACHABLE = 3
"""How a worker exits when Temporal stayed unreachable for its connect timeout (worker/main.py), after
logging the one line why: restarted with backoff like any exit, its line repeated."""

log = logging.getLogger("spotctl.supervisor")


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    managed: ManagedProcess
    argv: Callable[[], list[str]]
    log_file: Path
    env: Callable[[], dict[str, str] | None]
    ready: Callable[[int], bool]
    may_start: Callable[[], bool] = lambda: True
    pid: int | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    launches: int = 0
    give_up_if_first_start_fails: bool = True
    """False for a process adopted at start-up: its later crash is a crash, not a failed start."""
    failures: int = 0
    next_start: float = 0.0
    on_start: list[Callable[[], None]] = field(default_factory=list)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid)  # adopted: not our child, a zombie counts as dead

    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None


class GiveUp(Exception):
    """A first start failed: report it rather than loop."""


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.server_dir
        self.procs = Processes.of(self.dir)
        self.stopping = False
        port = settings.embedded.port
        self.temporal = Child(
            self.procs.temporal, lambda: temporal_argv(settings), self.dir / "temporal.log", lambda: None,
            ready=lambda pid: port_open(port),
        )
        self.worker = Child(
            self.procs.worker, lambda: [sys.executable, "-m", "spotctl.worker"], self.dir / "worker.log",
            lambda: worker_env(settings, self.procs.worker_ready),
            ready=self.procs.worker_is_ready,
            may_start=lambda: self.temporal.ever_ready or port_open(port),  # no worker before its server
            on_start=[lambda: self.procs.worker_ready.unlink(missing_ok=True)],
        )
        self.children = (self.temporal, self.worker)

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; 0 after a clean stop, 1 if a first start failed."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        self._guard_ports()
        for child in self.children:
            self._adopt(child)
        code = 0
        try:
            while not self.stopping:
                for child in self.children:
                    self._tend(child)
                time.sleep(POLL_S)
            log.info("stopping (signal received)")
        except GiveUp as exc:
            log.error("%s", exc)
            code = 1
        self._stop_all()
        port_guard.remove(self.settings)
        return code

    def _guard_ports(self) -> None:
        """Other local users' connections to the server's ports are rejected (embedded/port_guard.py)
        when we can; if not, the log says that they are open."""
        why_not = port_guard.install(self.settings)
        ports = ", ".join(map(str, port_guard.guarded_ports(self.settings)))
        if why_not is None:
            log.info("ports %s refuse other users' connections (nft table %s)", ports,
                     port_guard.table_name(self.settings))
        else:
            log.warning("ports %s are open to every local user: %s (README: Threat model)", ports, why_not)

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _adopt(self, child: Child) -> None:
        pid = child.managed.pid()
        if pid is not None:
            child.pid, child.started_at, child.ever_ready = pid, time.monotonic(), True
            child.give_up_if_first_start_fails = False
            log.info("adopted the running %s (pid %d)", child.managed.name, pid)

    def _tend(self, child: Child) -> None:
        now = time.monotonic()
        if child.pid is not None:
            if child.alive():
                if not child.ever_ready and child.ready(child.pid):
                    child.ever_ready = True
                    log.info("%s (pid %d) is ready after %.1fs", child.managed.name, child.pid, now - child.started_at)
                return
            self._died(child, now)
        if now >= child.next_start and not self.stopping and child.may_start():
            self._start(child, now)

    def _died(self, child: Child, now: float) -> None:
        name, pid, code, uptime = child.managed.name, child.pid, child.exit_code(), now - child.started_at
        if pid is not None:
            child.managed.forget(pid)
        child.pid, child.proc = None, None
        if not child.ever_ready and child.launches == 1 and child.give_up_if_first_start_fails:
            raise GiveUp(f"{name} (pid {pid}) exited with code {code} before it was ready; "
                         f"last lines of {child.log_file}:\n{_tail(child.log_file)}")
        if uptime >= HEALTHY_AFTER_S:
            child.failures = 0
        delay = min(BACKOFF_FIRST_S * 2 ** child.failures, BACKOFF_MAX_S)
        child.failures += 1
        child.next_start = now + delay
        # Exit 2 is a worker refusing its settings (a bad value, a missing codec key: config/table.py),
        # exit 3 one that could not reach Temporal, each saying why in one line: repeat it here, so a
        # crash loop is never silent.
        why = f": {_last_said(child.log_file)}" if code in (EXIT_BAD_SETTINGS, EXIT_UNREACHABLE) else ""
        log.warning("%s (pid %d) exited with code %s after %.1fs%s; restarting in %.1fs", name, pid, code, uptime,
                    why, delay)

    def _start(self, child: Child, now: float) -> None:
        for hook in child.on_start:
            hook()
        with open(child.log_file, "ab") as out:
            child.proc = subprocess.Popen(
                child.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=child.env(), cwd=self.dir,
            )
        child.pid, child.started_at, child.ever_ready = child.proc.pid, now, False
        child.launches += 1
        write_pid_file(child.managed.pid_file, child.pid)
        log.info("started %s (pid %d)", child.managed.name, child.pid)

    def _stop_all(self) -> None:
        """The worker first (it finishes its tasks against a live server), then the server."""
        for child in reversed(self.children):
            if child.pid is not None:
                stop_pid(child.pid, WORKER_STOP_TIMEOUT_S)
                if child.proc is not None:
                    child.proc.poll()  # reap
                child.managed.forget(child.pid)
                log.info("stopped %s (pid %d)", child.managed.name, child.pid)
                child.pid, child.proc = None, None
        self.procs.worker_ready.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _last_said(path: Path) -> str:
    """The last line of a worker's log, without its logging prefix (time, level, logger)."""
    line = _tail(path, 1)
    return line.partition(" spotctl.worker: ")[2] or line


def main() -> int:
    # The state dir is private (0700 dirs, 0600 files), whoever started us: the Temporal
    # database and the worker's files inherit this umask.
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s supervisor[%(process)d]: %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:  # the command that started us checked them; config.yaml changed since
        log.error("%s", exc)
        return EXIT_BAD_SETTINGS
    if not settings.uses_embedded_server:
        log.error("a Temporal address is configured (%s): there is no embedded server to supervise",
                  settings.temporal_address)
        return 2
    settings.server_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes.of(settings.server_dir)
    try:
        # Held for the supervisor's life: a second supervisor of this state dir exits at once.
        with file_lock(settings.server_dir / "supervisor.lock", timeout=0):
            write_pid_file(procs.supervisor.pid_file, os.getpid())
            try:
                return Supervisor(settings).run()
            finally:
                procs.supervisor.forget(os.getpid())
    except LockTimeout:
        log.error("another supervisor runs for %s; this one exits", settings.home)
        return 3


if __name__ == "__main__":
    sys.exit(main())

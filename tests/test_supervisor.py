"""The embedded default keeps itself alive: a supervisor restarts a killed worker or server,
the next command replaces a killed supervisor, concurrent starts start one server, `server
stop` leaves nothing, and a cancel that no worker can act on says so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spotctl.client import SpotClient, connect
from spotctl.clouds.local import LocalCloud
from spotctl.config import load_settings
from spotctl.embedded import EmbeddedServer, cmdline, temporal_binary
from spotctl.models import TASK_QUEUE

from conftest import REPO, free_port, pid_dead, spotctl_env


def spotctl(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """The real console entry point, in a separate process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "spotctl", *args], env={**os.environ, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def processes(home: Path) -> dict[str, list[int]]:
    """Every live process of this state dir's embedded default, found by scanning /proc (not
    through the pid files, which are what is under test)."""
    found: dict[str, list[int]] = {"supervisor": [], "temporal": [], "worker": []}
    db = str(home / "server" / "temporal.db")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or pid_dead(int(entry.name)):
            continue
        pid, cmd = int(entry.name), cmdline(int(entry.name))
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = f"SPOTCTL_HOME={home}".encode() in environ
        if db in cmd and "start-dev" in cmd:
            found["temporal"].append(pid)
        elif ours and "spotctl.embedded.supervisor" in cmd:
            found["supervisor"].append(pid)
        elif ours and "spotctl.worker" in cmd:
            found["worker"].append(pid)
    return found


def kill(pid: int | None) -> None:
    """SIGKILL pid (and its group): a crash, no goodbye; returns once it is gone."""
    assert pid
    for send in (os.killpg, os.kill):
        try:
            send(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: pid_dead(pid), 10, f"pid {pid} to die")


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Embedded:
    home: Path
    env: dict[str, str]

    @property
    def server(self) -> EmbeddedServer:
        return EmbeddedServer(load_settings(self.home))

    def jobs(self) -> dict[int, str]:
        """{job id: status} through `spotctl status --json` (which may start what is missing)."""
        result = spotctl(self.env, "status", "--json")
        assert result.returncode == 0, result.stderr
        return {j["job_id"]: j["status"] for j in json.loads(result.stdout)}

    def jobs_directly(self) -> dict[int, str]:
        """{job id: status} straight from Temporal: no command, so nothing is started on demand."""
        async def query() -> dict[int, str]:
            client = await SpotClient.connect(load_settings(self.home))
            return {j.job_id: j.status.value for j in await client.list_jobs()}

        try:
            return asyncio.run(query())
        except Exception:
            return {}


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    """A private state dir and ports; at the end everything is stopped and checked gone (and
    killed if not, so a failing test leaks nothing either)."""
    home = (tmp_path / "home").resolve()
    env = spotctl_env(home)
    monkeypatch.delenv("SPOTCTL_TEMPORAL_ADDRESS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield Embedded(home, env)
    cloud = LocalCloud(load_settings(home))
    deadline = time.monotonic() + 15
    while cloud.state_path.exists() and cloud.list_instances() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = cloud.list_instances() if cloud.state_path.exists() else []
    if alive:
        cloud.terminate([i.id for i in alive])
    EmbeddedServer(load_settings(home)).stop()
    left = processes(home)
    for pid in (p for pids in left.values() for p in pids):
        os.kill(pid, signal.SIGKILL)
    assert left == {"supervisor": [], "temporal": [], "worker": []}, f"left running: {left}"
    assert alive == [], f"instances left running: {alive}"


def test_killed_worker_is_restarted_and_the_job_ends_without_a_command(embedded: Embedded, tmp_path: Path) -> None:
    task = tmp_path / "ticks.yaml"
    task.write_text("name: ticks\nrun: |\n  for i in $(seq 1 16); do echo tick $i; sleep 0.5; done\n")
    launched = spotctl(embedded.env, "launch", "-y", "-d", str(task))
    assert launched.returncode == 0, launched.stderr
    wait_until(lambda: embedded.jobs_directly().get(1) == "RUNNING", 30, "job 1 to run")
    server = embedded.server
    old = server.worker.pid()
    kill(old)

    # No user command from here on: the supervisor alone brings a worker back...
    new = wait_until(lambda: server.worker.pid() not in (None, old) and server.worker.pid(), 15, "a new worker")
    wait_until(lambda: server.procs.worker_is_ready(new), 20, "the new worker to poll")
    # ...which carries the job on to its end (after Temporal's heartbeat time-out).
    wait_until(lambda: embedded.jobs_directly().get(1) == "SUCCEEDED", 45, "job 1 to succeed")
    assert embedded.jobs() == {1: "SUCCEEDED"}
    assert "exited with code" in (embedded.home / "server" / "supervisor.log").read_text()


def test_killed_server_is_restarted_and_keeps_its_jobs(embedded: Embedded) -> None:
    launched = spotctl(embedded.env, "launch", "-y", "echo before the crash")
    assert launched.returncode == 0, launched.stderr
    old = embedded.server.temporal.pid()
    kill(old)
    assert embedded.jobs() == {1: "SUCCEEDED"}  # the database outlived the server
    assert embedded.server.temporal.pid() not in (None, old)


def test_concurrent_starts_start_one_server_and_one_worker(embedded: Embedded) -> None:
    env = {**os.environ, **embedded.env}
    starts = [subprocess.Popen([sys.executable, "-m", "spotctl", "server", "start"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in starts]
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert sum("Started" in out for _, out, _ in results) == 1
    assert sum("Already running" in out for _, out, _ in results) == 7
    running = processes(embedded.home)
    assert {name: len(pids) for name, pids in running.items()} == {"supervisor": 1, "temporal": 1, "worker": 1}
    st = embedded.server.status()
    assert running == {"supervisor": [st["supervisor_pid"]], "temporal": [st["temporal_pid"]],
                       "worker": [st["worker_pid"]]}


def test_everything_killed_the_next_status_brings_it_back(embedded: Embedded) -> None:
    launched = spotctl(embedded.env, "launch", "-y", "echo one")
    assert launched.returncode == 0, launched.stderr
    st = embedded.server.status()
    old = [st["supervisor_pid"], st["worker_pid"], st["temporal_pid"]]
    for pid in old:
        kill(pid)
    assert embedded.jobs() == {1: "SUCCEEDED"}
    running = processes(embedded.home)
    assert {name: len(pids) for name, pids in running.items()} == {"supervisor": 1, "temporal": 1, "worker": 1}
    assert not set(old) & {pid for pids in running.values() for pid in pids}


def test_stop_leaves_no_process_even_after_the_supervisor_was_killed(embedded: Embedded) -> None:
    for kill_supervisor_first in (False, True):
        started = spotctl(embedded.env, "server", "start")
        assert started.returncode == 0, started.stderr
        st = embedded.server.status()
        pids = [st["supervisor_pid"], st["temporal_pid"], st["worker_pid"]]
        assert all(pids)
        if kill_supervisor_first:  # its children run on, orphaned
            kill(st["supervisor_pid"])
            assert not pid_dead(st["worker_pid"]) and not pid_dead(st["temporal_pid"])
        stopped = spotctl(embedded.env, "server", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "worker" in stopped.stdout and "temporal server" in stopped.stdout
        assert all(pid_dead(p) for p in pids), [(p, pid_dead(p)) for p in pids]
        assert processes(embedded.home) == {"supervisor": [], "temporal": [], "worker": []}


def test_cancel_without_a_worker_says_it_is_only_recorded(tmp_path: Path) -> None:
    """A cluster no worker polls: the cancel is recorded in the job's history, and cancel says
    it takes effect later (exit 1) instead of "cancelling"."""
    port = free_port()
    server = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
    try:
        settings = load_settings(tmp_path / "home").model_copy(deep=True)
        settings.temporal.address = env["SPOTCTL_TEMPORAL_ADDRESS"]

        async def start_job() -> None:
            client = await connect(settings)
            await client.start_workflow("SpotJobWorkflow", id="spotctl-job-1", task_queue=TASK_QUEUE)

        wait_until(lambda: _try(start_job), 30, "the server to take a workflow")
        result = spotctl(env, "cancel", "-y", "1")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Job 1: cancel recorded; it takes effect when a worker runs" in result.stdout
        assert "no spotctl worker polls" in result.stderr and "Traceback" not in result.stderr
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


def _try(coro_fn) -> bool:
    try:
        asyncio.run(coro_fn())
        return True
    except Exception:
        return False

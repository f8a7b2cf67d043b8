"""Nothing an event_callback starts outlives it (issue 21, item 5): not a `setsid` process, not
a double-forked daemon, whether the callback exits, times out, is cancelled, or its worker is
stopped or killed. Real bash, real processes, the real activity code; the last test a real
embedded server and worker stopped with `spotctl server stop`'s code."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from temporalio.testing import ActivityEnvironment

from spotctl.activities.deps import Deps
from spotctl.activities.notify import NotifyActivities
from spotctl.clouds import local_cgroups
from spotctl.config import Settings
from spotctl.embedded import EmbeddedServer
from spotctl.models import CallbackRequest, JobEvent, JobStatus
from spotctl.notify import callback_cgroups

from conftest import embedded_spot, spotctl_env

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or not (local_cgroups.FREEZER / "cgroup.procs").exists(),
    reason="needs root and a cgroup v1 freezer hierarchy",
)


def event() -> JobEvent:
    return JobEvent(event_id="21-5", job_id=21, name="escape", status=JobStatus.RUNNING, previous=JobStatus.STARTING,
                    at=datetime(2026, 1, 1, tzinfo=UTC))


def unique_arg() -> str:
    return f"600.{secrets.randbelow(10**9):09d}"


def escaping(tmp_path: Path) -> tuple[str, list[str]]:
    """A command that starts a `setsid` sleeper and a double-forked one, and waits until both
    run; and the sleep arguments to find them by."""
    args = [unique_arg(), unique_arg()]
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    command = textwrap.dedent(f"""\
        setsid sh -c 'touch {ready[0]}; exec sleep {args[0]}' >/dev/null 2>&1 &
        ( setsid sh -c '(touch {ready[1]}; exec sleep {args[1]}) & exit 0' >/dev/null 2>&1 & )
        while [ ! -e {ready[0]} ] || [ ! -e {ready[1]} ]; do sleep 0.02; done
        """)
    return command, args


def running(args: list[str]) -> list[int]:
    """Live `sleep ARG` processes for the `args` (a zombie's command line is empty)."""
    wanted = {f"sleep\0{a}\0".encode() for a in args}
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline in wanted:
            found.append(int(entry))
    return found


def wait_running(args: list[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(running(args)) < len(args):
        assert time.monotonic() < deadline, f"the callback's sleepers never ran: {running(args)}"
        time.sleep(0.05)


def no_groups_of(worker: str) -> bool:
    return not (callback_cgroups.root() / worker).exists()


@pytest.fixture
def notify(settings: Settings) -> NotifyActivities:
    return NotifyActivities(Deps(settings))


@needs_cgroups
@pytest.mark.parametrize("end", ["exits", "times-out", "cancelled"])
async def test_nothing_a_callback_started_outlives_it(end: str, tmp_path: Path, notify: NotifyActivities) -> None:
    command, args = escaping(tmp_path)
    env = ActivityEnvironment()
    req = CallbackRequest(event=event(), command=command + ("exit 0" if end == "exits" else "sleep 600"),
                          timeout_s=2 if end == "times-out" else 300)
    if end == "cancelled":
        run = asyncio.create_task(env.run(notify.run_event_callback, req))
        await asyncio.to_thread(wait_running, args)
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 10)
    else:
        outcome = await env.run(notify.run_event_callback, req)
        assert outcome.timed_out == (end == "times-out")
    assert running(args) == []
    assert no_groups_of(callback_cgroups.worker_key())


KILLED_WORKER = textwrap.dedent("""\
    import asyncio, os
    from datetime import UTC, datetime
    from temporalio.testing import ActivityEnvironment
    from spotctl.activities.event_callback import run_callback
    from spotctl.models import CallbackRequest, JobEvent, JobStatus
    req = CallbackRequest(event=JobEvent(event_id="1-1", job_id=1, name="x", status=JobStatus.RUNNING,
                                         at=datetime(2026, 1, 1, tzinfo=UTC)),
                          command=os.environ["CALLBACK_COMMAND"], timeout_s=600)
    asyncio.run(ActivityEnvironment().run(run_callback, req))
    """)
"""A worker running one callback (the command in $CALLBACK_COMMAND: not on its command line)."""


@needs_cgroups
def test_a_killed_workers_callbacks_are_swept(tmp_path: Path) -> None:
    """A worker SIGKILLed mid-callback cannot kill it; the next worker (or `server stop`) does."""
    command, args = escaping(tmp_path)
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER],
                              env={**os.environ, "CALLBACK_COMMAND": command + "sleep 600"})
    try:
        wait_running(args, timeout=30)
        key = callback_cgroups.worker_key(worker.pid)
        assert key not in callback_cgroups.sweep_orphans()  # its worker runs: not touched (others' dead ones may be)
        assert len(running(args)) == 2
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert len(running(args)) == 2  # what the kill left
    assert key in callback_cgroups.sweep_orphans()
    assert running(args) == [] and no_groups_of(key)


@needs_cgroups
def test_server_stop_leaves_no_callback_process(tmp_path: Path) -> None:
    """A job whose callback started escaping processes and still runs: `server stop` (drain,
    then SIGKILL of the worker if need be) leaves none of them."""
    command, args = escaping(tmp_path)
    home = tmp_path / "spotctl-home"
    home.mkdir()
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"name": "cb", "resources": {"cpus": "1+"}, "run": "echo done",
                                    "event_callback": command + "sleep 600"}))
    (home / "config.yaml").write_text(yaml.safe_dump({"notify": {"callback_timeout_s": 600}}))
    with embedded_spot(home, spotctl_env(home)) as spot:
        job_id = spot.launch_detached(str(task))
        wait_running(args, timeout=60)
        spot.wait_status(job_id, "SUCCEEDED", timeout=60)  # the job goes on; its instance is gone
        assert spot.alive_instances() == []
        worker = callback_cgroups.worker_key(EmbeddedServer(spot.settings).worker.pid())
        assert not no_groups_of(worker)  # the callback runs in its group
    assert running(args) == []
    assert no_groups_of(worker)


async def test_without_cgroups_the_process_group_is_killed_and_the_log_says_so(
        tmp_path: Path, notify: NotifyActivities, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The fallback (not root, no freezer): what stays in the callback's group is still killed."""
    monkeypatch.setattr(local_cgroups, "FREEZER", Path("/nonexistent/freezer"))
    monkeypatch.setattr(callback_cgroups, "_warned", [])
    arg = unique_arg()
    outcome = await ActivityEnvironment().run(notify.run_event_callback, CallbackRequest(
        event=event(), command=f"sleep {arg} >/dev/null 2>&1 & exit 0"))
    assert outcome.exit_code == 0
    deadline = time.monotonic() + 5  # SIGKILL is sent; the kernel ends the process a moment later
    while running([arg]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running([arg]) == []
    assert "no cgroup for callbacks" in caplog.text and "setsid" in caplog.text

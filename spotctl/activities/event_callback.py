"""Running a task's event_callback for one status event (the run_event_callback activity's work).

As SkyPilot does on its jobs controller (sky/jobs/utils.py): `bash -c COMMAND` with the worker's
environment, the task's envs and secrets, and notifications.callback_env. It runs in a fresh temporary directory, removed
afterwards: a worker's own working directory is arbitrary (/ in a container, a service's dir),
and a callback must not leave files in it; use absolute paths or ~ (the worker user's home). It
gets its own session and, where the machine allows it, its own freezer cgroup
(notify/callback_cgroups.py), which no descendant can leave: a process it starts with `setsid` or
daemonizes is still found. stdin is /dev/null, and its output is kept only as a bounded tail for
the worker's log. At its time-out or when the activity is cancelled everything it runs gets
SIGTERM, then SIGKILL after a grace; like SkyPilot, whatever it started is killed when it ends,
and a worker that stops (or is killed, see callback_cgroups.sweep_orphans) leaves none of it
running. Without a cgroup the process group alone is signalled. Its exit code is returned, never
raised: a callback's failure never changes the job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from spotctl.models import CallbackOutcome, CallbackRequest
from spotctl.node_agent.agent_procs import group_alive  # on purpose: the node agent's own stdlib check
from spotctl.notify import callback_cgroups, callback_env
from spotctl.remote.local import _joiner

CALLBACK_OUTPUT_TAIL_BYTES = 2048
"""The last bytes of a callback's output that reach the worker's log."""
CALLBACK_KILL_GRACE_S = 2.0
"""After SIGTERM at the time-out, this long before SIGKILL."""
_READ_CHUNK = 4096


class OutputTail:
    """The last `limit` bytes of a stream, however much it writes."""

    def __init__(self, limit: int = CALLBACK_OUTPUT_TAIL_BYTES) -> None:
        self.limit = limit
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        cut = "…" if self.total > len(self.data) else ""
        return cut + self.data.decode("utf-8", "replace")


async def _drain(stream: asyncio.StreamReader, tail: OutputTail) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        tail.add(chunk)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of the group; False when none is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@dataclass
class _Confined:
    """What one callback runs: its process group, and its cgroup where it has one."""

    pgid: int
    group: Path | None

    def signal(self, sig: int) -> None:
        _signal_group(self.pgid, sig)
        if self.group is not None:
            callback_cgroups.signal_members(self.group, sig)

    def alive(self) -> bool:
        """Whether a process of it still runs (zombies do not count: where PID 1 does not
        reap orphans, some containers, they stay forever and run nothing). The node agent's test."""
        if self.group is not None and callback_cgroups.members(self.group):
            return True
        return _signal_group(self.pgid, 0) and group_alive(self.pgid)

    async def kill(self) -> None:
        """SIGKILL all of it; the cgroup is frozen first, so nothing forks past the kill."""
        _signal_group(self.pgid, signal.SIGKILL)
        if self.group is not None:
            await asyncio.to_thread(callback_cgroups.destroy, self.group)


async def _stop(confined: _Confined, grace_s: float = CALLBACK_KILL_GRACE_S) -> None:
    """SIGTERM everything the callback runs, SIGKILL whatever is left after `grace_s`."""
    confined.signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while loop.time() < deadline:
        if not confined.alive():
            break
        await asyncio.sleep(0.1)
    await confined.kill()


async def _exited(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Whether the callback's shell exited within `timeout_s`. Polled: before Python 3.12,
    `proc.wait()` returns only once its output pipe closes too, and a background process the
    callback started holds that pipe open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while proc.returncode is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
    return True


async def _finish(proc: asyncio.subprocess.Process, confined: _Confined, reader: asyncio.Task[None]) -> None:
    """Kill what the callback left behind and let the reader see the pipe close."""
    await confined.kill()
    await _exited(proc, 5.0)
    try:
        await asyncio.wait_for(reader, 1.0)
    except TimeoutError:  # without a cgroup, a process that left the group (setsid) still holds the pipe
        pass


def _exit_code(returncode: int) -> int:
    """As a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


async def _start(req: CallbackRequest, cwd: str) -> tuple[asyncio.subprocess.Process, _Confined] | None:
    """Start `bash -c COMMAND` in its own session and cgroup (joined before it execs)."""
    group = callback_cgroups.create()
    procs = None
    try:
        if group is not None:
            procs = os.open(group / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", req.command, cwd=cwd, env={**os.environ, **req.envs, **callback_env(req.event)},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=None if procs is None else _joiner(procs))
    except OSError as exc:  # no bash on this worker
        activity.logger.warning("event_callback of %s could not start: %s", req.event.event_id, exc)
        if group is not None:
            callback_cgroups.destroy(group)
        return None
    finally:
        if procs is not None:
            os.close(procs)
    return proc, _Confined(proc.pid, group)


async def _run_callback(req: CallbackRequest, cwd: str) -> CallbackOutcome:
    started = await _start(req, cwd)
    if started is None:
        return CallbackOutcome(exit_code=127)
    proc, confined = started
    assert proc.stdout is not None
    tail = OutputTail()
    reader = asyncio.get_running_loop().create_task(_drain(proc.stdout, tail))
    timed_out = False
    try:
        try:
            if not await _exited(proc, req.timeout_s):
                timed_out = True
                await _stop(confined)
        except asyncio.CancelledError:
            await _stop(confined)
            raise
    finally:
        await _finish(proc, confined, reader)
    outcome = CallbackOutcome(exit_code=None if timed_out else _exit_code(proc.returncode or 0), timed_out=timed_out)
    _log_outcome(req, outcome, tail)
    return outcome


def _log_outcome(req: CallbackRequest, outcome: CallbackOutcome, tail: OutputTail) -> None:
    how = f"was killed at its {req.timeout_s:g} s time-out" if outcome.timed_out else f"exited {outcome.exit_code}"
    log = activity.logger.info if outcome.exit_code == 0 else activity.logger.warning
    log("event_callback for %s (job %s %s) %s; output (last %d bytes): %s", req.event.event_id, req.event.job_id,
        req.event.status.value, how, CALLBACK_OUTPUT_TAIL_BYTES, tail.text() or "(none)")


async def run_callback(req: CallbackRequest) -> CallbackOutcome:
    """Run the callback in a temporary directory, to its end or its time-out."""
    with tempfile.TemporaryDirectory(prefix="spotctl-callback-", ignore_cleanup_errors=True) as cwd:
        return await _run_callback(req, cwd)

"""Following a job: its log bytes as they arrive, recovery markers between attempts, its status
changes, a spinner meanwhile."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import BinaryIO

from rich.markup import escape

from spotctl.cli.common import StoppedFollowing, err_console
from spotctl.cli.render import safe
from spotctl.client import SpotClient
from spotctl.models import JobState, JobStatus

POLL_S = 0.25


def _stdout_bytes() -> BinaryIO:
    """stdout's byte stream: the program's output is written as the bytes it wrote (text
    decoding would replace non-UTF-8 bytes, and a character split across two reads). Text
    written to sys.stdout earlier is flushed first, so the order stays."""
    sys.stdout.flush()
    return sys.stdout.buffer


def write_log(rank: int, data: bytes, at_line_start: bool = True) -> bool:
    """Log bytes to stdout, unchanged; lines of nodes other than the head are prefixed with
    their rank. `at_line_start`: whether the node's previous bytes ended a line (a line may
    arrive in pieces; it gets one prefix). Returns the same for the bytes after these."""
    if rank:
        prefix, out = f"(node-{rank}) ".encode(), []
        for line in data.splitlines(keepends=True):
            out += [prefix, line] if at_line_start else [line]
            at_line_start = line.endswith((b"\n", b"\r"))
        data = b"".join(out)
    elif data:
        at_line_start = data.endswith((b"\n", b"\r"))
    _stdout_bytes().write(data)
    return at_line_start


def recovery_marker(state: JobState, attempt: int) -> str:
    """The line between attempt-1's and attempt's logs, e.g. '--- recovery 2: preempted in
    local-east/local-east-1a, relaunched in local-west/local-west-1b ---'."""
    records = {r.attempt: r for r in state.history}
    prev, cur = records.get(attempt - 1), records.get(attempt)
    what = f"{prev.outcome or 'ended'} in {prev.region}/{prev.zone}" if prev else "previous attempt ended"
    where = f", relaunched in {cur.region}/{cur.zone}" if cur else ", relaunched"
    return f"--- recovery {attempt - 1}: {what}{where} ---\n"


@dataclass
class LogPrinter:
    """Prints each stored log byte once, attempts in order, with a marker before each recovery."""

    client: SpotClient
    job_id: int
    only_attempt: int | None = None
    offsets: dict[tuple[int, int], int] = field(default_factory=dict)
    marked: set[int] = field(default_factory=set)
    line_start: dict[tuple[int, int], bool] = field(default_factory=dict)
    before_write: Callable[[], None] | None = None
    """Called before the first bytes a print_new writes (follow hides its status line)."""

    @property
    def at_line_start(self) -> bool:
        """Whether every node's output so far ended its line (a status line may go below it)."""
        return all(self.line_start.values())

    def _write(self, data: bytes) -> None:
        if self.before_write is not None:
            self.before_write()
        _stdout_bytes().write(data)

    def print_new(self, state: JobState) -> None:
        logs = self.client.logs
        if self.only_attempt is not None:
            attempts = [self.only_attempt]
        else:
            attempts = sorted(set(logs.attempts(self.job_id)) | {r.attempt for r in state.history})
        for a in attempts:
            if self.only_attempt is None and a != attempts[0] and a not in self.marked:
                self.marked.add(a)
                self._write(recovery_marker(state, a).encode())
            for r in logs.ranks(self.job_id, a):
                data = logs.read(self.job_id, a, r, self.offsets.get((a, r), 0))
                if data:
                    self.offsets[(a, r)] = self.offsets.get((a, r), 0) + len(data)
                    if self.before_write is not None:
                        self.before_write()
                    self.line_start[(a, r)] = write_log(r, data, self.line_start.get((a, r), True))
        _stdout_bytes().flush()


def describe(state: JobState) -> str:
    """The job's status line (plain text: print it with markup off). The name's repr and
    `safe` keep control characters of user-provided text from reaching the terminal raw."""
    text = f"Job {state.job_id} {state.name!r}: {state.status.value}"
    if state.detail:
        text += f" - {safe(state.detail)}"
    return text


async def follow(client: SpotClient, job_id: int, *, progress: bool, attempt: int | None = None) -> JobState:
    """Print logs (and, with `progress`, status changes) until the job ends; return its state.

    On a terminal a status line below the logs says what the job does (waiting for capacity,
    and why; running quietly), so a silent follow never looks hung; on a pipe only the log bytes
    (and, with `progress`, the status changes) are printed. Ctrl-C raises StoppedFollowing:
    asyncio.run turns SIGINT into a cancel of the command's task, and follow is the CLI's
    outermost wait, so that cancel is the user's."""
    try:
        return await _follow(client, job_id, progress=progress, attempt=attempt)
    except asyncio.CancelledError:
        raise StoppedFollowing(job_id) from None


async def _follow(client: SpotClient, job_id: int, *, progress: bool, attempt: int | None) -> JobState:
    printer = LogPrinter(client, job_id, attempt)
    last_seen = ""
    spinner = err_console.status("") if err_console.is_terminal else nullcontext()
    with spinner as status:
        if status is not None and sys.stdout.isatty():
            # Log bytes go to the terminal raw: the status line is hidden while they are written,
            # and shown again below them once their line is complete.
            printer.before_write = status.stop
        while True:
            state = await client.get_job(job_id)
            # Logs first: whatever led to this state (setup's last lines before RUNNING) was
            # shipped before the state changed, so it is printed before the state line.
            printer.print_new(state)
            line = describe(state)
            if status is not None:
                status.update(escape(line))
                if printer.at_line_start and not state.status.is_terminal:
                    status.start()
            if progress and line != last_seen:
                last_seen = line
                if state.status != JobStatus.RUNNING or not state.detail:
                    err_console.print(line, style="dim", markup=False)  # above the status line
            if state.status.is_terminal:
                return state
            await asyncio.sleep(POLL_S)


def print_result(state: JobState) -> None:
    if state.status == JobStatus.SUCCEEDED:
        err_console.print(f"Job {state.job_id} {state.name!r} SUCCEEDED", style="green", markup=False)
    elif state.status == JobStatus.CANCELLED:
        err_console.print(f"Job {state.job_id} {state.name!r} CANCELLED", style="yellow", markup=False)
    elif state.status.is_terminal:
        why = f": {safe(state.failure_reason)}" if state.failure_reason else ""
        err_console.print(f"Job {state.job_id} {state.name!r} {state.status.value}{why}", style="red", markup=False)
    else:
        err_console.print(f"Job {state.job_id} {state.name!r} is {state.status.value}", markup=False)

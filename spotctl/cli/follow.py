"""Following a job: its log bytes as they arrive, recovery markers between attempts, its status
changes, a spinner meanwhile.

A pipeline's logs are its tasks' attempts in order (attempts are numbered across the whole
pipeline), with a `--- task i/n 'name' ---` line where a task begins and recovery markers only
between two attempts of one task: a task's first attempt is no recovery."""

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
from spotctl.client import SpotClient, attempt_tasks, current_index, task_label
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


def recovery_marker(state: JobState, attempt: int, number: int | None = None) -> str:
    """The line between attempt-1's and attempt's logs, e.g. '--- recovery 2: preempted in
    local-east/local-east-1a, relaunched in local-west/local-west-1b ---'. `number`: the
    recovery's number when it is not attempt - 1 (a pipeline task's recoveries count from its
    own first attempt)."""
    records = {r.attempt: r for r in state.history}
    prev, cur = records.get(attempt - 1), records.get(attempt)
    what = f"{prev.outcome or 'ended'} in {prev.region}/{prev.zone}" if prev else "previous attempt ended"
    where = f", relaunched in {cur.region}/{cur.zone}" if cur else ", relaunched"
    return f"--- recovery {attempt - 1 if number is None else number}: {what}{where} ---\n"


def task_marker(state: JobState, index: int) -> str:
    """The line before a pipeline task's logs: '--- task 1/3 'eval' ---' (index 0-based, as
    `logs --task` and status's TASK column count)."""
    return f"--- {safe(task_label(state.tasks, index))} ---\n"


def attempt_marker(state: JobState, attempts: list[int], owners: dict[int, int | None], i: int, *,
                   task_markers: bool = True) -> str | None:
    """The line printed before the logs of attempts[i] (attempts in order, as printed), or None.

    A single job: a recovery marker before every attempt but the first. A pipeline: a task
    marker before the first attempt of each task (when `task_markers`), a recovery marker
    before the task's later ones, numbered within the task."""
    a = attempts[i]
    if not state.is_pipeline:
        return recovery_marker(state, a) if i else None
    task = owners.get(a)
    first = next(j for j in range(i + 1) if owners.get(attempts[j]) == task)
    if first == i:
        return task_marker(state, task) if task_markers and task is not None else None
    return recovery_marker(state, a, number=i - first)


@dataclass
class LogPrinter:
    """Prints each stored log byte once, attempts in order, with a marker before each recovery
    (and, for a pipeline, before each task)."""

    client: SpotClient
    job_id: int
    only_attempt: int | None = None
    only_task: int | None = None
    """A pipeline's task (0-based): only its attempts, with recovery markers between them."""
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

    def attempts(self, state: JobState) -> tuple[list[int], dict[int, int | None]]:
        """The attempts to print now, in order, and the task of each (pipelines). A pipeline's
        attempt whose task is not known yet (nor any after it) waits for the next state, so
        its marker names the right task; once the job ended, everything is printed."""
        if self.only_attempt is not None:
            return [self.only_attempt], {}
        attempts = sorted(set(self.client.logs.attempts(self.job_id)) | {r.attempt for r in state.history})
        if not state.is_pipeline:
            return attempts, {}
        owners = attempt_tasks(state, attempts)
        if not state.status.is_terminal:
            unknown = next((i for i, a in enumerate(attempts) if owners[a] is None), len(attempts))
            attempts = attempts[:unknown]
        if self.only_task is not None:
            attempts = [a for a in attempts if owners[a] == self.only_task]
        return attempts, owners

    def print_new(self, state: JobState) -> None:
        logs = self.client.logs
        attempts, owners = self.attempts(state)
        for i, a in enumerate(attempts):
            if self.only_attempt is None and a not in self.marked:
                self.marked.add(a)
                line = attempt_marker(state, attempts, owners, i, task_markers=self.only_task is None)
                if line:
                    self._write(line.encode())
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


async def follow(client: SpotClient, job_id: int, *, progress: bool, attempt: int | None = None,
                 task: int | None = None) -> JobState:
    """Print logs (and, with `progress`, status changes) until the job ends; return its state.

    On a terminal a status line below the logs says what the job does (waiting for capacity,
    and why; running quietly), so a silent follow never looks hung; on a pipe only the log bytes
    (and, with `progress`, the status changes) are printed. Ctrl-C raises StoppedFollowing:
    asyncio.run turns SIGINT into a cancel of the command's task, and follow is the CLI's
    outermost wait, so that cancel is the user's."""
    try:
        return await _follow(client, job_id, progress=progress, attempt=attempt, task=task)
    except asyncio.CancelledError:
        raise StoppedFollowing(job_id) from None


async def _follow(client: SpotClient, job_id: int, *, progress: bool, attempt: int | None,
                  task: int | None) -> JobState:
    printer = LogPrinter(client, job_id, attempt, task)
    last_seen = ""
    running_tasks: set[int | None] = set()
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
                if _worth_a_line(state, running_tasks):
                    err_console.print(line, style="dim", markup=False)  # above the status line
            if followed(state, task).status.is_terminal:
                return state
            await asyncio.sleep(POLL_S)


def followed(state: JobState, task: int | None) -> JobState:
    """What a follow waits for the end of: the job, or (logs --task N) that task of it."""
    return state.tasks[task] if task is not None and 0 <= task < len(state.tasks) else state


def _worth_a_line(state: JobState, running_tasks: set[int | None]) -> bool:
    """Whether a status change gets its own line: every one but the running job's detail
    changes (the status line shows those); a pipeline's RUNNING once per task."""
    if state.status != JobStatus.RUNNING or not state.detail:
        return True
    if not state.is_pipeline:
        return False
    task = current_index(state.tasks)
    if task in running_tasks:
        return False
    running_tasks.add(task)
    return True


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

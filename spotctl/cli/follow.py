"""Following a job: its log bytes as they arrive, its status changes, a spinner meanwhile."""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext

from spotctl.cli.common import console, err_console
from spotctl.client import SpotClient
from spotctl.models import JobState, JobStatus

POLL_S = 0.25


def write_log(rank: int, data: bytes) -> None:
    """Log bytes to stdout; lines of nodes other than the head are prefixed with their rank."""
    text = data.decode(errors="replace")
    if rank:
        text = "".join(f"(node-{rank}) {line}" for line in text.splitlines(keepends=True))
    sys.stdout.write(text)
    sys.stdout.flush()


def describe(state: JobState) -> str:
    text = f"Job {state.job_id} {state.name!r}: {state.status.value}"
    if state.detail:
        text += f" - {state.detail}"
    return text


async def follow(client: SpotClient, job_id: int, *, progress: bool, attempt: int | None = None) -> JobState:
    """Print logs (and, with `progress`, status changes) until the job ends; return its state."""
    offsets: dict[tuple[int, int], int] = {}
    last_seen = ""
    spinner = err_console.status("") if progress and err_console.is_terminal else nullcontext()
    with spinner as status:
        while True:
            state = await client.get_job(job_id)
            # Logs first: whatever led to this state (setup's last lines before RUNNING) was
            # shipped before the state changed, so it is printed before the state line.
            for a in [attempt] if attempt is not None else client.logs.attempts(job_id):
                for r in client.logs.ranks(job_id, a):
                    data = client.logs.read(job_id, a, r, offsets.get((a, r), 0))
                    if data:
                        offsets[(a, r)] = offsets.get((a, r), 0) + len(data)
                        write_log(r, data)
            if progress:
                line = describe(state)
                if line != last_seen:
                    last_seen = line
                    if status is not None:
                        status.update(line)
                    if state.status != JobStatus.RUNNING or not state.detail:
                        err_console.print(line, style="dim", markup=False)
            if state.status.is_terminal:
                return state
            await asyncio.sleep(POLL_S)


def print_result(state: JobState) -> None:
    if state.status == JobStatus.SUCCEEDED:
        err_console.print(f"[green]Job {state.job_id} {state.name!r} SUCCEEDED[/green]")
    elif state.status == JobStatus.CANCELLED:
        err_console.print(f"[yellow]Job {state.job_id} {state.name!r} CANCELLED[/yellow]")
    elif state.status.is_terminal:
        why = f": {state.failure_reason}" if state.failure_reason else ""
        err_console.print(f"Job {state.job_id} {state.name!r} {state.status.value}{why}", style="red", markup=False)
    else:
        err_console.print(f"Job {state.job_id} {state.name!r} is {state.status.value}")
    _ = console

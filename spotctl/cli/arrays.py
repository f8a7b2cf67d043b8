"""The CLI's side of job arrays (`launch --num-jobs N`) and priorities (`--priority`):
the bounds, the launch of an array (one block of ids, one staging, one durable submitter),
and reading an array's size for `status --array` / `cancel --array`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from spotctl.cli.common import console, fail
from spotctl.client import SpotClient
from spotctl.client.arrays import (
    ArrayNotFound,
    allocate_block,
    array_query,
    array_size,
    array_started,
    arrays_named,
    release_block,
    start_array,
    stop_array,
)
from spotctl.launch import Plan, bucket_regions, delete_buckets, stage_tasks
from spotctl.models import MAX_PRIORITY, MIN_PRIORITY, JobState, JobStatus
from spotctl.models import search_attributes as sa
from spotctl.models.array import MAX_ARRAY_JOBS, ArraySpec

SUBMITTED_POLL_S = 0.5
"""How often `launch --num-jobs N` (without --async) looks whether every job exists yet."""


def check_num_jobs(num_jobs: int | None) -> None:
    """--num-jobs out of its bounds: one line, exit 2, before anything is made."""
    if num_jobs is not None and not 1 <= num_jobs <= MAX_ARRAY_JOBS:
        fail(f"--num-jobs must be between 1 and {MAX_ARRAY_JOBS:,} (got {num_jobs}); for more, launch "
             "several arrays")


def check_priority(priority: int | None, what: str = "--priority") -> None:
    """A priority out of SkyPilot's range: one line, exit 2."""
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        fail(f"{what} must be between {MIN_PRIORITY} and {MAX_PRIORITY} (got {priority}); higher runs first")


async def launch_array(client: SpotClient, p: Plan, count: int, pool: str | None = None) -> int:
    """Allocate the array's ids (one block), stage its files once, start its submitter: the
    first job id. With `pool`, every job of the array runs on that pool's workers. On failure before the submitter exists, the files are deleted and the block
    given back; once it exists, it owns both (workflows/job_array.py)."""
    s = client.settings
    first = await allocate_block(client, count, str(uuid.uuid4()))
    try:
        staged = await asyncio.to_thread(stage_tasks, [p.task], first, s, bucket_regions(p.candidates))
        template = p.to_spec(first, staged[0], s.notify)
        spec = ArraySpec(first_id=first, count=count,
                         template=template.model_copy(update={"ephemeral_buckets": [], "pool": pool}),
                         ephemeral_buckets=template.ephemeral_buckets)
        try:
            await start_array(client, spec)
        except BaseException:
            await asyncio.to_thread(delete_buckets, spec.ephemeral_buckets, s)
            raise
    except BaseException:
        await release_block(client, first, count)
        raise
    return first


async def wait_submitted(client: SpotClient, first: int, count: int) -> None:
    """Until every job of the array exists (the submitter started them all)."""
    while await array_started(client, first) < count:
        await asyncio.sleep(SUBMITTED_POLL_S)


async def array_listing(client: SpotClient, first: int, query: str | None) -> tuple[str, str]:
    """`status --array FIRST`: the query of its jobs (within `query`), and its one-line
    summary: its size, how many exist, how many are in each status."""
    name, count = await array_size(client, first)
    jobs = array_query(first, count)
    started = await array_started(client, first)
    counts = await asyncio.gather(*(client.count_jobs(f"{jobs} AND {sa.STATUS.name} = '{st.value}'")
                                    for st in JobStatus))
    by_status = ", ".join(f"{n:,} {st.value}" for st, n in zip(JobStatus, counts, strict=True) if n)
    submitting = f", {started:,} submitted so far" if started < count else ""
    summary = f"Job array {first} {name!r}: {count:,} jobs (ids {first}-{first + count - 1}{submitting}): {by_status or '-'}"
    return (f"({query}) AND {jobs}" if query else jobs), summary


ARRAY_FOOTERS = 5
"""Job arrays a plain `status` names under its table (the newest first)."""


async def array_footers(client: SpotClient, jobs: list[JobState]) -> list[str]:
    """One line per job array only part of which is in the table (at most ARRAY_FOOTERS, then
    how many more): how many of its jobs are shown, and the command that shows them all, so a table
    of 50 rows of a 10,000-job array is not taken for the array."""
    shown: dict[int, int] = {}
    for job in jobs:
        if job.array_first_id is not None:
            shown[job.array_first_id] = shown.get(job.array_first_id, 0) + 1
    lines = []
    for first in sorted(shown, reverse=True)[:ARRAY_FOOTERS]:
        try:
            name, count = await array_size(client, first)
        except ArrayNotFound:
            continue
        if shown[first] >= count:
            continue  # all of it is in the table
        lines.append(f"Job array {first} {name!r}: {shown[first]:,} of its {count:,} jobs shown; "
                     f"`spotctl status --array {first}` for all, counted by status.")
    if len(shown) > ARRAY_FOOTERS:
        lines.append(f"... and {len(shown) - ARRAY_FOOTERS} more job arrays.")
    return lines


async def arrays_to_cancel(client: SpotClient, first: int | None, name: str | None, every: bool,
                           pool: str | None = None) -> list[int]:
    """The arrays a `cancel` takes whole: --array FIRST (which must exist), and those whose
    submitter still runs with the name given (-n), on the pool given (-p), or any (-a)."""
    found = []
    if first is not None:
        await array_size(client, first)  # ArrayNotFound: exit as for a job that does not exist
        found.append(first)
    if name or every:
        found += await arrays_named(client, None if every else name)
    if pool is not None and not every:
        found += await arrays_named(client, None, pool=pool)
    return list(dict.fromkeys(found))


async def cancel_array(client: SpotClient, first: int,
                       cancel_each: Callable[[SpotClient, list[int]], Awaitable[dict[int, bool | None]]]) -> set[int]:
    """Stop the array's submitter (no job of it starts after), then cancel every job it
    started; one line says how it went. The ids it took."""
    started = await stop_array(client, first)
    ids = list(range(first, first + started))
    outcome = await cancel_each(client, ids)
    cancelling = sum(1 for v in outcome.values() if v is True)
    ended = sum(1 for v in outcome.values() if v is False)
    _, count = await array_size(client, first)
    unsubmitted = f", {count - started:,} never submitted" if started < count else ""
    console.print(f"Job array {first}: {cancelling:,} job(s) cancelling, {ended:,} already finished{unsubmitted}")
    return set(ids)

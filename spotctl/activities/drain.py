"""A monitor gives its job to another worker the moment its own worker drains.

On SIGTERM a worker stops taking work and gives its running activities `drain_timeout_s`
before it cancels them. A monitor never finishes in that time (it follows a program for
days), and a cancel at the end would leave the job unwatched until its heartbeat time-out.
So a monitor ends at once with a retryable error: Temporal retries it a second later on a
worker that still polls, which re-attaches to the same program (never restarting it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

T = TypeVar("T")

WORKER_DRAINING = "WorkerDraining"
HANDOVER_DELAY = timedelta(seconds=1)
"""When the retry is scheduled: whatever its attempt number, a handed-over monitor must not
wait out the retry policy's growing backoff (a rolling restart moves it several times)."""


async def until_worker_drains(work: Awaitable[T]) -> T:
    """`work`'s result, unless this worker starts shutting down first: then `work` is
    cancelled and a retryable WorkerDraining error hands the activity to another worker."""
    work_task = asyncio.ensure_future(work)
    drain = asyncio.ensure_future(activity.wait_for_worker_shutdown())
    try:
        done, _ = await asyncio.wait({work_task, drain}, return_when=asyncio.FIRST_COMPLETED)
        if work_task in done:
            return work_task.result()
        activity.metric_meter().create_counter(
            "spotctl_monitor_handovers", "monitors handed to another worker by a drain").add(1)
        raise ApplicationError("this worker is draining; another worker takes over", type=WORKER_DRAINING,
                               next_retry_delay=HANDOVER_DELAY, category=ApplicationErrorCategory.BENIGN)
    finally:
        for task in (work_task, drain):
            task.cancel()
        await asyncio.gather(work_task, drain, return_exceptions=True)

"""release_early: a pool job's monitor gives its worker back the moment it sees the program end.

The job's workflow gives the worker back too (workflows/pool_job.py), but only once the
monitor's result is recorded, a workflow task has run on it and its signal has reached the
pool: on a busy controller, a second or more in which the worker sits held and idle while
jobs wait (bench/pool_throughput.py measured 1.25 s mean from a program's end to the
release). Here the program is known to be over (every node's exit code read, its output
shipped), so the worker can go at once, with no new command in any workflow.

The monitor's result says whether the server took the release (RunOutcome.released): the
workflow then sends none of its own (the `pool-early-release` patch, workflows/pool_job.py),
a signal and a workflow task fewer per job on the job's workflow and on the pool's. Safe to
send twice all the same: the pool takes a release only from the job and request (seq) its
worker is busy with (workflows/pool.py `release`), so this one sent again by a retried
monitor, or the workflow's own in a history from before the patch, finds the worker free or
another job's and changes nothing. Best effort and bounded: a release that fails (the pool
is down, the server slow) is left to the workflow, as before this module.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from spotctl.models import AttemptRef
from spotctl.models.pool import RELEASE_SIGNAL, PoolRelease, pool_workflow_id

RELEASE_TIMEOUT_S = 10.0
"""The longest the monitor waits for the server to take the early release."""


async def release_early(ref: AttemptRef) -> bool:
    """Give the worker of pool job `ref` back to its pool (its request is the attempt:
    workflows/pool_job.py asks with seq = the attempt number); whether the server took it.
    False, and nothing sent, for a job not on a pool."""
    if ref.job.pool is None:
        return False
    release = PoolRelease(job_id=ref.job.job_id, seq=ref.attempt, lost=False)
    try:
        handle = activity.client().get_workflow_handle(pool_workflow_id(ref.job.pool))
        await asyncio.wait_for(handle.signal(RELEASE_SIGNAL, release), RELEASE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the workflow's own release follows anyway
        activity.logger.info("job %s: early release to pool %s not sent (%s); the workflow sends it",
                             ref.job.job_id, ref.job.pool, exc)
        return False
    return True

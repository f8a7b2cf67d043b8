"""A job array's submitter activities: start its jobs' workflows a batch at a time, and (when
the array staged files) wait until every job has ended, then delete them.

Starting is idempotent by construction: a job's workflow id is its id (`spotctl-job-<id>`,
allocated as one block), started with Temporal's USE_EXISTING conflict policy and
REJECT_DUPLICATE reuse policy, so a retried batch, a second submitter run or a crash in the
middle never makes a second job for one id: the start of an existing job is a no-op.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from spotctl.activities.deps import Deps
from spotctl.activities.drain import until_worker_drains
from spotctl.activities.heartbeat import heartbeating
from spotctl.models import TASK_QUEUE, ActivityNames, JobSpec
from spotctl.models import search_attributes as sa
from spotctl.models.array import ArrayBatch, ArrayEnd, array_job
from spotctl.models.naming import JOB_WORKFLOW, job_workflow_id
from spotctl.storage.registry import delete_buckets

STARTS_AT_ONCE = 32
"""Workflow starts one batch sends at the same time: fast, and gentle on the server."""
ENDED_POLL_S = 5.0
"""How often the end of an array's jobs is looked for (one count query)."""


class ArrayActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.START_ARRAY_JOBS)
    async def start_array_jobs(self, batch: ArrayBatch) -> int:
        """Start ranks batch.start..end-1; how many of them this call started (the rest
        existed already)."""
        client = activity.client()
        gate = asyncio.Semaphore(STARTS_AT_ONCE)
        done = 0

        async def one(rank: int) -> bool:
            nonlocal done
            async with gate:
                started = await start_job(client, array_job(batch.spec, rank))
                done += 1
                return started

        async with heartbeating() as progress:
            progress(f"starting jobs {batch.spec.first_id + batch.start}-{batch.spec.first_id + batch.end - 1}")
            return sum(await asyncio.gather(*(one(r) for r in range(batch.start, batch.end))))

    @activity.defn(name=ActivityNames.END_ARRAY)
    async def end_array(self, end: ArrayEnd) -> None:
        """Wait until none of the array's started jobs runs, then delete its staged files."""
        client = activity.client()
        last = end.first_id + end.started - 1
        running = (f"WorkflowType = '{JOB_WORKFLOW}' AND ExecutionStatus = 'Running' AND "
                   f"{sa.JOB_ID.name} >= {end.first_id} AND {sa.JOB_ID.name} <= {last}")
        async with heartbeating() as progress:

            async def ended() -> None:
                while end.started and (left := (await client.count_workflows(running)).count):
                    progress(f"{left} job(s) of array {end.first_id} not ended yet")
                    await asyncio.sleep(ENDED_POLL_S)

            await until_worker_drains(ended())  # a draining worker hands the wait over at once, as a monitor
            if end.ephemeral_buckets:
                progress(f"deleting buckets {', '.join(end.ephemeral_buckets)}")
                await asyncio.to_thread(delete_buckets, end.ephemeral_buckets, self.deps.settings)


async def start_job(client: Client, spec: JobSpec) -> bool:
    """Start one job's workflow, PENDING in visibility at once; False when it existed (running
    or ended): never a second job under one id."""
    try:
        await client.start_workflow(
            JOB_WORKFLOW, spec, id=job_workflow_id(spec.job_id), task_queue=TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=sa.first_attributes(spec), memo={"state": spec.first_state().model_dump(mode="json")},
            static_summary=sa.list_summary(spec),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True

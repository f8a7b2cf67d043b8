"""Job arrays from outside: allocate an array's ids as one block, start its submitter, read
and cancel it (models/array.py says what an array is, workflows/job_array.py how it is
submitted).

An array is named by its first job id: its submitter is `spotctl-array-<first id>`, whose memo
holds the array's name and size, and its jobs are the ids first..first+count-1 (one range
query in visibility: no search attribute of its own).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import (
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from spotctl.client.jobs import JOB_ID_SKIPS, JobIdTaken, JobNotFound, SpotClient
from spotctl.client.listing import JOB_TYPES
from spotctl.models import TASK_QUEUE
from spotctl.models import search_attributes as sa
from spotctl.models.array import ARRAY_WORKFLOW, ArraySpec, array_first_id, array_workflow_id
from spotctl.workflows.job_array import JobArrayWorkflow
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID, JobIdAllocator


class ArrayNotFound(JobNotFound):
    pass


def array_query(first_id: int, count: int) -> str:
    """The jobs of the array (for status and cancel): its id range."""
    return f"{sa.JOB_ID.name} >= {first_id} AND {sa.JOB_ID.name} < {first_id + count}"


async def allocate_block(client: SpotClient, count: int, request_id: str | None = None) -> int:
    """The first of `count` consecutive job ids no job has, from the allocator (one update,
    retried under the same request id: a retry gets the same block)."""
    request_id = request_id or str(uuid.uuid4())
    seed = await client._first_free_job_id()
    at_least = 0
    for _ in range(JOB_ID_SKIPS):
        first = await client._ask_allocator(JobIdAllocator.allocate_block, [request_id, count, at_least],
                                            f"allocate-block-{request_id}-{at_least}", seed)
        taken = [e.typed_search_attributes.get(sa.JOB_ID) or 0
                 async for e in client.temporal.list_workflows(f"{JOB_TYPES} AND {array_query(first, count)}")]
        if not taken:
            return first
        at_least = max(taken) + 1  # existing jobs in the block (an allocator seeded behind them)
    raise JobIdTaken(at_least - 1)


async def release_block(client: SpotClient, first_id: int, count: int) -> bool:
    """Give back the block of an array whose submitter never started (best effort)."""
    try:
        await client.temporal.get_workflow_handle(array_workflow_id(first_id)).describe()
        return False
    except RPCError:
        pass
    try:
        return await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).execute_update(
            JobIdAllocator.release, args=[first_id, count], rpc_timeout=timedelta(seconds=10))
    except (WorkflowUpdateFailedError, RPCError):
        return False


async def start_array(client: SpotClient, spec: ArraySpec) -> None:
    """Start the array's submitter; a second start of the same array is a no-op."""
    try:
        await client.temporal.start_workflow(
            JobArrayWorkflow.run, spec, id=array_workflow_id(spec.first_id), task_queue=TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, search_attributes=sa.internal_attributes(),
            memo={"name": spec.template.name, "count": spec.count,
                  **({"pool": spec.template.pool} if spec.template.pool else {})},
        )
    except WorkflowAlreadyStartedError:
        pass


async def array_size(client: SpotClient, first_id: int) -> tuple[str, int]:
    """The array's name and how many jobs it has."""
    try:
        desc = await client.temporal.get_workflow_handle(array_workflow_id(first_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ArrayNotFound(f"no job array starts at job {first_id}") from None
        raise
    memo = await desc.memo()
    return str(memo.get("name", "")), int(memo.get("count", 0))


async def array_started(client: SpotClient, first_id: int) -> int:
    """How many of the array's jobs exist now (its submitter's count)."""
    handle = client.temporal.get_workflow_handle(array_workflow_id(first_id))
    desc = await handle.describe()
    if desc.close_time is not None:
        return await handle.result()
    return await handle.query(JobArrayWorkflow.started)


async def stop_array(client: SpotClient, first_id: int) -> int:
    """Stop the array's submitter; how many of its jobs exist (ranks 0..n-1): no job of it
    is started after this returns."""
    await array_size(client, first_id)  # ArrayNotFound when there is none
    handle = client.temporal.get_workflow_handle(array_workflow_id(first_id))
    try:
        return await handle.execute_update(JobArrayWorkflow.cancel, rpc_timeout=timedelta(seconds=60))
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    return await handle.result()  # it had ended: every job it started exists


async def arrays_named(client: SpotClient, name: str | None, *, pool: str | None = None) -> list[int]:
    """The first ids of the arrays with this name (None: any), and on this pool when `pool` is
    given (its submitter's memo says), whose submitter still runs."""
    found = []
    running = sa.internal(f"WorkflowType = '{ARRAY_WORKFLOW}' AND ExecutionStatus = 'Running'")
    async for e in client.temporal.list_workflows(running):
        memo = await e.memo()
        first = array_first_id(e.id)
        if first is not None and (name is None or memo.get("name") == name) and (pool is None or memo.get("pool") == pool):
            found.append(first)
    return found

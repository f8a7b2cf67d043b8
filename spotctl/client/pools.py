"""Pools as the CLI sees them: start or update one, read its state, list them, take one down.

A pool is the workflow `spotctl-pool-<name>` (models/pool.py, workflows/pool.py). Its number
(PoolSpec.job.job_id, which names and tags its workers' clusters) comes from the job-id
allocator, so no job's clusters can be taken for a pool's; it is the pool's JobId search
attribute, by which the orphan sweeper (worker/sweeper.py) knows the workers are not orphans.
The workflow type is not a job's, so `spotctl status` never lists a pool.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from spotctl.models import TASK_QUEUE
from spotctl.models import search_attributes as sa
from spotctl.models.pool import (
    DOWN_SIGNAL,
    HIDE_SIGNAL,
    POOL_WORKFLOW,
    STATE_QUERY,
    UPDATE_SIGNAL,
    PoolSpec,
    PoolState,
    pool_workflow_id,
)

LIST_LIMIT = 1000
"""The most pools `pool status` lists."""
QUERY_PATIENCE_S = 60.0
"""How long a pool's state query is retried while the worker that must answer it is busy (a
burst of job tasks on a loaded machine) before the CLI gives up with one line."""
QUERY_RPC_TIMEOUT_S = 15.0


class PoolNotAnswering(RuntimeError):
    """The pool's workflow runs but no worker answered its state query in QUERY_PATIENCE_S."""


async def pool_running(client: Client, name: str) -> bool:
    """Whether pool `name`'s workflow runs now (strongly consistent: describe, not visibility)."""
    try:
        desc = await client.get_workflow_handle(pool_workflow_id(name)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    running = desc.status == WorkflowExecutionStatus.RUNNING
    if running and desc.typed_search_attributes.get(sa.DIVISION) != sa.INTERNAL_DIVISION:
        await _hide(client, name)
    return running


async def _hide(client: Client, name: str) -> None:
    """Take a pool started before pools carried the internal division out of the web UI's list
    (SpotPoolWorkflow.hide). Best effort: a worker from before the signal ignores it."""
    try:
        await client.get_workflow_handle(pool_workflow_id(name)).signal(HIDE_SIGNAL)
    except RPCError:
        pass


async def start_pool(client: Client, spec: PoolSpec) -> None:
    """Start a new pool's workflow (a pool of the same name must not be running)."""
    await client.start_workflow(
        POOL_WORKFLOW, spec, id=pool_workflow_id(spec.name), task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.JOB_ID, spec.job.job_id),
            SearchAttributePair(sa.JOB_NAME, spec.name),
            SearchAttributePair(sa.DIVISION, sa.INTERNAL_DIVISION),  # a pool is not a job: out of the UI's list
        ]),
    )


async def update_pool(client: Client, name: str, min_workers: int, max_workers: int) -> None:
    await client.get_workflow_handle(pool_workflow_id(name)).signal(UPDATE_SIGNAL, [min_workers, max_workers])


async def pool_state(client: Client, name: str) -> PoolState | None:
    """The running pool's state, or None when no pool of that name runs."""
    if not await pool_running(client, name):
        return None
    handle = client.get_workflow_handle(pool_workflow_id(name))
    deadline = time.monotonic() + QUERY_PATIENCE_S
    while True:
        try:
            return await handle.query(STATE_QUERY, result_type=PoolState,
                                      rpc_timeout=timedelta(seconds=QUERY_RPC_TIMEOUT_S))
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
                                  RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.CANCELLED):
                raise
            if time.monotonic() >= deadline:
                raise PoolNotAnswering(
                    f"pool {name!r} did not answer in {QUERY_PATIENCE_S:.0f} s: its worker is busy or not running "
                    "(see `spotctl server status`); nothing was changed, try again") from exc
            await asyncio.sleep(1.0)


async def pool_names(client: Client) -> list[str]:
    """The running pools' names (visibility), sorted."""
    names: list[str] = []
    query = sa.internal(f"WorkflowType = '{POOL_WORKFLOW}' AND ExecutionStatus = 'Running'")
    async for wf in client.list_workflows(query, limit=LIST_LIMIT):
        name = wf.typed_search_attributes.get(sa.JOB_NAME)
        if name:
            names.append(name)
    return sorted(set(names))


async def pool_of_number(client: Client, number: int) -> bool:
    """Whether a running pool's workers carry `number` (for the orphan sweeper)."""
    query = sa.internal(f"WorkflowType = '{POOL_WORKFLOW}' AND ExecutionStatus = 'Running' "
                        f"AND {sa.JOB_ID.name} = {int(number)}")
    return (await client.count_workflows(query)).count > 0


async def ask_down(client: Client, name: str, mode: str) -> None:
    """Tell pool `name` to go down (models.pool.DOWN_DRAIN or DOWN_CANCEL); returns at once."""
    await client.get_workflow_handle(pool_workflow_id(name)).signal(DOWN_SIGNAL, mode)


async def take_down(client: Client, name: str, mode: str, *, timeout_s: float) -> PoolState | None:
    """Ask pool `name` to go down (drain or cancel) and wait up to `timeout_s` until its workflow
    has ended (every worker torn down); its last state, or None if it has not ended yet."""
    handle = client.get_workflow_handle(pool_workflow_id(name), result_type=PoolState)
    await ask_down(client, name, mode)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not await pool_running(client, name):
            return await handle.result()
        await asyncio.sleep(0.5)
    return None

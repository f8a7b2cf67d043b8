"""The Temporal client facade: start, list, describe, cancel and read logs of jobs.

Used by cli/ and by tests; nothing else in spotctl talks to Temporal from the outside.
A job is the workflow `spotctl-job-<id>`; its state is the workflow's memo (for `status`,
one visibility query however many jobs exist) or its `state` query (live, for progress).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from spotctl import search_attributes as sa
from spotctl.config import Settings
from spotctl.connect import connect
from spotctl.models import TASK_QUEUE, TERMINAL_STATUSES, AllocatorState, JobSpec, JobState, JobStatus
from spotctl.storage.log_store import open_log_store
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID, JobIdAllocator

JOB_WORKFLOW = "SpotJobWorkflow"
POLLER_FRESH_S = 90.0
"""A poller the server saw this recently is a live worker (a long poll lasts at most ~70 s)."""


LIST_PAGE_SIZE = 200
"""Executions per visibility page: a page of memos stays a small gRPC message."""
LISTING_QUERY = f"WorkflowType = '{JOB_WORKFLOW}' AND ExecutionStatus != 'ContinuedAsNew'"
"""Every job, once: a continued-as-new run is an earlier part of a job listed by its newest run."""


@dataclass(frozen=True)
class JobPage:
    """Some jobs, newest first, and how many jobs matched in all (for `status`'s footer)."""

    jobs: list[JobState]
    total: int


def jobs_query(query: str | None = None) -> str:
    """The visibility query of the jobs matching `query` (None: every job). page_jobs and
    count_jobs both use it, so a count always counts what a listing lists."""
    return LISTING_QUERY + (f" AND ({query})" if query else "")


def unfinished_query(name: str | None = None) -> str:
    """A filter for jobs that have not ended (optionally with this name), for -s and cancel.

    Both the job's STATUS search attribute and the workflow's: a workflow terminated or
    timed out outside spotctl keeps its last STATUS (RUNNING, say) but is over."""
    ended = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATUSES, key=lambda s: s.value))
    q = f"ExecutionStatus = 'Running' AND {sa.STATUS.name} NOT IN ({ended})"
    return q + (f" AND {sa.JOB_NAME.name} = '{_quote(name)}'" if name is not None else "")


def workflow_id(job_id: int) -> str:
    return f"spotctl-job-{job_id}"


class JobNotFound(Exception):
    pass


class SpotClient:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.temporal = client
        self.settings = settings
        self.logs = open_log_store(settings)

    @classmethod
    async def connect(cls, settings: Settings) -> SpotClient:
        return cls(await connect(settings), settings)

    # ---- launching ---------------------------------------------------------------------
    async def worker_count(self) -> int:
        """How many workers polled the spotctl task queue in the last POLLER_FRESH_S."""
        resp = await self.temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal.namespace,
                task_queue=TaskQueue(name=TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        # The server remembers a poller for minutes after its worker died; a live worker
        # starts a new long poll at least every ~70 s, which refreshes last_access_time.
        now = time.time()
        return sum(1 for p in resp.pollers
                   if not p.HasField("last_access_time") or now - p.last_access_time.ToSeconds() < POLLER_FRESH_S)

    async def wait_for_worker(self, timeout: float) -> bool:
        """Whether a worker polls within `timeout` (a worker that just started registers its
        poller with the server a moment after it is up)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if await self.worker_count():
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.1)

    async def _first_free_job_id(self) -> int:
        """One past the highest job id Temporal knows: the seed of a new allocator, so ids are
        never reused even if the allocator workflow was terminated (not just on first use)."""
        try:
            desc = await self.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                return 1  # unused: the running allocator keeps its own counter
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        highest = 0
        async for execution in self.temporal.list_workflows(f"WorkflowType = '{JOB_WORKFLOW}'"):
            highest = max(highest, execution.typed_search_attributes.get(sa.JOB_ID) or 0)
        return highest + 1

    async def allocate_job_id(self) -> int:
        """The next job id, from the allocator workflow (started on first use)."""
        seed = await self._first_free_job_id()
        for attempt in range(5):
            start = WithStartWorkflowOperation(
                JobIdAllocator.run, AllocatorState(next_id=seed), id=ALLOCATOR_WORKFLOW_ID,
                task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            try:
                return await self.temporal.execute_update_with_start_workflow(
                    JobIdAllocator.allocate, start_workflow_operation=start, rpc_timeout=timedelta(seconds=30)
                )
            except (WorkflowUpdateFailedError, RPCError):
                if attempt == 4:  # the allocator may be mid continue-as-new; try again
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def release_job_id(self, job_id: int) -> bool:
        """Give back the id of a launch that failed before its job existed (best effort: an
        error here must not hide the launch's own). Never when the job's workflow exists: a
        start that failed on the client side may still have started it."""
        try:
            if await self._describe_or_none(job_id) is not None:
                return False
            return await self.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).execute_update(
                JobIdAllocator.release, job_id, rpc_timeout=timedelta(seconds=10)
            )
        except (WorkflowUpdateFailedError, RPCError):
            return False

    async def start_job(self, spec: JobSpec) -> None:
        """Start the job's workflow; PENDING is visible at once through the search attributes."""
        await self.temporal.start_workflow(
            JOB_WORKFLOW, spec, id=workflow_id(spec.job_id), task_queue=TASK_QUEUE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.JOB_ID, spec.job_id),
                SearchAttributePair(sa.JOB_NAME, spec.name),
                SearchAttributePair(sa.STATUS, JobStatus.PENDING.value),
                SearchAttributePair(sa.RECOVERIES, 0),
                SearchAttributePair(sa.RESOURCES, spec.resources),
                SearchAttributePair(sa.SUBMITTED, spec.submitted_at),
            ]),
            memo={"state": JobState(job_id=spec.job_id, name=spec.name, resources=spec.resources,
                                    submitted_at=spec.submitted_at).model_dump(mode="json")},
        )

    # ---- reading -----------------------------------------------------------------------
    async def list_jobs(self, query: str | None = None, *, limit: int | None = None) -> list[JobState]:
        """The jobs matching `query` (a visibility filter; None: every job), newest first (by
        job id), at most `limit` of them (None: all). See page_jobs."""
        return (await self.page_jobs(query, limit=limit)).jobs

    async def count_jobs(self, query: str | None = None) -> int:
        """How many jobs match `query`: one count call, whatever the number."""
        return await self._count(jobs_query(query))

    async def page_jobs(self, query: str | None = None, *, limit: int | None = None) -> JobPage:
        """The newest `limit` jobs matching `query` (None: all) and how many match in all.

        Visibility pages in its own order (running runs by start time, then closed runs by
        close time; SQL visibility has no ORDER BY), so the newest jobs by id are found with
        count calls first (see _newest_floor): `status` reads about `limit` executions and a
        handful of counts, not every job ever run.

        A job that continued-as-new has one closed run per continuation besides its current
        one; visibility lists them all. Only the current run is the job: the query leaves
        the others out, and the newest run per workflow id is kept in case visibility has not
        caught up with a continuation that just happened."""
        q = jobs_query(query)
        total = None if limit is None else await self._count(q)
        if total is not None and limit is not None and total > limit:
            q = f"{q} AND {sa.JOB_ID.name} >= {await self._newest_floor(q, limit)}"
        executions = await self._latest_runs(q)
        states = await asyncio.gather(*(self._state_from_execution(e) for e in executions))
        jobs = sorted(states, key=lambda j: j.job_id, reverse=True)[:limit]
        return JobPage(jobs=jobs, total=max(total or 0, len(jobs)))

    async def job_ids(self, query: str | None = None) -> list[int]:
        """The ids of every job matching `query`, newest first, from the search attributes
        alone (no memo decoded): what `cancel -a` and `cancel -n` act on."""
        ids = {e.typed_search_attributes.get(sa.JOB_ID) or 0 for e in await self._latest_runs(jobs_query(query))}
        return sorted(ids - {0}, reverse=True)

    async def _latest_runs(self, q: str) -> list[WorkflowExecution]:
        """Every execution `q` matches, paged, the newest run per workflow id."""
        latest: dict[str, WorkflowExecution] = {}
        async for e in self.temporal.list_workflows(q, page_size=LIST_PAGE_SIZE):
            have = latest.get(e.id)
            if have is None or (e.start_time, e.run_id) > (have.start_time, have.run_id):
                latest[e.id] = e
        return list(latest.values())

    async def _count(self, q: str) -> int:
        return (await self.temporal.count_workflows(q)).count

    async def _newest_floor(self, q: str, limit: int) -> int:
        """A job id `floor` such that `q AND JobId >= floor` matches at least `limit` jobs and,
        as far as a few counts can tell, at most 2 x limit; the caller knows more than `limit`
        jobs match `q`.

        Job ids are handed out 1, 2, 3 ... by the allocator, so the newest `limit` jobs are
        usually the `limit` ids up to the highest: one count confirms it. Otherwise (-s, a
        name, old jobs removed by retention) the window below the highest id doubles until it
        holds `limit` jobs, then is bisected back to at most 2 x limit: O(log(highest id))
        counts at worst, each one cheap."""
        top = await self._id_bound(q)
        width, above = limit, top + 1  # count(>= above) < limit
        while True:
            floor = max(1, top - width + 1)
            found = await self._count_from(q, floor)
            if found >= limit or floor == 1:
                break
            width, above = width * 2, floor
        lo, hi = floor, above  # count(>= lo) = found >= limit > count(>= hi)
        while found > 2 * limit and hi - lo > 1:
            mid = (lo + hi) // 2
            n = await self._count_from(q, mid)
            if n >= limit:
                lo, found = mid, n
            else:
                hi = mid
        return lo

    async def _id_bound(self, q: str) -> int:
        """A job id no job matching `q` exceeds, close to the highest. The first execution
        listed is the guess (the newest started running run, or the last closed one: most
        often the highest id); one count confirms it, else the bound grows in doubling steps."""
        first = await anext(aiter(self.temporal.list_workflows(q, limit=1, page_size=1)), None)
        bound = (first.typed_search_attributes.get(sa.JOB_ID) or 0) if first else 0
        step = 1
        while await self._count_from(q, bound + 1):
            bound, step = bound + step, step * 2
        return bound

    async def _count_from(self, q: str, job_id: int) -> int:
        """How many jobs matching `q` have an id of `job_id` or more."""
        return await self._count(f"{q} AND {sa.JOB_ID.name} >= {job_id}")

    async def get_job(self, job_id: int, *, live: bool = True) -> JobState:
        """One job's state: the workflow's live query while it runs, its memo once closed."""
        handle = self.temporal.get_workflow_handle(workflow_id(job_id))
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFound(f"no job with id {job_id}") from None
            raise
        if live and desc.status == WorkflowExecutionStatus.RUNNING:
            try:
                state = await handle.query("state", result_type=JobState)
                if state is not None:
                    return state
            except RPCError:
                pass  # no worker answering right now: fall back to the memo
        return await self._state_from_execution(desc)

    async def find_job_id(self, name: str) -> int:
        """The newest job with this name."""
        jobs = await self.list_jobs(f"{sa.JOB_NAME.name} = '{_quote(name)}'", limit=1)
        if not jobs:
            raise JobNotFound(f"no job named {name!r}")
        return jobs[0].job_id

    async def wait_visible(self, job_id: int, status: JobStatus, timeout: float = 5.0) -> None:
        """Wait until visibility (eventually consistent) shows the job in `status`, so a
        `status` command run right after sees what the caller just saw."""
        q = f"WorkflowType = '{JOB_WORKFLOW}' AND {sa.JOB_ID.name} = {job_id} AND {sa.STATUS.name} = '{status.value}'"
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if (await self.temporal.count_workflows(q)).count:
                return
            await asyncio.sleep(0.1)

    async def _state_from_execution(self, execution: WorkflowExecution) -> JobState:
        memo = await execution.memo()
        state = JobState.model_validate(memo["state"]) if "state" in memo else _state_from_attributes(execution)
        # The workflow itself ended without setting a terminal status (terminated by an
        # operator, timed out, crashed): that is a controller failure, in SkyPilot's words.
        # A continued-as-new run handed the job on to a newer run: not an end.
        ended = execution.status not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
        if ended and not state.status.is_terminal:
            reason = f"workflow {execution.status.name.lower()} outside spotctl"
            if execution.status == WorkflowExecutionStatus.CANCELED:
                state = state.model_copy(update={"status": JobStatus.CANCELLED, "failure_reason": "cancelled"})
            else:
                state = state.model_copy(update={"status": JobStatus.FAILED_CONTROLLER, "failure_reason": reason})
            state.ended_at = state.ended_at or execution.close_time
        return state

    # ---- acting ------------------------------------------------------------------------
    async def cancel(self, job_id: int) -> bool:
        """Signal the job to cancel. False if it had already ended."""
        handle = self.temporal.get_workflow_handle(workflow_id(job_id))
        try:
            await handle.signal("cancel")
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                desc = await self._describe_or_none(job_id)
                if desc is None:
                    raise JobNotFound(f"no job with id {job_id}") from None
                return False
            raise
        return True

    async def _describe_or_none(self, job_id: int):
        try:
            return await self.temporal.get_workflow_handle(workflow_id(job_id)).describe()
        except RPCError:
            return None

    async def result(self, job_id: int) -> JobState:
        """Wait for the job to end and return its final state."""
        handle = self.temporal.get_workflow_handle(workflow_id(job_id), result_type=JobState)
        try:
            return await handle.result()
        except Exception:
            return await self.get_job(job_id, live=False)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _state_from_attributes(execution: WorkflowExecution) -> JobState:
    attrs = execution.typed_search_attributes
    return JobState(
        job_id=attrs.get(sa.JOB_ID) or 0,
        name=attrs.get(sa.JOB_NAME) or "-",
        status=JobStatus(attrs.get(sa.STATUS) or "PENDING"),
        recoveries=attrs.get(sa.RECOVERIES) or 0,
        cloud=attrs.get(sa.CLOUD) or None,
        region=attrs.get(sa.REGION) or None,
        resources=attrs.get(sa.RESOURCES) or "-",
        submitted_at=attrs.get(sa.SUBMITTED) or execution.start_time or datetime.now(UTC),
    )

"""The Temporal client facade: start, list, describe, cancel and read logs of jobs.

Used by cli/ and by tests; nothing else in spotctl talks to Temporal from the outside.
A job is the workflow `spotctl-job-<id>`; its state is the workflow's memo (for `status`,
one visibility query however many jobs exist) or its `state` query (live, for progress).
Finding and paging jobs in visibility is client/listing.py's; the listing methods here hand on.
A managed pipeline is one job too (`spotctl-job-<id>`, its tasks child workflows): reading it
reads its unfinished tasks' workflows as well and merges them (client/pipeline_view.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from spotctl.client.connect import connect
from spotctl.client.ending import job_end
from spotctl.client.listing import JOB_TYPES, JOB_WORKFLOW, JobListing, JobPage, pipeline_state, quote, read_state
from spotctl.client.listing import unfinished_query as unfinished_query  # re-exported: cli/ imports it from here
from spotctl.config import Settings
from spotctl.models import TASK_QUEUE, JobSpec, JobState, JobStatus, PipelineSpec
from spotctl.models import search_attributes as sa
from spotctl.models.array import ARRAY_WORKFLOW, array_first_id
from spotctl.models.naming import PIPELINE_WORKFLOW
from spotctl.models.naming import job_workflow_id as workflow_id
from spotctl.models.pool import POOL_WORKFLOW
from spotctl.storage.log_store import open_log_store
from spotctl.workflows.allocator_state import AllocatorState
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID, JobIdAllocator

JOB_ID_SKIPS = 50
"""Ids an allocation skips because their jobs exist before it gives up (an allocator is
seeded past every job it can see, so more than one or two is a broken server)."""
ALLOCATE_PATIENCE_S = 60.0
"""How long an allocation waits while the allocator has as many updates in flight as Temporal
takes for one workflow (10 by default): a burst of launches queues, it does not fail."""
POLLER_FRESH_S = 90.0
"""A poller the server saw this recently is a live worker (a long poll lasts at most ~70 s)."""


class JobNotFound(Exception):
    pass


class JobIdTaken(Exception):
    """A job with this id exists already: the launch must take another id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job id {job_id} is an existing job's")
        self.job_id = job_id


class SpotClient:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.temporal = client
        self.settings = settings
        self.logs = open_log_store(settings)
        self.listing = JobListing(client)
        self.unanswered: set[str] = set()
        """Workflows whose live query no worker answered in time: what was shown of them is
        the last recorded state (the memo), which may be stale."""

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
        """One past the highest job id ever handed out or started: the seed of a new allocator,
        so ids are never reused even if the allocator workflow was terminated (not just on
        first use). An ended allocator's own history says what it handed out, including ids
        of launches still under way (whose jobs visibility cannot show yet); visibility adds
        every job that exists, every pool's number (its workers' clusters are named by it) and
        every job array's block (jobs its submitter has yet to start included)."""
        handle = self.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID)
        highest = 0
        try:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                if desc.typed_search_attributes.get(sa.DIVISION) != sa.INTERNAL_DIVISION:
                    await self._hide_allocator(handle)
                return 1  # unused: the running allocator keeps its own counter
            highest = await self._highest_allocated(handle)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        jobs_and_pools = sa.internal(f"{JOB_TYPES} OR WorkflowType = '{POOL_WORKFLOW}'")  # pools are internal
        async for execution in self.temporal.list_workflows(jobs_and_pools):
            highest = max(highest, execution.typed_search_attributes.get(sa.JOB_ID) or 0)  # a pool's number too
        async for execution in self.temporal.list_workflows(sa.internal(f"WorkflowType = '{ARRAY_WORKFLOW}'")):
            # a job array's whole block, also the ids of the jobs its submitter has not started yet
            first = array_first_id(execution.id)
            if first is not None:
                highest = max(highest, first + int((await execution.memo()).get("count", 1)) - 1)
        return highest + 1

    async def _hide_allocator(self, handle: WorkflowHandle) -> None:
        """Take an allocator started before internal workflows left the web UI's list out of it
        (JobIdAllocator.hide). Best effort: a worker from before `hide` rejects it, and the
        allocator works the same either way."""
        try:
            await handle.execute_update(JobIdAllocator.hide, rpc_timeout=timedelta(seconds=10))
        except (WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
            pass

    async def _highest_allocated(self, handle: WorkflowHandle) -> int:
        """The highest id an ended allocator's last run handed out and kept: its counter, redone
        from its history (the seed it started with, then each allocation and each id given
        back, in the order it answered them), so released ids leave no gap."""
        converter = self.temporal.data_converter
        next_id = 1
        requests: dict[str, tuple[str, Sequence[Payload]]] = {}
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                if payloads:
                    (state,) = await converter.decode(list(payloads)[:1], [AllocatorState])
                    next_id = state.next_id
            elif event.HasField("workflow_execution_update_accepted_event_attributes"):
                request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                requests[request.meta.update_id] = (request.input.name, list(request.input.args.payloads))
            elif event.HasField("workflow_execution_update_completed_event_attributes"):
                done = event.workflow_execution_update_completed_event_attributes
                name, args = requests.pop(done.meta.update_id, ("", []))
                if not done.outcome.HasField("success"):
                    continue
                result_type = int if name in ("allocate", "allocate_block") else bool
                (result,) = await converter.decode(list(done.outcome.success.payloads), [result_type])
                if name == "allocate":
                    next_id = max(next_id, result + 1)
                elif name == "allocate_block" and len(args) > 1:  # a job array's block of ids
                    (count,) = await converter.decode(list(args)[1:2], [int])
                    next_id = max(next_id, result + count)
                elif name == "release" and result is True and args:
                    (released,) = await converter.decode(list(args)[:1], [int])
                    next_id = released
        return next_id - 1

    async def allocate_job_id(self, request_id: str | None = None, *, at_least: int = 0) -> int:
        """The next job id, from the allocator workflow (started on first use), whose job does
        not exist yet (an id an existing job has is skipped: the allocator moves past it).

        `request_id` names this launch's allocation (one uuid per launch): the same request
        id gets the same id back, so a retry after an answer was lost burns nothing. It is
        the update's id too (Temporal deduplicates it within the allocator's run) and the
        allocator remembers it across runs. `at_least`: an id at least this (a launch whose
        id was taken asks for one past it)."""
        request_id = request_id or str(uuid.uuid4())
        seed = await self._first_free_job_id()
        for _ in range(JOB_ID_SKIPS):
            job_id = await self._allocate(request_id, at_least, seed)
            if await self._describe_or_none(job_id) is None:
                return job_id
            at_least = job_id + 1  # an existing job has it (an allocator seeded behind it)
        raise JobIdTaken(at_least - 1)

    async def _allocate(self, request_id: str, at_least: int, seed: int) -> int:
        """One id (JobIdAllocator.allocate), through _ask_allocator."""
        return await self._ask_allocator(JobIdAllocator.allocate, [request_id, at_least], f"allocate-{request_id}-{at_least}",
                                         seed)

    async def _ask_allocator(self, update: Any, args: list[Any], update_id: str, seed: int) -> int:
        """One update of the allocator (started at `seed` if it does not run), retried under the
        same update id (a retry of one that landed returns its answer) for up to
        ALLOCATE_PATIENCE_S: Temporal takes 10 updates of one workflow at once, so a burst of
        launches waits its turn instead of failing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ALLOCATE_PATIENCE_S
        attempt = 0
        while True:
            attempt += 1
            start = WithStartWorkflowOperation(
                JobIdAllocator.run, AllocatorState(next_id=seed), id=ALLOCATOR_WORKFLOW_ID,
                task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=sa.internal_attributes(), static_summary="spotctl's job-id allocator",
            )
            try:
                return await self.temporal.execute_update_with_start_workflow(
                    update, args=args, start_workflow_operation=start, id=update_id, rpc_timeout=timedelta(seconds=30),
                )
            except (WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
                # The allocator may be mid continue-as-new (which aborts the updates it has not
                # taken yet), or busy with other launches' ids: the same update again.
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(min(0.2 * attempt, 2.0))

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

    async def start_job(self, spec: JobSpec | PipelineSpec) -> None:
        """Start the job's workflow (a pipeline's, for a PipelineSpec); PENDING is visible at
        once through the search attributes. Never a second run under an existing job's id,
        running or closed: its logs, memo and search attributes would mix with the old job's
        (Temporal's default allows it)."""
        try:
            await self.temporal.start_workflow(
                PIPELINE_WORKFLOW if isinstance(spec, PipelineSpec) else JOB_WORKFLOW, spec, id=workflow_id(spec.job_id),
                task_queue=TASK_QUEUE, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL, search_attributes=sa.first_attributes(spec),
                memo={"state": spec.first_state().model_dump(mode="json")}, static_summary=sa.list_summary(spec),
            )
        except WorkflowAlreadyStartedError:
            raise JobIdTaken(spec.job_id) from None

    # ---- reading -----------------------------------------------------------------------
    async def list_jobs(self, query: str | None = None, *, limit: int | None = None) -> list[JobState]:
        """The newest jobs matching `query`; see JobListing.list_jobs."""
        return await self.listing.list_jobs(query, limit=limit)

    async def count_jobs(self, query: str | None = None) -> int:
        """How many jobs match `query`; see JobListing.count_jobs."""
        return await self.listing.count_jobs(query)

    async def page_jobs(self, query: str | None = None, *, limit: int | None = None) -> JobPage:
        """The newest `limit` jobs matching `query` and how many match; see JobListing.page_jobs."""
        return await self.listing.page_jobs(query, limit=limit)

    async def job_ids(self, query: str | None = None) -> list[int]:
        """The ids of every job matching `query`, newest first; see JobListing.job_ids."""
        return await self.listing.job_ids(query)

    async def unfinished_job_ids(self, name: str | None = None) -> list[int]:
        """The ids of every job not ended yet (with this name), newest first, including one
        in the middle of a continue-as-new; see JobListing.unfinished_job_ids."""
        return await self.listing.unfinished_job_ids(name)

    async def get_job(self, job_id: int, *, live: bool = True) -> JobState:
        """One job's state: the workflow's live query while it runs, its memo once closed. A
        pipeline's unfinished tasks are asked too (the same way) and merged: client/pipeline_view.py."""
        state = await read_state(self.temporal, workflow_id(job_id), live=live, unanswered=self.unanswered)
        if state is None:
            raise JobNotFound(f"no job with id {job_id}")
        return await pipeline_state(self.temporal, state, live=live, unanswered=self.unanswered)

    async def find_job_id(self, name: str) -> int:
        """The newest job with this name."""
        jobs = await self.list_jobs(f"{sa.JOB_NAME.name} = '{quote(name)}'", limit=1)
        if not jobs:
            raise JobNotFound(f"no job named {name!r}")
        return jobs[0].job_id

    async def wait_visible(self, job_id: int, status: JobStatus, timeout: float = 5.0) -> None:
        """Wait until visibility (eventually consistent) shows the job in `status`, so a
        `status` command run right after sees what the caller just saw."""
        q = f"{JOB_TYPES} AND {sa.JOB_ID.name} = {job_id} AND {sa.STATUS.name} = '{status.value}'"
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if (await self.temporal.count_workflows(q)).count:
                return
            await asyncio.sleep(0.1)

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
            state = await job_end(handle)  # a failed or cancelled job's workflow ends Failed or Canceled
        except Exception:
            return await self.get_job(job_id, live=False)
        return await pipeline_state(self.temporal, state, live=False)

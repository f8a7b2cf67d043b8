"""Finding and paging jobs in Temporal's visibility: what `status` and `cancel -a` list.

A job is a workflow of type JOB_WORKFLOW, or PIPELINE_WORKFLOW for a managed pipeline (its
tasks' child workflows, TASK_WORKFLOW, are parts of it and never listed as jobs); its state for
a listing is the workflow's memo (one visibility query however many jobs exist). A running
pipeline's memo knows its tasks only as of their starts and ends, so the shown pipelines'
running tasks are described too (their memos; a few at a time) and merged (client/pipeline_view.py). SQL visibility (the embedded SQLite
server's) has no ORDER BY: it pages in its own order (running runs by start time, then
closed runs by close time), so the newest jobs by id are found with cheap count calls
first (JobListing._newest_floor) instead of reading every job ever run.

Used by client/jobs.py (the facade); it knows nothing of the client, only of temporalio's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from spotctl.client.pipeline_view import PIPELINE_WORKFLOW, merge, rows_to_fetch, task_workflow_id
from spotctl.models import TERMINAL_STATUSES, JobFailure, JobState, JobStatus
from spotctl.models import search_attributes as sa
from spotctl.models.naming import JOB_WORKFLOW

JOB_WORKFLOWS = (JOB_WORKFLOW, PIPELINE_WORKFLOW)
"""The types of the workflows that are jobs (a pipeline is one job)."""
JOB_TYPES = f"WorkflowType IN ({', '.join(repr(t) for t in JOB_WORKFLOWS)})"
"""Every visibility query of jobs starts with it: pipelines count, their tasks do not."""
LIST_PAGE_SIZE = 200
"""Executions per visibility page: a page of memos stays a small gRPC message."""
LISTING_QUERY = f"{JOB_TYPES} AND ExecutionStatus != 'ContinuedAsNew'"
"""Every job, once: a continued-as-new run is an earlier part of a job listed by its newest run."""
LIVE_QUERY_TIMEOUT_S = 5.0
"""How long a running job's live `state` query may wait for a worker. A worker that is paused,
overloaded or gone without a goodbye would hold it for the RPC's default (~30 s); past this,
the memo (what visibility recorded at the job's last change) is shown instead."""
TASK_READS_AT_ONCE = 16
"""Task workflows described at the same time for a page of pipelines: quick, gentle on the server."""
HANDOVER_WINDOW = timedelta(minutes=10)
"""How long after a run of a job continued as new `cancel -a` still looks at that run: its
successor is a separate visibility record, written apart from the old run's close (Elasticsearch
makes it searchable up to a refresh later), so for a moment the job has no Running record.
Far longer than that moment, and clock skew between this machine and the server."""


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
    return q + (f" AND {sa.JOB_NAME.name} = '{quote(name)}'" if name is not None else "")


def handed_over_query(name: str | None, since: datetime) -> str:
    """Runs of unfinished jobs (optionally with this name) that continued as new after `since`:
    each job's next run may not be in visibility yet (see HANDOVER_WINDOW)."""
    ended = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATUSES, key=lambda s: s.value))
    q = (f"{JOB_TYPES} AND ExecutionStatus = 'ContinuedAsNew' AND CloseTime > "
         f"'{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}' AND {sa.STATUS.name} NOT IN ({ended})")
    return q + (f" AND {sa.JOB_NAME.name} = '{quote(name)}'" if name is not None else "")


def quote(value: str) -> str:
    """A string for the inside of a visibility query's quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class JobListing:
    """The jobs matching a visibility filter, newest first: listed, paged, counted."""

    def __init__(self, temporal: Client) -> None:
        self.temporal = temporal

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
        states = await asyncio.gather(*(state_from_execution(e) for e in executions))
        jobs = sorted(states, key=lambda j: j.job_id, reverse=True)[:limit]
        gate = asyncio.Semaphore(TASK_READS_AT_ONCE)
        jobs = list(await asyncio.gather(*(pipeline_state(self.temporal, j, live=False, gate=gate) for j in jobs)))
        return JobPage(jobs=jobs, total=max(total or 0, len(jobs)))

    async def job_ids(self, query: str | None = None) -> list[int]:
        """The ids of every job matching `query`, newest first, from the search attributes
        alone (no memo decoded): what `cancel -a` and `cancel -n` act on."""
        ids = {e.typed_search_attributes.get(sa.JOB_ID) or 0 for e in await self._latest_runs(jobs_query(query))}
        return sorted(ids - {0}, reverse=True)

    async def unfinished_job_ids(self, name: str | None = None) -> list[int]:
        """The ids of every job that has not ended (optionally with this name), newest first:
        what `cancel -a` and `cancel -n` act on. A job between two runs of a continue-as-new
        is one too: its old run is closed (ContinuedAsNew, left out of every listing) while
        its next one may not be in visibility yet, so a run that continued as new in the last
        HANDOVER_WINDOW adds its job when the job's workflow (its current run) is running."""
        ids = set(await self.job_ids(unfinished_query(name)))
        since = datetime.now(UTC) - HANDOVER_WINDOW
        handed_over = [e for e in await self._latest_runs(handed_over_query(name, since))
                       if (e.typed_search_attributes.get(sa.JOB_ID) or 0) not in ids | {0}]
        gate = asyncio.Semaphore(TASK_READS_AT_ONCE)

        async def running(e: WorkflowExecution) -> bool:
            async with gate:
                try:
                    desc = await self.temporal.get_workflow_handle(e.id).describe()
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        return False
                    raise
                return desc.status == WorkflowExecutionStatus.RUNNING

        alive = await asyncio.gather(*(running(e) for e in handed_over))
        ids |= {e.typed_search_attributes.get(sa.JOB_ID) or 0 for e, up in zip(handed_over, alive, strict=True) if up}
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


async def read_state(temporal: Client, wf_id: str, *, live: bool,
                     unanswered: set[str] | None = None) -> JobState | None:
    """A job's (or a pipeline task's) workflow state: its live `state` query while it runs
    (`live`), else, or when no worker answers within LIVE_QUERY_TIMEOUT_S, its memo (then
    `wf_id` is added to `unanswered`, so the caller can say the state may be stale); None when
    no such workflow exists."""
    handle = temporal.get_workflow_handle(wf_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if live and desc.status == WorkflowExecutionStatus.RUNNING:
        try:
            state = await handle.query("state", result_type=JobState,
                                       rpc_timeout=timedelta(seconds=LIVE_QUERY_TIMEOUT_S))
            if state is not None:
                return state
        except RPCError:  # no worker answering right now (paused, busy, gone): fall back to the memo
            if unanswered is not None:
                unanswered.add(wf_id)
    return await state_from_execution(desc)


async def pipeline_state(temporal: Client, state: JobState, *, live: bool,
                         gate: asyncio.Semaphore | None = None, unanswered: set[str] | None = None) -> JobState:
    """A pipeline as a user sees it: `state` (the pipeline workflow's) with its unfinished
    tasks' own states merged in (read_state of each, `gate` bounding how many at once; a task
    whose workflow does not exist yet keeps its row). Any other job is returned as it is."""
    if not state.is_pipeline:
        return state
    gate = gate or asyncio.Semaphore(TASK_READS_AT_ONCE)

    async def read(index: int) -> tuple[int, JobState | None]:
        async with gate:
            return index, await read_state(temporal, task_workflow_id(state.job_id, index), live=live,
                                           unanswered=unanswered)

    fetched = await asyncio.gather(*(read(i) for i in rows_to_fetch(state)))
    return merge(state, {i: task for i, task in fetched if task is not None})


async def state_from_execution(execution: WorkflowExecution) -> JobState:
    """A job's state from its workflow's memo (a listed execution, or a described one whose
    live query did not answer), corrected for a workflow that ended outside spotctl."""
    memo = await execution.memo()
    state = JobState.model_validate(memo["state"]) if "state" in memo else _state_from_attributes(execution)
    # The workflow itself ended without setting a terminal status (terminated by an
    # operator, timed out, crashed): that is a controller failure, in SkyPilot's words.
    # A continued-as-new run handed the job on to a newer run: not an end.
    ended = execution.status not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
    if ended and not state.status.is_terminal:
        reason = f"workflow {execution.status.name.lower() if execution.status else 'ended'} outside spotctl"
        if execution.status == WorkflowExecutionStatus.CANCELED:
            state = state.model_copy(update={"status": JobStatus.CANCELLED, "failure_reason": "cancelled",
                                             "failure": JobFailure.of("cancelled")})
        else:
            state = state.model_copy(update={"status": JobStatus.FAILED_CONTROLLER, "failure_reason": reason,
                                             "failure": JobFailure.of(reason)})
        state.ended_at = state.ended_at or execution.close_time
    return state


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

"""A managed pipeline as a user sees it: the pipeline's workflow's rows with the running task's
live state laid over them. Pure (no I/O): client/jobs.py and client/listing.py fetch, this merges.

A pipeline is one job (`spotctl-job-<id>`, a SpotPipelineWorkflow) whose tasks run one after
another, each a child workflow `spotctl-job-<id>-task-<i>` (a SpotTaskWorkflow, an ordinary
job workflow with its own cluster, recoveries and history). The parent updates a task's row
only when the task starts and when it ends, so between those moments the row is stale: the
CLI asks the child and merges here. The merged JobState reads like a single job's (status,
place, attempt, durations, history, cost), so every command that shows a job shows a
pipeline without knowing it is one; `tasks` carries the rows for the `↳` lines of `status`.

Attempts are numbered across the whole pipeline (task 1's first attempt follows task 0's
last), so the merged history is every task's history, in attempt order, and log keys
(job id, attempt) never collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from spotctl.models import AttemptRecord, JobFailure, JobState, JobStatus
from spotctl.models.naming import PIPELINE_WORKFLOW, TASK_WORKFLOW, label, task_workflow_id
from spotctl.policy import known_sum

__all__ = ["PIPELINE_WORKFLOW", "TASK_WORKFLOW", "attempt_tasks", "current_index", "merge", "rows_to_fetch",
           "task_label", "task_workflow_id"]

def task_label(rows: list[JobState], index: int) -> str:
    """`task 1/3 'eval'` (pipeline_names.label) for row `index`."""
    return label(index, len(rows), rows[index].name if 0 <= index < len(rows) else "?")


def rows_to_fetch(parent: JobState) -> list[int]:
    """The tasks whose live state is worth asking for: the first row the parent does not know
    to be over (the task under way, or the next to start: its child may exist already), and
    any later row the parent saw start. Ended rows are final; rows never started have no child."""
    wanted: list[int] = []
    for i, row in enumerate(parent.tasks):
        if row.status.is_terminal:
            continue
        if not wanted or _started(row):
            wanted.append(i)
    return wanted


def _started(row: JobState) -> bool:
    return row.status != JobStatus.PENDING or row.attempt > 0 or row.started_at is not None


def current_index(rows: list[JobState]) -> int | None:
    """The task under way: the first row that has not ended; None once every task has."""
    return next((i for i, row in enumerate(rows) if not row.status.is_terminal), None)


def merge(parent: JobState, live: Mapping[int, JobState] | None = None) -> JobState:
    """The pipeline as one job: `parent` (the pipeline workflow's state) with `live` (task
    index -> the child's own state, for rows the parent does not know to be over) laid over it.

    Status: the parent's once it ended, CANCELLING while it cancels, else the task now under
    way's (PENDING before the first task starts, STARTING between two tasks). Place, attempt,
    run_started_at and detail are the current task's (place: the last one's once all ended),
    the detail prefixed with `task i/n 'name'` (so a follow's status line says which task). Recoveries, running time and history add up
    over the tasks; exit code and failure reason are the failing task's."""
    if not parent.is_pipeline:
        return parent
    rows = _rows(parent, live or {})
    status = _status(parent, rows)
    cur = current_index(rows)
    here = rows[cur] if cur is not None else _last_started(rows)
    failing = next((i for i, row in enumerate(rows) if row.status.is_failure), None)
    update: dict = {
        "status": status,
        "tasks": rows,
        "recoveries": sum(row.recoveries for row in rows),
        "job_duration_s": sum(row.job_duration_s for row in rows),
        "history": _history(rows),
        "earlier_cost": known_sum(row.earlier_cost for row in rows),  # the tasks' records cut from their memos
        "earlier_ondemand": known_sum(row.earlier_ondemand for row in rows),
        "started_at": next((row.started_at for row in rows if row.started_at), parent.started_at),
        "attempt": max([parent.attempt, *(row.attempt for row in rows)]),
        "detail": parent.detail,
    }
    if here is not None:
        update.update(cloud=here.cloud, region=here.region, zone=here.zone)
    update["run_started_at"] = rows[cur].run_started_at if cur is not None and not status.is_terminal else None
    if cur is not None and not status.is_terminal:
        what = rows[cur].detail
        update["detail"] = f"{task_label(rows, cur)}: {what}" if what else task_label(rows, cur)
    if status.is_terminal and failing is not None:
        update.update(exit_code=rows[failing].exit_code,
                      failure_reason=f"{task_label(rows, failing)}: {rows[failing].failure_reason or rows[failing].status.value}",
                      failure=JobFailure.of_task(task_label(rows, failing), rows[failing]))
    return parent.model_copy(update=update)


def _rows(parent: JobState, live: Mapping[int, JobState]) -> list[JobState]:
    """The parent's rows, each replaced by its live state where the parent's is not final; rows
    left unfinished in an ended pipeline are closed: never started -> CANCELLED (they never
    will), started -> the pipeline's end (a workflow terminated outside spotctl, say)."""
    rows: list[JobState] = []
    for i, row in enumerate(parent.tasks):
        fresh = live.get(i)
        if fresh is not None and not row.status.is_terminal:
            row = fresh
        if parent.status.is_terminal and not row.status.is_terminal:
            row = row.model_copy(update={
                "status": parent.status if _started(row) else JobStatus.CANCELLED,
                "ended_at": row.ended_at or parent.ended_at, "run_started_at": None, "detail": None})
        if row.task != i:
            row = row.model_copy(update={"task": i})
        rows.append(row)
    return rows


def _status(parent: JobState, rows: list[JobState]) -> JobStatus:
    if parent.status.is_terminal or parent.status == JobStatus.CANCELLING:
        return parent.status
    cur = current_index(rows)
    if cur is None:
        return parent.status  # every task ended; the pipeline is still cleaning up
    if rows[cur].status != JobStatus.PENDING:
        return rows[cur].status
    return JobStatus.PENDING if cur == 0 else JobStatus.STARTING


def _last_started(rows: list[JobState]) -> JobState | None:
    return next((row for row in reversed(rows) if row.cloud), None)


def _history(rows: list[JobState]) -> list[AttemptRecord]:
    """Every task's attempts in attempt order, each marked with its task (for logs --task)."""
    records = [r if r.task == i else r.model_copy(update={"task": i})
               for i, row in enumerate(rows) for r in row.history]
    return sorted(records, key=lambda r: r.attempt)


def attempt_tasks(state: JobState, attempts: Iterable[int]) -> dict[int, int | None]:
    """Which task ran each attempt (None: not known yet). The history says, where it still
    keeps the attempt; else the tasks' attempt counters do (task i's attempts are those after
    task i-1's last, up to its own `attempt`)."""
    known = {r.attempt: r.task for r in state.history if r.task is not None}
    out: dict[int, int | None] = {}
    for a in attempts:
        task = known.get(a)
        if task is None:
            task = next((i for i, row in enumerate(state.tasks) if row.attempt >= a), None)
        out[a] = task
    return out

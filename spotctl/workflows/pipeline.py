"""SpotPipelineWorkflow: a managed pipeline, its tasks run one after another as child workflows.

SkyPilot's managed pipelines (a YAML of several task documents: train, then eval ...) are one
job: one id, one `status` row with a row per task, one `cancel`. Each task is a child workflow
(SpotTaskWorkflow, below: a whole managed job with its own cluster, recovery and history, id
`spotctl-job-<id>-task-<i>`), so each can be looked at alone in the web UI, and this workflow
stays a few events per task.

    task 0 SUCCEEDED -> task 1 starts ... -> the last task SUCCEEDED -> SUCCEEDED
    a task ends in any other status -> the pipeline ends in it; later tasks are CANCELLED
    cancel (signal, or a Temporal cancel) -> the running task is cancelled (it tears down)
                                           -> later tasks CANCELLED -> CANCELLED

A cancel, at any moment and however often, ends the pipeline through the same door: the task
being started is started, then cancelled; a task that ended as the cancel went out keeps its
own end; the final teardown runs and the end event is recorded. While a task runs, the
pipeline's status (and the search attribute queries filter on) is the task's: the task's
workflow signals each change of its status to this one (TASK_STATUS_SIGNAL).

A task's attempts are numbered after the ones before it (PipelineTask.attempt_base), so its
clusters, node dirs and logs never meet another task's. When the pipeline ends, every
cluster tagged with the job is checked gone once more and the job's staged files deleted.
Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from spotctl.models import JobSpec, JobState, JobStatus, PipelineSpec, TaskStatus
    from spotctl.models.naming import (
        PIPELINE_WORKFLOW,
        TASK_STATUS,
        TASK_STATUS_SIGNAL,
        TASK_WORKFLOW,
        label,
        task_workflow_id,
    )
    from spotctl.models.status import JobFailure
    from spotctl.policy import keep_last, known_sum
    from spotctl.workflows.event_outbox import EventOutbox
    from spotctl.workflows.handlers import StateAndCancel
    from spotctl.workflows.job_end import end, ended_state
    from spotctl.workflows.job_summary import describe
    from spotctl.workflows.shielded import until_done
    from spotctl.workflows.spot_job import SpotJobWorkflow
    from spotctl.workflows.teardown import final_teardown, teardown_request
    from spotctl.workflows.visibility import Visibility, internal_child

@workflow.defn(name=TASK_WORKFLOW)
class SpotTaskWorkflow(SpotJobWorkflow):
    """one task of a managed pipeline, a child of the pipeline's workflow.

It is a whole managed job (SpotJobWorkflow: its own cluster, recovery, history, web UI page)
under its own workflow type, so that listing jobs (`WorkflowType = 'SpotJobWorkflow'`) never
lists a task as a job of its own. What differs is in its spec's `task`: its attempts are
numbered after the tasks before it, its records and state carry its index, and it leaves the
job's staged files to the pipeline, which deletes them when the last task has ended. It tells
the pipeline each change of its status (TASK_STATUS_SIGNAL), so the pipeline's own status and
search attributes show the task running, recovering ... (a pipeline is listed and filtered by
them, like any job).
    """

    _told = 0
    """Status changes told to the pipeline in this run (orders those made at one time)."""

    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        return await super().run(spec)

    async def _run_v1(self, spec: JobSpec) -> JobState:
        """Never taken: tasks came after the `controller-v2` patch, so every task's history has
        its marker. A task does not carry the first controller: a bug here fails the workflow
        task (retried once fixed), not the job."""
        raise RuntimeError(f"task {spec.job_id}: a pipeline task never ran under the first controller")

    def _set(self, status: JobStatus, **changes) -> None:
        """SpotJobWorkflow's, and a change of status is told to the pipeline."""
        previous = self._state.status
        super()._set(status, **changes)
        if status != previous and not status.is_terminal:
            self._tell_parent(status)

    def _tell_parent(self, status: JobStatus) -> None:
        """Signal the pipeline the task's new status, without waiting for it (the pipeline
        decides its end itself: an end is not told). A pipeline that has ended is not there
        to hear it: nothing to do."""
        parent, task = workflow.info().parent, getattr(self, "_spec", None) and self._spec.task
        if parent is None or task is None or not workflow.patched(TASK_STATUS):
            return
        self._told += 1
        update = TaskStatus(index=task.index, status=status, at=workflow.now(), n=self._told)
        pipeline = workflow.get_external_workflow_handle_for(SpotPipelineWorkflow.run, parent.workflow_id)
        asyncio.ensure_future(_quietly(pipeline.signal(SpotPipelineWorkflow.task_status, update)))


async def _quietly(signal: Awaitable[None]) -> None:
    try:
        await signal
    except Exception as err:  # the pipeline has ended: there is no one to tell
        workflow.logger.info("task: the pipeline did not take a status: %s", err)


TaskHandle = ChildWorkflowHandle[SpotTaskWorkflow, JobState]

ROW_HISTORY = 50
"""Attempt records kept per task row: the rows live in this workflow's state and memo."""
TEARDOWN_BY_TAG = "pipeline-teardown-by-tag"
"""The patch that makes the final teardown find the job's clusters by its tag, and run even
when no row recorded an attempt (a task workflow terminated outside spotctl returns no row
of its own, so its attempts were outside the range torn down, or nothing was torn down)."""
CANCEL_PATHS = "pipeline-cancels"
"""The patch that passes a cancel on to a task whatever it meets: a task being started is
started, then cancelled; a second cancel while the task is told, or a task that ended before
it could be told, no longer ends the pipeline without its final teardown and end event."""


@workflow.defn(name=PIPELINE_WORKFLOW)
class SpotPipelineWorkflow(StateAndCancel):
    @workflow.init
    def __init__(self, spec: PipelineSpec) -> None:
        """The state exists before any handler runs (no commands here)."""
        self._state: JobState = spec.first_state()
        self._cancel_requested = False
        self._visibility = Visibility()
        self._running: int | None = None
        """The index of the task whose workflow runs now (None between tasks)."""
        self._task_seen: tuple | None = None
        """The (at, n) of the running task's last status update taken."""

    # `state` and `cancel` (the running task is cancelled, later ones never start): StateAndCancel's.

    @workflow.signal(name=TASK_STATUS_SIGNAL)
    def task_status(self, update: TaskStatus) -> None:
        """The running task's new status (its workflow tells each change): the pipeline's own
        status follows it, so a visibility query on the status finds a running pipeline. A
        late or repeated update, or one arriving while the pipeline cancels, is ignored."""
        key = (update.at, update.n)
        if (update.index != self._running or (self._task_seen and key <= self._task_seen)
                or self._cancel_requested or update.status.is_terminal or self._state.status.is_terminal):
            return
        if not workflow.patched(TASK_STATUS):
            return
        self._task_seen = key
        if update.status != self._state.status:
            self._set(update.status)

    @workflow.run
    async def run(self, spec: PipelineSpec) -> JobState:
        self._outbox = EventOutbox(job_id=spec.job_id, name=spec.name, notify=spec.notify, callback=None)
        self._visibility.publish(self._state)
        status, reason, exit_code = JobStatus.SUCCEEDED, None, None
        failure: JobFailure | None = None
        base = 0
        for i in range(len(spec.tasks)):
            if self._cancel_requested:
                status, reason = JobStatus.CANCELLED, "cancelled by user"
                failure = JobFailure.of(reason)
                break
            result = await self._run_task(spec, i, base)
            base = max([base, result.last_attempt] + [r.attempt for r in result.history])
            self._set_row(i, result)
            if result.status != JobStatus.SUCCEEDED:
                status, exit_code = result.status, result.exit_code
                reason = f"{label(i, len(spec.tasks), result.name)}: {result.failure_reason or result.status.value}"
                failure = JobFailure.of_task(label(i, len(spec.tasks), result.name), result)
                break
        self._cancel_rest(f"not run: {reason}" if reason else "not run")
        await self._final_teardown(spec, base)
        previous = self._state.status
        self._set(status, failure_reason=reason if status != JobStatus.SUCCEEDED else None,
                  failure=failure if status != JobStatus.SUCCEEDED else None, exit_code=exit_code,
                  ended_at=workflow.now(), detail=None, last_attempt=base,
                  recoveries=sum(r.recoveries for r in self._state.tasks))
        every_attempt = [r for row in self._state.tasks for r in row.history]  # the cost is all tasks'
        earlier = {k: known_sum(getattr(row, k) for row in self._state.tasks) for k in ("earlier_cost", "earlier_ondemand")}
        self._outbox.record(self._state.model_copy(update={"history": every_attempt, **earlier}), previous)
        await self._outbox.finish()
        return await end(self._state)  # Failed or Canceled as the job (job_end.py)

    async def _run_task(self, spec: PipelineSpec, i: int, base: int) -> JobState:
        """Run task i as a child workflow to its end; a cancel meanwhile is passed on to it
        and its teardown awaited."""
        task_spec = spec.tasks[i]
        assert task_spec.task is not None
        child_spec = task_spec.model_copy(update={"task": task_spec.task.model_copy(update={"attempt_base": base})})
        self._running, self._task_seen = i, None
        self._set_row(i, self._state.tasks[i].model_copy(update={"status": JobStatus.STARTING}))
        self._set(JobStatus.CANCELLING if self._cancel_requested else JobStatus.STARTING,
                  detail=label(i, len(spec.tasks), task_spec.task.name))
        handle = await self._start_child(workflow.start_child_workflow(
            SpotTaskWorkflow.run, child_spec, id=task_workflow_id(spec.job_id, i),
            task_queue=workflow.info().task_queue, parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=label(i, len(spec.tasks), task_spec.task.name), search_attributes=internal_child()))
        try:
            await workflow.wait_condition(lambda: handle.done() or self._cancel_requested)
        except asyncio.CancelledError:  # a Temporal cancel of the pipeline: stop the task the same way
            self._cancel_requested = True
        if not handle.done():
            self._set(JobStatus.CANCELLING, cancel_requested=True, detail="cancelling the running task")
            if workflow.patched(CANCEL_PATHS):
                await self._tell_cancel(handle)
            else:
                await handle.signal(SpotTaskWorkflow.cancel)
            await until_done(handle)  # its teardown, whatever else arrives meanwhile
        self._running = None
        try:
            return handle.result()
        except ChildWorkflowError as err:
            ended = ended_state(err)
            if ended is not None:  # the task failed or was cancelled (job_end.TRUE_ENDS): its last state
                return ended
            # terminated or failed outside spotctl
            return self._state.tasks[i].model_copy(update={
                "status": JobStatus.FAILED_CONTROLLER, "failure_reason": f"task workflow: {describe(err)}",
                "failure": JobFailure.of(f"task workflow: {describe(err)}"), "ended_at": workflow.now()})

    async def _start_child(self, start: Awaitable[TaskHandle]) -> TaskHandle:
        """The started child. A Temporal cancel meanwhile no longer abandons the start (the
        SDK's way: the pipeline would end there, without its teardown and end event): the
        child is started, then told to cancel like any running task."""
        starting = asyncio.ensure_future(start)
        while True:
            try:
                return await asyncio.shield(starting)
            except asyncio.CancelledError:
                if starting.done():
                    return starting.result()
                if not workflow.patched(CANCEL_PATHS):
                    starting.cancel()  # what the SDK did: cancel the child's start, end here
                    await starting
                    raise
                self._cancel_requested = True

    async def _tell_cancel(self, handle: TaskHandle) -> None:
        """Signal the child to cancel, whatever happens meanwhile: a second cancel of the
        pipeline waits for the signal instead of cancelling it, and a child that ended before
        the signal reached it (the signal then fails) is left to report its own end."""
        telling = asyncio.ensure_future(handle.signal(SpotTaskWorkflow.cancel))
        while True:
            try:
                await asyncio.shield(telling)
                return
            except asyncio.CancelledError:
                if telling.done():
                    if not telling.cancelled() and telling.exception() is not None:
                        workflow.logger.info("pipeline: the task had ended before its cancel: %s", telling.exception())
                    return
            except Exception as err:  # the child is closed: its result says how it ended
                workflow.logger.info("pipeline: the task had ended before its cancel: %s", err)
                return

    def _cancel_rest(self, reason: str) -> None:
        """Tasks that never started end CANCELLED (SkyPilot's look for a failed pipeline)."""
        for i, row in enumerate(self._state.tasks):
            if row.status == JobStatus.PENDING:
                self._state.tasks[i] = row.model_copy(update={"status": JobStatus.CANCELLED, "failure_reason": reason,
                                                              "failure": JobFailure.of(reason)})

    async def _final_teardown(self, spec: PipelineSpec, last_attempt: int) -> None:
        """Every cluster of the job (by its tag) checked gone once more (each task tore its own
        down, unless its workflow was ended outside spotctl) and the job's staged files
        deleted; shielded, so a cancel cannot skip it."""
        by_tag = workflow.patched(TEARDOWN_BY_TAG)
        if last_attempt < 1 and not spec.ephemeral_buckets and not by_tag:
            return
        req = teardown_request(spec.job_id, (c for t in spec.tasks for c in t.candidates), first_attempt=1,
                               last_attempt=last_attempt, delete_buckets=spec.ephemeral_buckets, by_tag=by_tag)
        await final_teardown(req, summary="teardown of the pipeline")

    def _set_row(self, i: int, row: JobState) -> None:
        self._state.tasks[i] = keep_last(row, ROW_HISTORY, workflow.now())  # what a cut record cost is kept
        self._visibility.publish(self._state)

    def _set(self, status: JobStatus, **changes) -> None:
        self._state = self._state.model_copy(update={"status": status, **changes})
        self._visibility.publish(self._state)


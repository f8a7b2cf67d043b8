"""SpotTaskWorkflow: one task of a managed pipeline, a child of the pipeline's workflow.

It is a whole managed job (SpotJobWorkflow: its own cluster, recovery, history, web UI page)
under its own workflow type, so that listing jobs (`WorkflowType = 'SpotJobWorkflow'`) never
lists a task as a job of its own. What differs is in its spec's `task`: its attempts are
numbered after the tasks before it, its records and state carry its index, and it leaves the
job's staged files to the pipeline, which deletes them when the last task has ended. It tells
the pipeline each change of its status (TASK_STATUS_SIGNAL), so the pipeline's own status and
search attributes show the task running, recovering ... (a pipeline is listed and filtered by
them, like any job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import JobSpec, JobState, JobStatus, TaskStatus
    from spotctl.models.naming import TASK_STATUS, TASK_WORKFLOW
    from spotctl.workflows.spot_job import SpotJobWorkflow


@workflow.defn(name=TASK_WORKFLOW)
class SpotTaskWorkflow(SpotJobWorkflow):
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
        from spotctl.workflows.pipeline import SpotPipelineWorkflow  # here: pipeline.py imports this module

        self._told += 1
        update = TaskStatus(index=task.index, status=status, at=workflow.now(), n=self._told)
        pipeline = workflow.get_external_workflow_handle_for(SpotPipelineWorkflow.run, parent.workflow_id)
        asyncio.ensure_future(_quietly(pipeline.signal(SpotPipelineWorkflow.task_status, update)))


async def _quietly(signal: Awaitable[None]) -> None:
    try:
        await signal
    except Exception as err:  # the pipeline has ended: there is no one to tell
        workflow.logger.info("task: the pipeline did not take a status: %s", err)

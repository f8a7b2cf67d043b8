"""SpotTaskWorkflow: one task of a managed pipeline, a child of the pipeline's workflow.

It is a whole managed job (SpotJobWorkflow: its own cluster, recovery, history, web UI page)
under its own workflow type, so that listing jobs (`WorkflowType = 'SpotJobWorkflow'`) never
lists a task as a job of its own. What differs is in its spec's `task`: its attempts are
numbered after the tasks before it, its records and state carry its index, and it leaves the
job's staged files to the pipeline, which deletes them when the last task has ended.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import JobSpec, JobState
    from spotctl.pipeline_names import TASK_WORKFLOW
    from spotctl.workflows.spot_job import SpotJobWorkflow


@workflow.defn(name=TASK_WORKFLOW)
class SpotTaskWorkflow(SpotJobWorkflow):
    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        return await super().run(spec)

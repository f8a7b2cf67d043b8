"""Workflows (worker side, sandboxed): deterministic; they import only models/ and policy/. A job is a
SpotJobWorkflow, a pipeline a SpotPipelineWorkflow of SpotTaskWorkflows; legacy/ holds the first
controller, frozen, for jobs started under it.
"""

from spotctl.workflows.event_outbox import JobEventsWorkflow
from spotctl.workflows.job_array import JobArrayWorkflow
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID, JobIdAllocator
from spotctl.workflows.pipeline import SpotPipelineWorkflow, SpotTaskWorkflow
from spotctl.workflows.pool import SpotPoolWorkflow
from spotctl.workflows.spot_job import SpotJobWorkflow

ALL_WORKFLOWS = [SpotJobWorkflow, SpotPipelineWorkflow, SpotTaskWorkflow, JobIdAllocator, JobEventsWorkflow, JobArrayWorkflow,
                 SpotPoolWorkflow]

__all__ = ["ALLOCATOR_WORKFLOW_ID", "ALL_WORKFLOWS", "JobArrayWorkflow", "JobEventsWorkflow", "JobIdAllocator", "SpotJobWorkflow",
           "SpotPipelineWorkflow", "SpotPoolWorkflow", "SpotTaskWorkflow"]

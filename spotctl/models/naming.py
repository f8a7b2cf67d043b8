"""The names a managed pipeline is known by, shared by its workflows and the CLI: the
workflow types, a task's workflow id, and how a task is named in markers and messages."""

from __future__ import annotations

PIPELINE_WORKFLOW = "SpotPipelineWorkflow"
"""The workflow type of a pipeline (the job's own workflow, id `spotctl-job-<id>`)."""
TASK_WORKFLOW = "SpotTaskWorkflow"
"""The workflow type of one task of a pipeline (a child; never listed as a job)."""


def job_workflow_id(job_id: int) -> str:
    """The job's own workflow (a SpotJobWorkflow or a pipeline's): the client starts it, the
    orphan sweeper asks it whether the job is over."""
    return f"spotctl-job-{job_id}"


def task_workflow_id(job_id: int, index: int) -> str:
    """The child workflow of the pipeline's task `index` (0-based, as the TASK column)."""
    return f"spotctl-job-{job_id}-task-{index}"


def label(index: int, count: int, name: str) -> str:
    """`task 1/3 'eval'`: the index 0-based (as `--task`, the TASK column and SkyPilot's task
    ids), then the number of tasks."""
    return f"task {index}/{count} {name!r}"


TASK_STATUS_SIGNAL = "task-status"
"""The pipeline workflow's signal by which a task's workflow tells it its new status
(models.TaskStatus), so the pipeline's status and search attributes show RUNNING, RECOVERING ..."""
TASK_STATUS = "pipeline-task-status"
"""The patch (in both workflows) that sends and takes TASK_STATUS_SIGNAL."""


def cluster_name(job_id: int, attempt: int) -> str:
    """Every instance of an attempt carries this name, so a retried activity finds them."""
    return f"spotctl-{job_id}-{attempt}"

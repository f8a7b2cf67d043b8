"""SkyPilot's task ids: `SKYPILOT_TASK_ID` / `SKYPILOT_RUN_ID` / `SKYPILOT_TASK_IDS`, and the
TASK_ID of event callbacks.

SkyPilot names a managed job's task `sky-managed-<launch time>_<job name>_<job id>-<task
index>`; programs use it as a stable key (a wandb run id, a checkpoint folder), so it must not
change across recoveries: it depends only on what the spec fixed at launch. Pure: the workflow
(events) and the node activities (environment) both compute it.
"""

from __future__ import annotations

from spotctl.models import JobSpec


def task_id(spec: JobSpec, index: int | None = None) -> str:
    """The id of the spec's task (or of task `index` of the same pipeline)."""
    stamp = spec.submitted_at.strftime("%Y-%m-%d-%H-%M-%S-%f")
    if spec.task is None:
        return f"sky-managed-{stamp}_{spec.name}_{spec.job_id}-0"
    i = spec.task.index if index is None else index
    return f"sky-managed-{stamp}_{spec.task.pipeline_name}_{spec.job_id}-{i}"


def task_ids(spec: JobSpec) -> list[str]:
    """Every task's id of the spec's job, in order (one for a single-task job)."""
    count = spec.task.count if spec.task is not None else 1
    return [task_id(spec, i) for i in range(count)]

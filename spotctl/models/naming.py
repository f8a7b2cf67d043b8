"""Every name spotctl gives a thing it must find again, as a format/parse pair: the workflow
types, a job's workflow id (and its tasks' and events' ids), an attempt's cluster name, the
tags its instances carry, a job's ephemeral bucket; and how a pipeline's task is named in
markers and messages. Shared by the workflows, the worker, the clouds and the CLI; pure.

A name, once given, is kept by running jobs, buckets and recorded histories: never change a
format. Each `parse_*` returns what its format was given, or None for any string the format
never makes (another tool's bucket, `spotctl-07-1`, `spotctl-job-id-allocator`), so
`parse(format(x)) == x` and `format(parse(s)) == s` whenever parse(s) is not None
(tests/test_naming.py).
"""

from __future__ import annotations

import re

JOB_WORKFLOW = "SpotJobWorkflow"
"""The workflow type of a single-task job (id job_workflow_id)."""
PIPELINE_WORKFLOW = "SpotPipelineWorkflow"
"""The workflow type of a pipeline (the job's own workflow, id job_workflow_id)."""
TASK_WORKFLOW = "SpotTaskWorkflow"
"""The workflow type of one task of a pipeline (a child; never listed as a job)."""
EVENTS_WORKFLOW = "JobEventsWorkflow"
"""The workflow type that delivers a finished workflow's last events (never listed as a job)."""

_NUMBER = "(0|[1-9][0-9]*)"
"""A number as f"{n}" writes a non-negative int: ASCII digits, no leading zero (`\\d` would
take other scripts' digits, which int() reads)."""


def _numbers(pattern: str, name: str) -> list[int] | None:
    m = re.fullmatch(pattern, name) if isinstance(name, str) else None
    return [int(g) for g in m.groups() if g is not None] if m else None


def job_workflow_id(job_id: int) -> str:
    """The id of job `job_id`'s workflow (a SpotJobWorkflow or a SpotPipelineWorkflow)."""
    return f"spotctl-job-{job_id}"


def parse_job_workflow_id(workflow_id: str) -> int | None:
    """`spotctl-job-12` -> 12; None for any other id (a task's, an events workflow's ...)."""
    found = _numbers(f"spotctl-job-{_NUMBER}", workflow_id)
    return found[0] if found else None


def task_workflow_id(job_id: int, index: int) -> str:
    """The child workflow of the pipeline's task `index` (0-based, as the TASK column)."""
    return f"{job_workflow_id(job_id)}-task-{index}"


def parse_task_workflow_id(workflow_id: str) -> tuple[int, int] | None:
    """`spotctl-job-12-task-1` -> (12, 1); None for any other id."""
    found = _numbers(f"spotctl-job-{_NUMBER}-task-{_NUMBER}", workflow_id)
    return (found[0], found[1]) if found else None


def events_workflow_id(job_id: int, task: int | None = None) -> str:
    """The events workflow of job `job_id` (a pipeline's own), or of its task `task`: its
    workflow's id + `-events`. Made from the job, not read from workflow.info(), so a replay
    under another id makes the same one."""
    return f"{task_workflow_id(job_id, task) if task is not None else job_workflow_id(job_id)}-events"


def parse_events_workflow_id(workflow_id: str) -> tuple[int, int | None] | None:
    """`spotctl-job-12-events` -> (12, None), `spotctl-job-12-task-1-events` -> (12, 1)."""
    found = _numbers(f"spotctl-job-{_NUMBER}(?:-task-{_NUMBER})?-events", workflow_id)
    if not found:
        return None
    return found[0], (found[1] if len(found) > 1 else None)


def cluster_name(job_id: int, attempt: int) -> str:
    """Every instance of an attempt carries this name, so a retried activity finds them."""
    return f"spotctl-{job_id}-{attempt}"


def parse_cluster_name(name: str) -> tuple[int, int] | None:
    """`spotctl-12-3` -> (12, 3); None for a name spotctl did not give."""
    found = _numbers(f"spotctl-{_NUMBER}-{_NUMBER}", name)
    return (found[0], found[1]) if found else None


def job_of_cluster(name: str) -> int | None:
    """`spotctl-12-3` -> 12; None for a name spotctl did not give."""
    parsed = parse_cluster_name(name)
    return parsed[0] if parsed else None


def node_name(cluster: str, rank: int) -> str:
    """The name (AWS's Name tag) of the node of rank `rank` of cluster `cluster`."""
    return f"{cluster}-{rank}"


TAG_CLUSTER = "spotctl-cluster"
"""The tag (AWS) or label (GCE) every instance of a cluster carries: the cluster's name."""
TAG_JOB = "spotctl-job"
"""The job id of a cluster named by cluster_name: the orphan sweeper and teardown by tag read it."""
TAG_ATTEMPT = "spotctl-attempt"
TAG_NODE = "spotctl-node"
"""The node's rank in its cluster (launch order)."""


def instance_tags(cluster: str) -> dict[str, str]:
    """The tags every instance of `cluster` carries: its name, and its job and attempt when the
    name is cluster_name's (a cloud's own tests make clusters of other names)."""
    tags = {TAG_CLUSTER: cluster}
    parsed = parse_cluster_name(cluster)
    if parsed:
        tags[TAG_JOB], tags[TAG_ATTEMPT] = str(parsed[0]), str(parsed[1])
    return tags


def ephemeral_bucket(job_id: int) -> str:
    """The bucket `launch` makes for a job's local files; deleted when the job ends."""
    return f"spotctl-job-{job_id}-files"


def parse_ephemeral_bucket(name: str) -> int | None:
    """`spotctl-job-12-files` -> 12; None for any other bucket."""
    found = _numbers(f"spotctl-job-{_NUMBER}-files", name)
    return found[0] if found else None


def label(index: int, count: int, name: str) -> str:
    """`task 1/3 'eval'`: the index 0-based (as `--task`, the TASK column and SkyPilot's task
    ids), then the number of tasks."""
    return f"task {index}/{count} {name!r}"


TASK_STATUS_SIGNAL = "task-status"
"""The pipeline workflow's signal by which a task's workflow tells it its new status
(models.TaskStatus), so the pipeline's status and search attributes show RUNNING, RECOVERING ..."""
TASK_STATUS = "pipeline-task-status"
"""The patch (in both workflows) that sends and takes TASK_STATUS_SIGNAL."""

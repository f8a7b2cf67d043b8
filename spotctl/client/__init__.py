"""Temporal from outside (CLI side; the worker uses `connect`): connecting with spotctl's data converter,
starting, querying, listing and cancelling jobs, and the pipeline view the CLI shows.
"""

from spotctl.client.arrays import ArrayNotFound
from spotctl.client.connect import connect, ensure_search_attributes
from spotctl.client.ending import job_end
from spotctl.client.filters import UNFINISHED, jobs_filter
from spotctl.client.jobs import (
    JOB_WORKFLOW,
    JobIdTaken,
    JobNotFound,
    JobPage,
    SpotClient,
    unfinished_query,
    workflow_id,
)
from spotctl.client.listing import (
    HANDOVER_WINDOW,
    JOB_TYPES,
    LISTING_QUERY,
    LIVE_QUERY_TIMEOUT_S,
    JobListing,
    handed_over_query,
    pipeline_state,
    read_state,
)
from spotctl.client.pipeline_view import (
    PIPELINE_WORKFLOW,
    TASK_WORKFLOW,
    attempt_tasks,
    current_index,
    merge,
    rows_to_fetch,
    task_label,
    task_workflow_id,
)
from spotctl.client.pools import PoolNotAnswering, pool_names, pool_state
from spotctl.client.runtime import spotctl_runtime

__all__ = [
    "ArrayNotFound",
    "UNFINISHED",
    "jobs_filter",
    "HANDOVER_WINDOW",
    "JOB_TYPES",
    "JOB_WORKFLOW",
    "JobIdTaken",
    "JobListing",
    "JobNotFound",
    "JobPage",
    "LISTING_QUERY",
    "LIVE_QUERY_TIMEOUT_S",
    "PIPELINE_WORKFLOW",
    "PoolNotAnswering",
    "SpotClient",
    "TASK_WORKFLOW",
    "attempt_tasks",
    "connect",
    "current_index",
    "ensure_search_attributes",
    "handed_over_query",
    "job_end",
    "merge",
    "pipeline_state",
    "pool_names",
    "pool_state",
    "read_state",
    "rows_to_fetch",
    "spotctl_runtime",
    "task_label",
    "task_workflow_id",
    "unfinished_query",
    "workflow_id",
]

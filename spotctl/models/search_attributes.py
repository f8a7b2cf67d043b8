"""Custom search attributes: what `spotctl status` lists with one visibility query.

They must be registered with the server before a workflow upserts them (an unregistered one
makes the workflow task fail in a loop): the embedded server registers them at start, and
every worker registers them at start-up against any other cluster.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from spotctl.models.spec import JobSpec, PipelineSpec
from spotctl.models.status import JobStatus

JOB_ID = SearchAttributeKey.for_int("SpotctlJobId")
JOB_NAME = SearchAttributeKey.for_keyword("SpotctlJobName")
STATUS = SearchAttributeKey.for_keyword("SpotctlStatus")
RECOVERIES = SearchAttributeKey.for_int("SpotctlRecoveries")
CLOUD = SearchAttributeKey.for_keyword("SpotctlCloud")
REGION = SearchAttributeKey.for_keyword("SpotctlRegion")
RESOURCES = SearchAttributeKey.for_keyword("SpotctlResources")
SUBMITTED = SearchAttributeKey.for_datetime("SpotctlSubmitted")
POOL = SearchAttributeKey.for_keyword("SpotctlPool")
"""The pool a job runs on (`launch -p POOL`), set at its start and never changed: `status --pool`
and `cancel -p` find a pool's jobs with one query. Jobs on no pool do not have it."""

ALL = (JOB_ID, JOB_NAME, STATUS, RECOVERIES, CLOUD, REGION, RESOURCES, SUBMITTED, POOL)

DIVISION = SearchAttributeKey.for_keyword("TemporalNamespaceDivision")
"""Temporal's own search attribute for the workflows it runs for itself (a schedule's): every
listing whose query does not name it leaves out the executions that have one, the web UI's
list included. Predefined by the server (never registered, not in ALL)."""
INTERNAL_DIVISION = "spotctl"
"""spotctl's internal workflows (the job-id allocator, job-array submitters, pools, a pipeline's
tasks, a job's events hand-off) carry it as DIVISION, so the web UI's list of a namespace shows
jobs only (docs/temporal-ui.md). Jobs never carry it."""
ANY_DIVISION = f"({DIVISION.name} = '{INTERNAL_DIVISION}' OR {DIVISION.name} IS NULL)"
"""A query term that lists internal workflows and those started before they carried DIVISION."""


def internal(query: str) -> str:
    """`query` over spotctl's internal workflows too (those started before DIVISION as well)."""
    return f"({query}) AND {ANY_DIVISION}"


def internal_attributes() -> TypedSearchAttributes:
    """The search attributes an internal workflow starts with: out of the jobs' list."""
    return TypedSearchAttributes([SearchAttributePair(DIVISION, INTERNAL_DIVISION)])

# The names the `temporal` CLI uses for each kind (for `--search-attribute Name=Type`).
CLI_TYPE_NAMES = {"INT": "Int", "KEYWORD": "Keyword", "DATETIME": "Datetime", "TEXT": "Text"}


def cli_flags() -> list[str]:
    """`--search-attribute` flags registering every key at `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={CLI_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags


def first_attributes(spec: JobSpec | PipelineSpec) -> TypedSearchAttributes:
    """A job's search attributes at its start (the CLI's launch and a job array's submitter):
    PENDING with no recovery, visible at once; SpotctlPool only for a job on a pool, so any
    other job's start is what it always was."""
    if isinstance(spec, PipelineSpec):
        resources, pool = spec.tasks[0].resources, None
    else:
        resources, pool = spec.resources, spec.pool
    return TypedSearchAttributes([
        SearchAttributePair(JOB_ID, spec.job_id),
        SearchAttributePair(JOB_NAME, spec.name),
        SearchAttributePair(STATUS, JobStatus.PENDING.value),
        SearchAttributePair(RECOVERIES, 0),
        SearchAttributePair(RESOURCES, resources),
        SearchAttributePair(SUBMITTED, spec.submitted_at),
        *([SearchAttributePair(POOL, pool)] if pool else []),
    ])


SUMMARY_BYTES = 200
"""Temporal's bound on a workflow's static summary (its user metadata)."""


def list_summary(spec: JobSpec | PipelineSpec) -> str:
    """A job's line in the web UI's list of workflows (its static summary, set at its start):
    id, name and what it runs on, so a row says which job it is without opening it. The
    status changes, a summary cannot: the row's Temporal status and the job's current details
    (workflows/visibility.py) say how it is doing."""
    if isinstance(spec, PipelineSpec):
        what = f"pipeline of {len(spec.tasks)} tasks"
    else:
        what = spec.resources + (f" on pool {spec.pool}" if spec.pool else "")
    line = f"job {spec.job_id} `{spec.name}`: {what}"
    return line.encode()[:SUMMARY_BYTES].decode(errors="ignore")

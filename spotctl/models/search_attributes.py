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

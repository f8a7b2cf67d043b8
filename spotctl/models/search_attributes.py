"""Custom search attributes: what `spotctl status` lists with one visibility query.

They must be registered with the server before a workflow upserts them (an unregistered one
makes the workflow task fail in a loop): the embedded server registers them at start, and
every worker registers them at start-up against any other cluster.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

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

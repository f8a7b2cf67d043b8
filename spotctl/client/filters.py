"""The visibility filters of the dashboard's jobs page (status, name, array, pool), as one query
for JobListing.page_jobs: the same queries `status -s`, `status --array` and `status -p` use, so
the page lists what the CLI would."""

from __future__ import annotations

from spotctl.client.arrays import array_query, array_size
from spotctl.client.jobs import SpotClient
from spotctl.client.listing import quote, unfinished_query
from spotctl.models import JobStatus
from spotctl.models import search_attributes as sa

UNFINISHED = "unfinished"
"""The status filter of every job that has not ended (`status -s`)."""


async def jobs_filter(client: SpotClient, *, status: JobStatus | str | None = None, name: str | None = None,
                      array: int | None = None, pool: str | None = None) -> str | None:
    """The visibility query of the jobs matching every filter given (None: no filter at all).

    `status`: a JobStatus, or UNFINISHED; `name`: the job's exact name; `array`: the first job id
    of a job array (ArrayNotFound when no array starts there); `pool`: a pool's name (the caller
    checks it is one: models.pool.valid_pool_name)."""
    parts: list[str] = []
    if status == UNFINISHED:
        parts.append(unfinished_query())
    elif status is not None:
        parts.append(f"{sa.STATUS.name} = '{JobStatus(status).value}'")
    if name is not None:
        parts.append(f"{sa.JOB_NAME.name} = '{quote(name)}'")
    if pool is not None:
        parts.append(f"{sa.POOL.name} = '{quote(pool)}'")
    if array is not None:
        _, count = await array_size(client, array)
        parts.append(array_query(array, count))
    return " AND ".join(f"({p})" for p in parts) or None

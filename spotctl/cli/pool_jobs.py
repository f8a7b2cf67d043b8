"""A pool's jobs from the job commands: `status --pool POOL` and `cancel -p POOL` (SkyPilot's
`sky jobs cancel -p/--pool`): every job launched with `launch -p POOL`, found by its SpotctlPool
search attribute, plus what the pool itself knows (the jobs on its workers and the first in its
queue: a job started a moment ago may not be in visibility yet)."""

from __future__ import annotations

from spotctl.cli.common import fail
from spotctl.client import SpotClient, unfinished_query
from spotctl.client.pools import pool_state
from spotctl.models import search_attributes as sa
from spotctl.models.pool import valid_pool_name


def checked_pool_name(name: str) -> str:
    """`name` when it is a pool's name; else one line, exit 2."""
    if not valid_pool_name(name):
        fail(f"bad pool name {name!r}: lower-case letters, digits and '-', at most 63, starting and ending "
             "with a letter or digit")
    return name


def pool_query(name: str) -> str:
    """The visibility query of pool `name`'s jobs; a bad name is one line, exit 2."""
    return f"{sa.POOL.name} = '{checked_pool_name(name)}'"


async def pool_jobs_to_cancel(client: SpotClient, name: str) -> list[int]:
    """The unfinished jobs of pool `name`, waiting or running, newest first. Exit 1 when no such
    pool runs and no unfinished job names it (a typo must not read as "nothing to cancel")."""
    query = f"({unfinished_query()}) AND {pool_query(name)}"
    ids = await client.job_ids(query)
    st = await pool_state(client.temporal, name)
    if st is not None:
        held = [w.job_id for w in st.workers if w.job_id is not None]
        ids += sorted({*held, *st.queued_jobs} - set(ids), reverse=True)
    elif not ids:
        fail(f"no pool {name!r} and no unfinished job on it (see `spotctl pool status`)", 1)
    return ids

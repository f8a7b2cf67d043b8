"""status, logs, cancel, dashboard: the commands that look at and act on existing jobs."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.console import Console

from spotctl.cli.arrays import array_footers, array_listing, arrays_to_cancel, cancel_array
from spotctl.cli.catalog import price_age_lines
from spotctl.cli.common import (
    EXIT_NOT_FINISHED,
    async_command,
    confirm,
    console,
    err_console,
    exit_code_for,
    fail,
    job_id_option,
    open_client,
    resolve_job,
    settings,
)
from spotctl.cli.follow import LogPrinter, follow, followed
from spotctl.cli.pool_jobs import pool_jobs_to_cancel, pool_query
from spotctl.cli.render import job_in_full, jobs_json, output_width, page_footer, status_table
from spotctl.client import LIVE_QUERY_TIMEOUT_S, JobNotFound, JobPage, SpotClient, unfinished_query
from spotctl.clouds.ondemand import ondemand_prices
from spotctl.config import env_value
from spotctl.embedded import low_space_note
from spotctl.models import JobState
from spotctl.models.naming import job_workflow_id

CANCEL_WORKER_WAIT_S = 5.0
"""How long cancel waits for a worker to poll before it says the cancel only is recorded."""


DEFAULT_LIMIT = 50
"""Jobs `status` lists unless told otherwise: the newest, as newer SkyPilot does, so status
stays one quick look however many jobs were ever run (--limit N or -a for more)."""
MAX_LIMIT = 100_000
"""The largest --limit: beyond it, -a (every job) says what is meant."""
ATTEMPT_QUERIES_AT_ONCE = 8
"""Workflow queries `status` runs at the same time to fetch running jobs' full attempts."""
CANCELS_AT_ONCE = 32
"""Cancel signals `cancel` sends at the same time: fast for many jobs, gentle on the server."""


@click.command()
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-a", "--all", "show_all", is_flag=True,
              help="Everything: every job (no limit, unless --limit is given too) and every column "
                   "(also the on-demand cost, the saving, cloud, region and a short failure reason).")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), metavar="N",
              help=f"List the newest N jobs (default {DEFAULT_LIMIT}; -a: all).")
@click.option("-s", "--skip-finished", is_flag=True, help="Only jobs that have not finished.")
@click.option("-v", "--verbose", is_flag=True,
              help="Each job in full (the newest without JOB_IDS): every attempt with its place, instance type, "
                   "price, cost and outcome, and the whole failure reason.")
@click.option("--json", "as_json_flag", is_flag=True,
              help="Machine-readable output: a JSON list of jobs (the same jobs as the table: --limit, -s, -a apply).")
@click.option("--array", "array_id", type=int, metavar="FIRST_ID",
              help="Only the jobs of the job array whose first job is FIRST_ID, under a line that counts them "
                   "by status (docs/many-jobs.md).")
@click.option("-p", "--pool", "pool_name", metavar="POOL",
              help="Only the jobs of pool POOL (launched with `launch -p POOL`), waiting, running or ended.")
@async_command
async def status(job_ids: tuple[int, ...], show_all: bool, limit: int | None, skip_finished: bool, verbose: bool,
                 as_json_flag: bool, array_id: int | None, pool_name: str | None) -> None:
    """List managed jobs, newest first (only JOB_IDS when given), with what each cost so far.

    Lists the newest 50 jobs unless --limit N or -a is given, and says when there are more.
    The table fits the terminal: ID, NAME and STATUS always show; RANK, ARRAY, PRIORITY, POOL,
    SLACK, MARKET, REGION, CLOUD, TOT. DURATION, SUBMITTED, ON-DEMAND, RESOURCES, JOB DURATION, SAVED,
    #RECOVERIES, COST, FAILURE give way in that order. To a pipe it is printed whole unless COLUMNS is set. A
    pipeline shows a `↳` line per task under its own (TASK: the task's index, as `logs --task`
    takes it). MARKET and SLACK show when a job with a deadline is listed: the market it
    runs on and the deadline's slack at its last decision (docs/deadlines.md). PRIORITY shows
    when a listed job has a priority other than the default; ARRAY and RANK when a job of a
    job array is listed (its first id, the job's SKYPILOT_JOB_RANK); POOL when a job on a pool is
    (`status -v` names its worker). --pool POOL lists only that pool's jobs."""
    s = settings()
    client = await open_client(s, start_server=False)
    page: JobPage | None = None
    if job_ids or verbose:
        newest_of_pool = (await client.job_ids(pool_query(pool_name)))[:1] if pool_name and not job_ids else []
        ids = list(job_ids) or newest_of_pool or [await resolve_job(client, None, None)]
        # Once a worker failed to answer, the rest are read from visibility too: no wait per job.
        jobs = [await client.get_job(jid, live=not client.unanswered) for jid in ids]
    else:
        query = unfinished_query() if skip_finished else None
        if pool_name is not None:
            query = f"({query}) AND {pool_query(pool_name)}" if query else pool_query(pool_name)
        if array_id is not None:
            query, summary = await array_listing(client, array_id, query)
            if not as_json_flag:
                err_console.print(summary, soft_wrap=True, markup=False)
        page = await client.page_jobs(query, limit=limit or (None if show_all else DEFAULT_LIMIT))
        jobs = await _with_all_attempts(client, page.jobs)
    if client.unanswered:
        err_console.print(f"Note: worker not answering (no reply in {LIVE_QUERY_TIMEOUT_S:g} s); status from the "
                          "last recorded state, which may be stale.", soft_wrap=True, markup=False)
    if (full := low_space_note(s)) is not None:
        err_console.print(f"Note: {full}", soft_wrap=True, markup=False)
    wants_catalog = show_all or verbose or as_json_flag
    clouds = {r.cloud for j in jobs for r in j.history}
    prices = ondemand_prices(clouds, s) if wants_catalog else {}
    more = page_footer(len(page.jobs), page.total, unfinished=skip_finished) if page else None
    if as_json_flag:
        click.echo(jobs_json(jobs, prices))
        if more:
            err_console.print(more, soft_wrap=True, markup=False)
        return
    if not jobs:
        console.print("No unfinished managed jobs." if skip_finished else "No managed jobs.")
        return
    if show_all or verbose:  # the ON-DEMAND and SAVED figures are only as true as the catalog's prices
        for line in price_age_lines(clouds, s.home):
            err_console.print(f"Prices: {line}", soft_wrap=True, markup=False)
    width = output_width()
    out = Console(highlight=False, width=width or UNLIMITED_WIDTH)
    if verbose:
        for i, job in enumerate(jobs):
            if i:
                out.print()
            out.print(job_in_full(job, prices=prices))
        return
    out.print(status_table(jobs, show_all=show_all, width=width, prices=prices))
    wrap = not width  # on a terminal the footers wrap at its width, as the table fits it; to a pipe, one line each
    if more:
        out.print(more, soft_wrap=wrap, markup=False)
    if array_id is None:
        for line in await array_footers(client, jobs):
            out.print(line, soft_wrap=wrap, markup=False)


UNLIMITED_WIDTH = 100_000
"""The console width of output to a pipe: wide enough that rich never wraps or clips a row."""


async def _with_all_attempts(client: SpotClient, jobs: list[JobState]) -> list[JobState]:
    """The jobs with every attempt they keep: a running job's memo has only its last few, which
    would understate COST; such jobs (only those, only the ones shown) are asked for their
    state, a few queries at a time, so `status` makes no round trip per job otherwise."""
    gate = asyncio.Semaphore(ATTEMPT_QUERIES_AT_ONCE)

    async def complete(job: JobState) -> JobState:
        if job.status.is_terminal or not job.recoveries or len(job.history) > job.recoveries:
            return job
        async with gate:
            if client.unanswered:  # no worker answers: the memo's attempts, not a wait per job
                return job
            try:
                return await client.get_job(job.job_id)
            except JobNotFound:
                return job

    return list(await asyncio.gather(*(complete(j) for j in jobs)))


@click.command()
@job_id_option
@click.option("--follow/--no-follow", "follow_logs", default=True, help="Keep printing until the job ends (default).")
@click.option("--attempt", type=int, help="Only this attempt's logs (1 is the first launch).")
@click.option("--task", "task", type=int, metavar="N",
              help="A pipeline's task N only (0-based, as status's TASK column).")
@async_command
async def logs(job_id: int | None, name: str | None, follow_logs: bool, attempt: int | None,
               task: int | None) -> None:
    """Print a job's output (every attempt, in order); the newest job by default.

    A pipeline's tasks are printed one after another, a `--- task N/COUNT 'name' ---` line
    before each; --task N prints one task's."""
    s = settings()
    client = await open_client(s, start_server=False)
    jid = await resolve_job(client, job_id, name)
    state = await client.get_job(jid)
    if task is not None:
        _check_task(state, task, attempt)
    if attempt is not None and not 1 <= attempt <= state.attempt:
        # Printing nothing with exit 0 would read as "that attempt printed nothing".
        made = f"attempts 1-{state.attempt}" if state.attempt else "no attempt yet"
        raise JobNotFound(f"job {jid} has no attempt {attempt} ({made})")
    if follow_logs:
        state = await follow(client, jid, progress=False, attempt=attempt, task=task)
    else:
        LogPrinter(client, jid, attempt, task).print_new(state)
    ended = followed(state, task)  # --task N: that task's result
    if not ended.status.is_terminal:
        sys.exit(EXIT_NOT_FINISHED)
    sys.exit(exit_code_for(ended.status))


def _check_task(state: JobState, task: int, attempt: int | None) -> None:
    """--task N names a task of a pipeline (a usage error otherwise, exit 2, like a bad flag)."""
    if attempt is not None:
        fail("give --task or --attempt, not both (attempts are numbered across the whole pipeline)")
    if not state.is_pipeline:
        fail(f"job {state.job_id} is not a pipeline: it has no tasks (--task is for jobs of several tasks)")
    if not 0 <= task < len(state.tasks):
        fail(f"job {state.job_id} has no task {task} (tasks 0-{len(state.tasks) - 1}, as status's TASK column)")


@click.command()
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-n", "--name", help="Cancel the jobs with this name.")
@click.option("-a", "--all", "cancel_all", is_flag=True, help="Cancel every unfinished job.")
@click.option("--array", "array_id", type=int, metavar="FIRST_ID",
              help="Cancel every job of the job array whose first job is FIRST_ID (and stop its submission).")
@click.option("-p", "--pool", "pool_name", metavar="POOL",
              help="Cancel every job of pool POOL, waiting or running; the pool and its workers stay up.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@async_command
async def cancel(job_ids: tuple[int, ...], name: str | None, cancel_all: bool, array_id: int | None,
                 pool_name: str | None, yes: bool) -> None:
    """Cancel managed jobs: their program is stopped and their instances terminated.

    A job array's submission stops first (with --array, -n of the array's name, -p of its pool,
    or -a), so no job of it starts after the cancel. A job on a pool gives its worker back: the
    worker is kept for the pool's next job (`pool down` takes workers down)."""
    if not (job_ids or name or cancel_all or array_id is not None or pool_name is not None):
        raise click.UsageError("give job ids, -n NAME, -p POOL, --array FIRST_ID or -a")
    s = settings()
    client = await open_client(s, start_server=False)
    ids = list(job_ids)
    if pool_name is not None:
        ids += await pool_jobs_to_cancel(client, pool_name)
    arrays = await arrays_to_cancel(client, array_id, name, cancel_all, pool_name)
    in_arrays: set[int] = set()
    if arrays:
        if not yes:
            more = f" and job(s) {', '.join(map(str, ids))}" if ids else ""
            confirm(f"Cancel job array(s) {', '.join(map(str, arrays))} (every job of each){more}?", yes_flag="-y")
            yes = True
        if not await client.wait_for_worker(timeout=CANCEL_WORKER_WAIT_S):
            fail(f"no spotctl worker polls task queue 'spotctl' on {s.temporal_address}: a job array's submission "
                 "stops only when one runs (`spotctl worker`); nothing was cancelled", 1)
        for first in arrays:
            in_arrays |= await cancel_array(client, first, _cancel_each)
        if not (set(ids) - in_arrays or name or cancel_all):
            return
    if name or cancel_all:
        ids += await client.unfinished_job_ids(None if cancel_all else name)
        if name and not ids and not arrays:
            raise JobNotFound(f"no unfinished job named {name!r}")
    ids = [jid for jid in dict.fromkeys(ids) if jid not in in_arrays]
    if not ids:
        console.print("No unfinished jobs to cancel.")
        return
    if not yes:
        confirm(f"Cancel job(s) {', '.join(map(str, ids))}?", yes_flag="-y")
    outcome = await _cancel_each(client, ids)
    recorded = [jid for jid in ids if outcome[jid] is True]
    missing = [jid for jid in ids if outcome[jid] is None]
    for jid in ids:
        if outcome[jid] is False:
            console.print(f"Job {jid}: already finished")
    # The cancel is a signal in the job's history: only a worker acts on it. Say so when none
    # polls, rather than "cancelling" while nothing happens.
    worker = bool(recorded) and await client.wait_for_worker(timeout=CANCEL_WORKER_WAIT_S)
    for jid in recorded:
        console.print(f"Job {jid}: {'cancelling' if worker else 'cancel recorded; it takes effect when a worker runs'}")
    if missing:
        raise JobNotFound(f"no job with id {', '.join(map(str, missing))}")
    if recorded and not worker:
        fail(f"no spotctl worker polls task queue 'spotctl' on {s.temporal_address}: the cancel takes effect "
             "when one runs (`spotctl worker`)", 1)


async def _cancel_each(client: SpotClient, ids: list[int]) -> dict[int, bool | None]:
    """Signal every job to cancel, CANCELS_AT_ONCE at a time (cancel -a of a thousand jobs
    must not take a thousand round trips in a row): True sent, False already finished,
    None no such job."""
    gate = asyncio.Semaphore(CANCELS_AT_ONCE)

    async def one(jid: int) -> bool | None:
        async with gate:
            try:
                return await client.cancel(jid)
            except JobNotFound:
                return None

    return dict(zip(ids, await asyncio.gather(*(one(jid) for jid in ids)), strict=True))


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--temporal-ui", "temporal_ui", is_flag=True,
              help="Print the Temporal web UI's address (of JOB_ID's workflow) instead of serving the dashboard.")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="The address to serve on. Anything but loopback shows every job to whoever reaches it: "
                   "put it behind your own auth (docs/dashboard.md).")
@click.option("--port", type=click.IntRange(0, 65_535), metavar="PORT",
              help="The port to serve on (default SPOTCTL_DASHBOARD_PORT, 8237; 0: any free port).")
@async_command
async def dashboard(job_id: int | None, temporal_ui: bool, host: str, port: int | None) -> None:
    """Serve the job-aware web dashboard until Ctrl-C (given JOB_ID, print that job's page's address).

    Three pages, live: the jobs (status's table, with filters by status, name, array and pool, and
    a pipeline's tasks), one job (a timeline of its attempts by place, with preemptions and market
    switches and their reasons, its cost against on-demand over time, deadline and slack, its log
    tail, a link to its workflow in the Temporal UI) and the fleet (spend against on-demand,
    preemptions and capacity failures by zone, pools and their workers). It listens on 127.0.0.1
    unless --host says otherwise (docs/dashboard.md). --temporal-ui prints the Temporal web UI's
    address instead, as this command did before."""
    s = settings()
    if temporal_ui:
        url = f"{s.ui_url}/namespaces/{s.temporal.namespace}/workflows"
        if job_id is not None:
            # A URL of a job that does not exist opens an empty page: say so instead (exit 102).
            client = await open_client(s, start_server=False)
            await client.get_job(job_id)
            url += f"/{job_workflow_id(job_id)}"
        console.print(url, soft_wrap=True)
        return
    # imported here: the web framework is for this command only, not every command's start-up
    from spotctl.dashboard import DEFAULT_DASHBOARD_PORT, bind, is_loopback, serve, url_of

    if len(host) > 255 or not host.strip():
        fail("--host must be an address of this machine (at most 255 characters)")
    client = await open_client(s, start_server=False)
    if job_id is not None:
        await client.get_job(job_id)  # a job that does not exist: one line, exit 102, no server
    port = port if port is not None else env_value("SPOTCTL_DASHBOARD_PORT")
    try:
        sock = bind(host, DEFAULT_DASHBOARD_PORT if port is None else port)
    except (OSError, OverflowError) as exc:
        fail(f"cannot serve the dashboard on {host}:{port}: {exc.strerror if isinstance(exc, OSError) else exc}", 1)
    url = url_of(sock) + (f"/jobs/{job_id}" if job_id is not None else "/")
    if not is_loopback(host):
        err_console.print(f"Note: serving on {host}, not loopback: whoever reaches it sees every job; put it behind "
                          "your own auth (docs/dashboard.md).", soft_wrap=True, markup=False)
    await serve(client, s, sock, on_ready=lambda: console.print(
        f"Dashboard: {url} (Ctrl-C stops it)", soft_wrap=True, markup=False))

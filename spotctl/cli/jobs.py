"""status, logs, cancel, dashboard: the commands that look at and act on existing jobs."""

from __future__ import annotations

import sys

import click

from spotctl.cli.common import (
    EXIT_NOT_FINISHED,
    async_command,
    console,
    exit_code_for,
    fail,
    job_id_option,
    open_client,
    resolve_job,
    settings,
)
from spotctl.cli.follow import LogPrinter, follow
from spotctl.cli.render import jobs_json, status_table
from spotctl.client import JobNotFound

CANCEL_WORKER_WAIT_S = 5.0
"""How long cancel waits for a worker to poll before it says the cancel only is recorded."""


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Also show cloud, region and the failure reason.")
@click.option("--json", "as_json_flag", is_flag=True, help="Machine-readable output: a JSON list of jobs.")
@async_command
async def status(show_all: bool, as_json_flag: bool) -> None:
    """List managed jobs, newest first."""
    s = settings()
    client = await open_client(s, start_server=False)
    jobs = await client.list_jobs()
    if as_json_flag:
        click.echo(jobs_json(jobs))
        return
    if not jobs:
        console.print("No managed jobs.")
        return
    console.print(status_table(jobs, show_all=show_all))


@click.command()
@job_id_option
@click.option("--follow/--no-follow", "follow_logs", default=True, help="Keep printing until the job ends (default).")
@click.option("--attempt", type=int, help="Only this attempt's logs (1 is the first launch).")
@async_command
async def logs(job_id: int | None, name: str | None, follow_logs: bool, attempt: int | None) -> None:
    """Print a job's output (every attempt, in order); the newest job by default."""
    s = settings()
    client = await open_client(s, start_server=False)
    jid = await resolve_job(client, job_id, name)
    state = await client.get_job(jid)
    if follow_logs:
        state = await follow(client, jid, progress=False, attempt=attempt)
    else:
        LogPrinter(client, jid, attempt).print_new(state)
    if not state.status.is_terminal:
        sys.exit(EXIT_NOT_FINISHED)
    sys.exit(exit_code_for(state.status))


@click.command()
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-n", "--name", help="Cancel the jobs with this name.")
@click.option("-a", "--all", "cancel_all", is_flag=True, help="Cancel every unfinished job.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@async_command
async def cancel(job_ids: tuple[int, ...], name: str | None, cancel_all: bool, yes: bool) -> None:
    """Cancel managed jobs: their program is stopped and their instances terminated."""
    if not (job_ids or name or cancel_all):
        raise click.UsageError("give job ids, -n NAME or -a")
    s = settings()
    client = await open_client(s, start_server=False)
    ids = list(job_ids)
    if name or cancel_all:
        jobs = await client.list_jobs()
        ids += [j.job_id for j in jobs if not j.status.is_terminal and (cancel_all or j.name == name)]
        if name and not ids:
            raise JobNotFound(f"no unfinished job named {name!r}")
    if not ids:
        console.print("No unfinished jobs to cancel.")
        return
    if not yes:
        click.confirm(f"Cancel job(s) {', '.join(map(str, ids))}?", default=True, abort=True, err=True)
    missing, recorded = [], []
    for jid in ids:
        try:
            if await client.cancel(jid):
                recorded.append(jid)
            else:
                console.print(f"Job {jid}: already finished")
        except JobNotFound:
            missing.append(jid)
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


@click.command()
@click.argument("job_id", type=int, required=False)
def dashboard(job_id: int | None) -> None:
    """Print the Temporal web UI address (of one job's workflow, given its id)."""
    s = settings()
    url = f"{s.ui_url}/namespaces/{s.temporal.namespace}/workflows"
    if job_id is not None:
        url += f"/spotctl-job-{job_id}"
    console.print(url, soft_wrap=True)
